//! ImageLoad: a file mapped executable into a process. `mmap` of a file with `PROT_EXEC` (how
//! ld.so maps each library's code, at start-up, `dlopen`, `LD_PRELOAD`), `mprotect` /
//! `pkey_mprotect` adding `PROT_EXEC` (`PROT_READ` under `READ_IMPLIES_EXEC` counts as both),
//! and at exec the program interpreter (ld.so), which the kernel maps itself (no syscall):
//! found through `AT_BASE` in the new image's auxiliary vector. Once per file per process
//! image (exec starts a new one).
//!
//! The entry only notes where to look; the exit looks at what the call left mapped: every
//! executable file mapping at the address mmap returned, or in mprotect's range (also when
//! mprotect failed: it changes mapping after mapping and stops at the first it may not
//! change, so a failure can leave a library executable). A call that failed marks nothing,
//! and what is reported is what is mapped, not what the arguments named at entry.

use core::ffi::c_void;

use aya_ebpf::{
    helpers::{
        bpf_get_current_pid_tgid,
        generated::{bpf_find_vma, bpf_get_current_task_btf, bpf_loop, bpf_probe_read_kernel},
    },
    macros::{map, raw_tracepoint, tracepoint},
    maps::{HashMap, LruHashMap, PerCpuArray},
    programs::{RawTracePointContext, TracePointContext},
};
use sysmon_common::{RecordKind, drops, file::FileRecord, file_info::FileInfoRecord};

use super::{
    attr::{read_inode, scratch},
    file::{enter_arg, exit_ret, file_path},
};
use crate::{
    kernel::{Ptr, current_task, current_uid, off, read, read_ptr},
    maps::{count_drop, count_lost, send},
};

const PROT_READ: u64 = 0x1;
const PROT_EXEC: u64 = 0x4;
const MAP_ANONYMOUS: u64 = 0x20;
/// `personality` flag: `PROT_READ` implies `PROT_EXEC` (mmap and mprotect add it).
const READ_IMPLIES_EXEC: u32 = 0x0400000;
/// `vm_flags`: the mapping is executable.
const VM_EXEC: u64 = 0x4;
/// `AT_BASE`: where the interpreter was loaded.
const AT_BASE: u64 = 7;
/// auxv entries looked at (pairs of words); Linux writes fewer than 32.
const AUXV_PAIRS: usize = 32;
/// Mappings looked at in one mprotect range; past them the rest is counted as a drop.
const VMAS_MAX: u32 = 256;
/// Tries of a mapping lookup that finds the address space locked for writing (another
/// thread mapping or unmapping) before the call is counted as a drop.
const BUSY_TRIES: u64 = 64;
const EBUSY: i64 = 16;

/// Files already reported per process image: (tgid, mm, inode).
#[map]
static IMAGES_SEEN: LruHashMap<[u64; 3], u8> = LruHashMap::with_max_entries(65536, 0);

/// Calls in flight that may map a file executable, by pid_tgid: (start, end) of mprotect's
/// range; (0, 0) for mmap, whose mapping is where it returns. Sized by the agent.
#[map]
pub static IMAGE_CALLS: HashMap<u64, [u64; 2]> = HashMap::with_max_entries(1024, 0);

/// The auxv copy at exec.
#[map]
static AUXV_SCRATCH: PerCpuArray<[u64; 2 * AUXV_PAIRS]> = PerCpuArray::with_max_entries(1, 0);

/// A walk over the mappings of a range, and the mapping the last lookup found.
#[repr(C)]
pub struct Walk {
    addr: u64,
    end: u64,
    busy: u64,
    /// The walk reached the range's end, or a hole (where the call stopped too).
    done: u64,
    file: u64,
    vm_end: u64,
    vm_flags: u64,
}

#[map]
static WALK: PerCpuArray<Walk> = PerCpuArray::with_max_entries(1, 0);

#[tracepoint]
pub fn mmap_enter(ctx: TracePointContext) -> u32 {
    let (prot, flags, fd) = (enter_arg(&ctx, 2), enter_arg(&ctx, 3), enter_arg(&ctx, 4));
    if executable(prot) && flags & MAP_ANONYMOUS == 0 && fd <= i32::MAX as u64 {
        park([0, 0]);
    }
    0
}

/// mprotect and pkey_mprotect (start, len, prot, ...).
#[tracepoint]
pub fn mprotect_enter(ctx: TracePointContext) -> u32 {
    if executable(enter_arg(&ctx, 2)) {
        let start = enter_arg(&ctx, 0);
        park([start, start.wrapping_add(enter_arg(&ctx, 1))]);
    }
    0
}

/// Exits of mmap, mprotect and pkey_mprotect.
#[tracepoint]
pub fn image_exit(ctx: TracePointContext) -> u32 {
    let id = bpf_get_current_pid_tgid();
    let Some(call) = (unsafe { IMAGE_CALLS.get(id) }).copied() else {
        return 0;
    };
    let _ = IMAGE_CALLS.remove(id);
    mapped(call, exit_ret(&ctx));
    0
}

/// What a call with `prot` may map executable.
#[inline(always)]
pub fn executable(prot: u64) -> bool {
    if prot & PROT_EXEC != 0 {
        return true;
    }
    let personality: u32 = read(current_task(), off!(task_personality));
    prot & PROT_READ != 0 && personality & READ_IMPLIES_EXEC != 0
}

#[inline(always)]
fn park(call: [u64; 2]) {
    if IMAGE_CALLS
        .insert(bpf_get_current_pid_tgid(), call, 0)
        .is_err()
    {
        count_lost(drops::TABLE, RecordKind::ImageLoad);
    }
}

