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
    /// The process's cgroups, which name its container (see [`Cgroups`]).
    pub cgroups: Cgroups,
}

/// A task's cgroup in the two hierarchies that can name a container: the ids user space maps
/// to cgroup paths (a cgroup id is its directory's inode number in cgroupfs).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Cgroups {
    /// The default (v2) hierarchy's cgroup (`css_set->dfl_cgrp`); the root's id where no
    /// cgroup2 is mounted.
    pub v2: u64,
    /// The memory controller's cgroup (`css_set->subsys[memory]`): on a v1 or hybrid host
    /// its own hierarchy, where runtimes that do not join cgroup2 place containers.
    pub v1: u64,
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
    /// The child's cgroups (a `clone3` with `CLONE_INTO_CGROUP` starts it in another).
    pub cgroups: Cgroups,
}

/// A cgroup was made (`cgroup/cgroup_mkdir`): its id and path, before any process runs in it,
/// so that user space can name a container before its first process does anything.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct CgroupRecord {
    pub header: Header,
    /// Hierarchy id: 0 for the default (v2) one, else a v1 hierarchy's (`/proc/cgroups`).
    pub root: u32,
    /// Bytes of path in the tail.
    pub path_len: u32,
    pub id: u64,
}

/// Longest cgroup path sent; a longer one is cut (its container is then found by id).
pub const CGROUP_PATH_MAX: usize = 512;

#[cfg(feature = "user")]
mod pod {
    unsafe impl aya::Pod for super::ExecRecord {}
    unsafe impl aya::Pod for super::ExitRecord {}
    unsafe impl aya::Pod for super::ForkRecord {}
    unsafe impl aya::Pod for super::CgroupRecord {}
}
