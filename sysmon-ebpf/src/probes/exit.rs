//! ProcessTerminate: `sched/sched_process_exit`, once per process (when the whole thread
//! group is dead), not once per thread.

use aya_ebpf::{macros::tracepoint, programs::TracePointContext};
use sysmon_common::{RecordKind, offsets::ABSENT, process::ExitRecord};

use crate::{
    kernel::{current_task_btf, exit_group_dead_offset, load, load_ptr, off},
    maps::send,
};

#[tracepoint]
pub fn sched_process_exit(ctx: TracePointContext) -> u32 {
    let task = current_task_btf();
    let group_dead = match exit_group_dead_offset() {
        // Older kernels: the last thread has already brought `signal->live` to zero.
        ABSENT => load::<u32>(load_ptr(task, off!(task_signal)), off!(signal_live)) == 0,
        at => unsafe { ctx.read_at::<u8>(at as usize) }.unwrap_or(0) != 0,
    };
    if !group_dead {
        return 0;
    }
    let leader = load_ptr(task, off!(task_group_leader));
    let rec = ExitRecord {
        header: super::header(RecordKind::Exit, core::mem::size_of::<ExitRecord>()),
        uid: load(load_ptr(task, off!(task_real_cred)), off!(cred_uid)),
        _pad: 0,
        start_ns: load(leader, off!(task_start_boottime)),
    };
    send(RecordKind::Exit, super::bytes(&rec));
    0
}
