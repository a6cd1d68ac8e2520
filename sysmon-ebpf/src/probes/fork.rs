//! New processes (not threads): lets the process cache know a child and its parent before
//! the child execs, or when it never does. Raw tracepoint, for the child's task pointer.

use aya_ebpf::{macros::raw_tracepoint, programs::RawTracePointContext};
use sysmon_common::{RecordKind, process::ForkRecord};

use crate::{
    kernel::{Ptr, current_task_btf, load, load_ptr, off, read, read_ptr},
    maps::send,
};

#[raw_tracepoint(tracepoint = "sched_process_fork")]
pub fn sched_process_fork(ctx: RawTracePointContext) -> i32 {
    let child: Ptr = ctx.arg::<*const u8>(1);
    let (pid, tgid) = pid_tgid(child);
    if pid != tgid {
        return 0;
    }
    let mut header = super::header(RecordKind::Fork, core::mem::size_of::<ForkRecord>());
    header.tgid = tgid;
    header.tid = pid;
    let rec = ForkRecord {
        header,
        // The tracepoint's parent is the forking task (`current`), read without a helper.
        ppid: load(current_task_btf(), off!(task_tgid)),
        uid: read(read_ptr(child, off!(task_real_cred)), off!(cred_uid)),
        start_ns: read(child, off!(task_start_boottime)),
        cgroups: cgroups_of(child),
    };
    send(RecordKind::Fork, super::bytes(&rec));
    0
}

/// The child's cgroups: its parent's (direct loads through the current task) unless it
/// was started in another (`clone3` with `CLONE_INTO_CGROUP`), then read from the child.
#[inline(always)]
fn cgroups_of(child: Ptr) -> sysmon_common::process::Cgroups {
    let task = current_task_btf();
    if read_ptr(child, off!(task_cgroups)) == load_ptr(task, off!(task_cgroups)) {
        crate::cgroup::of_current(task)
    } else {
        crate::cgroup::of_task(child)
    }
}

/// `task->pid` and `task->tgid`, in one read where they sit side by side.
#[inline(always)]
fn pid_tgid(task: Ptr) -> (u32, u32) {
    let (pid, tgid) = (off!(task_pid), off!(task_tgid));
    if tgid == pid.wrapping_add(4) {
        let both: u64 = read(task, pid);
        (both as u32, (both >> 32) as u32)
    } else {
        (read(task, pid), read(task, tgid))
    }
}
