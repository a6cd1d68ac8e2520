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

/// The real path of a shared library the dynamic loader knows by `soname` (x86-64).
pub fn library(soname: &str) -> PathBuf {
    let out = std::process::Command::new("ldconfig")
        .arg("-p")
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let line = text
        .lines()
        .find(|l| l.trim_start().starts_with(soname) && l.contains("x86-64"))
        .unwrap_or_else(|| panic!("{soname} not in ldconfig -p"));
    std::fs::canonicalize(line.rsplit("=> ").next().unwrap().trim()).unwrap()
}
