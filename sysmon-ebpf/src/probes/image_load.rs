//! ImageLoad: a file mapped executable into a process. `mmap` with `PROT_EXEC` of a file
//! (how ld.so maps each library's code, at start-up, `dlopen`, `LD_PRELOAD`), `mprotect` /
//! `pkey_mprotect` adding `PROT_EXEC` to a file mapping (the VMA found with `bpf_find_vma`),
//! and at exec the program interpreter (ld.so), which the kernel maps itself (no syscall):
//! found through `AT_BASE` in the new image's auxiliary vector. Built at entry, sent at exit
//! when the call succeeded (see `attr.rs`); once per file per process image (exec starts a
//! new one).

use core::ffi::c_void;

use aya_ebpf::{
    helpers::{
        bpf_get_current_pid_tgid,
        generated::{bpf_find_vma, bpf_get_current_task_btf, bpf_probe_read_kernel},
    },
    macros::{map, raw_tracepoint, tracepoint},
    maps::{LruHashMap, PerCpuArray},
    programs::{RawTracePointContext, TracePointContext},
};
use sysmon_common::{RecordKind, file::FileRecord, file_info::FileInfoRecord};

use super::{
    attr::{park, read_inode, scratch},
    file::{enter_arg, file_path},
};
use crate::{
    kernel::{Ptr, current_task, current_uid, file_of_fd, off, read_ptr},
    maps::{InfoScratch, send},
};

const PROT_EXEC: u64 = 0x4;
const MAP_ANONYMOUS: u64 = 0x20;
/// `AT_BASE`: where the interpreter was loaded.
const AT_BASE: u64 = 7;
/// auxv entries looked at (pairs of words); Linux writes fewer than 32.
const AUXV_PAIRS: usize = 32;

/// Files already reported per process image: (tgid, mm, inode).
#[map]
static IMAGES_SEEN: LruHashMap<[u64; 3], u8> = LruHashMap::with_max_entries(65536, 0);

/// `vm_file` of the VMA the last `bpf_find_vma` found; the auxv copy.
#[map]
static VMA_SCRATCH: PerCpuArray<[u64; 2 * AUXV_PAIRS]> = PerCpuArray::with_max_entries(1, 0);

#[tracepoint]
pub fn mmap_enter(ctx: TracePointContext) -> u32 {
    let (prot, flags, fd) = (enter_arg(&ctx, 2), enter_arg(&ctx, 3), enter_arg(&ctx, 4));
    if prot & PROT_EXEC == 0 || flags & MAP_ANONYMOUS != 0 || fd > i32::MAX as u64 {
        return 0;
    }
    let file = file_of_fd(fd);
    if !file.is_null()
        && let Some((s, flags, len)) = image(file)
    {
        park(RecordKind::ImageLoad, s, flags, len, 0);
    }
    0
}

/// mprotect and pkey_mprotect (start, len, prot, ...).
#[tracepoint]
pub fn mprotect_enter(ctx: TracePointContext) -> u32 {
    if enter_arg(&ctx, 2) & PROT_EXEC == 0 {
        return 0;
    }
    let file = file_at(enter_arg(&ctx, 0));
    if !file.is_null()
        && let Some((s, flags, len)) = image(file)
    {
        park(RecordKind::ImageLoad, s, flags, len, 0);
    }
    0
}

/// `sched_process_exec` (raw): the interpreter of the new image.
#[raw_tracepoint(tracepoint = "sched_process_exec")]
pub fn image_exec(_ctx: RawTracePointContext) -> i32 {
    let Some(v) = VMA_SCRATCH.get_ptr_mut(0) else {
        return 0;
    };
    let mm = read_ptr(current_task(), off!(task_mm));
    if mm.is_null() {
        return 0;
    }
    let auxv = mm.wrapping_add(off!(mm_saved_auxv) as usize);
    let v = unsafe { &mut *v };
    if unsafe {
        bpf_probe_read_kernel(
            v.as_mut_ptr() as *mut c_void,
            (16 * AUXV_PAIRS) as u32,
            auxv as *const c_void,
        )
    } != 0
    {
        return 0;
    }
    let mut base = 0;
    for i in 0..AUXV_PAIRS {
        if v[2 * i] == AT_BASE {
            base = v[2 * i + 1];
            break;
        }
        if v[2 * i] == 0 {
            break;
        }
    }
    // 0: a static binary, no interpreter.
    if base == 0 {
        return 0;
    }
    let file = file_at(base);
    if file.is_null() {
        return 0;
    }
    let Some((s, flags, len)) = image(file) else {
        return 0;
    };
    let total = core::mem::size_of::<FileInfoRecord>() + len;
    s.rec.file = FileRecord {
        header: super::header(RecordKind::ImageLoad, total),
        uid: current_uid(),
        flags,
        dir_len: len as u32,
        name_len: 0,
    };
    let all = super::bytes(s);
    if total <= all.len() {
        send(RecordKind::ImageLoad, &all[..total]);
    }
    0
}

/// The scratch record filled for `file` (inode identity, path), unless this process image
/// already reported it.
#[inline(always)]
fn image(file: Ptr) -> Option<(&'static mut InfoScratch, u32, usize)> {
    let inode = read_ptr(file, off!(file_f_inode));
    let key = [
        bpf_get_current_pid_tgid() >> 32,
        read_ptr(current_task(), off!(task_mm)) as u64,
        inode as u64,
    ];
    if unsafe { IMAGES_SEEN.get(key) }.is_some() {
        return None;
    }
    let _ = IMAGES_SEEN.insert(key, 1, 0);
    let s = scratch()?;
    read_inode(&mut s.rec, inode);
    let (flags, len) = file_path(file, s.tail.as_mut_ptr());
    Some((s, flags, len))
}

/// The file mapped at `addr` in the current process, or null.
#[inline(always)]
fn file_at(addr: u64) -> Ptr {
    let Some(v) = VMA_SCRATCH.get_ptr_mut(0) else {
        return core::ptr::null();
    };
    unsafe { (*v)[0] = 0 };
    unsafe {
        bpf_find_vma(
            bpf_get_current_task_btf(),
            addr,
            vma_file as *mut c_void,
            core::ptr::null_mut(),
            0,
        )
    };
    unsafe { (*v)[0] as Ptr }
}

extern "C" fn vma_file(_task: *mut c_void, vma: *mut c_void, _ctx: *mut c_void) -> i64 {
    let file = read_ptr(vma as Ptr, off!(vma_vm_file)) as u64;
    if let Some(v) = VMA_SCRATCH.get_ptr_mut(0) {
        unsafe { (*v)[0] = file };
    }
    0
}
