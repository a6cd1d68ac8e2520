//! File helpers the file-event tests share.

use std::{
    ffi::CString,
    os::unix::ffi::OsStrExt,
    path::{Path, PathBuf},
};

use crate::TempDir;

/// A path as the C string a raw syscall takes.
pub fn c(p: &Path) -> CString {
    CString::new(p.as_os_str().as_bytes()).unwrap()
}

/// A fresh directory with its canonical name (what the kernel's dentry walk gives).
pub fn work_dir(tag: &str) -> (TempDir, PathBuf) {
    let dir = TempDir::new(tag);
    let canon = std::fs::canonicalize(&dir.0).unwrap();
    (dir, canon)
}
