//! Process-to-process records: ProcessAccess (10) and CreateRemoteThread (8) share one
//! layout; one record may carry both events (a write into another process is both).

use crate::Header;

/// `access` of a record that carries no event 10 (its once-a-second slot was taken).
pub const NO_ACCESS: u32 = u32::MAX;

/// GrantedAccess values. ptrace ATTACH/SEIZE keep Sysmon for Linux's `0x0`; the others use
/// the Windows process rights that mean the same thing, so existing rules read them right.
pub mod granted {
    /// ptrace ATTACH or SEIZE (Sysmon for Linux's value).
    pub const ATTACH: u32 = 0x0;
    /// `PROCESS_VM_READ`: PEEKTEXT/PEEKDATA/PEEKUSR, process_vm_readv, /proc/<pid>/mem read.
    pub const VM_READ: u32 = 0x10;
    /// `PROCESS_VM_WRITE`: POKETEXT/POKEDATA/POKEUSR, process_vm_writev, /proc/<pid>/mem write.
    pub const VM_WRITE: u32 = 0x20;
}

/// Rate-limit kinds of event 8 (event 10 uses its GrantedAccess value): a write into the
/// target's memory, and a change of its instruction pointer (SETREGS/SETREGSET). Apart, so
/// that a write cannot take the once-a-second slot of the control-flow change that follows.
pub const REMOTE_KIND: u32 = 0x8000_0008;
pub const REMOTE_IP_KIND: u32 = 0x8000_0009;

/// The rate-limit kind of a record's event 8, by its `flags`.
pub const fn remote_kind(flags: u32) -> u32 {
    if flags & flag::CONTROL != 0 {
        REMOTE_IP_KIND
    } else {
        REMOTE_KIND
    }
}

/// Where the access came from.
pub mod via {
    pub const PTRACE: u32 = 1;
    pub const VM_READV: u32 = 2;
    pub const VM_WRITEV: u32 = 3;
    pub const PROC_MEM: u32 = 4;
}

/// `flags` bits.
pub mod flag {
    /// The record also carries an event 8 (code or control flow changed).
    pub const REMOTE: u32 = 1 << 0;
    /// `address` is the new instruction pointer (SETREGS/SETREGSET), else the written address.
    pub const NEW_IP: u32 = 1 << 1;
    /// The event 8 is a control-flow change (SETREGS/SETREGSET), whether or not its new
    /// instruction pointer could be read.
    pub const CONTROL: u32 = 1 << 2;
    /// The caller is in another pid namespace and the pid it named was not found there (the
    /// target exited right after the call): `target_tid` is the pid as named, not the host's.
    pub const NS_UNRESOLVED: u32 = 1 << 3;
}

/// Event ids the kernel side is asked to produce, bits of the `ACCESS_ON` map.
pub mod on {
    pub const ACCESS: u32 = 1 << 0;
    pub const REMOTE: u32 = 1 << 1;
}

/// Key of the once-a-second limit: (source process, target as named, kind).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AccessKey {
    pub source: u32,
    pub target: u32,
    pub kind: u32,
}

/// At most one record per key in this time.
pub const ACCESS_REPORT_NS: u64 = 1_000_000_000;

#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct AccessRecord {
    pub header: Header,
    /// Real uid of the source.
    pub uid: u32,
    /// Target thread as the caller named it (ptrace and process_vm take any thread's id),
    /// made the host's when the caller is in another pid namespace, or the task behind a
    /// /proc/<pid>/mem file.
    pub target_tid: u32,
    /// Target thread-group id when the kernel knows it (/proc/<pid>/mem, a caller in another
    /// pid namespace), else 0.
    pub target_tgid: u32,
    /// GrantedAccess of the event 10, or `NO_ACCESS`.
    pub access: u32,
    /// `via::*`.
    pub via: u32,
    /// `flag::*`.
    pub flags: u32,
    /// Event 8's StartAddress: new instruction pointer or written address.
    pub address: u64,
}

/// ptrace requests the probes care about (generic numbers, `include/uapi/linux/ptrace.h`).
pub mod ptrace {
    pub const PEEKTEXT: u64 = 1;
    pub const PEEKDATA: u64 = 2;
    pub const PEEKUSR: u64 = 3;
    pub const POKETEXT: u64 = 4;
    pub const POKEDATA: u64 = 5;
    pub const POKEUSR: u64 = 6;
    pub const SETREGS: u64 = 13;
    pub const ATTACH: u64 = 16;
    pub const SETREGSET: u64 = 0x4205;
    pub const SEIZE: u64 = 0x4206;
    /// `NT_PRSTATUS`: the general registers, SETREGSET's `addr`.
    pub const NT_PRSTATUS: u64 = 1;
}

#[cfg(feature = "user")]
unsafe impl aya::Pod for AccessRecord {}
#[cfg(feature = "user")]
unsafe impl aya::Pod for AccessKey {}
