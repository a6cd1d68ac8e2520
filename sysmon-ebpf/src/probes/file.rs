//! What the file probes share: syscall tracepoint fields and sending an open file's path.

use aya_ebpf::programs::TracePointContext;
use sysmon_common::{RecordKind, file::FileRecord, truncated};

use crate::{
    kernel::{Ptr, current_uid, off},
    maps::{FILE_SCRATCH, count_drop, send},
    path,
};

/// `long ret` of every `syscalls/sys_exit_*` record.
const EXIT_RET: usize = 16;
/// First argument of a `syscalls/sys_enter_*` record; each argument takes 8 bytes.
const ENTER_ARGS: usize = 16;

#[inline(always)]
pub fn exit_ret(ctx: &TracePointContext) -> i64 {
    unsafe { ctx.read_at::<i64>(EXIT_RET) }.unwrap_or(-1)
}

#[inline(always)]
pub fn enter_arg(ctx: &TracePointContext, n: usize) -> u64 {
    unsafe { ctx.read_at::<u64>(ENTER_ARGS + 8 * n) }.unwrap_or(0)
}

/// Sends a `kind` record whose path is that of `file` (rebuilt from its dentry).
#[inline(always)]
pub fn send_file_path(kind: RecordKind, file: Ptr) {
    let Some(s) = FILE_SCRATCH.get_ptr_mut(0) else {
        count_drop(kind);
        return;
    };
    let s = unsafe { &mut *s };
    let built = path::build(file.wrapping_add(off!(file_f_path) as usize));
    let len = path::copy_out(&built, s.tail.as_mut_ptr());
    let total = core::mem::size_of::<FileRecord>() + len;
    s.rec = FileRecord {
        header: super::header(kind, total),
        uid: current_uid(),
        flags: if built.truncated { truncated::PATH } else { 0 },
        dir_len: len as u32,
        name_len: 0,
    };
    let all = super::bytes(s);
    if total <= all.len() {
        send(kind, &all[..total]);
    } else {
        count_drop(kind);
    }
}
