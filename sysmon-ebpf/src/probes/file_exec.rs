//! FileExecutableDetected: a regular file becomes executable. Created with an execute bit
//! (exits of creat/open/openat/openat2 with `FMODE_CREATED`, the mode after umask), or given
//! one by chmod/fchmod/fchmodat/fchmodat2 when it had none. The mode a chmod replaces: for
//! fchmod read at entry; for a path, the kernel gives the inode only once the new mode is
//! written (see `attr.rs`), so it comes from `MODES`, the last mode seen for that file (at
//! its creation or a chmod); a file never seen (older than the agent) counts as having had
//! no execute bit.

use aya_ebpf::{macros::tracepoint, programs::TracePointContext};
use sysmon_common::{
    RecordKind,
    file::{FMODE_CREATED, S_IFMT},
    file_info::{S_IFREG, S_IXUGO, state},
};

use super::{
    attr::{mode_key, park, park_name, read_inode, scratch},
    file::{AT_FDCWD, enter_arg, exit_ret, file_path},
};
use crate::{
    kernel::{Ptr, file_of_fd, off, read, read_ptr},
    maps::{MODES, count_drop, send},
};

#[tracepoint]
pub fn chmod_enter(ctx: TracePointContext) -> u32 {
    by_name(AT_FDCWD, enter_arg(&ctx, 0) as Ptr, enter_arg(&ctx, 1));
    0
}

/// fchmodat and fchmodat2 (dfd, filename, mode[, flags]).
#[tracepoint]
pub fn fchmodat_enter(ctx: TracePointContext) -> u32 {
    by_name(
        enter_arg(&ctx, 0) as i32,
        enter_arg(&ctx, 1) as Ptr,
        enter_arg(&ctx, 2),
    );
    0
}

#[tracepoint]
pub fn fchmod_enter(ctx: TracePointContext) -> u32 {
    fchmod(enter_arg(&ctx, 0), enter_arg(&ctx, 1));
    0
}

/// fchmod(fd, mode) entered.
#[inline(always)]
pub fn fchmod(fd: u64, mode: u64) {
    if mode as u32 & S_IXUGO == 0 {
        return;
    }
    let file = file_of_fd(fd);
    if file.is_null() {
        return;
    }
    let Some(s) = scratch() else {
        count_drop(RecordKind::FileExecutable);
        return;
    };
    // The mode it replaces: nothing to report for a file that is not regular or already
    // executable. Known here, so the exit can decide even without `attr_changed`.
    read_inode(&mut s.rec, read_ptr(file, off!(file_f_inode)));
    let _ = MODES.insert(mode_key(&s.rec), s.rec.mode, 0);
    if s.rec.mode as u16 & S_IFMT != S_IFREG || s.rec.mode & S_IXUGO != 0 {
        return;
    }
    s.rec.state = state::OLD;
    let (flags, len) = file_path(file, s.tail.as_mut_ptr());
    park(RecordKind::FileExecutable, s, flags, len, 0);
}

/// fchmodat(dfd, name, mode) entered (chmod: `AT_FDCWD`).
#[inline(always)]
pub fn by_name(dfd: i32, name: Ptr, mode: u64) {
    // A mode without an execute bit cannot make anything executable.
    if mode as u32 & S_IXUGO == 0 {
        return;
    }
    let Some(s) = scratch() else {
        count_drop(RecordKind::FileExecutable);
        return;
    };
    park_name(RecordKind::FileExecutable, s, dfd, name);
}

/// Exits of creat, open, openat and openat2: a regular file created with an execute bit.
/// Every created regular file's mode goes to `MODES`, for a later chmod.
#[tracepoint]
pub fn exec_created(ctx: TracePointContext) -> u32 {
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
    let fmode: u32 = read(file, off!(file_f_mode));
    if fmode & FMODE_CREATED == 0 {
        return;
    }
    let inode = read_ptr(file, off!(file_f_inode));
    let mode: u16 = read(inode, off!(inode_i_mode));
    if mode & S_IFMT != S_IFREG {
        return;
    }
    let Some(s) = scratch() else {
        return;
    };
    read_inode(&mut s.rec, inode);
    let _ = MODES.insert(mode_key(&s.rec), s.rec.mode, 0);
    if s.rec.mode & S_IXUGO == 0 {
        return;
    }
    let (flags, len) = file_path(file, s.tail.as_mut_ptr());
    let total = core::mem::size_of::<sysmon_common::file_info::FileInfoRecord>() + len;
    s.rec.file = sysmon_common::file::FileRecord {
        header: super::header(RecordKind::FileExecutable, total),
        uid: crate::kernel::current_uid(),
        flags,
        dir_len: len as u32,
        name_len: 0,
    };
    let all = super::bytes(s);
    if total <= all.len() {
        send(RecordKind::FileExecutable, &all[..total]);
    }
}
