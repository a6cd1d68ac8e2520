//! FileCreate: the exits of creat, open, openat and openat2. Exact: the kernel marks a file
//! that the open created with `FMODE_CREATED`, so an open of an existing file (with or without
//! O_CREAT) and a failed call give nothing.

use aya_ebpf::{macros::tracepoint, programs::TracePointContext};
use sysmon_common::{RecordKind, file::FMODE_CREATED};

use super::file::{exit_ret, send_file_path};
use crate::kernel::{file_of_fd, off, read};

#[tracepoint]
pub fn file_create(ctx: TracePointContext) -> u32 {
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
    let mode: u32 = read(file, off!(file_f_mode));
    if mode & FMODE_CREATED != 0 {
        send_file_path(RecordKind::FileCreate, file);
    }
}
