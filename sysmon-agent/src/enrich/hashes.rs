//! The `Hashes` field: digests of the executable, computed once per file identity.

use std::{collections::HashMap, fmt::Write as _, fs::File, io::Read, os::unix::fs::MetadataExt};

use md5::Md5;
use sha1::Sha1;
use sha2::{Digest, Sha256};

use crate::rules::HashAlgorithms;

/// What identifies one version of a file: device, inode, size and modification time, all
/// carried in the exec record, so a cache hit costs no syscall.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FileId {
    /// Kernel-internal `dev_t` (major << 20 | minor).
    pub dev: u32,
    pub ino: u64,
    pub size: i64,
    pub mtime_sec: i64,
    pub mtime_nsec: u32,
}

/// Cached digests. Bounded: cleared when it grows past `LIMIT` distinct files.
pub struct Hasher {
    algs: HashAlgorithms,
    /// `None` remembers a file that could not be read, so it is not retried per exec.
    cache: HashMap<FileId, Option<Box<str>>>,
}

const LIMIT: usize = 16 * 1024;

impl Hasher {
    pub fn new(algs: HashAlgorithms) -> Self {
        Hasher {
            algs,
            cache: HashMap::new(),
        }
    }

    /// Switching algorithms (config reload) forgets every cached digest.
    pub fn set_algorithms(&mut self, algs: HashAlgorithms) {
        if (algs.sha1, algs.md5, algs.sha256) != (self.algs.sha1, self.algs.md5, self.algs.sha256) {
            self.algs = algs;
            self.cache.clear();
        }
    }

    /// `SHA1=…,MD5=…,SHA256=…` (only the chosen ones) for the file `id`, opened through
    /// `/proc/<pid>/exe` while the process lives (right even across mount namespaces), else
    /// by `path`. `None` when it cannot be read or is no longer that file.
    pub fn hashes(&mut self, id: FileId, pid: u32, path: &str) -> Option<&str> {
        if !self.cache.contains_key(&id) {
            let text = self.compute(id, pid, path).map(String::into_boxed_str);
            if self.cache.len() >= LIMIT {
                self.cache.clear();
            }
            self.cache.insert(id, text);
        }
        self.cache.get(&id)?.as_deref()
    }

    fn compute(&self, id: FileId, pid: u32, path: &str) -> Option<String> {
        let file = [format!("/proc/{pid}/exe"), path.to_string()]
            .into_iter()
            .filter_map(|p| File::open(p).ok())
            .find(|f| f.metadata().is_ok_and(|m| same_file(&m, &id)))?;
        digest(file, self.algs)
    }
}

fn same_file(m: &std::fs::Metadata, id: &FileId) -> bool {
    let dev = libc::makedev(id.dev >> 20, id.dev & 0xfffff);
    m.ino() == id.ino && m.dev() == dev && m.size() as i64 == id.size
}

fn digest(mut file: File, algs: HashAlgorithms) -> Option<String> {
    let (mut s1, mut m5, mut s256) = (Sha1::new(), Md5::new(), Sha256::new());
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = file.read(&mut buf).ok()?;
        if n == 0 {
            break;
        }
        let chunk = &buf[..n];
        if algs.sha1 {
            s1.update(chunk);
        }
        if algs.md5 {
            m5.update(chunk);
        }
        if algs.sha256 {
            s256.update(chunk);
        }
    }
    let mut out = String::new();
    let mut put = |name: &str, bytes: &[u8]| {
        if !out.is_empty() {
            out.push(',');
        }
        out.push_str(name);
        out.push('=');
        for b in bytes {
            let _ = write!(out, "{b:02x}");
        }
    };
    if algs.sha1 {
        put("SHA1", &s1.finalize());
    }
    if algs.md5 {
        put("MD5", &m5.finalize());
    }
    if algs.sha256 {
        put("SHA256", &s256.finalize());
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_in_sysmon_order() {
        let dir = std::env::temp_dir().join(format!("sysmon-hash-{}", std::process::id()));
        std::fs::write(&dir, b"abc").unwrap();
        let all = HashAlgorithms {
            sha1: true,
            md5: true,
            sha256: true,
            imphash: false,
        };
        let got = digest(File::open(&dir).unwrap(), all).unwrap();
        std::fs::remove_file(&dir).unwrap();
        assert_eq!(
            got,
            "SHA1=a9993e364706816aba3e25717850c26c9cd0d89d,\
             MD5=900150983cd24fb0d6963f7d28e17f72,\
             SHA256=ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
