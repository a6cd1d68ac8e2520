//! New processes (not threads): lets the process cache know a child and its parent before
//! the child execs, or when it never does. Raw tracepoint, for the child's task pointer.

use aya_ebpf::{macros::raw_tracepoint, programs::RawTracePointContext};
use sysmon_common::{RecordKind, process::ForkRecord};

use crate::{
    kernel::{Ptr, off, read, read_ptr},
    maps::send,
};

#[raw_tracepoint(tracepoint = "sched_process_fork")]
pub fn sched_process_fork(ctx: RawTracePointContext) -> i32 {
    let parent: Ptr = ctx.arg::<*const u8>(0);
    let child: Ptr = ctx.arg::<*const u8>(1);
    let pid: u32 = read(child, off!(task_pid));
    let tgid: u32 = read(child, off!(task_tgid));
    if pid != tgid {
        return 0;
    }
    let mut header = super::header(RecordKind::Fork, core::mem::size_of::<ForkRecord>());
    header.tgid = tgid;
    header.tid = pid;
    let rec = ForkRecord {
        header,
        ppid: read(parent, off!(task_tgid)),
        uid: read(read_ptr(child, off!(task_real_cred)), off!(cred_uid)),
        start_ns: read(child, off!(task_start_boottime)),
    };
    send(RecordKind::Fork, super::bytes(&rec));
    0
}
