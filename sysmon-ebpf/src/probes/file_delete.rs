//! FileDelete: unlink and unlinkat (not AT_REMOVEDIR). After a successful unlink the name no
//! longer resolves, so the record is built at entry (the name as passed, plus the cwd or the
//! directory fd's path when the name is relative), parked by pid_tgid, and sent at exit only
//! when the call returned 0.

use aya_ebpf::{
    helpers::bpf_get_current_pid_tgid, macros::tracepoint, programs::TracePointContext,
};
use sysmon_common::{
    RecordKind,
    file::{AT_REMOVEDIR, FileRecord},
};

use super::file::{AT_FDCWD, enter_arg, exit_ret, name_path};
use crate::{
    kernel::{Ptr, current_uid},
    maps::{DELETES, FILE_SCRATCH, count_drop, send},
};

#[tracepoint]
pub fn unlink_enter(ctx: TracePointContext) -> u32 {
    enter(AT_FDCWD, enter_arg(&ctx, 0) as Ptr);
    0
}

#[tracepoint]
pub fn unlinkat_enter(ctx: TracePointContext) -> u32 {
    if enter_arg(&ctx, 2) & AT_REMOVEDIR == 0 {
        enter(enter_arg(&ctx, 0) as i32, enter_arg(&ctx, 1) as Ptr);
    }
    0
}

/// Exit of both unlink and unlinkat.
#[tracepoint]
pub fn unlink_exit(ctx: TracePointContext) -> u32 {
    let id = bpf_get_current_pid_tgid();
    let Some(parked) = DELETES.get_ptr(id) else {
        return 0;
    };
    if exit_ret(&ctx) == 0 {
        let s = unsafe { &*parked };
        let total = s.rec.header.len as usize;
        let all = super::bytes(s);
        if total <= all.len() {
            send(RecordKind::FileDelete, &all[..total]);
        }
    }
    let _ = DELETES.remove(id);
    0
}

#[inline(always)]
fn enter(dfd: i32, name: Ptr) {
    let Some(s) = FILE_SCRATCH.get_ptr_mut(0) else {
        return;
    };
    let s = unsafe { &mut *s };
    let Some((flags, dir_len, name_len)) = name_path(dfd, name, s.tail.as_mut_ptr()) else {
        return;
    };
    let total = core::mem::size_of::<FileRecord>() + dir_len + name_len;
    s.rec = FileRecord {
        header: super::header(RecordKind::FileDelete, total),
        uid: current_uid(),
        flags,
        dir_len: dir_len as u32,
        name_len: name_len as u32,
    };
    if DELETES.insert(bpf_get_current_pid_tgid(), s, 0).is_err() {
        count_drop(RecordKind::FileDelete);
    }
}
