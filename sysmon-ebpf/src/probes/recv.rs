//! The UDP receive path: recvfrom, recvmsg and recvmmsg. No tracepoint carries a datagram's
//! sender, but the caller asked the kernel to write it into its own memory: the entry
//! remembers the caller's pointers (per thread, in `RECVS`), the exit reads the address back.
//! That gives NetworkConnect (3) the real remote end of a datagram received on an unconnected
//! socket, and a datagram from port 53 is copied whole (up to `DNS_MAX`) for DnsQuery (22).
//! Without an address (NULL `src_addr`, `msg_name`) the socket's own ends are reported.

use core::ffi::c_void;

use aya_ebpf::{
    helpers::{
        bpf_get_current_pid_tgid, bpf_probe_read_user,
        generated::{self, bpf_loop},
    },
    macros::tracepoint,
    programs::TracePointContext,
};
use sysmon_common::{
    RecordKind,
    dns::{DNS_MAX, DNS_PORT, DnsRecord},
    net::{AF_INET, AF_INET6, IPPROTO_UDP, NetRecord},
};

use super::file::{enter_arg, exit_ret};
use crate::{
    kernel::{Ptr, current_uid, file_of_fd, off, read, read_ptr},
    maps::{EVENTS, RECV_SCRATCH, RECV_WANTS, RECVS, RecvArgs, RecvScratch, count_drop},
};

pub const RECVFROM: u32 = 1;
pub const RECVMSG: u32 = 2;
pub const RECVMMSG: u32 = 3;

/// `RECV_WANTS` bits: NetworkConnect, DnsQuery, and (on kernels without
/// `sock/sock_recv_length`) NetworkConnect for calls that pass no address buffer too.
const WANT_NET: u64 = 1;
const WANT_DNS: u64 = 2;
const WANT_UNNAMED: u64 = 4;

/// Messages of one recvmmsg looked at (it may return more).
const MMSG_MAX: usize = 4;
/// `sizeof(struct mmsghdr)` and `sizeof(struct user_msghdr)` on 64-bit.
const MMSGHDR: usize = 64;
const MSGHDR: usize = 56;
/// `user_msghdr` members.
const MSG_NAMELEN: usize = 8;
const MSG_IOV: usize = 16;
/// `recvmsg` flag: error-queue reads carry no datagram from a peer.
const MSG_ERRQUEUE: u64 = 0x2000;

/// `sizeof(struct sockaddr_in)`, and what of a `sockaddr_in6` holds port and address.
const SOCKADDR_IN: u64 = 16;
const SOCKADDR_IN6_ADDR_END: u64 = 24;

#[tracepoint]
pub fn recvfrom_enter(ctx: TracePointContext) -> u32 {
    let addr = enter_arg(&ctx, 4);
    let len_ptr = enter_arg(&ctx, 5);
    let cap = if addr != 0 { user::<u32>(len_ptr) } else { 0 };
    enter(
        &ctx,
        RECVFROM,
        enter_arg(&ctx, 2),
        addr,
        [cap, 0, 0, 0],
        cap != 0,
    );
    0
}

#[tracepoint]
pub fn recvmsg_enter(ctx: TracePointContext) -> u32 {
    if enter_arg(&ctx, 2) & MSG_ERRQUEUE != 0 {
        return 0;
    }
    // msg_name and msg_namelen in one read.
    let [name, cap] = user::<[u64; 2]>(enter_arg(&ctx, 1));
    let cap = if name != 0 { cap as u32 } else { 0 };
    enter(&ctx, RECVMSG, 0, 0, [cap, 0, 0, 0], cap != 0);
    0
}

#[tracepoint]
pub fn recvmmsg_enter(ctx: TracePointContext) -> u32 {
    if enter_arg(&ctx, 3) & MSG_ERRQUEUE != 0 {
        return 0;
    }
    let msgs = enter_arg(&ctx, 1);
    let mut caps = [0u32; MMSG_MAX];
    for (i, cap) in caps.iter_mut().enumerate() {
        *cap = user::<u32>(msgs + (i * MMSGHDR + MSG_NAMELEN) as u64);
    }
    let named = caps.iter().any(|c| *c != 0);
    enter(&ctx, RECVMMSG, enter_arg(&ctx, 2), 0, caps, named);
    0
}

