//! FileDelete: unlink and unlinkat (not AT_REMOVEDIR). After a successful unlink the name no
//! longer resolves, so the record is built at entry (the name as passed, plus the cwd or the
//! directory fd's path when the name is relative), parked by pid_tgid, and sent at exit only
//! when the call returned 0.

use aya_ebpf::{helpers::bpf_get_current_pid_tgid, macros::tracepoint, programs::TracePointContext};
use sysmon_common::{
    RecordKind, drops,
    file::{AT_REMOVEDIR, FileRecord},
};

use super::file::{
    AT_FDCWD, NameRead, enter_arg, exit_ret, name_path_read, read_name_again, remember_name,
};
use crate::{
    kernel::{Ptr, current_uid},
    maps::{DELETES, FILE_SCRATCH, count_drop, count_lost, send},
};

#[tracepoint]
pub fn unlink_enter(ctx: TracePointContext) -> u32 {
    unlink(AT_FDCWD, enter_arg(&ctx, 0) as Ptr, 0);
    0
}

#[tracepoint]
pub fn unlinkat_enter(ctx: TracePointContext) -> u32 {
    unlink(
        enter_arg(&ctx, 0) as i32,
        enter_arg(&ctx, 1) as Ptr,
        enter_arg(&ctx, 2),
    );
    0
}

/// unlinkat(dfd, name, flags) entered (unlink: `AT_FDCWD`, 0).
#[inline(always)]
pub fn unlink(dfd: i32, name: Ptr, flags: u64) {
    if flags & AT_REMOVEDIR == 0 {
        enter(dfd, name);
    }
}

/// Exit of both unlink and unlinkat.
#[tracepoint]
pub fn unlink_exit(ctx: TracePointContext) -> u32 {
    unlink_done(exit_ret(&ctx));
    0
}

#[inline(always)]
pub fn unlink_done(ret: i64) {
    let id = bpf_get_current_pid_tgid();
    let Some(parked) = DELETES.get_ptr_mut(id) else {
        return;
    };
    if ret == 0 {
        let s = unsafe { &mut *parked };
        if s.rec.name_len == 0 {
            read_name_again(&mut s.rec, s.tail.as_mut_ptr(), size_of::<FileRecord>());
        }
        let total = s.rec.header.len as usize;
        let all = super::bytes(s);
        if total <= all.len() && s.rec.name_len > 0 {
            send(RecordKind::FileDelete, &all[..total]);
        } else {
            // The name could not be read at entry nor now, or the record is bigger than
            // it can be: the delete happened and cannot be reported.
            count_drop(RecordKind::FileDelete);
        }
    }
    let _ = DELETES.remove(id);
}

#[inline(always)]
fn enter(dfd: i32, name: Ptr) {
    let Some(s) = FILE_SCRATCH.get_ptr_mut(0) else {
        count_drop(RecordKind::FileDelete);
        return;
    };
    let s = unsafe { &mut *s };
    let (flags, dir_len, read) = name_path_read(dfd, name, s.tail.as_mut_ptr());
    // An empty name fails the unlink (ENOENT). An unreadable one is a bad pointer (the
    // unlink fails too, EFAULT) or a name in a page not yet faulted in (the unlink faults it
    // in and may succeed): parked with no name and the pointer, for the exit to read again.
    let name_len = match read {
        NameRead::Read(n) => n,
        NameRead::Empty => return,
        NameRead::Unreadable => {
            remember_name(s.tail.as_mut_ptr(), name);
            0
        }
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
        count_lost(drops::TABLE, RecordKind::FileDelete);
    }
}
