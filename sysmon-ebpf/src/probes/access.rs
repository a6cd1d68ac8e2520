//! ProcessAccess (10) and CreateRemoteThread (8): one process reads, writes or takes control
//! of another. Sources: ptrace (ATTACH/SEIZE and PEEK*: access; POKE*: access and remote
//! change; SETREGS/SETREGSET: remote change), process_vm_readv/writev, and opens of another
//! process's /proc/<pid>/mem.
//!
//! Each (source, target, kind) is reported once a second at most, decided here: a debugger's
//! thousands of peeks cost one map lookup each at entry and send nothing. ptrace and
//! process_vm calls are parked at entry (the exit tracepoint has only the return value) only
//! when they would give a record, and sent at exit when they succeeded.

use aya_ebpf::{
    helpers::{bpf_get_current_pid_tgid, bpf_ktime_get_boot_ns, generated::bpf_probe_read_user},
    macros::tracepoint,
    programs::TracePointContext,
};
use sysmon_common::{
    RecordKind,
    compat::abi,
    drops,
    access::{
        ACCESS_REPORT_NS, AccessKey, AccessRecord, NO_ACCESS, flag, granted, on, remote_kind,
        ptrace, via,
    },
    offsets::ABSENT,
};

use super::file::{enter_arg, exit_ret};
use crate::{
    pidns,
    kernel::{Ptr, current_uid, file_of_fd, off, proc_mem_open, read, read_ptr, user_regs_ip},
    maps::{ACCESS_CALLS, ACCESS_ON, ACCESS_SEEN, AccessCall, count_lost, send},
};

/// `FMODE_READ` and `FMODE_WRITE` of `file->f_mode`.
const FMODE_READ: u32 = 1;
const FMODE_WRITE: u32 = 2;

#[tracepoint]
pub fn ptrace_enter(ctx: TracePointContext) -> u32 {
    let arg = |n| enter_arg(&ctx, n);
    ptrace_call([arg(0), arg(1), arg(2), arg(3)], abi::NATIVE);
    0
}

/// ptrace(request, pid, addr, data) entered, its structs laid out as `abi` says.
#[inline(always)]
pub fn ptrace_call(args: [u64; 4], abi: u32) {
    let [request, pid, addr, data] = args;
    const WRITE: u32 = flag::REMOTE;
    const CONTROL: u32 = flag::REMOTE | flag::CONTROL;
    let (access, remote) = match request {
        ptrace::ATTACH | ptrace::SEIZE => (granted::ATTACH, 0),
        ptrace::PEEKTEXT | ptrace::PEEKDATA | ptrace::PEEKUSR => (granted::VM_READ, 0),
        ptrace::POKETEXT | ptrace::POKEDATA | ptrace::POKEUSR => (granted::VM_WRITE, WRITE),
        ptrace::SETREGS => (NO_ACCESS, CONTROL),
        ptrace::SETREGSET if addr == ptrace::NT_PRSTATUS => (NO_ACCESS, CONTROL),
        _ => return,
    };
    park(
        AccessCall {
            via: via::PTRACE,
            target: pid as u32,
            access,
            flags: remote,
            request,
            addr,
            data,
            abi,
            _pad: 0,
        },
        remote,
    );
}

#[tracepoint]
pub fn ptrace_exit(ctx: TracePointContext) -> u32 {
    ptrace_done(exit_ret(&ctx));
    0
}

#[inline(always)]
pub fn ptrace_done(ret: i64) {
    finish(ret == 0);
}

/// process_vm_readv(pid, local_iov, liovcnt, remote_iov, riovcnt, flags).
#[tracepoint]
pub fn vm_readv_enter(ctx: TracePointContext) -> u32 {
    vm_readv(enter_arg(&ctx, 0));
    0
}

#[inline(always)]
pub fn vm_readv(pid: u64) {
    park(
        AccessCall {
            via: via::VM_READV,
            target: pid as u32,
            access: granted::VM_READ,
            ..AccessCall::default()
        },
        0,
    );
}

/// process_vm_writev: the remote iovec is kept to report the written address.
#[tracepoint]
pub fn vm_writev_enter(ctx: TracePointContext) -> u32 {
    vm_writev(enter_arg(&ctx, 0), enter_arg(&ctx, 3), abi::NATIVE);
    0
}

#[inline(always)]
pub fn vm_writev(pid: u64, remote_iov: u64, abi: u32) {
    park(
        AccessCall {
            via: via::VM_WRITEV,
            target: pid as u32,
            access: granted::VM_WRITE,
            flags: flag::REMOTE,
            addr: remote_iov,
            abi,
            ..AccessCall::default()
        },
        flag::REMOTE,
    );
}

