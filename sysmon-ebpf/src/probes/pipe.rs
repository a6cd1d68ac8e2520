//! PipeEvent. CreatePipe: mknod and mknodat (mkfifo) of a FIFO, built at entry (the path as
//! FileDelete builds it) and sent at exit when the call returned 0 (see `attr.rs`).
//! ConnectPipe: exits of open, openat and openat2 that opened a FIFO, once per process and
//! FIFO per `PIPE_REPORT_NS`.

use aya_ebpf::{
    helpers::{bpf_get_current_pid_tgid, bpf_ktime_get_boot_ns},
    macros::tracepoint,
    programs::TracePointContext,
};
use sysmon_common::{RecordKind, file::S_IFMT, file_info::S_IFIFO};

use super::{
    attr::{park_name, scratch},
    file::{AT_FDCWD, enter_arg, exit_ret, send_file_path},
};
use crate::{
    kernel::{Ptr, current_task, file_of_fd, off, read, read_ptr},
    maps::{PIPES_SEEN, count_drop},
};

/// 30 minutes, as UDP flows.
const PIPE_REPORT_NS: u64 = 30 * 60 * 1_000_000_000;

#[tracepoint]
pub fn mknod_enter(ctx: TracePointContext) -> u32 {
    mknod(AT_FDCWD, enter_arg(&ctx, 0) as Ptr, enter_arg(&ctx, 1));
    0
}

#[tracepoint]
pub fn mknodat_enter(ctx: TracePointContext) -> u32 {
    mknod(
        enter_arg(&ctx, 0) as i32,
        enter_arg(&ctx, 1) as Ptr,
        enter_arg(&ctx, 2),
    );
    0
}

/// mknodat(dfd, name, mode, dev) entered (mknod: `AT_FDCWD`).
#[inline(always)]
pub fn mknod(dfd: i32, name: Ptr, mode: u64) {
    if mode as u16 & S_IFMT != S_IFIFO {
        return;
    }
    let Some(s) = scratch() else {
        count_drop(RecordKind::PipeCreate);
        return;
    };
    park_name(RecordKind::PipeCreate, s, dfd, name);
}

#[tracepoint]
pub fn pipe_connect(ctx: TracePointContext) -> u32 {
    opened(exit_ret(&ctx));
    0
}

/// An open returned `fd`.
#[inline(always)]
pub fn opened(fd: i64) {
    if fd < 0 {
        return;
    }
    let file = file_of_fd(fd as u64);
    let inode = read_ptr(file, off!(file_f_inode));
    let mode: u16 = read(inode, off!(inode_i_mode));
    if mode & S_IFMT != S_IFIFO {
        return;
    }
    // The start time tells a process from a later one with the same pid.
    let leader = read_ptr(current_task(), off!(task_group_leader));
    let key = [
        bpf_get_current_pid_tgid() >> 32,
        read(leader, off!(task_start_boottime)),
        inode as u64,
    ];
    let now = unsafe { bpf_ktime_get_boot_ns() };
    if let Some(then) = unsafe { PIPES_SEEN.get(key) }
        && now.wrapping_sub(*then) < PIPE_REPORT_NS
    {
        return;
    }
    let _ = PIPES_SEEN.insert(key, now, 0);
    send_file_path(RecordKind::PipeConnect, file);
}
