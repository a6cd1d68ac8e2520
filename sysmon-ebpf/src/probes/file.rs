//! What the file probes share: syscall tracepoint fields and sending an open file's path.

use aya_ebpf::{
    helpers::generated::{bpf_probe_read_user, bpf_probe_read_user_str},
    programs::TracePointContext,
};
use sysmon_common::{
    PATH_MAX, RecordKind,
    file::{FILE_TAIL_MAX, FileRecord},
    truncated,
};

use crate::{
    kernel::{Ptr, current_task, current_uid, file_of_fd, off, read_ptr},
    maps::{FILE_SCRATCH, count_drop, send},
    path,
};

/// The `dirfd` that means "relative to the cwd".
pub const AT_FDCWD: i32 = -100;

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

/// What reading a syscall's path argument gave.
pub enum NameRead {
    /// Its length, without the NUL.
    Read(usize),
    Empty,
    /// A bad pointer, or a name in a page not yet faulted in, which the helper may not do at
    /// syscall entry (the call itself faults it in and may succeed).
    Unreadable,
}

/// Writes to `tail` (2 * PATH_MAX bytes of room) the path of `name` as a `*at` call was passed
/// it: for a relative name, first the cwd or the directory fd's path (rebuilt in the kernel),
/// then the name itself. Returns (`truncated` flags, dir length, what reading the name gave).
#[inline(always)]
pub fn name_path_read(dfd: i32, name: Ptr, tail: *mut u8) -> (u32, usize, NameRead) {
    let mut first = 0u8;
    unsafe { bpf_probe_read_user(&raw mut first as *mut _, 1, name as *const _) };
    let mut flags = 0;
    let mut dir_len = 0usize;
    if first != b'/' {
        let base = if dfd == AT_FDCWD {
            let fs = read_ptr(current_task(), off!(task_fs));
            if fs.is_null() {
                fs
            } else {
                fs.wrapping_add(off!(fs_pwd) as usize)
            }
        } else {
            let file = file_of_fd(dfd as i64 as u64);
            if file.is_null() {
                file
            } else {
                file.wrapping_add(off!(file_f_path) as usize)
            }
        };
        if !base.is_null() {
            let built = path::build(base);
            if built.truncated {
                flags |= truncated::PATH;
            }
            dir_len = path::copy_out(&built, tail);
        }
    }
    let dir_len = dir_len & (PATH_MAX - 1);
    let got = unsafe {
        bpf_probe_read_user_str(
            tail.wrapping_add(dir_len) as *mut _,
            PATH_MAX as u32,
            name as *const _,
        )
    };
    // The length includes the NUL.
    let read = match got {
        1 => NameRead::Empty,
        g if g > 1 => NameRead::Read((g as usize - 1) & (PATH_MAX - 1)),
        _ => NameRead::Unreadable,
    };
    (flags, dir_len, read)
}

/// Where a parked record whose name could not be read at entry keeps the name's address: the
/// end of the tail, past any directory part (at most PATH_MAX - 1 bytes).
const NAME_PTR_AT: usize = FILE_TAIL_MAX - 8;

/// Keeps `name`'s address in `tail` (2 * PATH_MAX bytes), for [`read_name_again`].
#[inline(always)]
pub fn remember_name(tail: *mut u8, name: Ptr) {
    // SAFETY: NAME_PTR_AT + 8 is within the tail's FILE_TAIL_MAX bytes.
    unsafe { (tail.wrapping_add(NAME_PTR_AT) as *mut u64).write_unaligned(name as u64) };
}

/// At the exit of a call parked without its name (unreadable at entry: a page not yet
/// faulted in, which the call itself faulted in since): reads the name kept by
/// [`remember_name`] into `tail` after the directory part, completing `rec` (whose fixed
/// part, header included, is `fixed` bytes). `name_len` stays 0 when it still cannot be read.
#[inline(always)]
pub fn read_name_again(rec: &mut FileRecord, tail: *mut u8, fixed: usize) {
    // SAFETY: written by `remember_name` at entry.
    let name = unsafe { (tail.wrapping_add(NAME_PTR_AT) as *const u64).read_unaligned() };
    // Unread at entry, the name was taken for relative and the directory part built: an
    // absolute name has none.
    let mut first = 0u8;
    unsafe { bpf_probe_read_user(&raw mut first as *mut _, 1, name as *const _) };
    if first == b'/' {
        rec.dir_len = 0;
        rec.flags = 0;
    }
    let dir_len = rec.dir_len as usize & (PATH_MAX - 1);
    let got = unsafe {
        bpf_probe_read_user_str(
            tail.wrapping_add(dir_len) as *mut _,
            PATH_MAX as u32,
            name as *const _,
        )
    };
    if got > 1 {
        let name_len = (got as usize - 1) & (PATH_MAX - 1);
        rec.name_len = name_len as u32;
        rec.header.len = (fixed + dir_len + name_len) as u32;
    }
}

/// Writes the path of `file` (rebuilt from its dentry) to `tail`; returns (flags, length).
#[inline(always)]
pub fn file_path(file: Ptr, tail: *mut u8) -> (u32, usize) {
    let built = path::build(file.wrapping_add(off!(file_f_path) as usize));
    let len = path::copy_out(&built, tail);
    (if built.truncated { truncated::PATH } else { 0 }, len)
}