/// Exit of both: success is at least one byte moved.
#[tracepoint]
pub fn vm_rw_exit(ctx: TracePointContext) -> u32 {
    vm_done(exit_ret(&ctx));
    0
}

#[inline(always)]
pub fn vm_done(ret: i64) {
    finish(ret > 0);
}

/// Exits of open/openat/openat2: a /proc/<pid>/mem file of another process. Recognised by
/// its `open` operation (`mem_open`, whose address the agent found in /proc/kallsyms): one
/// pointer compare, no path or name work on the millions of other opens.
#[tracepoint]
pub fn proc_mem_exit(ctx: TracePointContext) -> u32 {
    proc_mem_opened(exit_ret(&ctx));
    0
}

/// An open returned `fd`.
#[inline(always)]
pub fn proc_mem_opened(fd: i64) {
    if fd < 0 || wanted() & on::ACCESS == 0 {
        return;
    }
    let mem_open = proc_mem_open();
    if mem_open == 0 {
        return;
    }
    let file = file_of_fd(fd as u64);
    let fops = read_ptr(file, off!(file_f_op));
    if read::<u64>(fops, off!(fops_open)) != mem_open {
        return;
    }
    // The task behind the file: proc_inode->pid->tasks[PIDTYPE_PID].first is the
    // task's pid_links[PIDTYPE_PID].
    let inode = read_ptr(file, off!(file_f_inode));
    let (vfs_inode, links) = (off!(proc_inode_vfs_inode), off!(task_pid_links));
    if vfs_inode == ABSENT || links == ABSENT {
        return;
    }
    let pid = read_ptr(inode.wrapping_sub(vfs_inode as usize), off!(proc_inode_pid));
    let node = read_ptr(pid, off!(pid_tasks));
    if node.is_null() {
        return;
    }
    let task = node.wrapping_sub(links as usize);
    let tgid: u32 = read(task, off!(task_tgid));
    let tid: u32 = read(task, off!(task_pid));
    let me = (bpf_get_current_pid_tgid() >> 32) as u32;
    if tgid == 0 || tgid == me {
        return;
    }
    let mode: u32 = read(file, off!(file_f_mode));
    let mut access = 0;
    if mode & FMODE_READ != 0 {
        access |= granted::VM_READ;
    }
    if mode & FMODE_WRITE != 0 {
        access |= granted::VM_WRITE;
    }
    let key = AccessKey {
        source: me,
        target: tgid,
        kind: access,
    };
    let now = unsafe { bpf_ktime_get_boot_ns() };
    if !due(&key, now) {
        return;
    }
    mark(&key, now);
    emit(AccessRecord {
        header: super::header(RecordKind::Access, core::mem::size_of::<AccessRecord>()),
        uid: current_uid(),
        target_tid: tid,
        target_tgid: tgid,
        access,
        via: via::PROC_MEM,
        flags: 0,
        address: 0,
    });
}

/// The `access::on` bits the agent set.
#[inline(always)]
fn wanted() -> u32 {
    ACCESS_ON.get(0).copied().unwrap_or(0)
}

/// Parks a call that would give a record: the events the configuration wants whose
/// once-a-second slot is free. `remote`: the event 8 `flag` bits the call would carry. The
/// slot is taken only at exit, if the call succeeded.
#[inline(always)]
fn park(mut call: AccessCall, remote: u32) {
    let id = bpf_get_current_pid_tgid();
    let me = (id >> 32) as u32;
    let target = call.target;
    if target == 0 || target == me {
        return;
    }
    let on = wanted();
    let now = unsafe { bpf_ktime_get_boot_ns() };
    let access = call.access;
    if access == NO_ACCESS || on & on::ACCESS == 0 || !due(&key(me, target, access), now) {
        call.access = NO_ACCESS;
    }
    if remote == 0 || on & on::REMOTE == 0 || !due(&key(me, target, remote_kind(remote)), now) {
        call.flags = 0;
    }
    if call.access == NO_ACCESS && call.flags == 0 {
        return;
    }
    if ACCESS_CALLS.insert(id, call, 0).is_err() {
        count_lost(drops::TABLE, RecordKind::Access);
    }
}

