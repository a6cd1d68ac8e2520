//! 32-bit syscalls on x86_64: from a 32-bit process, or `int $0x80` from a 64-bit one. The
//! kernel gives them no per-syscall tracepoint, so without these programs a chmod, a ptrace
//! attach or an open of /proc/<pid>/mem made that way would give no event. They come through
//! `raw_syscalls/sys_enter` and `sys_exit`, which fire for every syscall of the machine: both
//! programs return at once unless the task is inside a 32-bit syscall (`TS_COMPAT` in its
//! `thread_info.status`, one load), then hand the ia32 syscall number's arguments (32 bits
//! each, as the kernel takes them) to the same handlers as the 64-bit programs. The ia32
//! structs (`msghdr`, `iovec`, `timeval`, registers) are read in their own layout
//! (`compat::abi::IA32`).

use aya_ebpf::{
    macros::{map, raw_tracepoint},
    maps::Array,
    programs::RawTracePointContext,
};
use sysmon_common::{
    RecordKind,
    compat::{TS_COMPAT, abi, ia32, on, socketcall},
};

use super::{
    access, attr, file::AT_FDCWD, file_create, file_delete, file_exec, file_time,
    file_time::times, image_load, network, pipe, raw_access, recv,
};
use crate::{
    kernel::{Ptr, current_task_btf, load, off, read},
    maps::count_drop,
};

/// The events whose handlers run (`compat::on` bits), set by the agent.
#[map]
pub static COMPAT_ON: Array<u32> = Array::with_max_entries(1, 0);

/// `struct pt_regs` on x86_64 (its layout is the kernel's ABI with ptrace): where the ia32
/// syscall arguments are (ebx, ecx, edx, esi, edi, ebp) and the syscall number.
const REGS_ARGS: [u32; 6] = [40, 88, 96, 104, 112, 32];
const REGS_ORIG_AX: u32 = 120;

#[raw_tracepoint(tracepoint = "sys_enter")]
pub fn compat_enter(ctx: RawTracePointContext) -> i32 {
    if !in_compat() {
        return 0;
    }
    // (struct pt_regs *regs, long id): the number as the kernel dispatched it.
    let regs: Ptr = ctx.arg::<*const u8>(0);
    let nr = ctx.arg::<i64>(1) as i32;
    let on = COMPAT_ON.get(0).copied().unwrap_or(0);
    match nr {
        ia32::PTRACE | ia32::PROCESS_VM_READV | ia32::PROCESS_VM_WRITEV => enter_access(regs, nr),
        ia32::RECVFROM
        | ia32::RECVMSG
        | ia32::RECVMMSG
        | ia32::RECVMMSG_TIME64
        | ia32::SOCKETCALL => enter_recv(regs, nr),
        _ => enter_file(regs, nr, on),
    }
    0
}

#[raw_tracepoint(tracepoint = "sys_exit")]
pub fn compat_exit(ctx: RawTracePointContext) -> i32 {
    if !in_compat() {
        return 0;
    }
    // (struct pt_regs *regs, long ret); the number is orig_ax, of which the kernel takes the
    // low 32 bits.
    let regs: Ptr = ctx.arg::<*const u8>(0);
    let ret = ctx.arg::<i64>(1);
    let nr = read::<u64>(regs, REGS_ORIG_AX) as i32;
    let on = COMPAT_ON.get(0).copied().unwrap_or(0);
    match nr {
        ia32::OPEN | ia32::CREAT | ia32::OPENAT | ia32::OPENAT2 => opened(ret, on),
        _ => exited(regs, nr, ret, on),
    }
    0
}

/// Whether the current task is inside a 32-bit syscall. A kernel without `thread_info.status`
/// (not x86) has no offset for it: never.
#[inline(always)]
fn in_compat() -> bool {
    load::<u32>(current_task_btf(), off!(task_ti_status)) & TS_COMPAT != 0
}

/// Argument `n` of the syscall: a 32-bit register, as the ia32 entry takes it.
#[inline(always)]
fn arg(regs: Ptr, n: usize) -> u64 {
    read::<u64>(regs, REGS_ARGS[n % 6]) as u32 as u64
}

/// An `int` argument (a directory descriptor: `AT_FDCWD` is negative).
#[inline(always)]
fn int_arg(regs: Ptr, n: usize) -> i32 {
    arg(regs, n) as u32 as i32
}

#[inline(never)]
fn enter_access(regs: Ptr, nr: i32) {
    let a = |n| arg(regs, n);
    match nr {
        ia32::PTRACE => access::ptrace_call([a(0), a(1), a(2), a(3)], abi::IA32),
        ia32::PROCESS_VM_READV => access::vm_readv(a(0)),
        _ => access::vm_writev(a(0), a(3), abi::IA32),
    }
}

#[inline(never)]
fn enter_recv(regs: Ptr, nr: i32) {
    let a = |n| arg(regs, n);
    match nr {
        ia32::RECVFROM => recv::recvfrom(a(0), a(1), a(2), a(4), a(5)),
        ia32::RECVMSG => recv::recvmsg(a(0), a(1), a(2), abi::IA32),
        ia32::SOCKETCALL => socket_call(a(0) as u32, a(1)),
        _ => recv::recvmmsg(a(0), a(1), a(2), a(3), abi::IA32),
    }
}

