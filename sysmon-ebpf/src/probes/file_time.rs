//! FileCreateTime: utimensat (by path or, with a NULL or empty path, by descriptor), futimesat,
//! utimes and utime that set an explicit modification time. Only a time earlier than the
//! file's current one is reported (timestomping); "now" (NULL times, `UTIME_NOW`) and
//! `UTIME_OMIT` give nothing. The time before the call is read from the inode: at entry for a
//! descriptor, else when the kernel stamps the ctime inside the call (see `attr.rs`). 32-bit
//! calls (`compat.rs`) pass their narrower structs here too.

use aya_ebpf::{
    helpers::generated::bpf_probe_read_user, macros::tracepoint, programs::TracePointContext,
};
use sysmon_common::{
    RecordKind,
    file_info::{FileInfoRecord, UTIME_NOW, UTIME_OMIT, state},
};

use super::{
    attr::{park, park_name, scratch},
    file::{AT_FDCWD, enter_arg, file_path},
};
use crate::{
    kernel::{Ptr, file_of_fd, off, read, read_ptr},
    maps::count_drop,
};

/// How a call's times argument is laid out: `struct timespec[2]`, `struct timeval[2]` or
/// `struct utimbuf`, with 64-bit members or (`NARROW`, ia32) 32-bit ones.
pub mod times {
    pub const SPEC: u32 = 0;
    pub const VAL: u32 = 1;
    pub const BUF: u32 = 2;
    pub const NARROW: u32 = 4;
}

/// Reads `N` words of user memory at `at`, 64-bit or (`narrow`) 32-bit and sign-extended;
/// false for a bad pointer or a page not faulted in (the words are then zero). No `Option`:
/// an undefined payload, spilled to the stack, is what the verifier refuses to read.
#[inline(always)]
fn words<const N: usize>(at: Ptr, narrow: bool) -> ([i64; N], bool) {
    let mut v = [0i64; N];
    let rc = if narrow {
        let mut w = [0i32; N];
        let rc = unsafe {
            bpf_probe_read_user(w.as_mut_ptr() as *mut _, (4 * N) as u32, at as *const _)
        };
        for i in 0..N {
            v[i] = w[i] as i64;
        }
        rc
    } else {
        unsafe { bpf_probe_read_user(v.as_mut_ptr() as *mut _, (8 * N) as u32, at as *const _) }
    };
    (v, rc == 0)
}

/// The modification time (seconds, nanoseconds) in the times argument at `at`, and whether
/// it could be read.
#[inline(always)]
fn mtime(at: Ptr, layout: u32) -> (i64, i64, bool) {
    let narrow = layout & times::NARROW != 0;
    match layout & !times::NARROW {
        times::BUF => {
            let (t, ok) = words::<2>(at, narrow);
            (t[1], 0, ok)
        }
        times::VAL => {
            let (t, ok) = words::<4>(at, narrow);
            (t[2], t[3].wrapping_mul(1000), ok)
        }
        _ => {
            let (t, ok) = words::<4>(at, narrow);
            (t[2], t[3], ok)
        }
    }
}

#[tracepoint]
pub fn utimensat_enter(ctx: TracePointContext) -> u32 {
    let arg = |n| enter_arg(&ctx, n);
    set_times(arg(0) as i32, arg(1) as Ptr, arg(2) as Ptr, times::SPEC);
    0
}

#[tracepoint]
pub fn futimesat_enter(ctx: TracePointContext) -> u32 {
    let arg = |n| enter_arg(&ctx, n);
    set_times(arg(0) as i32, arg(1) as Ptr, arg(2) as Ptr, times::VAL);
    0
}

#[tracepoint]
pub fn utimes_enter(ctx: TracePointContext) -> u32 {
    let arg = |n| enter_arg(&ctx, n);
    set_times(AT_FDCWD, arg(0) as Ptr, arg(1) as Ptr, times::VAL);
    0
}

#[tracepoint]
pub fn utime_enter(ctx: TracePointContext) -> u32 {
    let arg = |n| enter_arg(&ctx, n);
    set_times(AT_FDCWD, arg(0) as Ptr, arg(1) as Ptr, times::BUF);
    0
}

/// A call of the utimes family entered: `dfd` and `name` name the file (utimensat's NULL or
/// empty name: the descriptor itself), `at` holds the times laid out as `layout` says. NULL
/// times mean "now": nothing to report. Times not readable yet (a page the call itself
/// faults in) are read again at the exit (`times_again`).
#[inline(always)]
pub fn set_times(dfd: i32, name: Ptr, at: Ptr, layout: u32) {
    if at.is_null() {
        return;
    }
    let (sec, nsec, readable) = mtime(at, layout);
    if readable && (nsec == UTIME_NOW || nsec == UTIME_OMIT || !(0..1_000_000_000).contains(&nsec)) {
        return;
    }
    // By descriptor: a NULL name, or an empty one (AT_EMPTY_PATH). A name not readable yet
    // is a name (read again at the exit).
    let mut first = 1u8;
    if !name.is_null()
        && unsafe { bpf_probe_read_user(&raw mut first as *mut _, 1, name as *const _) } != 0
    {
        first = 1;
    }
    let Some(s) = scratch() else {
        count_drop(RecordKind::FileCreateTime);
        return;
    };
    if readable {
        s.rec.new_sec = sec;
        s.rec.new_nsec = nsec as u32;
    } else {
        // Kept for the exit: where the times are, and how they are laid out.
        s.rec.new_sec = at as i64;
        s.rec.new_nsec = layout;
        s.rec.state |= state::TIMES_UNREAD;
    }
    if name.is_null() || first == 0 {
        // By descriptor (futimens, or AT_EMPTY_PATH): its time now is the one replaced.
        let file = file_of_fd(dfd as i64 as u64);
        if file.is_null() {
            return;
        }
        let inode = read_ptr(file, off!(file_f_inode));
        s.rec.old_sec = read(inode, off!(inode_i_mtime_sec));
        s.rec.old_nsec = read(inode, off!(inode_i_mtime_nsec));
        s.rec.state |= state::OLD;
        let (flags, len) = file_path(file, s.tail.as_mut_ptr());
        park(RecordKind::FileCreateTime, s, flags, len, 0);
    } else {
        park_name(RecordKind::FileCreateTime, s, dfd, name);
    }
}

/// At the exit of a call that succeeded, whose times were not readable at entry: reads them
/// now (the call has faulted their page in). False when they mean "now" (nothing to report)
/// or still cannot be read (counted as a drop).
#[inline(always)]
pub fn times_again(rec: &mut FileInfoRecord) -> bool {
    let (sec, nsec, readable) = mtime(rec.new_sec as Ptr, rec.new_nsec);
    if !readable {
        count_drop(RecordKind::FileCreateTime);
        return false;
    }
    rec.new_sec = sec;
    rec.new_nsec = nsec as u32;
    (0..1_000_000_000).contains(&nsec)
}