/// Remembers the call when its descriptor is a UDP socket (others are not ours) and the
/// exit has something to add: the sender when the caller passed room for it (`named`), the
/// data for DnsQuery. A call without an address, when only NetworkConnect is on, is left
/// to `sock_recv_length` (the socket's ends), without the cost of finding its socket here,
/// unless the kernel lacks that tracepoint (`WANT_UNNAMED`).
#[inline(always)]
fn enter(ctx: &TracePointContext, call: u32, len: u64, addr: u64, caps: [u32; 4], named: bool) {
    let wants = wants() as u64;
    if wants == 0 || (!named && wants & (WANT_DNS | WANT_UNNAMED) == 0) {
        return;
    }
    let file = file_of_fd(enter_arg(ctx, 0));
    let sk = read_ptr(read_ptr(file, off!(file_private_data)), off!(socket_sk));
    if sk.is_null() || read::<u16>(sk, off!(sock_protocol)) != IPPROTO_UDP {
        return;
    }
    let args = RecvArgs {
        call,
        _pad: 0,
        sk: sk as u64,
        buf: enter_arg(ctx, 1),
        len,
        addr,
        caps,
    };
    let _ = RECVS.insert(bpf_get_current_pid_tgid(), args, 0);
}

/// Exit of all three calls. The per-datagram work runs on `RECV_SCRATCH` (map memory, whose
/// values the verifier does not track), in one function for every call: verified once per
/// call kind, not once per message, which keeps this program far from the verifier's limits
/// on every kernel (stack and instructions: see `sysmon -kernelcheck`).
#[tracepoint]
pub fn recv_exit(ctx: TracePointContext) -> u32 {
    let id = bpf_get_current_pid_tgid();
    let Some(args) = (unsafe { RECVS.get(id) }).copied() else {
        return 0;
    };
    let _ = RECVS.remove(id);
    let ret = exit_ret(&ctx);
    if ret < 0 {
        return 0;
    }
    let Some(d) = RECV_SCRATCH.get_ptr_mut(0) else {
        return 0;
    };
    // SAFETY: this CPU's slot; syscall exits run in task context, where no other program
    // using this map can interrupt this one on the same CPU.
    let d = unsafe { &mut *d };
    d.sk = args.sk;
    d.wants = wants() as u64;
    d.name = args.addr;
    d.cap = args.caps[0] as u64;
    d.buf = args.buf;
    d.len = args.len;
    d.got = ret as u64;
    d.caps = args.caps;
    match args.call {
        RECVFROM => datagram(d),
        RECVMSG => message(d, args.buf),
        _ => {
            let n = if ret < MMSG_MAX as i64 { ret as u32 } else { MMSG_MAX as u32 };
            // SAFETY: `mmsg_step` has the callback signature bpf_loop expects.
            unsafe { bpf_loop(n, mmsg_step as *mut c_void, core::ptr::null_mut(), 0) };
        }
    }
    0
}

/// One message of a recvmmsg: the `i`th `mmsghdr` of the array at `buf`.
extern "C" fn mmsg_step(i: u64, _ctx: *mut c_void) -> i64 {
    let Some(d) = RECV_SCRATCH.get_ptr_mut(0) else {
        return 1;
    };
    // SAFETY: as in recv_exit; bpf_loop runs this on the same CPU, inside that program.
    let d = unsafe { &mut *d };
    let i = (i as usize) & (MMSG_MAX - 1);
    let hdr = d.buf + (i * MMSGHDR) as u64;
    d.cap = d.caps[i] as u64;
    d.got = user::<u32>(hdr + MSGHDR as u64) as u64;
    message(d, hdr);
    0
}

/// A datagram received through the `msghdr` at `hdr` (its first iovec holds the data's
/// start).
#[inline(always)]
fn message(d: &mut RecvScratch, hdr: u64) {
    d.name = user::<u64>(hdr);
    let iov = user::<u64>(hdr + MSG_IOV as u64);
    d.buf = user::<u64>(iov);
    d.len = user::<u64>(iov + 8);
    datagram(d);
}

