//! EventRecordID: a persistent counter in `/opt/sysmon/eventId` (8 bytes, mapped shared, so
//! taking a number costs no syscall and survives restarts and kill -9).

use std::{
    fs, io,
    os::unix::fs::{DirBuilderExt, OpenOptionsExt},
    path::Path,
    sync::atomic::{AtomicU64, Ordering},
};

pub const STATE_DIR: &str = "/opt/sysmon";

pub struct RecordIds {
    map: Option<*mut AtomicU64>,
    fallback: u64,
}

impl RecordIds {
    /// Maps `<dir>/eventId`, creating the directory (0700) and the file (0600) if needed.
    /// If that fails every id is counted in memory only and the error is returned beside.
    pub fn open(dir: &Path) -> (Self, Option<io::Error>) {
        match map(dir) {
            Ok(p) => (
                RecordIds {
                    map: Some(p),
                    fallback: 0,
                },
                None,
            ),
            Err(e) => (
                RecordIds {
                    map: None,
                    fallback: 0,
                },
                Some(e),
            ),
        }
    }

    /// The next id: the current value, then one more (the first event gets 0, as Sysmon).
    pub fn take(&mut self) -> u64 {
        match self.map {
            // SAFETY: the mapping is 8 bytes, aligned, and lives as long as self.
            Some(p) => unsafe { (*p).fetch_add(1, Ordering::Relaxed) },
            None => {
                self.fallback += 1;
                self.fallback - 1
            }
        }
    }
}

fn map(dir: &Path) -> io::Result<*mut AtomicU64> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    let file = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(dir.join("eventId"))?;
    file.set_len(8)?;
    use std::os::fd::AsRawFd;
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            8,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED,
            file.as_raw_fd(),
            0,
        )
    };
    if p == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    Ok(p as *mut AtomicU64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn survives_reopen() {
        let dir = std::env::temp_dir().join(format!("sysmon-ids-{}", std::process::id()));
        let (mut a, err) = RecordIds::open(&dir);
        assert!(err.is_none());
        assert_eq!(a.take(), 0);
        assert_eq!(a.take(), 1);
        let (mut b, _) = RecordIds::open(&dir);
        assert_eq!(b.take(), 2);
        let _ = fs::remove_dir_all(&dir);
    }
}
