//! File systems mounted for a test: a small tmpfs (a disk that fills, a device of its own),
//! and a FUSE file system that never answers (a hung mount).

use std::{
    ffi::CString,
    os::fd::AsRawFd,
    path::{Path, PathBuf},
};

use crate::fs::c;

/// A mount made for the test, detached (and its FUSE connection aborted) on drop.
pub struct Mount {
    pub at: PathBuf,
    fuse: Option<std::fs::File>,
}

impl Mount {
    /// A tmpfs of `size` (e.g. `16m`) at `at`.
    pub fn tmpfs(at: &Path, size: &str) -> Mount {
        std::fs::create_dir_all(at).unwrap();
        let opts = CString::new(format!("size={size},mode=0755")).unwrap();
        // SAFETY: every pointer is a NUL-terminated string that outlives the call.
        let rc = unsafe {
            libc::mount(
                c"tmpfs".as_ptr(),
                c(at).as_ptr(),
                c"tmpfs".as_ptr(),
                0,
                opts.as_ptr().cast(),
            )
        };
        assert_eq!(rc, 0, "mount tmpfs: {}", std::io::Error::last_os_error());
        Mount {
            at: at.to_owned(),
            fuse: None,
        }
    }

    /// A FUSE file system whose server never answers, not even the kernel's first request:
    /// every call under it waits (as on a hung NFS mount) until the connection is aborted.
    pub fn stalled(at: &Path) -> Mount {
        std::fs::create_dir_all(at).unwrap();
        let fuse = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/fuse")
            .unwrap();
        let opts = CString::new(format!(
            "fd={},rootmode=40000,user_id=0,group_id=0",
            fuse.as_raw_fd()
        ))
        .unwrap();
        // SAFETY: as above; the descriptor stays open in `fuse`.
        let rc = unsafe {
            libc::mount(
                c"sysmon-stall".as_ptr(),
                c(at).as_ptr(),
                c"fuse".as_ptr(),
                libc::MS_NOSUID | libc::MS_NODEV,
                opts.as_ptr().cast(),
            )
        };
        assert_eq!(rc, 0, "mount fuse: {}", std::io::Error::last_os_error());
        Mount {
            at: at.to_owned(),
            fuse: Some(fuse),
        }
    }

    /// (bytes used, bytes in all) of the file system.
    pub fn usage(&self) -> (u64, u64) {
        // SAFETY: statvfs fills the struct; the path outlives the call.
        let mut s: libc::statvfs = unsafe { std::mem::zeroed() };
        assert_eq!(unsafe { libc::statvfs(c(&self.at).as_ptr(), &mut s) }, 0);
        let block = s.f_frsize;
        ((s.f_blocks - s.f_bfree) * block, s.f_blocks * block)
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        // Closing the last descriptor of a FUSE connection aborts it: waiting calls fail.
        drop(self.fuse.take());
        // SAFETY: a path that outlives the call.
        unsafe { libc::umount2(c(&self.at).as_ptr(), libc::MNT_DETACH) };
    }
}