/// One datagram of `got` bytes, of which the first `len` are at `buf`, from the sender
/// whose address the kernel wrote at `name` (at most `cap` bytes of it), received on `sk`.
/// A function of its own (a BPF-to-BPF call) so that every call kind shares one body. Reads
/// no more of the socket than what is wanted needs: DnsQuery alone needs only the sender's
/// port.
#[inline(never)]
fn datagram(d: &mut RecvScratch) {
    let sk = d.sk as Ptr;
    // The sender as the kernel wrote it for the caller, in one read: family, port, then
    // the IPv4 or IPv6 address.
    d.sa = [0; SOCKADDR_IN6_ADDR_END as usize];
    if d.name != 0 && d.cap >= SOCKADDR_IN {
        let n = if d.cap >= SOCKADDR_IN6_ADDR_END {
            SOCKADDR_IN6_ADDR_END
        } else {
            SOCKADDR_IN
        };
        let failed = unsafe {
            generated::bpf_probe_read_user(d.sa.as_mut_ptr() as *mut _, n as u32, d.name as *const _)
        } != 0;
        let family = u16::from_ne_bytes([d.sa[0], d.sa[1]]);
        if failed || (family == AF_INET6 && n != SOCKADDR_IN6_ADDR_END) {
            d.sa[0] = 0;
            d.sa[1] = 0;
        }
    }
    if d.wants & WANT_NET != 0 {
        connection(d, sk);
    }
    if d.wants & WANT_DNS != 0 && d.got > 0 {
        let family = u16::from_ne_bytes([d.sa[0], d.sa[1]]);
        let port = if family == AF_INET || family == AF_INET6 {
            u16::from_be_bytes([d.sa[2], d.sa[3]])
        } else {
            let skc = sk.wrapping_add(off!(sock_common) as usize);
            u16::from_be(read(skc, off!(skc_dport)))
        };
        if port == DNS_PORT {
            dns(d.buf, d.len.min(d.got), d.got);
        }
    }
}

/// NetworkConnect for a received datagram: the socket's ends, with the sender the kernel
/// wrote for the caller as the remote end when there is one.
#[inline(always)]
fn connection(d: &mut RecvScratch, sk: Ptr) {
    d.net.header = super::header(RecordKind::Network, core::mem::size_of::<NetRecord>());
    d.net.initiated = 0;
    if !super::network::fill(&mut d.net, sk, IPPROTO_UDP) {
        return;
    }
    let family = u16::from_ne_bytes([d.sa[0], d.sa[1]]);
    if family == d.net.family {
        d.net.saddr = [0; 16];
        if family == AF_INET {
            d.net.saddr[..4].copy_from_slice(&d.sa[4..8]);
        } else if family == AF_INET6 {
            d.net.saddr.copy_from_slice(&d.sa[8..24]);
        }
        d.net.sport = u16::from_be_bytes([d.sa[2], d.sa[3]]);
    }
    super::network_udp::report(&mut d.net, &mut d.flow);
}

/// Sends the first bytes (up to `DNS_MAX`) of a datagram from port 53.
#[inline(always)]
fn dns(buf: u64, have: u64, got: u64) {
    let Some(mut entry) = EVENTS.reserve::<DnsRecord>(0) else {
        count_drop(RecordKind::Dns);
        return;
    };
    let rec = entry.as_mut_ptr();
    let n = if have > DNS_MAX as u64 {
        DNS_MAX as u32
    } else {
        have as u32
    };
    unsafe {
        (*rec).header = super::header(RecordKind::Dns, core::mem::size_of::<DnsRecord>());
        (*rec).uid = current_uid();
        let failed =
            generated::bpf_probe_read_user((*rec).data.as_mut_ptr() as *mut _, n, buf as *const _)
                != 0;
        (*rec).len = if failed { 0 } else { n as u16 };
        (*rec).cut = (got > n as u64) as u16;
    }
    entry.submit(crate::maps::wake_flags());
}

#[inline(always)]
fn wants() -> u32 {
    RECV_WANTS.get(0).copied().unwrap_or(0)
}

/// Reads a `T` from the caller's memory; zero when the read fails.
#[inline(always)]
fn user<T: Default>(at: u64) -> T {
    if at == 0 {
        return T::default();
    }
    unsafe { bpf_probe_read_user(at as *const T) }.unwrap_or_default()
}
