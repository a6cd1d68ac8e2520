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
    maps::{RECVS, UDP_SEEN, count_drop, send},
};

/// IPv6 next-header values of the extension headers walked to find the UDP header.
const IPV6_HOP_BY_HOP: u8 = 0;
const IPV6_ROUTING: u8 = 43;
const IPV6_FRAGMENT: u8 = 44;
const IPV6_DEST_OPTS: u8 = 60;
/// Extension headers walked (RFC 8200 orders at most one of each, destination options twice).
const IPV6_EXT_HEADERS: usize = 5;

/// Offset of the UDP header in the IPv6 packet at `ip`, behind any extension headers; `None`
/// for a later fragment (no UDP header of its own). A datagram whose UDP header is not found
/// (more extension headers than walked) is counted as a drop.
#[inline(always)]
fn ipv6_udp_at(ip: Ptr) -> Option<u32> {
    let mut next: u8 = read(ip, 6);
    let mut at = 40u32;
    for _ in 0..IPV6_EXT_HEADERS {
        match next {
            IPV6_HOP_BY_HOP | IPV6_ROUTING | IPV6_DEST_OPTS => {
                let len = (read::<u8>(ip, at + 1) as u32 + 1) * 8;
                next = read(ip, at);
                at += len;
            }
            IPV6_FRAGMENT => {
                if u16::from_be(read(ip, at + 2)) & 0xfff8 != 0 {
                    return None;
                }
                next = read(ip, at);
                at += 8;
            }
            _ => break,
        }
    }
    if next as u16 != IPPROTO_UDP {
        count_drop(RecordKind::Network);
        return None;
    }
    Some(at)
}

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
    let mut udp = head.wrapping_add(read::<u16>(skb, off!(skb_transport_header)) as usize);
    let mut rec = record(1);
    // Only a datagram's first fragment carries the UDP header.
    match read::<u8>(ip, 0) >> 4 {
        4 if u16::from_be(read(ip, 6)) & 0x1fff == 0 => {
            rec.family = AF_INET;
            rec.saddr[..4].copy_from_slice(&read::<[u8; 4]>(ip, 12));
            rec.daddr[..4].copy_from_slice(&read::<[u8; 4]>(ip, 16));
        }
        6 => {
            let Some(at) = ipv6_udp_at(ip) else {
                return 0;
            };
            rec.family = AF_INET6;
            rec.saddr = read(ip, 8);
            rec.daddr = read(ip, 24);
            udp = ip.wrapping_add(at as usize);
        }
        _ => return 0,
    }
    rec.sport = u16::from_be(read(udp, 0));
    rec.dport = u16::from_be(read(udp, 2));
    report(&mut rec, &mut UdpFlow::default());
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
        report(&mut rec, &mut UdpFlow::default());
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
/// `UDP_REPORT_NS` ago. `flow` is room for the flow's key (on the caller's stack, or map
/// memory where the stack is short).
#[inline(always)]
pub fn report(rec: &mut NetRecord, flow: &mut UdpFlow) {
    flow.tgid = (bpf_get_current_pid_tgid() >> 32) as u32;
    flow.initiated = rec.initiated;
    flow.family = rec.family;
    flow.sport = rec.sport;
    flow.dport = rec.dport;
    flow.saddr = rec.saddr;
    flow.daddr = rec.daddr;
    let now = unsafe { bpf_ktime_get_boot_ns() };
    if let Some(last) = unsafe { UDP_SEEN.get(&*flow) }
        && now.wrapping_sub(*last) < UDP_REPORT_NS
    {
        return;
    }
    let _ = UDP_SEEN.insert(&*flow, now, 0);
    rec.uid = current_uid();
    send(RecordKind::Network, super::bytes(rec));
}
