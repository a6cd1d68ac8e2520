//! Receiving UDP datagrams through each receive call, for the NetworkConnect and DnsQuery
//! tests.

use std::{
    net::{Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket},
    os::fd::AsRawFd,
};

/// How a datagram is received.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Recv {
    /// recvfrom with an address buffer.
    From,
    /// recvmsg with `msg_name`.
    Msg,
    /// recvmsg without `msg_name` (the peer is known only from a connected socket).
    MsgNoName,
    /// recvmmsg of one message, with `msg_name`.
    Mmsg,
    /// read(): no address at all.
    Read,
}

/// Receives one datagram on `s` as `how` says; returns its length and the sender when the
/// call said it.
pub fn receive(s: &UdpSocket, buf: &mut [u8], how: Recv) -> (usize, Option<SocketAddr>) {
    let fd = s.as_raw_fd();
    let mut addr: libc::sockaddr_in6 = unsafe { std::mem::zeroed() };
    let mut len = size_of::<libc::sockaddr_in6>() as u32;
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    if matches!(how, Recv::Msg | Recv::Mmsg) {
        msg.msg_name = (&raw mut addr).cast();
        msg.msg_namelen = len;
    }
    let n = unsafe {
        match how {
            Recv::From => libc::recvfrom(
                fd,
                buf.as_mut_ptr().cast(),
                buf.len(),
                0,
                (&raw mut addr).cast(),
                &mut len,
            ),
            Recv::Msg | Recv::MsgNoName => libc::recvmsg(fd, &mut msg, 0),
            Recv::Mmsg => {
                let mut m = libc::mmsghdr {
                    msg_hdr: msg,
                    msg_len: 0,
                };
                match libc::recvmmsg(fd, &mut m, 1, 0, std::ptr::null_mut()) {
                    1 => m.msg_len as isize,
                    _ => -1,
                }
            }
            Recv::Read => libc::read(fd, buf.as_mut_ptr().cast(), buf.len()),
        }
    };
    assert!(n >= 0, "{how:?}: {}", std::io::Error::last_os_error());
    let port = u16::from_be(addr.sin6_port);
    let from = match addr.sin6_family as i32 {
        libc::AF_INET6 => Some(SocketAddr::new(
            Ipv6Addr::from(addr.sin6_addr.s6_addr).into(),
            port,
        )),
        libc::AF_INET => {
            // SAFETY: an AF_INET address is a sockaddr_in.
            let v4 = unsafe { &*(&raw const addr).cast::<libc::sockaddr_in>() };
            let ip = Ipv4Addr::from(v4.sin_addr.s_addr.to_ne_bytes());
            Some(SocketAddr::new(ip.into(), port))
        }
        _ => None,
    };
    (n as usize, from)
}
