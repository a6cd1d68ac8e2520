//! Records of file events that carry what the kernel knew about the inode:
//! FileCreateTime (2), FileExecutableDetected (29), CreatePipe (17), ImageLoad (7).

use crate::file::FileRecord;

/// `S_IFREG` and `S_IFIFO` of `inode->i_mode`.
pub const S_IFREG: u16 = 0o100000;
pub const S_IFIFO: u16 = 0o010000;
/// Any execute bit.
pub const S_IXUGO: u32 = 0o111;
/// `tv_nsec` values of `utimensat` that do not set an explicit time.
pub const UTIME_NOW: i64 = (1 << 30) - 1;
pub const UTIME_OMIT: i64 = (1 << 30) - 2;

/// A [`FileRecord`] (its tail follows this struct: `dir` then `name` bytes) plus the inode.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct FileInfoRecord {
    pub file: FileRecord,
    /// Kernel-internal `dev_t` of the file's filesystem.
    pub dev: u32,
    /// `i_mode` after the call.
    pub mode: u32,
    pub ino: u64,
    pub size: i64,
    /// FileCreateTime: the modification time the call set.
    pub new_sec: i64,
    pub new_nsec: u32,
    /// `state::*` bits, kernel-internal bookkeeping between entry and exit.
    pub state: u32,
    /// FileCreateTime: the modification time before the call.
    pub old_sec: i64,
    pub old_nsec: u32,
    pub _pad: u32,
}

/// Progress of a call parked between its entry and exit.
pub mod state {
    /// The inode was seen while the call changed it.
    pub const SEEN: u32 = 1;
    /// Nothing to report (e.g. the file already was executable).
    pub const QUIET: u32 = 2;
    /// The state before the call was read at entry (the call named the file by descriptor).
    pub const OLD: u32 = 4;
    /// The name could not be read at entry: it is read at the exit.
    pub const UNREAD: u32 = 8;
    /// FileCreateTime: the times could not be read at entry: `new_sec` holds their address,
    /// `new_nsec` their layout, until the exit reads them.
    pub const TIMES_UNREAD: u32 = 16;
}

#[cfg(feature = "user")]
unsafe impl aya::Pod for FileInfoRecord {}
