//! Every map the programs share, in one place.

use aya_ebpf::{
    macros::map,
    maps::{Array, HashMap, LruHashMap, PerCpuArray, RingBuf},
};
use sysmon_common::{
    RecordKind, drops,
    access::AccessKey,
    file::{FILE_TAIL_MAX, FileRecord},
    file_info::FileInfoRecord,
    net::{NetRecord, UdpFlow},
    process::{CGROUP_PATH_MAX, CgroupRecord, EXEC_TAIL_MAX, ExecRecord},
};

use crate::path::PathScratch;

/// Transport to user space. Its size is set by the agent at load time.
#[map]
pub static EVENTS: RingBuf = RingBuf::with_byte_size(16 * 1024 * 1024, 0);

/// Slot 0: 1 while the agent sleeps until a record wakes it, 0 while it polls the ring
/// on a timer (see `wake_flags`).
#[map]
pub static READER: Array<u32> = Array::with_max_entries(1, 0);

/// Records lost in the kernel, per CPU, per cause and record kind (`drops::slot`): no room
/// in the ring buffer or a probe that could not build one (`count_drop`), a full table of
/// calls in flight or a rate limit (`count_lost`), at every such bail-out in `probes/`.
#[map]
pub static DROPS: PerCpuArray<u64> = PerCpuArray::with_max_entries(drops::SLOTS, 0);

/// Scratch space to build an exec record in. Too big for a per-CPU map (32 KiB limit), so
/// an array indexed by CPU; the agent sizes it to the number of possible CPUs.
#[map]
pub static EXEC_SCRATCH: Array<ExecScratch> = Array::with_max_entries(1, 0);

/// Scratch space to build a cgroup record in (`cgroup_mkdir` only).
#[map]
pub static CGROUP_SCRATCH: PerCpuArray<CgroupScratch> = PerCpuArray::with_max_entries(1, 0);

/// Scratch space for rebuilding paths back to front.
#[map]
pub static PATH_SCRATCH: PerCpuArray<PathScratch> = PerCpuArray::with_max_entries(1, 0);

/// Scratch space to build a file record in.
#[map]
pub static FILE_SCRATCH: PerCpuArray<FileScratch> = PerCpuArray::with_max_entries(1, 0);

// Tables of calls in flight (DELETES, ATTRS, ACCESS_CALLS, RECVS, IMAGE_CALLS, CONNECTS) are
// plain hashes, not LRU: a full table refuses the insert, which is counted as a drop of its
// kind (`drops::TABLE`), where an LRU would evict another thread's call without a trace.
// Entries are removed at the call's exit, which the kernel runs for every call that
// returns, one ended by a fatal signal too. The agent sizes them from the host (load.rs).

/// Deletes in flight, by pid_tgid: the record is built at syscall entry, while the name
/// still resolves, and sent at exit if the unlink succeeded.
#[map]
pub static DELETES: HashMap<u64, FileScratch> = HashMap::with_max_entries(1024, 0);

/// TCP connects in progress, by socket address: who called connect() (the state change to
/// ESTABLISHED comes later, from softirq, where the current task is anyone). Removed at
/// ESTABLISHED or CLOSE, which every TCP socket reaches.
#[map]
pub static CONNECTS: HashMap<u64, ConnectOwner> = HashMap::with_max_entries(16384, 0);

/// UDP flows reported, with when (ns since boot): each is reported again only after
/// `UDP_REPORT_NS`. LRU, so the least recent flows make room.
#[map]
pub static UDP_SEEN: LruHashMap<UdpFlow, u64> = LruHashMap::with_max_entries(16384, 0);

/// Scratch space to build a file-info record in.
#[map]
pub static INFO_SCRATCH: PerCpuArray<InfoScratch> = PerCpuArray::with_max_entries(1, 0);

/// Attribute changes (utimes, chmod) and mknods in flight, by pid_tgid: built at entry,
/// completed when the kernel stamps the inode's ctime, sent at exit if the call succeeded.
#[map]
pub static ATTRS: HashMap<u64, InfoScratch> = HashMap::with_max_entries(1024, 0);

/// Last mode seen per file (dev << 32 ^ ino): at its creation, at an fchmod's entry, after
/// each chmod. A path-based chmod can only learn the mode it replaced from here.
#[map]
pub static MODES: LruHashMap<u64, u32> = LruHashMap::with_max_entries(65536, 0);

/// FIFOs opened per process ((tgid, process start time, inode address)), with when (ns since boot): ConnectPipe
/// is reported again only after `PIPE_REPORT_NS`.
#[map]
pub static PIPES_SEEN: LruHashMap<[u64; 3], u64> = LruHashMap::with_max_entries(16384, 0);

#[repr(C)]
pub struct InfoScratch {
    pub rec: FileInfoRecord,
    pub tail: [u8; FILE_TAIL_MAX],
}

/// ptrace and process_vm calls in flight, by pid_tgid: what the call asked, kept from entry
/// to exit (the exit tracepoint has only the return value). Only calls that will give a
/// record if they succeed are parked.
#[map]
pub static ACCESS_CALLS: HashMap<u64, AccessCall> = HashMap::with_max_entries(1024, 0);

/// When each (source, target, kind) was last reported (ns since boot): once a second.
#[map]
pub static ACCESS_SEEN: LruHashMap<AccessKey, u64> = LruHashMap::with_max_entries(16384, 0);

/// Which of events 10 and 8 the configuration wants (`access::on` bits), set by the agent.
#[map]
pub static ACCESS_ON: Array<u32> = Array::with_max_entries(1, 0);

