//! RawAccessRead: the exits of open, openat and openat2 that opened a block device, whatever
//! the flags (as Sysmon).

use aya_ebpf::{macros::tracepoint, programs::TracePointContext};
use sysmon_common::{
    RecordKind,
    file::{S_IFBLK, S_IFMT},
};

use super::file::{exit_ret, send_file_path};
use crate::kernel::{file_of_fd, off, read, read_ptr};

#[tracepoint]
pub fn raw_access(ctx: TracePointContext) -> u32 {
    opened(exit_ret(&ctx));
    0
}

/// An open returned `fd`.
#[inline(always)]
pub fn opened(fd: i64) {
    if fd < 0 {
        return;
    }
    let file = file_of_fd(fd as u64);
    let inode = read_ptr(file, off!(file_f_inode));
    let mode: u16 = read(inode, off!(inode_i_mode));
    if mode & S_IFMT == S_IFBLK {
        send_file_path(RecordKind::RawAccess, file);
    }
}
