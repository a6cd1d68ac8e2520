//! Reading kernel structs through the offsets the agent found in BTF.

use aya_ebpf::helpers::{
    bpf_get_current_task, bpf_probe_read_kernel,
    generated::{self, bpf_get_current_task_btf},
};
use sysmon_common::Offsets;

/// Set by the agent at load time from `/sys/kernel/btf/vmlinux`.
#[unsafe(no_mangle)]
pub static OFFSETS: Offsets = Offsets::ZERO;

/// Offset of `group_dead` in the `sched_process_exit` record, or `ABSENT` on kernels whose
/// tracepoint lacks it. Set by the agent from the tracepoint's format file.
#[unsafe(no_mangle)]
static EXIT_GROUP_DEAD: u32 = sysmon_common::offsets::ABSENT;

/// Address of the kernel's `mem_open` (the `open` of every /proc/<pid>/mem file), from
/// /proc/kallsyms; 0 when unknown (then such opens are not recognised).
#[unsafe(no_mangle)]
static PROC_MEM_OPEN: u64 = 0;

/// Offset of the instruction pointer in the user-space register set that
/// PTRACE_SETREGS/SETREGSET take (`struct user_regs_struct`); set by the agent for its
/// architecture, `ABSENT` where unknown.
#[unsafe(no_mangle)]
static USER_REGS_IP: u32 = sysmon_common::offsets::ABSENT;

/// 1 when `OFFSETS` come from the running kernel's own BTF, which the verifier checks
/// [`load`]s against; 0 (offsets from a BTF file given for a kernel without its own) makes
/// [`load`] a helper read. A load-time constant: the verifier walks only the branch taken.
#[unsafe(no_mangle)]
static KERNEL_BTF: u32 = 0;

#[inline(always)]
fn kernel_btf() -> bool {
    unsafe { core::ptr::read_volatile(&raw const KERNEL_BTF) != 0 }
}

pub fn proc_mem_open() -> u64 {
    unsafe { core::ptr::read_volatile(&raw const PROC_MEM_OPEN) }
}

pub fn user_regs_ip() -> u32 {
    unsafe { core::ptr::read_volatile(&raw const USER_REGS_IP) }
}

/// Reads one offset; volatile so that the compiler cannot fold the load-time constant.
macro_rules! off {
    ($field:ident) => {
        unsafe { core::ptr::read_volatile(&raw const $crate::kernel::OFFSETS.$field) }
    };
}
pub(crate) use off;

pub fn exit_group_dead_offset() -> u32 {
    unsafe { core::ptr::read_volatile(&raw const EXIT_GROUP_DEAD) }
}

pub type Ptr = *const u8;

/// Reads a `T` at `base + off`; zero when `base` is null or the read fails.
#[inline(always)]
pub fn read<T: Default>(base: Ptr, off: u32) -> T {
    if base.is_null() || off == sysmon_common::offsets::ABSENT {
        return T::default();
    }
    unsafe { bpf_probe_read_kernel(base.wrapping_add(off as usize) as *const T) }
        .unwrap_or_default()
}

/// Reads `dst.len()` bytes at `base + off` straight into `dst` (no copy through the stack);
/// zeroes when the read fails, leaves `dst` alone when `base` is null.
#[inline(always)]
pub fn read_into(dst: &mut [u8], base: Ptr, off: u32) {
    if base.is_null() || off == sysmon_common::offsets::ABSENT {
        return;
    }
    // SAFETY: the helper writes at most `dst.len()` bytes into `dst`; it checks the source.
    unsafe {
        generated::bpf_probe_read_kernel(
            dst.as_mut_ptr() as *mut _,
            dst.len() as u32,
            base.wrapping_add(off as usize) as *const _,
        )
    };
}

#[inline(always)]
pub fn read_ptr(base: Ptr, off: u32) -> Ptr {
    read::<usize>(base, off) as Ptr
}

/// The current task as a BTF-typed pointer, for [`load`].
#[inline(always)]
pub fn current_task_btf() -> Ptr {
    if kernel_btf() {
        unsafe { bpf_get_current_task_btf() as Ptr }
    } else {
        current_task()
    }
}

/// Loads a `T` at `base + off` where `base` is a BTF-typed pointer: [`current_task_btf`] or a
/// pointer [`load_ptr`] read through one. No helper call: the verifier checks the access
/// against the kernel's BTF (the offsets are load-time constants it sees), and the JIT makes
/// it a plain load that gives zero if it faults, so a null `base` reads zero as [`read`] does.
/// Without the kernel's BTF (`KERNEL_BTF` 0) it is [`read`].
/// The fast way on the hot paths (exec, exit): a helper call per field is most of their cost.
#[inline(always)]
pub fn load<T: Copy + Default>(base: Ptr, off: u32) -> T {
    if !kernel_btf() {
        return read(base, off);
    }
    if off == sysmon_common::offsets::ABSENT {
        return T::default();
    }
    unsafe { core::ptr::read_volatile(base.wrapping_add(off as usize) as *const T) }
}

#[inline(always)]
pub fn load_ptr(base: Ptr, off: u32) -> Ptr {
    load::<usize>(base, off) as Ptr
}

#[inline(always)]
pub fn current_task() -> Ptr {
    unsafe { bpf_get_current_task() as Ptr }
}

/// The `struct file` behind descriptor `fd` of the current task (`files->fdt->fd[fd]`), or
/// null. Read right after the syscall that returned or used the descriptor.
#[inline(always)]
pub fn file_of_fd(fd: u64) -> Ptr {
    let files = load_ptr(current_task_btf(), off!(task_files));
    let fdt = load_ptr(files, off!(files_fdt));
    let max: u32 = load(fdt, off!(fdtable_max_fds));
    if fd >= max as u64 {
        return core::ptr::null();
    }
    // `fdt->fd` is a `struct file **`: the verifier types no load through it, hence `read`.
    let table = load_ptr(fdt, off!(fdtable_fd));
    read_ptr(table, (fd as u32).wrapping_mul(8))
}

/// Real uid of the current task (`cred->uid`).
#[inline(always)]
pub fn current_uid() -> u32 {
    load(
        load_ptr(current_task_btf(), off!(task_real_cred)),
        off!(cred_uid),
    )
}
