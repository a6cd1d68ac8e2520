//! One program per event kind.

mod access;
mod attr;
mod cgroup;
mod compat;
mod exec;
mod exit;
mod file;
mod file_create;
mod file_delete;
mod file_exec;
mod file_time;
mod fork;
mod image_load;
mod network;
mod network_udp;
mod pipe;
mod raw_access;
mod recv;

use aya_ebpf::helpers::{bpf_get_current_pid_tgid, bpf_ktime_get_boot_ns};
use sysmon_common::{Header, RecordKind};

/// A header for a record about the current task.
#[inline(always)]
pub fn header(kind: RecordKind, len: usize) -> Header {
    let id = bpf_get_current_pid_tgid();
    Header {
        kind: kind as u32,
        len: len as u32,
        time_ns: unsafe { bpf_ktime_get_boot_ns() },
        tgid: (id >> 32) as u32,
        tid: id as u32,
    }
}

/// Views a record as bytes for `send`.
#[inline(always)]
pub fn bytes<T>(rec: &T) -> &[u8] {
    unsafe { core::slice::from_raw_parts(rec as *const T as *const u8, core::mem::size_of::<T>()) }
}
