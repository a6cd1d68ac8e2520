//! The kernel side, seen from user space: BTF offsets, loading and attaching the programs,
//! reading records from the ring buffer.

pub mod btf;
pub mod kallsyms;
pub mod load;
pub mod record;
pub mod sensors;
