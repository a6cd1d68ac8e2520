//! A log file the agent writes itself (`-o json`, `-o xml`): whole lines, one `write` per
//! batch, rotation by size, and a file moved away by logrotate followed by its inode.
//!
//! Lines wait in one bounded buffer until they are written. A full disk or an unwritable
//! file costs the reader thread one failed `write` per second (the tick retries; batches in
//! between only append to the buffer); what does not fit the buffer is counted, and the
//! agent reports the count as event 255 once the file takes events again.

use std::{
    ffi::CString,
    fs::{self, File, OpenOptions},
    io::{self, Write},
    os::unix::{
        ffi::OsStrExt,
        fs::{FileExt, MetadataExt, OpenOptionsExt, PermissionsExt},
    },
    path::{Path, PathBuf},
};

use memchr::{memchr, memrchr};

use super::outputs::Rotation;

/// What may wait for the file: about ten seconds of a busy machine.
pub const QUEUE_MAX_BYTES: usize = 8 << 20;
/// A batch this large is written at once instead of at the end of the batch.
const BATCH_MAX_BYTES: usize = 1 << 20;
/// Blocks are reserved this far ahead of the writes: one `fallocate` per megabyte of log,
/// not one per batch (an ext4 `fallocate` cost more than the batch's `write`).
const RESERVE_AHEAD: u64 = 1 << 20;

pub struct FileSink {
    path: PathBuf,
    rotation: Rotation,
    file: Option<File>,
    /// `(st_dev, st_ino)` of `file`: the path naming another file means it was moved.
    id: (u64, u64),
    size: u64,
    /// Where the blocks reserved in `file` end (at or beyond `size`).
    reserved: u64,
    /// Whole lines not yet written, oldest first.
    pending: Vec<u8>,
    /// The last write failed: only [`FileSink::retry`] (once a second) tries again.
    failing: bool,
    dropped: u64,
    /// The last error, said once on stderr until a write succeeds.
    error: Option<String>,
}

