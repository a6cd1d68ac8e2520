//! Pids as a caller in another pid namespace names them (a container, `unshare --pid`):
//! ptrace and process_vm_* take the target's pid in the caller's namespace, which on the
//! host is another process. The kernel's own lookup (`find_task_by_vpid`) is not callable
//! from BPF, so this reads what it reads: the namespace's pid idr, a radix tree.

use sysmon_common::offsets::ABSENT;

use crate::kernel::{Ptr, current_task_btf, load, load_ptr, off, read, read_ptr};

/// Where a pid named by the current task leads.
pub enum Target {
    /// The caller is in the initial pid namespace: the pid is the host's.
    Host,
    /// The task the caller named (in its own namespace).
    Task(Ptr),
    /// Not found (the target exited after the call) or not readable on this kernel.
    Unresolved,
}

/// `struct upid { int nr; struct pid_namespace *ns; }`: 16 bytes on 64-bit.
const UPID_SIZE: usize = 16;
/// Slots per radix tree node (`XA_CHUNK_SHIFT` 6; 4 only with CONFIG_BASE_SMALL).
const CHUNK_SHIFT: u32 = 6;
/// Levels enough for any pid (`PID_MAX_LIMIT` is 2^22: 4 levels of 6 bits).
const LEVELS: usize = 4;

/// The task the current task means by `nr`.
#[inline(always)]
pub fn resolve(nr: u32) -> Target {
    let pid = load_ptr(current_task_btf(), off!(task_thread_pid));
    let level: u32 = load(pid, off!(pid_level));
    if level == 0 {
        return Target::Host;
    }
    if off!(pid_ns_idr_head) == ABSENT || off!(task_pid_links) == ABSENT {
        return Target::Unresolved;
    }
    // The caller's own namespace: `pid->numbers[level].ns`.
    let numbers = off!(pid_numbers) as usize + level as usize * UPID_SIZE;
    let ns = read_ptr(pid, (numbers + off!(upid_ns) as usize) as u32);
    match lookup(ns, nr) {
        p if p.is_null() => Target::Unresolved,
        // `pid->tasks[PIDTYPE_PID].first` is the task's `pid_links[PIDTYPE_PID]`.
        p => match read_ptr(p, off!(pid_tasks)) {
            node if node.is_null() => Target::Unresolved,
            node => Target::Task(node.wrapping_sub(off!(task_pid_links) as usize)),
        },
    }
}

/// `idr_find(&ns->idr, nr)`: the `struct pid` at index `nr`, or null.
#[inline(always)]
fn lookup(ns: Ptr, nr: u32) -> Ptr {
    let mut entry = read_ptr(ns, off!(pid_ns_idr_head));
    let mut top = true;
    for _ in 0..LEVELS {
        // An internal node pointer has its low two bits 10 (`xa_is_node`).
        let bits = entry as usize;
        if bits & 3 != 2 || bits <= 4096 {
            break;
        }
        let node = (bits - 2) as Ptr;
        let shift: u8 = read(node, off!(xa_node_shift));
        let index = (nr as u64) >> shift;
        // The top node covers 64 << shift indices; past them there is nothing.
        if top && index >> CHUNK_SHIFT != 0 {
            return core::ptr::null();
        }
        top = false;
        let slot = (index & ((1 << CHUNK_SHIFT) - 1)) as u32;
        entry = read_ptr(node, off!(xa_node_slots) + slot * 8);
    }
    // A head that is no node holds index 0 only; any tagged value is no pid.
    if entry as usize & 3 != 0 || (top && nr != 0) {
        return core::ptr::null();
    }
    entry
}