/// socketcall(call, args): the receive calls, whose arguments are an array of 32-bit words.
#[inline(always)]
fn socket_call(call: u32, args: u64) {
    if !matches!(
        call,
        socketcall::RECV | socketcall::RECVFROM | socketcall::RECVMSG | socketcall::RECVMMSG
    ) {
        return;
    }
    let mut a = [0u32; 6];
    // SAFETY: the helper writes at most the 24 bytes of `a`; it checks the source.
    let rc = unsafe {
        aya_ebpf::helpers::generated::bpf_probe_read_user(
            a.as_mut_ptr() as *mut _,
            24,
            args as *const _,
        )
    };
    if rc != 0 {
        // Not readable yet (the call faults it in): this receive cannot be watched.
        count_drop(RecordKind::Dns);
        return;
    }
    let a = a.map(|w| w as u64);
    match call {
        socketcall::RECV => recv::recvfrom(a[0], a[1], a[2], 0, 0),
        socketcall::RECVFROM => recv::recvfrom(a[0], a[1], a[2], a[4], a[5]),
        socketcall::RECVMSG => recv::recvmsg(a[0], a[1], a[2], abi::IA32),
        _ => recv::recvmmsg(a[0], a[1], a[2], a[3], abi::IA32),
    }
}

/// The file calls made at entry: chmod, the utimes family, mknod, unlink.
#[inline(never)]
fn enter_file(regs: Ptr, nr: i32, on: u32) {
    let a = |n| arg(regs, n);
    let name = |n| arg(regs, n) as Ptr;
    if on & on::FILE_EXECUTABLE_DETECTED != 0 {
        match nr {
            ia32::CHMOD => file_exec::by_name(AT_FDCWD, name(0), a(1)),
            ia32::FCHMODAT | ia32::FCHMODAT2 => {
                file_exec::by_name(int_arg(regs, 0), name(1), a(2))
            }
            ia32::FCHMOD => file_exec::fchmod(a(0), a(1)),
            _ => {}
        }
    }
    if on & on::FILE_CREATE_TIME != 0 {
        let narrow = times::NARROW;
        match nr {
            ia32::UTIME => file_time::set_times(AT_FDCWD, name(0), name(1), times::BUF | narrow),
            ia32::UTIMES => file_time::set_times(AT_FDCWD, name(0), name(1), times::VAL | narrow),
            ia32::FUTIMESAT => {
                file_time::set_times(int_arg(regs, 0), name(1), name(2), times::VAL | narrow)
            }
            ia32::UTIMENSAT => {
                file_time::set_times(int_arg(regs, 0), name(1), name(2), times::SPEC | narrow)
            }
            ia32::UTIMENSAT_TIME64 => {
                file_time::set_times(int_arg(regs, 0), name(1), name(2), times::SPEC)
            }
            _ => {}
        }
    }
    if on & on::PIPE_CREATED != 0 {
        match nr {
            ia32::MKNOD => pipe::mknod(AT_FDCWD, name(0), a(1)),
            ia32::MKNODAT => pipe::mknod(int_arg(regs, 0), name(1), a(2)),
            _ => {}
        }
    }
    if on & on::FILE_DELETE != 0 {
        match nr {
            ia32::UNLINK => file_delete::unlink(AT_FDCWD, name(0), 0),
            ia32::UNLINKAT => file_delete::unlink(int_arg(regs, 0), name(1), a(2)),
            _ => {}
        }
    }
}

/// An open returned `fd`: what the open exits of the 64-bit programs do.
#[inline(never)]
fn opened(fd: i64, on: u32) {
    if fd < 0 {
        return;
    }
    if on & on::FILE_CREATE != 0 {
        file_create::opened(fd);
    }
    if on & on::RAW_ACCESS_READ != 0 {
        raw_access::opened(fd);
    }
    if on & on::PIPE_CONNECTED != 0 {
        pipe::opened(fd);
    }
    if on & on::FILE_EXECUTABLE_DETECTED != 0 {
        file_exec::opened(fd);
    }
    access::proc_mem_opened(fd);
}

/// Every other exit: calls parked at entry, accepts, executable mappings.
#[inline(never)]
fn exited(regs: Ptr, nr: i32, ret: i64, on: u32) {
    match nr {
        ia32::UNLINK | ia32::UNLINKAT => file_delete::unlink_done(ret),
        ia32::CHMOD
        | ia32::FCHMOD
        | ia32::FCHMODAT
        | ia32::FCHMODAT2
        | ia32::UTIME
        | ia32::UTIMES
        | ia32::FUTIMESAT
        | ia32::UTIMENSAT
        | ia32::UTIMENSAT_TIME64
        | ia32::MKNOD
        | ia32::MKNODAT => attr::attr_done(ret),
        ia32::PTRACE => access::ptrace_done(ret),
        ia32::PROCESS_VM_READV | ia32::PROCESS_VM_WRITEV => access::vm_done(ret),
        ia32::RECVFROM | ia32::RECVMSG | ia32::RECVMMSG | ia32::RECVMMSG_TIME64 => {
            recv::recv_done(ret)
        }
        ia32::SOCKETCALL => match arg(regs, 0) as u32 {
            socketcall::ACCEPT | socketcall::ACCEPT4 if on & on::NETWORK_CONNECT != 0 => {
                network::accepted(ret)
            }
            _ => recv::recv_done(ret),
        },
        ia32::ACCEPT4 if on & on::NETWORK_CONNECT != 0 => network::accepted(ret),
        ia32::MMAP | ia32::MMAP2 if on & on::IMAGE_LOAD != 0 => image_load::mapped([0, 0], ret),
        ia32::MPROTECT | ia32::PKEY_MPROTECT if on & on::IMAGE_LOAD != 0 => {
            if image_load::executable(arg(regs, 2)) {
                let start = arg(regs, 0);
                image_load::walk(start, start + arg(regs, 1));
            }
        }
        _ => {}
    }
}