/// After a call that may have mapped a file executable: `call` as parked ((0, 0) for an mmap
/// that returned `ret`).
#[inline(always)]
pub fn mapped(call: [u64; 2], ret: i64) {
    if call == [0, 0] {
        // Errors are -4095..-1.
        if !(-4095..0).contains(&ret) {
            walk(ret as u64, ret as u64 + 1);
        }
    } else {
        walk(call[0], call[1]);
    }
}

/// Reports every executable file mapping from `start` up to `end` (or a hole).
#[inline(always)]
pub fn walk(start: u64, end: u64) {
    let Some(w) = WALK.get_ptr_mut(0) else {
        count_drop(RecordKind::ImageLoad);
        return;
    };
    // SAFETY: this CPU's slot; syscall exits run in task context, where no other program
    // using this map can interrupt this one on the same CPU.
    let w = unsafe { &mut *w };
    w.addr = start;
    w.end = end;
    w.busy = 0;
    w.done = 0;
    // SAFETY: `step` has the callback signature bpf_loop expects.
    unsafe { bpf_loop(VMAS_MAX, step as *mut c_void, core::ptr::null_mut(), 0) };
    if w.done == 0 {
        count_drop(RecordKind::ImageLoad);
    }
}

/// One mapping of a walk.
extern "C" fn step(_i: u64, _ctx: *mut c_void) -> i64 {
    let Some(w) = WALK.get_ptr_mut(0) else {
        return 1;
    };
    // SAFETY: as in `walk`; bpf_loop runs this on the same CPU, inside that program.
    let w = unsafe { &mut *w };
    if w.addr >= w.end {
        w.done = 1;
        return 1;
    }
    w.file = 0;
    // SAFETY: `vma_seen` has the callback signature bpf_find_vma expects.
    let rc = unsafe {
        bpf_find_vma(
            bpf_get_current_task_btf(),
            w.addr,
            vma_seen as *mut c_void,
            core::ptr::null_mut(),
            0,
        )
    };
    if rc == -EBUSY {
        w.busy += 1;
        return (w.busy >= BUSY_TRIES) as i64;
    }
    if rc != 0 {
        // No mapping here: the call stopped at this hole too.
        w.done = 1;
        return 1;
    }
    if w.vm_flags & VM_EXEC != 0 && w.file != 0 {
        report(w.file as Ptr);
    }
    if w.vm_end <= w.addr {
        return 1;
    }
    w.addr = w.vm_end;
    0
}

extern "C" fn vma_seen(_task: *mut c_void, vma: *mut c_void, _ctx: *mut c_void) -> i64 {
    let vma = vma as Ptr;
    if let Some(w) = WALK.get_ptr_mut(0) {
        // SAFETY: as in `step`, which this runs inside.
        let w = unsafe { &mut *w };
        w.file = read_ptr(vma, off!(vma_vm_file)) as u64;
        w.vm_end = read(vma, off!(vma_vm_end));
        w.vm_flags = read(vma, off!(vma_vm_flags));
    }
    0
}

/// `sched_process_exec` (raw): the interpreter of the new image.
#[raw_tracepoint(tracepoint = "sched_process_exec")]
pub fn image_exec(_ctx: RawTracePointContext) -> i32 {
    let Some(v) = AUXV_SCRATCH.get_ptr_mut(0) else {
        return 0;
    };
    let mm = read_ptr(current_task(), off!(task_mm));
    if mm.is_null() {
        return 0;
    }
    let auxv = mm.wrapping_add(off!(mm_saved_auxv) as usize);
    // SAFETY: this CPU's slot, in a program no other using it interrupts.
    let v = unsafe { &mut *v };
    if unsafe {
        bpf_probe_read_kernel(
            v.as_mut_ptr() as *mut c_void,
            (16 * AUXV_PAIRS) as u32,
            auxv as *const c_void,
        )
    } != 0
    {
        count_drop(RecordKind::ImageLoad);
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
    // The interpreter's first mapping (at AT_BASE) is its headers, not executable: reported
    // whatever its protection. The exec's own mm, no other thread: no lock held against us.
    let Some(w) = WALK.get_ptr_mut(0) else {
        return 0;
    };
    // SAFETY: this CPU's slot, in a program no other using it interrupts.
    let w = unsafe { &mut *w };
    w.file = 0;
    unsafe {
        bpf_find_vma(
            bpf_get_current_task_btf(),
            base,
            vma_seen as *mut c_void,
            core::ptr::null_mut(),
            0,
        )
    };
    if w.file != 0 {
        report(w.file as Ptr);
    }
    0
}

/// Sends an ImageLoad of `file` unless this process image already reported it.
#[inline(always)]
fn report(file: Ptr) {
    let inode = read_ptr(file, off!(file_f_inode));
    let key = [
        bpf_get_current_pid_tgid() >> 32,
        read_ptr(current_task(), off!(task_mm)) as u64,
        inode as u64,
    ];
    if unsafe { IMAGES_SEEN.get(key) }.is_some() {
        return;
    }
    let Some(s) = scratch() else {
        count_drop(RecordKind::ImageLoad);
        return;
    };
    read_inode(&mut s.rec, inode);
    let (flags, len) = file_path(file, s.tail.as_mut_ptr());
    let total = core::mem::size_of::<FileInfoRecord>() + len;
    s.rec.file = FileRecord {
        header: super::header(RecordKind::ImageLoad, total),
        uid: current_uid(),
        flags,
        dir_len: len as u32,
        name_len: 0,
    };
    let all = super::bytes(s);
    // Marked only once sent: a record the ring could not take is sent again at the next
    // mapping of the file.
    if total <= all.len() && send(RecordKind::ImageLoad, &all[..total]) {
        let _ = IMAGES_SEEN.insert(key, 1, 0);
    }
}
