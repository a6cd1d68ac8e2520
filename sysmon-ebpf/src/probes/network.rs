//! NetworkConnect for TCP. Connect: `inet_sock_set_state` remembers the caller at the change
//! to SYN_SENT (in connect(), process context) and reports at SYN_SENT→ESTABLISHED (softirq,
//! any task is current), once the local port is bound. Accept: the exits of accept and
//! accept4 read both ends from the returned socket, in the accepting process.

use aya_ebpf::{
    helpers::bpf_get_current_pid_tgid,
    macros::{raw_tracepoint, tracepoint},
    programs::{RawTracePointContext, TracePointContext},
};
use sysmon_common::{
    RecordKind, drops,
    net::{AF_INET, AF_INET6, IPPROTO_TCP, NetRecord},
};

use super::file::exit_ret;
use crate::{
    kernel::{Ptr, current_uid, file_of_fd, off, read, read_into, read_ptr},
    maps::{CONNECTS, ConnectOwner, count_lost, send},
};

const TCP_ESTABLISHED: i32 = 1;
const TCP_SYN_SENT: i32 = 2;
const TCP_CLOSE: i32 = 7;

#[raw_tracepoint(tracepoint = "inet_sock_set_state")]
pub fn inet_sock_set_state(ctx: RawTracePointContext) -> i32 {
    let sk: Ptr = ctx.arg::<*const u8>(0);
    let old: i32 = ctx.arg::<i32>(1);
    let new: i32 = ctx.arg::<i32>(2);
    let key = sk as u64;
    if new == TCP_SYN_SENT {
        let owner = ConnectOwner {
            pid_tgid: bpf_get_current_pid_tgid(),
            uid: current_uid(),
            _pad: 0,
        };
        // Without its owner the connect cannot be reported when it is established.
        if CONNECTS.insert(key, owner, 0).is_err() {
            count_lost(drops::TABLE, RecordKind::Network);
        }
    } else if old == TCP_SYN_SENT && new == TCP_ESTABLISHED {
        if let Some(owner) = unsafe { CONNECTS.get(key) } {
            let owner = *owner;
            let _ = CONNECTS.remove(key);
            let mut rec = NetRecord {
                header: super::header(RecordKind::Network, core::mem::size_of::<NetRecord>()),
                uid: owner.uid,
                initiated: 1,
                ..NetRecord::default()
            };
            rec.header.tgid = (owner.pid_tgid >> 32) as u32;
            rec.header.tid = owner.pid_tgid as u32;
            if fill(&mut rec, sk, IPPROTO_TCP) {
                send(RecordKind::Network, super::bytes(&rec));
            }
        }
    } else if new == TCP_CLOSE {
        let _ = CONNECTS.remove(key);
    }
    0
}

/// Exits of accept and accept4.
#[tracepoint]
pub fn tcp_accept(ctx: TracePointContext) -> u32 {
    accepted(exit_ret(&ctx));
    0
}

/// accept or accept4 returned `fd`.
#[inline(always)]
pub fn accepted(fd: i64) {
    if fd < 0 {
        return;
    }
    let file = file_of_fd(fd as u64);
    let socket = read_ptr(file, off!(file_private_data));
    let sk = read_ptr(socket, off!(socket_sk));
    let mut rec = NetRecord {
        header: super::header(RecordKind::Network, core::mem::size_of::<NetRecord>()),
        uid: current_uid(),
        initiated: 0,
        ..NetRecord::default()
    };
    if fill(&mut rec, sk, IPPROTO_TCP) {
        send(RecordKind::Network, super::bytes(&rec));
    }
}

/// Both ends of a socket: source = local when `rec.initiated`, else remote. False unless it
/// is a `protocol` socket over IPv4 or IPv6. Addresses are read straight into the record
/// (no copy through the stack: the receive exit calls this from a frame of its own).
#[inline(always)]
pub fn fill(rec: &mut NetRecord, sk: Ptr, protocol: u16) -> bool {
    if sk.is_null() || read::<u16>(sk, off!(sock_protocol)) != protocol {
        return false;
    }
    let skc = sk.wrapping_add(off!(sock_common) as usize);
    let family: u16 = read(skc, off!(skc_family));
    let local_port: u16 = read(skc, off!(skc_num));
    let remote_port = u16::from_be(read(skc, off!(skc_dport)));
    let (local, remote) = if rec.initiated != 0 {
        rec.sport = local_port;
        rec.dport = remote_port;
        (&mut rec.saddr, &mut rec.daddr)
    } else {
        rec.sport = remote_port;
        rec.dport = local_port;
        (&mut rec.daddr, &mut rec.saddr)
    };
    match family {
        AF_INET => {
            *local = [0; 16];
            *remote = [0; 16];
            read_into(&mut local[..4], skc, off!(skc_rcv_saddr));
            read_into(&mut remote[..4], skc, off!(skc_daddr));
        }
        AF_INET6 => {
            read_into(&mut local[..], skc, off!(skc_v6_rcv_saddr));
            read_into(&mut remote[..], skc, off!(skc_v6_daddr));
        }
        _ => return false,
    }
    rec.family = family;
    rec.protocol = protocol;
    true
}