/// At exit: sends the parked call's record if the call succeeded.
#[inline(always)]
fn finish(ok: bool) {
    let id = bpf_get_current_pid_tgid();
    let Some(call) = ACCESS_CALLS.get_ptr(id) else {
        return;
    };
    let call = unsafe { *call };
    let _ = ACCESS_CALLS.remove(id);
    if !ok {
        return;
    }
    let me = (id >> 32) as u32;
    let now = unsafe { bpf_ktime_get_boot_ns() };
    if call.access != NO_ACCESS {
        mark(&key(me, call.target, call.access), now);
    }
    let mut flags = call.flags;
    let mut address = 0;
    if flags & flag::REMOTE != 0 {
        mark(&key(me, call.target, remote_kind(flags)), now);
        (address, flags) = start_address(&call, flags);
    }
    // The target as the caller named it, in the caller's pid namespace, made the host's.
    let (target_tid, target_tgid) = match pidns::resolve(call.target) {
        pidns::Target::Host => (call.target, 0),
        pidns::Target::Task(task) => (read(task, off!(task_pid)), read(task, off!(task_tgid))),
        pidns::Target::Unresolved => {
            flags |= flag::NS_UNRESOLVED;
            (call.target, 0)
        }
    };
    emit(AccessRecord {
        header: super::header(RecordKind::Access, core::mem::size_of::<AccessRecord>()),
        uid: current_uid(),
        target_tid,
        target_tgid,
        access: call.access,
        via: call.via,
        flags,
        address,
    });
}

/// `sizeof(struct user_regs_struct32)` and where its `eip` is: the register set of a 32-bit
/// task (SETREGSET into one), and what SETREGS takes in a 32-bit call.
const USER_REGS32: u64 = 68;
const USER_REGS32_IP: usize = 48;

/// Event 8's StartAddress: the new instruction pointer for SETREGS/SETREGSET (read from the
/// caller's register buffer, which the kernel has just copied), else the written address.
#[inline(always)]
fn start_address(call: &AccessCall, flags: u32) -> (u64, u32) {
    let ia32 = call.abi == abi::IA32;
    // A pointer or a length in the caller's memory.
    let word = |at: u64| -> u64 {
        if ia32 {
            read_user::<u32>(at as Ptr) as u64
        } else {
            read_user::<u64>(at as Ptr)
        }
    };
    let ip_at = user_regs_ip();
    match (call.via, call.request) {
        // The first remote iovec's base.
        (via::VM_WRITEV, _) => (word(call.addr), flags),
        (via::PTRACE, ptrace::SETREGS) if ia32 => (
            read_user::<u32>((call.data as Ptr).wrapping_add(USER_REGS32_IP)) as u64,
            flags | flag::NEW_IP,
        ),
        (via::PTRACE, ptrace::SETREGS) if ip_at != ABSENT => (
            read_user::<u64>((call.data as Ptr).wrapping_add(ip_at as usize)),
            flags | flag::NEW_IP,
        ),
        (via::PTRACE, ptrace::SETREGSET) => {
            // data is a struct iovec { base, len } holding the registers, laid out as the
            // target's: a 32-bit task's set is exactly USER_REGS32 bytes.
            let base = word(call.data);
            let len = word(call.data + if ia32 { 4 } else { 8 });
            if len == USER_REGS32 {
                let ip = read_user::<u32>((base as Ptr).wrapping_add(USER_REGS32_IP));
                return (ip as u64, flags | flag::NEW_IP);
            }
            if ip_at == ABSENT || len < ip_at as u64 + 8 {
                return (0, flags);
            }
            (
                read_user::<u64>((base as Ptr).wrapping_add(ip_at as usize)),
                flags | flag::NEW_IP,
            )
        }
        (via::PTRACE, ptrace::SETREGS) => (0, flags),
        _ => (call.addr, flags),
    }
}

#[inline(always)]
fn key(source: u32, target: u32, kind: u32) -> AccessKey {
    AccessKey {
        source,
        target,
        kind,
    }
}

#[inline(always)]
fn due(key: &AccessKey, now: u64) -> bool {
    match unsafe { ACCESS_SEEN.get(key) } {
        Some(last) => now.wrapping_sub(*last) >= ACCESS_REPORT_NS,
        None => true,
    }
}

#[inline(always)]
fn mark(key: &AccessKey, now: u64) {
    let _ = ACCESS_SEEN.insert(key, now, 0);
}

#[inline(always)]
fn emit(rec: AccessRecord) {
    send(RecordKind::Access, super::bytes(&rec));
}

#[inline(always)]
fn read_user<T: Default>(at: Ptr) -> T {
    let mut v = T::default();
    let rc = unsafe {
        bpf_probe_read_user(
            &raw mut v as *mut _,
            core::mem::size_of::<T>() as u32,
            at as *const _,
        )
    };
    if rc != 0 { T::default() } else { v }
}
