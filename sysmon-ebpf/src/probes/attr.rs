//! Calls that change a file's attributes (the utimes family: FileCreateTime; the chmod family:
//! FileExecutableDetected) and mknod (CreatePipe). The record is built at entry (the path as
//! FileDelete builds it, the value asked for) and parked by pid_tgid; the inode is read when
//! the kernel stamps its ctime inside the call (`timestamp/*` tracepoints pass the inode:
//! `setattr_copy` writes them after the new mode but, on multigrain-timestamp filesystems
//! such as ext4, xfs, btrfs and tmpfs, before the new times); the record is sent at exit
//! when the call returned 0.

use aya_ebpf::{
    helpers::bpf_get_current_pid_tgid,
    macros::{raw_tracepoint, tracepoint},
    programs::{RawTracePointContext, TracePointContext},
};
use sysmon_common::{
    RecordKind,
    file::{FileRecord, S_IFMT},
    file_info::{FileInfoRecord, S_IFREG, S_IXUGO, state},
};

use super::file::exit_ret;
use crate::{
    kernel::{Ptr, current_uid, off, read, read_ptr},
    maps::{ATTRS, INFO_SCRATCH, InfoScratch, MODES, count_drop, send},
};

/// The per-CPU scratch record, zeroed fixed part.
#[inline(always)]
pub fn scratch() -> Option<&'static mut InfoScratch> {
    let s = INFO_SCRATCH.get_ptr_mut(0)?;
    let s = unsafe { &mut *s };
    s.rec = FileInfoRecord::default();
    Some(s)
}

/// Completes the file part of `s` (its tail already written) and parks it until the exit.
#[inline(always)]
pub fn park(kind: RecordKind, s: &mut InfoScratch, flags: u32, dir_len: usize, name_len: usize) {
    let total = core::mem::size_of::<FileInfoRecord>() + dir_len + name_len;
    s.rec.file = FileRecord {
        header: super::header(kind, total),
        uid: current_uid(),
        flags,
        dir_len: dir_len as u32,
        name_len: name_len as u32,
    };
    if ATTRS.insert(bpf_get_current_pid_tgid(), s, 0).is_err() {
        count_drop(kind);
    }
}

/// The identity and state of the inode at `inode` into `rec`; the modification time into
/// `old_*` unless the entry already read it (`state::OLD`).
#[inline(always)]
pub fn read_inode(rec: &mut FileInfoRecord, inode: Ptr) {
    let mode: u16 = read(inode, off!(inode_i_mode));
    rec.mode = mode as u32;
    rec.dev = read(read_ptr(inode, off!(inode_i_sb)), off!(sb_s_dev));
    rec.ino = read(inode, off!(inode_i_ino));
    rec.size = read(inode, off!(inode_i_size));
    if rec.state & state::OLD == 0 {
        rec.old_sec = read(inode, off!(inode_i_mtime_sec));
        rec.old_nsec = read(inode, off!(inode_i_mtime_nsec));
    }
}

/// Key of a file in `MODES`.
#[inline(always)]
pub fn mode_key(rec: &FileInfoRecord) -> u64 {
    ((rec.dev as u64) << 32) ^ rec.ino
}

/// `timestamp/ctime_ns_xchg`, `ctime_xchg_skip`, `inode_set_ctime_to_ts`: the inode whose
/// ctime the current call changes. The first one inside a parked call is its target.
#[raw_tracepoint(tracepoint = "ctime_ns_xchg")]
pub fn attr_changed(ctx: RawTracePointContext) -> i32 {
    let Some(p) = ATTRS.get_ptr_mut(bpf_get_current_pid_tgid()) else {
        return 0;
    };
    let rec = unsafe { &mut (*p).rec };
    if rec.state & state::SEEN != 0 {
        return 0;
    }
    rec.state |= state::SEEN;
    read_inode(rec, ctx.arg::<*const u8>(0));
    if rec.file.header.kind == RecordKind::FileExecutable as u32 {
        let before = unsafe { MODES.get(mode_key(rec)) }.copied();
        let regular = rec.mode as u16 & S_IFMT == S_IFREG;
        let was_exec = before.is_some_and(|m| m & S_IXUGO != 0);
        if !regular || rec.mode & S_IXUGO == 0 || was_exec {
            rec.state |= state::QUIET;
        }
        let _ = MODES.insert(mode_key(rec), rec.mode, 0);
    }
    0
}

/// Exit of every parked call: sends its record when the call returned 0 and has something
/// to report.
#[tracepoint]
pub fn attr_exit(ctx: TracePointContext) -> u32 {
    let id = bpf_get_current_pid_tgid();
    let Some(p) = ATTRS.get_ptr(id) else {
        return 0;
    };
    let s = unsafe { &*p };
    let r = &s.rec;
    let kind = r.file.header.kind;
    let ret = exit_ret(&ctx);
    // mmap returns an address; errors are -4095..-1 for every call.
    let report = if kind == RecordKind::ImageLoad as u32 {
        !(-4095..0).contains(&ret)
    } else {
        ret == 0
            && if kind == RecordKind::PipeCreate as u32 {
                true
            } else if kind == RecordKind::FileCreateTime as u32 {
                r.state & (state::SEEN | state::OLD) != 0
                    && (r.new_sec < r.old_sec
                        || (r.new_sec == r.old_sec && r.new_nsec < r.old_nsec))
            } else {
                // Seen changing, or (fchmod) decided at entry. A chmod by path not seen
                // changing (a kernel before 6.13 has no timestamp tracepoints, or the
                // filesystem stamps no ctime through them) goes to user space, which looks
                // at the file itself.
                r.state & state::QUIET == 0
            }
    };
    if report {
        let total = r.file.header.len as usize;
        let all = super::bytes(s);
        if total <= all.len() {
            let kind = if kind == RecordKind::PipeCreate as u32 {
                RecordKind::PipeCreate
            } else if kind == RecordKind::ImageLoad as u32 {
                RecordKind::ImageLoad
            } else if kind == RecordKind::FileCreateTime as u32 {
                RecordKind::FileCreateTime
            } else {
                RecordKind::FileExecutable
            };
            send(kind, &all[..total]);
        }
    }
    let _ = ATTRS.remove(id);
    0
}
