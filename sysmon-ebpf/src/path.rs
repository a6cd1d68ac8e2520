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
    /// `mnt->mnt.mnt_root`: read once per mount, not once per component.
    root: u64,
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
    let (vfsmnt, dentry) = read_path(path);
    s.walk = Walk {
        dentry: dentry as u64,
        mnt: vfsmnt.wrapping_sub(off!(mount_mnt) as usize) as u64,
        root: read_ptr(vfsmnt, off!(vfsmount_mnt_root)) as u64,
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
    if dentry as u64 == w.root {
        let (parent, mountpoint, parent_root) = read_mount(mnt);
        if parent == mnt || parent.is_null() {
            w.state = DONE;
            return 1;
        }
        w.dentry = mountpoint as u64;
        w.mnt = parent as u64;
        w.root = parent_root as u64;
        return 0;
    }
    let (parent, len, name) = read_dentry(dentry);
    // A dentry that is its own parent but not a mount root is a pseudo file (memfd, anon
    // inode): its name is all there is, e.g. `memfd:x`, which the kernel shows as `/memfd:x`.
    let top = parent == dentry || parent.is_null();
    if top && w.pos != PATH_MAX as u64 {
        w.state = DONE;
        return 1;
    }
    let len = len as usize & NAME_MAX;
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

// Each step costs a helper call per field read, which is most of a walk's time: where the
// fields a step needs sit side by side (as they do on current kernels), one read takes them
// all; any other layout falls back to one read per field.

/// `path->mnt` and `path->dentry`.
#[inline(always)]
fn read_path(path: Ptr) -> (Ptr, Ptr) {
    let (mnt, dentry) = (off!(path_mnt), off!(path_dentry));
    if dentry == mnt.wrapping_add(8) {
        let w: [u64; 2] = read(path, mnt);
        (w[0] as Ptr, w[1] as Ptr)
    } else {
        (read_ptr(path, mnt), read_ptr(path, dentry))
    }
}

/// Crossing up from the root of mount `mnt`: (`mnt->mnt_parent`, `mnt->mnt_mountpoint`, the
/// parent's `mnt.mnt_root`).
#[inline(always)]
fn read_mount(mnt: Ptr) -> (Ptr, Ptr, Ptr) {
    let parent_at = off!(mount_mnt_parent);
    let root_at = off!(mount_mnt).wrapping_add(off!(vfsmount_mnt_root));
    let (parent, mountpoint) = if off!(mount_mnt_mountpoint) == parent_at.wrapping_add(8) {
        let w: [u64; 2] = read(mnt, parent_at);
        (w[0] as Ptr, w[1] as Ptr)
    } else {
        (
            read_ptr(mnt, parent_at),
            read_ptr(mnt, off!(mount_mnt_mountpoint)),
        )
    };
    (parent, mountpoint, read_ptr(parent, root_at))
}

/// `dentry->d_parent`, `d_name.len` and `d_name.name`.
#[inline(always)]
fn read_dentry(dentry: Ptr) -> (Ptr, u32, Ptr) {
    let (parent_at, name_at) = (off!(dentry_d_parent), off!(dentry_d_name));
    let (len_at, ptr_at) = (off!(qstr_len), off!(qstr_name));
    if name_at == parent_at.wrapping_add(8) && len_at == 4 && ptr_at == 8 {
        // d_parent, then the qstr: 32-bit hash, 32-bit len, name pointer.
        let w: [u64; 3] = read(dentry, parent_at);
        (w[0] as Ptr, (w[1] >> 32) as u32, w[2] as Ptr)
    } else {
        let qstr = dentry.wrapping_add(name_at as usize);
        (
            read_ptr(dentry, parent_at),
            read(qstr, len_at),
            read_ptr(qstr, ptr_at),
        )
    }
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
