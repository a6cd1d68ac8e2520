//! Network records: NetworkConnect (TCP connect and accept, UDP send and receive).

use crate::Header;

pub const AF_INET: u16 = 2;
pub const AF_INET6: u16 = 10;
pub const IPPROTO_TCP: u16 = 6;
pub const IPPROTO_UDP: u16 = 17;

/// A UDP flow is reported once per process, direction and address pair in this time, as
/// Sysmon (30 minutes).
pub const UDP_REPORT_NS: u64 = 30 * 60 * 1_000_000_000;

/// One connection or UDP flow, seen from the process that made (`initiated`: connect, send)
/// or accepted it (accept, receive). Source is the local end when initiated and the remote
/// end otherwise, as in Sysmon.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct NetRecord {
    pub header: Header,
    pub uid: u32,
    /// 1 for connect and send, 0 for accept and receive.
    pub initiated: u16,
    /// `AF_INET` or `AF_INET6`.
    pub family: u16,
    pub protocol: u16,
    /// Ports in host order.
    pub sport: u16,
    pub dport: u16,
    pub _pad: u16,
    /// IPv4 addresses use the first 4 bytes; network order.
    pub saddr: [u8; 16],
    pub daddr: [u8; 16],
}

/// Key of the UDP flows already reported: process, direction and both ends.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UdpFlow {
    pub tgid: u32,
    pub initiated: u16,
    pub family: u16,
    pub sport: u16,
    pub dport: u16,
    pub saddr: [u8; 16],
    pub daddr: [u8; 16],
}

#[cfg(feature = "user")]
unsafe impl aya::Pod for NetRecord {}
