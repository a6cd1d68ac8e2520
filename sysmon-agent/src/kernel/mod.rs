//! The kernel side, seen from user space: BTF offsets, loading and attaching the programs,
//! reading records from the ring buffer.

pub mod btf;
pub mod check;
pub mod compat;
pub mod kallsyms;
pub mod load;
pub mod record;
pub mod sensors;
pub mod stack;

/// The object built by `cargo xtask build-ebpf`, embedded by build.rs (empty without it).
pub static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/sysmon.bpf.o"));
