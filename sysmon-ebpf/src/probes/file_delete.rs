//! FileDelete: unlink and unlinkat (not AT_REMOVEDIR). After a successful unlink the name no
//! longer resolves, so the record is built at entry (the name as passed, plus the cwd or the
//! directory fd's path when the name is relative), parked by pid_tgid, and sent at exit only
//! when the call returned 0.

use aya_ebpf::{
    helpers::{
        bpf_get_current_pid_tgid,
        generated::{bpf_probe_read_user, bpf_probe_read_user_str},
    },
    macros::tracepoint,
    programs::TracePointContext,
};
use sysmon_common::{
    PATH_MAX, RecordKind,
    file::{AT_REMOVEDIR, FILE_TAIL_MAX, FileRecord},
};

use super::file::{AT_FDCWD, NameRead, enter_arg, exit_ret, name_path_read};
use crate::{
    kernel::{Ptr, current_uid},
    maps::{DELETES, FILE_SCRATCH, FileScratch, count_drop, send},
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
    let Some(parked) = DELETES.get_ptr_mut(id) else {
        return 0;
    };
    if exit_ret(&ctx) == 0 {
        let s = unsafe { &mut *parked };
        if s.rec.name_len == 0 {
            read_name_again(s);
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
    0
}

/// Where a parked record whose name could not be read keeps the name's address: the end of
/// the tail, past any directory part (at most PATH_MAX - 1 bytes).
const NAME_PTR_AT: usize = FILE_TAIL_MAX - 8;

/// Reads the name of a parked record whose name was unreadable at entry: the kernel has
/// copied it during the call, so its page is in now.
#[inline(always)]
fn read_name_again(s: &mut FileScratch) {
    let name =
        unsafe { (s.tail.as_ptr().wrapping_add(NAME_PTR_AT) as *const u64).read_unaligned() };
    // Unread at entry, the name was taken for relative and the directory part built: an
    // absolute name has none.
    let mut first = 0u8;
    unsafe { bpf_probe_read_user(&raw mut first as *mut _, 1, name as *const _) };
    if first == b'/' {
        s.rec.dir_len = 0;
        s.rec.flags = 0;
    }
    let dir_len = s.rec.dir_len as usize & (PATH_MAX - 1);
    let got = unsafe {
        bpf_probe_read_user_str(
            s.tail.as_mut_ptr().wrapping_add(dir_len) as *mut _,
            PATH_MAX as u32,
            name as *const _,
        )
    };
    if got > 1 {
        let name_len = (got as usize - 1) & (PATH_MAX - 1);
        s.rec.name_len = name_len as u32;
        s.rec.header.len = (core::mem::size_of::<FileRecord>() + dir_len + name_len) as u32;
    }
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
            unsafe {
                (s.tail.as_mut_ptr().wrapping_add(NAME_PTR_AT) as *mut u64)
                    .write_unaligned(name as u64)
            };
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
        count_drop(RecordKind::FileDelete);
    }
}
