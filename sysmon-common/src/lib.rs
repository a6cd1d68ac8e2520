//! Records that cross the kernel boundary. Shared by the eBPF programs (no_std) and the agent.
//!
//! Every record starts with a [`Header`]; fixed fields follow, then a variable tail of bytes
//! whose layout each record type describes. The kernel sends only the used part of the tail.
#![no_std]

pub mod access;
pub mod compat;
pub mod dns;
pub mod drops;
pub mod file;
pub mod file_info;
pub mod net;
pub mod offsets;
pub mod process;

pub use offsets::Offsets;

/// Which record follows the header. Also the index of the per-kind drop counter.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecordKind {
    Exec = 1,
    Exit = 2,
    Fork = 3,
    FileCreate = 4,
    FileDelete = 5,
    RawAccess = 6,
    Network = 7,
    FileCreateTime = 8,
    FileExecutable = 9,
    PipeCreate = 10,
    PipeConnect = 11,
    ImageLoad = 12,
    Access = 13,
    Dns = 14,
    Cgroup = 15,
}

impl RecordKind {
    pub const ALL: [RecordKind; 15] = [
        RecordKind::Exec,
        RecordKind::Exit,
        RecordKind::Fork,
        RecordKind::FileCreate,
        RecordKind::FileDelete,
        RecordKind::RawAccess,
        RecordKind::Network,
        RecordKind::FileCreateTime,
        RecordKind::FileExecutable,
        RecordKind::PipeCreate,
        RecordKind::PipeConnect,
        RecordKind::ImageLoad,
        RecordKind::Access,
        RecordKind::Dns,
        RecordKind::Cgroup,
    ];
    /// Number of slots in the drop-counter map (index = kind value).
    pub const SLOTS: u32 = 16;

    pub fn from_u32(v: u32) -> Option<Self> {
        Self::ALL.into_iter().find(|k| *k as u32 == v)
    }
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct Header {
    pub kind: u32,
    /// Total length of the record in bytes, header and tail included.
    pub len: u32,
    /// Event time: nanoseconds since boot (CLOCK_BOOTTIME).
    pub time_ns: u64,
    pub tgid: u32,
    pub tid: u32,
}

/// Bit set in a record's `flags` when a bounded copy cut something off.
pub mod truncated {
    pub const ARGS: u32 = 1 << 0;
    pub const EXE: u32 = 1 << 1;
    pub const CWD: u32 = 1 << 2;
    /// The path of a file record (or its directory part).
    pub const PATH: u32 = 1 << 3;
}

/// Longest path the kernel side rebuilds (bytes, without the terminating NUL).
pub const PATH_MAX: usize = 4096;
/// Deepest path the kernel side walks; deeper paths are cut and marked (see `truncated`).
pub const PATH_DEPTH: usize = 64;
