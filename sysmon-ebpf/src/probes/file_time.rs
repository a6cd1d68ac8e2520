//! FileCreateTime: utimensat (by path or, with a NULL or empty path, by descriptor), futimesat,
//! utimes and utime that set an explicit modification time. Only a time earlier than the
//! file's current one is reported (timestomping); "now" (NULL times, `UTIME_NOW`) and
//! `UTIME_OMIT` give nothing. The time before the call is read from the inode: at entry for a
//! descriptor, else when the kernel stamps the ctime inside the call (see `attr.rs`).

use aya_ebpf::{
    helpers::generated::bpf_probe_read_user, macros::tracepoint, programs::TracePointContext,
};
use sysmon_common::{
    RecordKind,
    file_info::{UTIME_NOW, UTIME_OMIT, state},
};

use super::{
    attr::{park, scratch},
    file::{AT_FDCWD, enter_arg, file_path, name_path},
};
use crate::kernel::{Ptr, file_of_fd, off, read, read_ptr};

/// Reads `N` 64-bit words of user memory at `at`; `None` for NULL or a bad pointer.
#[inline(always)]
fn words<const N: usize>(at: Ptr) -> Option<[i64; N]> {
    if at.is_null() {
        return None;
    }
    let mut v = [0i64; N];
    let rc =
        unsafe { bpf_probe_read_user(v.as_mut_ptr() as *mut _, (8 * N) as u32, at as *const _) };
    (rc == 0).then_some(v)
}

#[tracepoint]
pub fn utimensat_enter(ctx: TracePointContext) -> u32 {
    // struct timespec times[2]: atime, mtime.
    if let Some(t) = words::<4>(enter_arg(&ctx, 2) as Ptr) {
        enter(
            enter_arg(&ctx, 0) as i32,
            enter_arg(&ctx, 1) as Ptr,
            t[2],
            t[3],
        );
    }
    0
}

#[tracepoint]
pub fn futimesat_enter(ctx: TracePointContext) -> u32 {
    // struct timeval times[2]: microseconds.
    if let Some(t) = words::<4>(enter_arg(&ctx, 2) as Ptr) {
        enter(
            enter_arg(&ctx, 0) as i32,
            enter_arg(&ctx, 1) as Ptr,
            t[2],
            t[3].wrapping_mul(1000),
        );
    }
    0
}

#[tracepoint]
pub fn utimes_enter(ctx: TracePointContext) -> u32 {
    if let Some(t) = words::<4>(enter_arg(&ctx, 1) as Ptr) {
        enter(
            AT_FDCWD,
            enter_arg(&ctx, 0) as Ptr,
            t[2],
            t[3].wrapping_mul(1000),
        );
    }
    0
}

#[tracepoint]
pub fn utime_enter(ctx: TracePointContext) -> u32 {
    // struct utimbuf: actime, modtime (seconds).
    if let Some(t) = words::<2>(enter_arg(&ctx, 1) as Ptr) {
        enter(AT_FDCWD, enter_arg(&ctx, 0) as Ptr, t[1], 0);
    }
    0
}

#[inline(always)]
fn enter(dfd: i32, name: Ptr, sec: i64, nsec: i64) {
    if nsec == UTIME_NOW || nsec == UTIME_OMIT || !(0..1_000_000_000).contains(&nsec) {
        return;
    }
    let mut first = 0u8;
    if !name.is_null() {
        unsafe { bpf_probe_read_user(&raw mut first as *mut _, 1, name as *const _) };
    }
    let Some(s) = scratch() else {
        return;
    };
    s.rec.new_sec = sec;
    s.rec.new_nsec = nsec as u32;
    if first == 0 {
        // By descriptor (futimens, or AT_EMPTY_PATH): its time now is the one replaced.
        let file = file_of_fd(dfd as i64 as u64);
        if file.is_null() {
            return;
        }
        let inode = read_ptr(file, off!(file_f_inode));
        s.rec.old_sec = read(inode, off!(inode_i_mtime_sec));
        s.rec.old_nsec = read(inode, off!(inode_i_mtime_nsec));
        s.rec.state = state::OLD;
        let (flags, len) = file_path(file, s.tail.as_mut_ptr());
        park(RecordKind::FileCreateTime, s, flags, len, 0);
    } else if let Some((flags, dir_len, name_len)) = name_path(dfd, name, s.tail.as_mut_ptr()) {
        park(RecordKind::FileCreateTime, s, flags, dir_len, name_len);
    }
}