impl FileSink {
    /// Opens (or creates) the file now, so that a partial line left by a crash is cut
    /// back before anything is appended; an error is kept and retried on write.
    pub fn new(path: &Path, rotation: Rotation) -> Self {
        let mut sink = FileSink {
            path: path.to_owned(),
            rotation,
            file: None,
            id: (0, 0),
            size: 0,
            reserved: 0,
            pending: Vec::with_capacity(64 * 1024),
            failing: false,
            dropped: 0,
            error: None,
        };
        if let Err(e) = sink.open() {
            sink.fail(&e);
        }
        sink
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one line (its `\n` is added if missing) to the batch.
    pub fn push(&mut self, line: &[u8]) {
        let newline = !line.ends_with(b"\n");
        if self.pending.len() + line.len() + newline as usize > QUEUE_MAX_BYTES {
            self.dropped += 1;
            return;
        }
        self.pending.extend_from_slice(line);
        if newline {
            self.pending.push(b'\n');
        }
        if self.pending.len() >= BATCH_MAX_BYTES && !self.failing {
            self.write_pending();
        }
    }

    /// The end of a batch: what waits is written, unless the file is failing.
    pub fn flush(&mut self) {
        if !self.failing {
            self.write_pending();
        }
    }

    /// The tick: tries again after a failure.
    pub fn retry(&mut self) {
        self.write_pending();
    }

    /// Bytes waiting for the file.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Lines dropped since the last call.
    pub fn take_dropped(&mut self) -> u64 {
        std::mem::take(&mut self.dropped)
    }

    fn write_pending(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        match self.write_lines() {
            Ok(()) => {
                self.failing = false;
                if self.error.take().is_some() {
                    eprintln!("sysmon: {}: writable again", self.path.display());
                }
            }
            Err(e) => self.fail(&e),
        }
    }

    fn fail(&mut self, e: &io::Error) {
        self.failing = true;
        let msg = e.to_string();
        if self.error.as_deref() != Some(msg.as_str()) {
            eprintln!("sysmon: {}: {msg}; events wait", self.path.display());
            self.error = Some(msg);
        }
    }

    /// Writes every waiting line, whole: usually one `write`; more when the file must be
    /// rotated in between or the disk fills up.
    fn write_lines(&mut self) -> io::Result<()> {
        self.follow_moves();
        while !self.pending.is_empty() {
            if self.file.is_none() {
                self.open()?;
            }
            let room = self.rotation.size.saturating_sub(self.size);
            let mut take = self.pending.len();
            if take as u64 > room {
                // The whole lines that still fit; an event is never split across files.
                take = memrchr(b'\n', &self.pending[..room as usize]).map_or(0, |i| i + 1);
                if take == 0 {
                    if self.size > 0 {
                        self.rotate()?;
                        continue;
                    }
                    // A line longer than the size limit goes alone into a fresh file.
                    take = memchr(b'\n', &self.pending).map_or(self.pending.len(), |i| i + 1);
                }
            }
            let file = self.file.as_mut().unwrap();
            let end = self.size + take as u64;
            if end > self.reserved {
                let ahead = (self.size + RESERVE_AHEAD).min(self.rotation.size).max(end);
                // Short of a megabyte of room: what this write needs will do.
                if reserve(file, self.size, ahead - self.size).is_err() {
                    reserve(file, self.size, take as u64)?;
                }
                self.reserved = end.max(ahead);
            }
            let n = file.write(&self.pending[..take])?;
            if n == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
            // A short write all the same (a filesystem without `fallocate`): keep its whole
            // lines, cut the rest off, and let the next write say why.
            let whole = if n < take {
                memrchr(b'\n', &self.pending[..n]).map_or(0, |i| i + 1)
            } else {
                n
            };
            if whole < n {
                file.set_len(self.size + whole as u64)?;
            }
            self.size += whole as u64;
            self.pending.drain(..whole);
        }
        Ok(())
    }

    /// An external logrotate renamed (or removed) the file: the next line goes to a new one
    /// at the path. One `stat` per batch.
    fn follow_moves(&mut self) {
        if self.file.is_none() {
            return;
        }
        let moved = match fs::metadata(&self.path) {
            Ok(m) => (m.dev(), m.ino()) != self.id,
            Err(_) => true,
        };
        if moved {
            self.close();
        }
    }

    /// `file` → `file.1` → … → `file.<keep>`; the oldest goes.
    fn rotate(&mut self) -> io::Result<()> {
        self.close();
        let numbered = |i: u32| {
            let mut p = self.path.clone().into_os_string();
            p.push(format!(".{i}"));
            PathBuf::from(p)
        };
        if self.rotation.keep == 0 {
            return ignore_missing(fs::remove_file(&self.path));
        }
        for i in (1..self.rotation.keep).rev() {
            ignore_missing(fs::rename(numbered(i), numbered(i + 1)))?;
        }
        ignore_missing(fs::rename(&self.path, numbered(1)))
    }

    /// Gives back the blocks reserved past the last line.
    fn close(&mut self) {
        if let Some(file) = self.file.take()
            && self.reserved > self.size
        {
            let _ = file.set_len(self.size);
        }
    }

    fn open(&mut self) -> io::Result<()> {
        self.close();
        let adm = adm_gid();
        if let Some(dir) = self.path.parent().filter(|d| !d.exists()) {
            fs::create_dir_all(dir)?;
            // The daemon's umask is 077: set the mode the directory is meant to have.
            fs::set_permissions(dir, fs::Permissions::from_mode(0o750))?;
            chown(dir, adm)?;
        }
        let mut options = OpenOptions::new();
        options.read(true).append(true).mode(0o640);
        let file = match options.clone().create_new(true).open(&self.path) {
            Ok(f) => {
                f.set_permissions(fs::Permissions::from_mode(0o640))?;
                chown(&self.path, adm)?;
                f
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => options.open(&self.path)?,
            Err(e) => return Err(e),
        };
        let meta = file.metadata()?;
        self.size = cut_partial_line(&file, meta.len())?;
        self.reserved = self.size;
        self.id = (meta.dev(), meta.ino());
        self.file = Some(file);
        Ok(())
    }
}

/// A last line without its `\n` (a crash in the middle of a write) is cut off; returns the
/// length of the file after that.
fn cut_partial_line(file: &File, len: u64) -> io::Result<u64> {
    const CHUNK: u64 = 64 * 1024;
    let mut end = len;
    let mut buf = vec![0u8; CHUNK as usize];
    while end > 0 {
        let start = end.saturating_sub(CHUNK);
        let chunk = &mut buf[..(end - start) as usize];
        file.read_exact_at(chunk, start)?;
        if end == len && chunk.last() == Some(&b'\n') {
            return Ok(len);
        }
        if let Some(i) = memrchr(b'\n', chunk) {
            end = start + i as u64 + 1;
            break;
        }
        end = start;
    }
    file.set_len(end)?;
    Ok(end)
}

/// Reserves the blocks of the next write without changing the file's size: on a full disk
/// it fails as a whole (ENOSPC) instead of the write stopping in the middle of a line.
/// Filesystems that cannot do it (NFS, some FUSE) are written without.
fn reserve(file: &File, at: u64, len: u64) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let r = unsafe {
        libc::fallocate(
            file.as_raw_fd(),
            libc::FALLOC_FL_KEEP_SIZE,
            at as libc::off_t,
            len as libc::off_t,
        )
    };
    if r == 0 {
        return Ok(());
    }
    let e = io::Error::last_os_error();
    match e.raw_os_error() {
        Some(libc::ENOSPC | libc::EDQUOT | libc::EFBIG) => Err(e),
        _ => Ok(()),
    }
}

fn ignore_missing(r: io::Result<()>) -> io::Result<()> {
    match r {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        r => r,
    }
}

/// Group `adm` (log readers on Debian and Ubuntu), else root's.
fn adm_gid() -> libc::gid_t {
    let grp = unsafe { libc::getgrnam(c"adm".as_ptr()) };
    if grp.is_null() {
        0
    } else {
        unsafe { (*grp).gr_gid }
    }
}

fn chown(path: &Path, gid: libc::gid_t) -> io::Result<()> {
    let c = CString::new(path.as_os_str().as_bytes()).map_err(io::Error::other)?;
    if unsafe { libc::chown(c.as_ptr(), 0, gid) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

impl Drop for FileSink {
    fn drop(&mut self) {
        self.retry();
        if let Some(f) = &mut self.file {
            let _ = f.flush();
        }
        self.close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("sysmon-file-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        d
    }

    fn read(p: &Path) -> String {
        fs::read_to_string(p).unwrap_or_default()
    }

    #[test]
    fn creates_with_modes_and_appends_whole_lines() {
        let d = dir("modes");
        let path = d.join("sub/e.json");
        let mut s = FileSink::new(
            &path,
            Rotation {
                size: 1 << 20,
                keep: 2,
            },
        );
        s.push(b"one");
        s.push(b"two\n");
        assert_eq!(read(&path), "", "nothing before the end of the batch");
        s.flush();
        assert_eq!(read(&path), "one\ntwo\n");
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o640);
        assert_eq!(mode(path.parent().unwrap()), 0o750);
        assert_eq!(fs::metadata(&path).unwrap().gid(), adm_gid());
        drop(s);
        fs::remove_dir_all(&d).unwrap();
    }

    /// Blocks are reserved a megabyte ahead (one `fallocate` for many batches), and what
    /// was not written is given back when the file is closed or rotated.
    #[test]
    fn reserves_ahead_and_gives_back_at_close() {
        let d = dir("reserve");
        let path = d.join("e.json");
        let rotation = |size| Rotation { size, keep: 1 };
        let allocated = |p: &Path| fs::metadata(p).unwrap().blocks() * 512;
        let mut s = FileSink::new(&path, rotation(8 << 20));
        s.push(b"one\n");
        s.flush();
        assert!(
            allocated(&path) >= RESERVE_AHEAD,
            "{} bytes",
            allocated(&path)
        );
        drop(s);
        assert!(allocated(&path) < 64 << 10, "{} bytes", allocated(&path));
        assert_eq!(read(&path), "one\n");
        // Never past the rotation size, and the rotated file gives its blocks back.
        let line = [b'x'; 999];
        let mut s = FileSink::new(&path, rotation(6000));
        for _ in 0..7 {
            s.push(&line);
            s.flush();
        }
        assert!(allocated(&path) < 64 << 10, "{} bytes", allocated(&path));
        let rotated = d.join("e.json.1");
        assert!(
            allocated(&rotated) < 64 << 10,
            "{} bytes",
            allocated(&rotated)
        );
        drop(s);
        fs::remove_dir_all(&d).unwrap();
    }

    /// A crash left half a line: it is cut back on open, nothing else is touched.
    #[test]
    fn cuts_back_a_partial_last_line() {
        let d = dir("cut");
        fs::create_dir_all(&d).unwrap();
        let path = d.join("e.xml");
        // (file before, file after open)
        let long = "x".repeat(200_000);
        let cases = [
            ("a\nb\n".to_string(), "a\nb\n".to_string()),
            ("a\nb\nhal".to_string(), "a\nb\n".to_string()),
            ("half".to_string(), String::new()),
            (format!("a\n{long}"), "a\n".to_string()),
            (String::new(), String::new()),
        ];
        for (before, after) in cases {
            fs::write(&path, &before).unwrap();
            let mut s = FileSink::new(
                &path,
                Rotation {
                    size: 1 << 30,
                    keep: 1,
                },
            );
            assert_eq!(read(&path), after);
            s.push(b"next");
            s.flush();
            assert_eq!(read(&path), after + "next\n");
        }
        fs::remove_dir_all(&d).unwrap();
    }

    /// Rotation keeps `keep` older files, each below the size unless one line is larger,
    /// and every line whole in exactly one file.
    #[test]
    fn rotates_by_size_keeping_n() {
        let d = dir("rotate");
        let path = d.join("e.json");
        let mut s = FileSink::new(&path, Rotation { size: 100, keep: 3 });
        for i in 0..60 {
            s.push(format!("line-{i:04}").as_bytes());
            if i % 7 == 0 {
                s.flush();
            }
        }
        s.flush();
        let mut names: Vec<_> = fs::read_dir(&d)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, ["e.json", "e.json.1", "e.json.2", "e.json.3"]);
        let mut all = Vec::new();
        for n in ["e.json.3", "e.json.2", "e.json.1", "e.json"] {
            let text = read(&d.join(n));
            assert!(text.len() <= 100 && text.ends_with('\n'), "{n}: {text:?}");
            all.extend(text.lines().map(str::to_owned));
        }
        // The newest lines, in order, none split.
        let want: Vec<_> = (60 - all.len()..60)
            .map(|i| format!("line-{i:04}"))
            .collect();
        assert_eq!(all, want);
        fs::remove_dir_all(&d).unwrap();
    }

    /// logrotate renames the file: the next batch goes to a new file at the path.
    #[test]
    fn follows_an_external_rename() {
        let d = dir("moved");
        let path = d.join("e.xml");
        let mut s = FileSink::new(
            &path,
            Rotation {
                size: 1 << 20,
                keep: 1,
            },
        );
        s.push(b"before");
        s.flush();
        fs::rename(&path, d.join("e.xml.old")).unwrap();
        s.push(b"after");
        s.flush();
        assert_eq!(read(&d.join("e.xml.old")), "before\n");
        assert_eq!(read(&path), "after\n");
        fs::remove_dir_all(&d).unwrap();
    }

    /// Unwritable: lines wait up to the bound, the rest is counted; once writable, what
    /// waited is written in order.
    #[test]
    fn bounded_while_unwritable() {
        let d = dir("full");
        let path = d.join("e.json");
        fs::create_dir_all(&path).unwrap(); // a directory where the file should be
        let mut s = FileSink::new(
            &path,
            Rotation {
                size: 1 << 30,
                keep: 1,
            },
        );
        let line = vec![b'x'; 1023];
        let fit = QUEUE_MAX_BYTES / 1024;
        for _ in 0..fit + 5 {
            s.push(&line);
            s.flush();
        }
        assert_eq!(s.pending(), fit * 1024);
        assert_eq!(s.take_dropped(), 5);
        fs::remove_dir(&path).unwrap();
        s.flush();
        assert_eq!(s.pending(), fit * 1024, "only the tick retries");
        s.retry();
        assert_eq!(s.pending(), 0);
        assert_eq!(fs::metadata(&path).unwrap().len(), (fit * 1024) as u64);
        fs::remove_dir_all(&d).unwrap();
    }
}
