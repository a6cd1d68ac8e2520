//! Rebuilding a `struct path` into text by walking dentries up to the root, crossing mounts.
//!
//! The walk runs under `bpf_loop` (kernel 5.17+): the verifier checks one step once instead
//! of every unrolled iteration, which lets us walk `PATH_DEPTH` components.

use core::ffi::c_void;

use aya_ebpf::helpers::generated::{bpf_loop, bpf_probe_read_kernel};
use sysmon_common::{PATH_DEPTH, PATH_MAX};

use crate::{
    kernel::{Ptr, off, read, read_ptr},
    maps::PATH_SCRATCH,
};

/// Longest name of one path component (NAME_MAX).
const NAME_MAX: usize = 255;
/// The scratch buffer: a path of up to PATH_MAX bytes is built backwards ending at
/// `PATH_MAX`, with room for one more component so every write provably stays inside.
pub const PATH_BUF: usize = PATH_MAX + NAME_MAX + 1;

const RUNNING: u64 = 0;
const DONE: u64 = 1;
const TRUNCATED: u64 = 2;

/// State of one walk. It lives in map memory, not on the stack: the verifier does not
/// track values stored there, so every step looks the same to it and the loop converges.
#[repr(C)]
pub struct Walk {
    dentry: u64,
    mnt: u64,
    pos: u64,
    state: u64,
}

/// Per-CPU scratch: the walk state and the buffer the path is built in.
#[repr(C)]
pub struct PathScratch {
    pub walk: Walk,
    pub buf: [u8; PATH_BUF],
}

/// A path built at the end of the scratch buffer: `buf[start..PATH_MAX]`.
pub struct Built {
    pub start: usize,
    pub truncated: bool,
}

/// Writes the text of the `struct path` at `path` into the per-CPU scratch buffer.
#[inline(always)]
pub fn build(path: Ptr) -> Built {
    let Some(s) = PATH_SCRATCH.get_ptr_mut(0) else {
        return Built {
            start: PATH_MAX,
            truncated: true,
        };
    };
    let s = unsafe { &mut *s };
    let vfsmnt = read_ptr(path, off!(path_mnt));
    s.walk = Walk {
        dentry: read_ptr(path, off!(path_dentry)) as u64,
        mnt: vfsmnt.wrapping_sub(off!(mount_mnt) as usize) as u64,
        pos: PATH_MAX as u64,
        state: RUNNING,
    };
    unsafe {
        bpf_loop(
            PATH_DEPTH as u32,
            step as *mut c_void,
            core::ptr::null_mut(),
            0,
        );
    }
    let mut pos = s.walk.pos as usize;
    if pos > PATH_MAX {
        return Built {
            start: PATH_MAX,
            truncated: true,
        };
    }
    if pos == PATH_MAX {
        // The root itself.
        pos -= 1;
        s.buf[pos & (PATH_MAX - 1)] = b'/';
    }
    Built {
        start: pos,
        truncated: s.walk.state != DONE,
    }
}

/// One component: prepend `/name` of the current dentry and move to its parent, or cross
/// from a mount's root to its mount point.
extern "C" fn step(_i: u64, _ctx: *mut c_void) -> i64 {
    let Some(s) = PATH_SCRATCH.get_ptr_mut(0) else {
        return 1;
    };
    let (w, buf) = unsafe { (&mut (*s).walk, &mut (*s).buf) };
    let dentry = w.dentry as Ptr;
    let mnt = w.mnt as Ptr;
    if dentry.is_null() {
        w.state = DONE;
        return 1;
    }
    let mount_mnt = off!(mount_mnt) as usize;
    let mnt_root = read_ptr(mnt.wrapping_add(mount_mnt), off!(vfsmount_mnt_root));
    if dentry == mnt_root {
        let parent = read_ptr(mnt, off!(mount_mnt_parent));
        if parent == mnt || parent.is_null() {
            w.state = DONE;
            return 1;
        }
        w.dentry = read_ptr(mnt, off!(mount_mnt_mountpoint)) as u64;
        w.mnt = parent as u64;
        return 0;
    }
    let parent = read_ptr(dentry, off!(dentry_d_parent));
    // A dentry that is its own parent but not a mount root is a pseudo file (memfd, anon
    // inode): its name is all there is, e.g. `memfd:x`, which the kernel shows as `/memfd:x`.
    let top = parent == dentry || parent.is_null();
    if top && w.pos != PATH_MAX as u64 {
        w.state = DONE;
        return 1;
    }
    let qstr = dentry.wrapping_add(off!(dentry_d_name) as usize);
    let len = read::<u32>(qstr, off!(qstr_len)) as usize & NAME_MAX;
    let name = read_ptr(qstr, off!(qstr_name));
    let pos = w.pos as usize;
    if pos > PATH_MAX || len + 1 >= pos {
        w.state = TRUNCATED;
        return 1;
    }
    let pos = pos - len;
    let at = pos & (PATH_MAX - 1);
    unsafe {
        bpf_probe_read_kernel(
            buf.as_mut_ptr().wrapping_add(at) as *mut _,
            len as u32,
            name as *const _,
        );
        let slash = (pos - 1) & (PATH_MAX - 1);
        buf[slash] = b'/';
    }
    w.pos = (pos - 1) as u64;
    if top {
        w.state = DONE;
        return 1;
    }
    w.dentry = parent as u64;
    0
}

/// Copies a built path to `dst` (which must have `PATH_MAX` bytes of room); returns its length.
#[inline(always)]
pub fn copy_out(built: &Built, dst: *mut u8) -> usize {
    let Some(s) = PATH_SCRATCH.get_ptr(0) else {
        return 0;
    };
    let start = built.start & (PATH_MAX - 1);
    let len = PATH_MAX - start;
    if len == 0 || len > PATH_MAX {
        return 0;
    }
    unsafe {
        bpf_probe_read_kernel(
            dst as *mut _,
            len as u32,
            (*s).buf.as_ptr().wrapping_add(start) as *const _,
        );
    }
    len
}
