//! New cgroups (`cgroup/cgroup_mkdir`): id and path, sent before any process runs in the
//! cgroup, so that user space reads a container's names while its first process starts.
//! Rare (a container start makes one per hierarchy): no scratch or rate limit needed.

use aya_ebpf::{
    EbpfContext, helpers::generated::bpf_probe_read_kernel_str, macros::tracepoint,
    programs::TracePointContext,
};
use sysmon_common::{
    RecordKind,
    process::{CGROUP_PATH_MAX, CgroupRecord},
};

use crate::maps::{CGROUP_SCRATCH, count_drop, send};

/// Offsets in the tracepoint's record (its format file, stable since Linux 5.5).
const ROOT: usize = 8;
const ID: usize = 16;
const PATH_LOC: usize = 24;

#[tracepoint]
pub fn cgroup_mkdir(ctx: TracePointContext) -> u32 {
    let Some(scratch) = CGROUP_SCRATCH.get_ptr_mut(0) else {
        count_drop(RecordKind::Cgroup);
        return 0;
    };
    // SAFETY: a per-CPU array slot, used only by this program, which nothing on this CPU
    // interrupts (tracepoint, task context).
    let scratch = unsafe { &mut *scratch };
    let root: i32 = unsafe { ctx.read_at(ROOT) }.unwrap_or(-1);
    let id: u64 = unsafe { ctx.read_at(ID) }.unwrap_or(0);
    // `__data_loc`: the low 16 bits are the string's offset in the record.
    let loc: u32 = unsafe { ctx.read_at(PATH_LOC) }.unwrap_or(0);
    let src = (ctx.as_ptr() as *const u8).wrapping_add((loc & 0xffff) as usize);
    // SAFETY: the helper writes at most CGROUP_PATH_MAX bytes into the scratch's path.
    let n = unsafe {
        bpf_probe_read_kernel_str(
            scratch.path.as_mut_ptr() as *mut _,
            CGROUP_PATH_MAX as u32,
            src as *const _,
        )
    };
    // Without its NUL; 0 when the read failed.
    let len = if n > 1 { (n - 1) as usize & (CGROUP_PATH_MAX - 1) } else { 0 };
    scratch.rec = CgroupRecord {
        header: super::header(
            RecordKind::Cgroup,
            core::mem::size_of::<CgroupRecord>() + len,
        ),
        root: root as u32,
        path_len: len as u32,
        id,
    };
    let total = core::mem::size_of::<CgroupRecord>() + len;
    // SAFETY: the scratch is plain bytes: record then path, back to back (repr(C)).
    let all = unsafe {
        core::slice::from_raw_parts(
            scratch as *const _ as *const u8,
            core::mem::size_of_val(scratch),
        )
    };
    if total <= all.len() {
        send(RecordKind::Cgroup, &all[..total]);
    }
    0
}
