//! Network records: NetworkConnect (TCP connect and accept).

use crate::Header;

pub const AF_INET: u16 = 2;
pub const AF_INET6: u16 = 10;
pub const IPPROTO_TCP: u16 = 6;

/// One connection, seen from the process that made (`initiated`) or accepted it. Source is
/// the local end of a connect and the remote end of an accept, as in Sysmon.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct NetRecord {
    pub header: Header,
    pub uid: u32,
    /// 1 for connect, 0 for accept.
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

#[cfg(feature = "user")]
unsafe impl aya::Pod for NetRecord {}