#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct AccessCall {
    pub via: u32,
    pub target: u32,
    /// GrantedAccess of the event 10 to send, or `NO_ACCESS`.
    pub access: u32,
    /// `access::flag` bits to send.
    pub flags: u32,
    pub request: u64,
    pub addr: u64,
    pub data: u64,
    /// `compat::abi`: how the caller's structs (iovec, registers) are laid out.
    pub abi: u32,
    pub _pad: u32,
}

/// UDP receives in flight, by pid_tgid: the caller's pointers, remembered at the entry of
/// recvfrom/recvmsg/recvmmsg and read back at the exit.
#[map]
pub static RECVS: HashMap<u64, RecvArgs> = HashMap::with_max_entries(4096, 0);

/// Per process (tgid): when its DNS rate lets the next answer through (ns since boot; see
/// `within_rate` in `probes/recv.rs`). LRU: a process evicted starts again with a full burst.
#[map]
pub static DNS_RATE: LruHashMap<u32, u64> = LruHashMap::with_max_entries(16384, 0);

/// Where the receive exit works on one datagram (see `probes/recv.rs`).
#[map]
pub static RECV_SCRATCH: PerCpuArray<RecvScratch> = PerCpuArray::with_max_entries(1, 0);

/// One datagram of a receive call, as the exit reads it back.
#[repr(C)]
pub struct RecvScratch {
    /// The socket's `struct sock`.
    pub sk: u64,
    /// `RECV_WANTS` bits.
    pub wants: u64,
    /// `compat::abi` of the call.
    pub abi: u64,
    /// Where the kernel wrote the sender's address, and the room it had.
    pub name: u64,
    pub cap: u64,
    /// The data's start and the room there; bytes the datagram had.
    pub buf: u64,
    pub len: u64,
    pub got: u64,
    pub caps: [u32; 4],
    /// The sender as read back (`sockaddr_in` or the start of a `sockaddr_in6`).
    pub sa: [u8; 24],
    pub net: NetRecord,
    pub flow: UdpFlow,
}

/// What the receive exit reports (`recv::WANT_*` bits), set by the agent from the config:
/// the receive probes serve both NetworkConnect and DnsQuery.
#[map]
pub static RECV_WANTS: Array<u32> = Array::with_max_entries(1, 0);

/// A receive call's arguments; see `probes/recv.rs`.
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct RecvArgs {
    /// `recv::RECVFROM`, `RECVMSG` or `RECVMMSG`.
    pub call: u32,
    /// `compat::abi`: how the caller's `msghdr` and `iovec` are laid out.
    pub abi: u32,
    /// The socket's `struct sock`.
    pub sk: u64,
    /// recvfrom: the data buffer; recvmsg: the `msghdr`; recvmmsg: the `mmsghdr` array.
    pub buf: u64,
    /// recvfrom: the buffer's length; recvmmsg: the number of messages asked for.
    pub len: u64,
    /// recvfrom: `src_addr`.
    pub addr: u64,
    /// Room for the sender's address as the caller said at entry (`*addrlen`,
    /// `msg_namelen`), per message for recvmmsg: the kernel copies no more than that.
    pub caps: [u32; 4],
}

#[repr(C)]
#[derive(Clone, Copy)]
pub struct ConnectOwner {
    pub pid_tgid: u64,
    pub uid: u32,
    pub _pad: u32,
}

#[repr(C)]
pub struct FileScratch {
    pub rec: FileRecord,
    pub tail: [u8; FILE_TAIL_MAX],
}

#[repr(C)]
pub struct CgroupScratch {
    pub rec: CgroupRecord,
    pub path: [u8; CGROUP_PATH_MAX],
}

#[repr(C)]
pub struct ExecScratch {
    pub rec: ExecRecord,
    pub tail: [u8; EXEC_TAIL_MAX],
}

/// Sends `len` bytes of `data` to user space, counting a drop when there is no room; whether
/// it was sent.
#[inline(always)]
pub fn send(kind: RecordKind, data: &[u8]) -> bool {
    let sent = EVENTS.output::<[u8]>(data, wake_flags()).is_ok();
    if !sent {
        count_drop(kind);
    }
    sent
}

/// Whether this record wakes the reader. A wake-up costs the kernel an irq_work (an IPI)
/// and the agent a context switch, so while the agent polls the ring on its own timer
/// (`READER` 0) no record wakes it, unless the ring passes a quarter full (the timer is
/// late, or a storm): then every record does, so nothing is lost to a sleeping reader.
/// While the agent sleeps on the ring (`READER` 1, no events for a while) the kernel's
/// default applies: the first record into a drained ring wakes it.
#[inline(always)]
pub fn wake_flags() -> u64 {
    use aya_ebpf::bindings::{
        BPF_RB_AVAIL_DATA, BPF_RB_FORCE_WAKEUP, BPF_RB_NO_WAKEUP, BPF_RB_RING_SIZE,
    };
    if READER.get(0).is_some_and(|s| *s != 0) {
        return 0;
    }
    if EVENTS.query(BPF_RB_AVAIL_DATA as u64) > EVENTS.query(BPF_RB_RING_SIZE as u64) / 4 {
        BPF_RB_FORCE_WAKEUP as u64
    } else {
        BPF_RB_NO_WAKEUP as u64
    }
}

/// A `kind` record lost to a full ring buffer or one a probe could not build.
#[inline(always)]
pub fn count_drop(kind: RecordKind) {
    count_lost(drops::RING, kind);
}

/// A `kind` record lost to `cause` (`drops::*`).
#[inline(always)]
pub fn count_lost(cause: u32, kind: RecordKind) {
    if let Some(n) = DROPS.get_ptr_mut(drops::slot(cause, kind)) {
        // SAFETY: per-CPU slot, only this CPU writes it.
        unsafe { *n += 1 };
    }
}
