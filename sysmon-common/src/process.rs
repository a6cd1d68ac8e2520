//! Process records: exec (ProcessCreate), exit (ProcessTerminate) and fork (process cache).

use crate::{Header, PATH_MAX};

/// Bound on the argument bytes copied at exec (`mm->arg_start..arg_end`). Longer command
/// lines are cut here and flagged with `truncated::ARGS`.
pub const ARGS_MAX: usize = 32 * 1024;

/// Tail of an [`ExecRecord`]: exe path, cwd path and argv (NUL-separated), back to back.
pub const EXEC_TAIL_MAX: usize = PATH_MAX + PATH_MAX + ARGS_MAX;

/// Everything ProcessCreate needs, read in the kernel at exec time so that a process that
/// lives one millisecond is still complete.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct ExecRecord {
    pub header: Header,
    /// `task->real_parent->tgid`.
    pub ppid: u32,
    /// Real uid (`cred->uid`).
    pub uid: u32,
    /// Audit login uid; `u32::MAX` when unset.
    pub loginuid: u32,
    /// Audit session id; `u32::MAX` when unset.
    pub sessionid: u32,
    /// `task->start_boottime`: nanoseconds since boot at fork.
    pub start_ns: u64,
    /// `mm->end_code`: the process key of the ProcessGuid.
    pub end_code: u64,
    /// `signal->tty->index`, or -1 with no controlling tty.
    pub tty: i32,
    /// `truncated::*` bits.
    pub flags: u32,
    /// Identity of the executable file, so user space hashes each binary once.
    pub exe_ino: u64,
    pub exe_dev: u32,
    pub exe_len: u32,
    pub exe_mtime_sec: i64,
    pub exe_mtime_nsec: u32,
    pub cwd_len: u32,
    pub exe_size: i64,
    pub args_len: u32,
    /// Links of the executable (`inode->i_nlink`): 0 for a memfd, an O_TMPFILE file or a
    /// file unlinked before the exec: code with no file on disk (ProcessTampering).
    pub exe_nlink: u32,
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct ExitRecord {
    pub header: Header,
    pub uid: u32,
    pub _pad: u32,
    pub start_ns: u64,
}

/// A new process (not a thread) was forked; lets user space know its parent and start time
/// before (or without) an exec.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct ForkRecord {
    pub header: Header,
    pub ppid: u32,
    pub uid: u32,
    pub start_ns: u64,
}

#[cfg(feature = "user")]
mod pod {
    unsafe impl aya::Pod for super::ExecRecord {}
    unsafe impl aya::Pod for super::ExitRecord {}
    unsafe impl aya::Pod for super::ForkRecord {}
}
