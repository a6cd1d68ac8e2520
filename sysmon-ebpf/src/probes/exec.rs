//! ProcessCreate: `sched/sched_process_exec`, after the new image is in place.
//!
//! Everything the event needs is read here, so a process that exits a millisecond later is
//! still complete: ids, credentials, audit session, start time, process key, exe path and
//! identity, cwd and the argument bytes.

use aya_ebpf::{
    helpers::{bpf_get_smp_processor_id, generated::bpf_probe_read_user},
    macros::tracepoint,
    programs::TracePointContext,
};
use sysmon_common::{
    PATH_MAX, RecordKind,
    process::{ARGS_MAX, ExecRecord},
    truncated,
};

use crate::{
    kernel::{Ptr, current_task_btf, load, load_ptr, off},
    maps::{EXEC_SCRATCH, count_drop, send},
    path,
};

#[tracepoint]
pub fn sched_process_exec(_ctx: TracePointContext) -> u32 {
    let cpu = unsafe { bpf_get_smp_processor_id() };
    let Some(scratch) = EXEC_SCRATCH.get_ptr_mut(cpu) else {
        count_drop(RecordKind::Exec);
        return 0;
    };
    let scratch = unsafe { &mut *scratch };
    let task = current_task_btf();
    let rec = &mut scratch.rec;
    rec.header = super::header(RecordKind::Exec, 0);

    let parent = load_ptr(task, off!(task_real_parent));
    rec.ppid = load(parent, off!(task_tgid));
    let cred = load_ptr(task, off!(task_real_cred));
    rec.uid = load(cred, off!(cred_uid));
    rec.loginuid = load_or(task, off!(task_loginuid), u32::MAX);
    rec.sessionid = load_or(task, off!(task_sessionid), u32::MAX);
    rec.start_ns = load(task, off!(task_start_boottime));
    let signal = load_ptr(task, off!(task_signal));
    let tty = load_ptr(signal, off!(signal_tty));
    rec.tty = if tty.is_null() {
        -1
    } else {
        load(tty, off!(tty_index))
    };
    rec.flags = 0;
    rec.cgroups = crate::cgroup::of_current(task);

    let mm = load_ptr(task, off!(task_mm));
    rec.end_code = load(mm, off!(mm_end_code));

    // Exe path and file identity.
    let exe = load_ptr(mm, off!(mm_exe_file));
    let inode = load_ptr(exe, off!(file_f_inode));
    rec.exe_ino = load(inode, off!(inode_i_ino));
    rec.exe_size = load(inode, off!(inode_i_size));
    rec.exe_mtime_sec = load(inode, off!(inode_i_mtime_sec));
    rec.exe_mtime_nsec = load(inode, off!(inode_i_mtime_nsec));
    let sb = load_ptr(inode, off!(inode_i_sb));
    rec.exe_dev = load(sb, off!(sb_s_dev));
    rec.exe_nlink = load(inode, off!(inode_i_nlink));
    let tail = scratch.tail.as_mut_ptr();
    let mut used = 0usize;
    if !exe.is_null() {
        let built = path::build(exe.wrapping_add(off!(file_f_path) as usize));
        if built.truncated {
            rec.flags |= truncated::EXE;
        }
        used = path::copy_out(&built, tail);
    }
    rec.exe_len = used as u32;

    // Current directory.
    let fs = load_ptr(task, off!(task_fs));
    let mut cwd_len = 0usize;
    if !fs.is_null() {
        let built = path::build(fs.wrapping_add(off!(fs_pwd) as usize));
        if built.truncated {
            rec.flags |= truncated::CWD;
        }
        cwd_len = path::copy_out(&built, tail.wrapping_add(used & (PATH_MAX * 2 - 1)));
    }
    rec.cwd_len = cwd_len as u32;
    used = (used + cwd_len) & (PATH_MAX * 2 - 1);

    // Arguments: the raw NUL-separated bytes of the new image's argv.
    let arg_start: u64 = load(mm, off!(mm_arg_start));
    let arg_end: u64 = load(mm, off!(mm_arg_end));
    let mut args_len = arg_end.saturating_sub(arg_start) as usize;
    if args_len > ARGS_MAX {
        args_len = ARGS_MAX;
        rec.flags |= truncated::ARGS;
    }
    if args_len > 0 && read_user(tail.wrapping_add(used), args_len, arg_start) != 0 {
        // A page the helper cannot read without faulting it in (it may not fault here).
        // Keep what the first page holds and mark the command line cut, so that it shows
        // `...` and never looks like a process started without arguments.
        rec.flags |= truncated::ARGS;
        let in_page = (PAGE - (arg_start & (PAGE - 1))) as usize;
        args_len =
            if in_page < args_len && read_user(tail.wrapping_add(used), in_page, arg_start) == 0 {
                in_page
            } else {
                0
            };
    }
    rec.args_len = args_len as u32;

    let total = core::mem::size_of::<ExecRecord>() + used + args_len;
    rec.header.len = total as u32;
    let all = unsafe {
        core::slice::from_raw_parts(
            scratch as *const _ as *const u8,
            core::mem::size_of_val(scratch),
        )
    };
    if total <= all.len() {
        send(RecordKind::Exec, &all[..total]);
    } else {
        count_drop(RecordKind::Exec);
    }
    0
}

const PAGE: u64 = 4096;

/// `bpf_probe_read_user` of `len` bytes at `src` into `dst`; 0 on success.
#[inline(always)]
fn read_user(dst: *mut u8, len: usize, src: u64) -> i64 {
    unsafe { bpf_probe_read_user(dst as *mut _, len as u32, src as *const _) }
}

/// Reads a `u32` member that may not exist on this kernel (e.g. audit fields).
#[inline(always)]
fn load_or(base: Ptr, off: u32, absent: u32) -> u32 {
    if off == sysmon_common::offsets::ABSENT {
        absent
    } else {
        load(base, off)
    }
}
