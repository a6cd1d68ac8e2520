//! The UDP receive path: recvfrom, recvmsg and recvmmsg. No tracepoint carries a datagram's
//! sender, but the caller asked the kernel to write it into its own memory: the entry
//! remembers the caller's pointers (per thread, in `RECVS`), the exit reads the address back.
//! That gives NetworkConnect (3) the real remote end of a datagram received on an unconnected
//! socket, and a datagram from port 53 is copied whole (up to `DNS_MAX`) for DnsQuery (22).
//! Without an address (NULL `src_addr`, `msg_name`) the socket's own ends are reported.

use core::ffi::c_void;

use aya_ebpf::{
    helpers::{
        bpf_get_current_pid_tgid, bpf_ktime_get_boot_ns, bpf_probe_read_user,
        generated::{self, bpf_loop},
    },
    macros::tracepoint,
    programs::TracePointContext,
};
use sysmon_common::{
    RecordKind,
    compat::abi,
    dns::{DNS_BURST, DNS_HEADER, DNS_MAX, DNS_PER_SEC, DNS_PORT, DnsRecord},
    drops,
    net::{AF_INET, AF_INET6, IPPROTO_UDP, NetRecord},
};

use super::file::{enter_arg, exit_ret};
use crate::{
    kernel::{Ptr, current_uid, file_of_fd, off, read, read_ptr},
    maps::{
        DNS_RATE, EVENTS, RECV_SCRATCH, RECV_WANTS, RECVS, RecvArgs, RecvScratch, count_drop,
        count_lost,
    },
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
/// `sizeof(struct mmsghdr)` and `sizeof(struct user_msghdr)` on 64-bit, and their ia32
/// (compat) sizes.
const MMSGHDR: usize = 64;
const MSGHDR: usize = 56;
const MMSGHDR_IA32: usize = 32;
const MSGHDR_IA32: usize = 28;
/// `user_msghdr` members, and where they are in the ia32 one.
const MSG_NAMELEN: usize = 8;
const MSG_IOV: usize = 16;
const MSG_NAMELEN_IA32: usize = 4;
const MSG_IOV_IA32: usize = 8;
/// `recvmsg` flag: error-queue reads carry no datagram from a peer.
const MSG_ERRQUEUE: u64 = 0x2000;

/// `sizeof(struct sockaddr_in)`, and what of a `sockaddr_in6` holds port and address.
const SOCKADDR_IN: u64 = 16;
const SOCKADDR_IN6_ADDR_END: u64 = 24;

#[tracepoint]
pub fn recvfrom_enter(ctx: TracePointContext) -> u32 {
    let arg = |n| enter_arg(&ctx, n);
    recvfrom(arg(0), arg(1), arg(2), arg(4), arg(5));
    0
}

/// recvfrom(fd, buf, len, flags, addr, addrlen) entered (its pointers and lengths are the
/// same for a 32-bit caller: no struct is read back).
#[inline(always)]
pub fn recvfrom(fd: u64, buf: u64, len: u64, addr: u64, addrlen: u64) {
    let cap = if addr != 0 { user::<u32>(addrlen) } else { 0 };
    enter(
        fd,
        buf,
        RecvArgs {
            call: RECVFROM,
            len,
            addr,
            caps: [cap, 0, 0, 0],
            ..RecvArgs::default()
        },
        cap != 0,
    );
}

#[tracepoint]
pub fn recvmsg_enter(ctx: TracePointContext) -> u32 {
    let arg = |n| enter_arg(&ctx, n);
    recvmsg(arg(0), arg(1), arg(2), abi::NATIVE);
    0
}

/// recvmsg(fd, msg, flags) entered, `msg` laid out as `abi` says.
#[inline(always)]
pub fn recvmsg(fd: u64, msg: u64, flags: u64, abi: u32) {
    if flags & MSG_ERRQUEUE != 0 {
        return;
    }
    // msg_name and msg_namelen in one read.
    let (name, cap) = if abi == abi::IA32 {
        let [name, cap] = user::<[u32; 2]>(msg);
        (name as u64, cap)
    } else {
        let [name, cap] = user::<[u64; 2]>(msg);
        (name, cap as u32)
    };
    let cap = if name != 0 { cap } else { 0 };
    enter(
        fd,
        msg,
        RecvArgs {
            call: RECVMSG,
            abi,
            caps: [cap, 0, 0, 0],
            ..RecvArgs::default()
        },
        cap != 0,
    );
}

#[tracepoint]
pub fn recvmmsg_enter(ctx: TracePointContext) -> u32 {
    let arg = |n| enter_arg(&ctx, n);
    recvmmsg(arg(0), arg(1), arg(2), arg(3), abi::NATIVE);
    0
}

/// recvmmsg(fd, msgs, vlen, flags, timeout) entered, `msgs` laid out as `abi` says.
#[inline(always)]
pub fn recvmmsg(fd: u64, msgs: u64, vlen: u64, flags: u64, abi: u32) {
    if flags & MSG_ERRQUEUE != 0 {
        return;
    }
    let (size, namelen) = if abi == abi::IA32 {
        (MMSGHDR_IA32, MSG_NAMELEN_IA32)
    } else {
        (MMSGHDR, MSG_NAMELEN)
    };
    let mut caps = [0u32; MMSG_MAX];
    for (i, cap) in caps.iter_mut().enumerate() {
        *cap = user::<u32>(msgs + (i * size + namelen) as u64);
    }
    let named = caps.iter().any(|c| *c != 0);
    enter(
        fd,
        msgs,
        RecvArgs {
            call: RECVMMSG,
            abi,
            len: vlen,
            caps,
            ..RecvArgs::default()
        },
        named,
    );
}

/// Remembers the call on `fd` (`buf`: its buffer, `msghdr` or `mmsghdr` array) when its
/// descriptor is a UDP socket (others are not ours) and the exit has something to add: the
/// sender when the caller passed room for it (`named`), the data for DnsQuery. A call
/// without an address, when only NetworkConnect is on, is left to `sock_recv_length` (the
/// socket's ends), without the cost of finding its socket here, unless the kernel lacks
/// that tracepoint (`WANT_UNNAMED`).
#[inline(always)]
fn enter(fd: u64, buf: u64, mut args: RecvArgs, named: bool) {
    let wants = wants() as u64;
    if wants == 0 || (!named && wants & (WANT_DNS | WANT_UNNAMED) == 0) {
        return;
    }
    let file = file_of_fd(fd);
    let sk = read_ptr(read_ptr(file, off!(file_private_data)), off!(socket_sk));
    if sk.is_null() || read::<u16>(sk, off!(sock_protocol)) != IPPROTO_UDP {
        return;
    }
    args.sk = sk as u64;
    args.buf = buf;
    if RECVS.insert(bpf_get_current_pid_tgid(), args, 0).is_err() {
        // What is lost: the DNS answer the call may bring, else the sender's address
        // (`sock_recv_length` still reports the socket's ends).
        let kind = if wants & WANT_DNS != 0 {
            RecordKind::Dns
        } else {
            RecordKind::Network
        };
        count_lost(drops::TABLE, kind);
    }
}

/// Exit of all three calls. The per-datagram work runs on `RECV_SCRATCH` (map memory, whose
/// values the verifier does not track), in one function for every call: verified once per
/// call kind, not once per message, which keeps this program far from the verifier's limits
/// on every kernel (stack and instructions: see `sysmon -kernelcheck`).
#[tracepoint]
pub fn recv_exit(ctx: TracePointContext) -> u32 {
    recv_done(exit_ret(&ctx));
    0
}

/// A receive call returned `ret`.
#[inline(always)]
pub fn recv_done(ret: i64) {
    let id = bpf_get_current_pid_tgid();
    let Some(args) = (unsafe { RECVS.get(id) }).copied() else {
        return;
    };
    let _ = RECVS.remove(id);
    if ret < 0 {
        return;
    }
    let Some(d) = RECV_SCRATCH.get_ptr_mut(0) else {
        return;
    };
    // SAFETY: this CPU's slot; syscall exits run in task context, where no other program
    // using this map can interrupt this one on the same CPU.
    let d = unsafe { &mut *d };
    d.sk = args.sk;
    d.wants = wants() as u64;
    d.abi = args.abi as u64;
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
}

/// One message of a recvmmsg: the `i`th `mmsghdr` of the array at `buf`.
extern "C" fn mmsg_step(i: u64, _ctx: *mut c_void) -> i64 {
    let Some(d) = RECV_SCRATCH.get_ptr_mut(0) else {
        return 1;
    };
    // SAFETY: as in recv_exit; bpf_loop runs this on the same CPU, inside that program.
    let d = unsafe { &mut *d };
    let i = (i as usize) & (MMSG_MAX - 1);
    let (size, msg_len) = if d.abi == abi::IA32 as u64 {
        (MMSGHDR_IA32, MSGHDR_IA32)
    } else {
        (MMSGHDR, MSGHDR)
    };
    let hdr = d.buf + (i * size) as u64;
    d.cap = d.caps[i] as u64;
    d.got = user::<u32>(hdr + msg_len as u64) as u64;
    message(d, hdr);
    0
}

/// A datagram received through the `msghdr` at `hdr` (its first iovec holds the data's
/// start).
#[inline(always)]
fn message(d: &mut RecvScratch, hdr: u64) {
    if d.abi == abi::IA32 as u64 {
        d.name = user::<u32>(hdr) as u64;
        let iov = user::<u32>(hdr + MSG_IOV_IA32 as u64) as u64;
        let [buf, len] = user::<[u32; 2]>(iov);
        (d.buf, d.len) = (buf as u64, len as u64);
    } else {
        d.name = user::<u64>(hdr);
        let iov = user::<u64>(hdr + MSG_IOV as u64);
        d.buf = user::<u64>(iov);
        d.len = user::<u64>(iov + 8);
    }
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

/// Sends the first bytes (up to `DNS_MAX`) of a datagram from port 53 that starts as a DNS
/// response (what else the agent would refuse), within its process's rate.
#[inline(always)]
fn dns(buf: u64, have: u64, got: u64) {
    // Flags and question count: a response (QR) to a standard query with one question.
    let head = user::<[u8; 6]>(buf);
    if have < DNS_HEADER || head[2] & 0xf8 != 0x80 || head[4] != 0 || head[5] != 1 {
        return;
    }
    if !within_rate() {
        count_lost(drops::RATE, RecordKind::Dns);
        return;
    }
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

/// The current process's DNS rate (a GCRA token bucket): true while it stays within
/// `DNS_PER_SEC` answers a second, `DNS_BURST` at once; each answer taken moves its
/// theoretical arrival time on by one interval.
#[inline(always)]
fn within_rate() -> bool {
    const INTERVAL: u64 = 1_000_000_000 / DNS_PER_SEC;
    let tgid = (bpf_get_current_pid_tgid() >> 32) as u32;
    let now = unsafe { bpf_ktime_get_boot_ns() };
    let Some(tat) = DNS_RATE.get_ptr_mut(tgid) else {
        let _ = DNS_RATE.insert(tgid, now + INTERVAL, 0);
        return true;
    };
    // SAFETY: a map value; a racing update from another CPU only loses one step.
    let tat = unsafe { &mut *tat };
    let due = if *tat > now { *tat } else { now };
    if due - now > (DNS_BURST - 1) * INTERVAL {
        return false;
    }
    *tat = due + INTERVAL;
    true
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
