//! NetworkConnect for UDP, once per flow (process, direction, both ends) per 30 minutes.
//!
//! Send: `net/net_dev_queue`, reached from sendmsg in the sending process, reading the
//! datagram's own IP and UDP headers, so the source address is the routed one even for an
//! unconnected socket (a datagram held for neighbour resolution goes out later, from
//! softirq, and is then credited to whichever task runs: as Sysmon).
//! Receive by recvfrom, recvmsg and recvmmsg: at their exit (`recv.rs`), with the sender's
//! address the kernel wrote into the caller's buffer. Any other receive (read, readv, a
//! NULL address): `sock/sock_recv_length`, in the receiving process, with the socket's
//! ends, as in Sysmon: an unconnected socket's remote end is then `0.0.0.0:0` (the datagram
//! is no longer at hand there; UDP copies it without a tracepoint).

use aya_ebpf::{
    helpers::{bpf_get_current_pid_tgid, bpf_ktime_get_boot_ns},
    macros::raw_tracepoint,
    programs::RawTracePointContext,
};
use sysmon_common::{
    RecordKind,
    net::{AF_INET, AF_INET6, IPPROTO_UDP, NetRecord, UDP_REPORT_NS, UdpFlow},
};

use crate::{
    kernel::{Ptr, current_uid, off, read, read_ptr},
    maps::{RECVS, UDP_SEEN, send},
};

#[raw_tracepoint(tracepoint = "net_dev_queue")]
pub fn udp_send(ctx: RawTracePointContext) -> i32 {
    let skb: Ptr = ctx.arg::<*const u8>(0);
    // Forwarded traffic has no socket; TCP and others are not ours here.
    let sk = read_ptr(skb, off!(skb_sk));
    if sk.is_null() || read::<u16>(sk, off!(sock_protocol)) != IPPROTO_UDP {
        return 0;
    }
    let head = read_ptr(skb, off!(skb_head));
    let ip = head.wrapping_add(read::<u16>(skb, off!(skb_network_header)) as usize);
    let udp = head.wrapping_add(read::<u16>(skb, off!(skb_transport_header)) as usize);
    let mut rec = record(1);
    // Only a datagram's first fragment carries the UDP header; IPv6 extension headers
    // (fragments included) are not walked.
    match read::<u8>(ip, 0) >> 4 {
        4 if u16::from_be(read(ip, 6)) & 0x1fff == 0 => {
            rec.family = AF_INET;
            rec.saddr[..4].copy_from_slice(&read::<[u8; 4]>(ip, 12));
            rec.daddr[..4].copy_from_slice(&read::<[u8; 4]>(ip, 16));
        }
        6 if read::<u8>(ip, 6) as u16 == IPPROTO_UDP => {
            rec.family = AF_INET6;
            rec.saddr = read(ip, 8);
            rec.daddr = read(ip, 24);
        }
        _ => return 0,
    }
    rec.sport = u16::from_be(read(udp, 0));
    rec.dport = u16::from_be(read(udp, 2));
    report(&mut rec);
    0
}

/// `sock_recv_length(struct sock *sk, int ret, int flags)`.
#[raw_tracepoint(tracepoint = "sock_recv_length")]
pub fn udp_recv(ctx: RawTracePointContext) -> i32 {
    let sk: Ptr = ctx.arg::<*const u8>(0);
    let ret: i32 = ctx.arg::<i32>(1);
    // recvfrom, recvmsg and recvmmsg are reported at their exit, with the sender's address.
    if RECVS.get_ptr(bpf_get_current_pid_tgid()).is_some() {
        return 0;
    }
    let mut rec = record(0);
    if ret >= 0 && super::network::fill(&mut rec, sk, IPPROTO_UDP) {
        report(&mut rec);
    }
    0
}

#[inline(always)]
pub fn record(initiated: u16) -> NetRecord {
    NetRecord {
        header: super::header(RecordKind::Network, core::mem::size_of::<NetRecord>()),
        initiated,
        protocol: IPPROTO_UDP,
        ..NetRecord::default()
    }
}

/// Sends `rec` (with the caller's uid) unless its flow was reported less than
/// `UDP_REPORT_NS` ago.
#[inline(always)]
pub fn report(rec: &mut NetRecord) {
    let flow = UdpFlow {
        tgid: (bpf_get_current_pid_tgid() >> 32) as u32,
        initiated: rec.initiated,
        family: rec.family,
        sport: rec.sport,
        dport: rec.dport,
        saddr: rec.saddr,
        daddr: rec.daddr,
    };
    let now = unsafe { bpf_ktime_get_boot_ns() };
    if let Some(last) = unsafe { UDP_SEEN.get(flow) }
        && now.wrapping_sub(*last) < UDP_REPORT_NS
    {
        return;
    }
    let _ = UDP_SEEN.insert(flow, now, 0);
    rec.uid = current_uid();
    send(RecordKind::Network, super::bytes(rec));
}
