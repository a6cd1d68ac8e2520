//! DNS records: the first bytes of a UDP datagram received from port 53 (DNSQuery, 22).

use crate::Header;

/// The DNS port: a datagram from it is taken as a DNS answer.
pub const DNS_PORT: u16 = 53;

/// Bytes of a DNS answer the kernel copies: the classic UDP limit (RFC 1035), which holds
/// the question and the first answers of a bigger (EDNS) response.
pub const DNS_MAX: usize = 512;

/// A DNS message's fixed header; shorter datagrams are not sent.
pub const DNS_HEADER: u64 = 12;

/// DNS answers one process may send a second (past a burst of `DNS_BURST`); more are
/// counted as drops (`drops::RATE`). The agent reports a name and type once a second per
/// process, so a process past this is a busy resolver or a flood: one process cannot fill
/// the ring buffer with DNS answers and push out other records.
pub const DNS_PER_SEC: u64 = 1000;
pub const DNS_BURST: u64 = 1000;

/// A DNS answer as the receiving process got it. Fixed size (the ring buffer slot is
/// reserved whole); `len` bytes of `data` are the message.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct DnsRecord {
    pub header: Header,
    pub uid: u32,
    /// Bytes of `data` copied from the caller's buffer.
    pub len: u16,
    /// 1 when the datagram was longer than `len` (cut by us or by the caller's buffer).
    pub cut: u16,
    pub data: [u8; DNS_MAX],
}

impl Default for DnsRecord {
    fn default() -> Self {
        DnsRecord {
            header: Header::default(),
            uid: 0,
            len: 0,
            cut: 0,
            data: [0; DNS_MAX],
        }
    }
}

#[cfg(feature = "user")]
unsafe impl aya::Pod for DnsRecord {}
