//! A log file the agent writes itself (`-o json`, `-o xml`): whole lines, rotation by
//! size, and a file moved away or removed (logrotate, an administrator freeing a full disk)
//! let go of at once and a new one started at the path.
//!
//! Every call on the file (open, `write`, `fallocate`, `stat`, `rename`, close) is made on
//! a thread of the file's own (`writer`): the reader thread only copies lines into a
//! bounded queue, so a full disk, a hung NFS mount or a stalled FUSE file system stalls no
//! event. What does not fit the queue is counted, and the agent reports the count as event
//! 255 once the file takes events again.

use std::{
    ffi::CString,
    fs::{self, File, OpenOptions},
    io::{self, Write},
    os::unix::{
        ffi::OsStrExt,
        fs::{FileExt, MetadataExt, OpenOptionsExt, PermissionsExt},
    },
    path::{Path, PathBuf},
    time::Instant,
};

use memchr::memrchr;

use super::{
    outputs::Rotation,
    writer::{Target, Writer},
};

/// What may wait for the file: about ten seconds of a busy machine (and as much again may
/// be in the writer's hands).
pub const QUEUE_MAX_BYTES: usize = 8 << 20;
/// Blocks are reserved this far ahead of the writes: one `fallocate` per megabyte of log,
/// not one per batch (an ext4 `fallocate` cost more than the batch's `write`).
const RESERVE_AHEAD: u64 = 1 << 20;

/// The reader thread's side of a log file: lines in, nothing that waits.
pub struct FileSink {
    path: PathBuf,
    writer: Writer,
}

impl FileSink {
    /// Starts the file's writer thread, which opens (or creates) the file at once, so that
    /// a partial line left by a crash is cut back before anything is appended. Files and
    /// directories it creates get group `gid` (see [`adm_gid`]).
    pub fn new(path: &Path, rotation: Rotation, gid: libc::gid_t) -> Self {
        let file = LogFile {
            path: path.to_owned(),
            rotation,
            gid,
            file: None,
            id: (0, 0),
            size: 0,
            reserved: 0,
            error: None,
        };
        FileSink {
            path: path.to_owned(),
            writer: Writer::spawn("sysmon-file", file, QUEUE_MAX_BYTES),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one line (its `\n` is added if missing) to the batch.
    pub fn push(&mut self, line: &[u8]) {
        if line.ends_with(b"\n") {
            self.writer.push(&[line]);
        } else {
            self.writer.push(&[line, b"\n"]);
        }
    }

    /// The end of a batch: hands it to the writer thread.
    pub fn flush(&mut self) {
        self.writer.flush();
    }

    /// Lines dropped since the last call (no room in the queue, or unwritten at stop).
    pub fn take_dropped(&mut self) -> u64 {
        self.writer.take_dropped()
    }

    /// Whether every line handed over is in the file.
    pub fn caught_up(&self) -> bool {
        self.writer.caught_up()
    }

    /// Whether every line handed over is in the file (or was given up).
    pub fn written(&self) -> bool {
        self.writer.written()
    }

    /// Waits until every line handed over is in the file, or until `until`.
    pub fn wait_written(&mut self, until: Instant) -> bool {
        self.writer.wait_written(until)
    }

    /// Writes what waits until `until`, then lets go of the file; returns how many lines
    /// were not written.
    pub fn stop(&mut self, until: Instant) -> u64 {
        self.writer.stop(until)
    }
}

/// The file itself, on the writer's thread.
struct LogFile {
    path: PathBuf,
    rotation: Rotation,
    gid: libc::gid_t,
    file: Option<File>,
    /// `(st_dev, st_ino)` of `file`: the path naming another file means it was moved.
    id: (u64, u64),
    size: u64,
    /// Where the blocks reserved in `file` end (at or beyond `size`).
    reserved: u64,
    /// The last error, said once on stderr until a write succeeds.
    error: Option<String>,
}

impl Target for LogFile {
    /// Writes whole lines: usually one `write`; more when the file must be rotated in
    /// between. Stops at the first error (a full disk), which the writer retries.
    fn write(&mut self, buf: &[u8], start: usize, ends: &[usize]) -> io::Result<usize> {
        self.follow_moves();
        let mut n = 0;
        while n < ends.len() {
            let from = if n == 0 { start } else { ends[n - 1] };
            match self.write_run(buf, from, &ends[n..]) {
                Ok(k) => n += k,
                Err(e) if n == 0 => {
                    self.fail(&e);
                    return Err(e);
                }
                // Written so far counts; the error comes back on the next call.
                Err(_) => break,
            }
        }
        if self.error.take().is_some() {
            eprintln!("sysmon: {}: writable again", self.path.display());
        }
        Ok(n)
    }

    /// Idle or failing: a file moved or removed is let go of (its space comes back), and
    /// a new one is started at the path.
    fn idle(&mut self) {
        self.follow_moves();
        if self.file.is_none()
            && let Err(e) = self.open()
        {
            self.fail(&e);
        }
    }
}

impl LogFile {
    /// Writes the lines from `start` to `ends[..k]` that fit before the next rotation (at
    /// least one); returns `k`. A short write keeps its whole lines and cuts the rest off;
    /// with no whole line written it is an error (no room), never a loop.
    fn write_run(&mut self, buf: &[u8], start: usize, ends: &[usize]) -> io::Result<usize> {
        if self.file.is_none() {
            self.open()?;
        }
        let limit = self.rotation.size;
        let fitting = |size: u64| {
            let room = limit.saturating_sub(size);
            ends.partition_point(|e| (e - start) as u64 <= room)
        };
        let mut k = fitting(self.size);
        if k == 0 && self.size > 0 {
            self.rotate()?;
            self.open()?;
            k = fitting(self.size);
        }
        // A line longer than the size limit goes alone into a fresh file.
        let k = k.max(1);
        let end = ends[k - 1];
        let len = (end - start) as u64;
        let file = self.file.as_mut().expect("opened above");
        let stop = self.size + len;
        if stop > self.reserved {
            let ahead = (self.size + RESERVE_AHEAD)
                .min(self.rotation.size)
                .max(stop);
            // Short of a megabyte of room: what this write needs will do.
            if reserve(file, self.size, ahead - self.size).is_ok() {
                self.reserved = ahead;
            } else {
                reserve(file, self.size, len)?;
                self.reserved = stop;
            }
        }
        let written = file.write(&buf[start..end])?;
        let whole = ends[..k].partition_point(|e| e - start <= written);
        let whole_bytes = if whole == 0 {
            0
        } else {
            ends[whole - 1] - start
        };
        // A short write all the same (a filesystem without `fallocate`): keep its whole
        // lines, cut the rest off.
        if whole_bytes < written {
            file.set_len(self.size + whole_bytes as u64)?;
        }
        self.size += whole_bytes as u64;
        if whole == 0 {
            return Err(io::Error::from_raw_os_error(libc::ENOSPC));
        }
        Ok(whole)
    }

    fn fail(&mut self, e: &io::Error) {
        let msg = e.to_string();
        if self.error.as_deref() != Some(msg.as_str()) {
            eprintln!("sysmon: {}: {msg}; events wait", self.path.display());
            self.error = Some(msg);
        }
    }

    /// An external logrotate renamed the file, or someone removed it: the next line goes
    /// to a new one at the path, and the old one is closed, so its space comes back.
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
        if let Some(dir) = self.path.parent().filter(|d| !d.exists()) {
            fs::create_dir_all(dir)?;
            // The daemon's umask is 077: set the mode the directory is meant to have.
            fs::set_permissions(dir, fs::Permissions::from_mode(0o750))?;
            chown(dir, self.gid)?;
        }
        let mut options = OpenOptions::new();
        options.read(true).append(true).mode(0o640);
        let file = match options.clone().create_new(true).open(&self.path) {
            Ok(f) => {
                f.set_permissions(fs::Permissions::from_mode(0o640))?;
                chown(&self.path, self.gid)?;
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

impl Drop for LogFile {
    fn drop(&mut self) {
        if let Some(f) = &mut self.file {
            let _ = f.flush();
        }
        self.close();
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
    // SAFETY: a plain syscall on a descriptor `file` keeps open.
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

/// Group `adm` (log readers on Debian and Ubuntu), else root's. Asked once at start (NSS
/// may take seconds), not at every open.
pub fn adm_gid() -> libc::gid_t {
    let mut grp: libc::group = unsafe { std::mem::zeroed() };
    let mut buf = vec![0 as libc::c_char; 16 * 1024];
    let mut out: *mut libc::group = std::ptr::null_mut();
    // SAFETY: `grp` and `buf` outlive the call, which writes at most `buf.len()` bytes
    // into `buf` and points `out` at `grp` (or leaves it null).
    let rc = unsafe {
        libc::getgrnam_r(
            c"adm".as_ptr(),
            &mut grp,
            buf.as_mut_ptr(),
            buf.len(),
            &mut out,
        )
    };
    if rc != 0 || out.is_null() {
        0
    } else {
        grp.gr_gid
    }
}

fn chown(path: &Path, gid: libc::gid_t) -> io::Result<()> {
    let c = CString::new(path.as_os_str().as_bytes()).map_err(io::Error::other)?;
    // SAFETY: `c` is a NUL-terminated path that lives through the call.
    if unsafe { libc::chown(c.as_ptr(), 0, gid) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn dir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("sysmon-file-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        d
    }

    fn read(p: &Path) -> String {
        fs::read_to_string(p).unwrap_or_default()
    }

    fn rotation(size: u64, keep: u32) -> Rotation {
        Rotation { size, keep }
    }

    /// The file as its writer thread has it, opened as at start.
    fn log_file(path: &Path, rotation: Rotation) -> LogFile {
        let mut f = LogFile {
            path: path.to_owned(),
            rotation,
            gid: adm_gid(),
            file: None,
            id: (0, 0),
            size: 0,
            reserved: 0,
            error: None,
        };
        f.idle();
        f
    }

    /// Writes `lines` (each gets its `\n`) as the writer thread would, to the end or the
    /// first error.
    fn put(f: &mut LogFile, lines: &[&[u8]]) -> io::Result<()> {
        let (mut buf, mut ends) = (Vec::new(), Vec::new());
        for l in lines {
            buf.extend_from_slice(l);
            buf.push(b'\n');
            ends.push(buf.len());
        }
        let mut done = 0;
        while done < ends.len() {
            let start = if done == 0 { 0 } else { ends[done - 1] };
            done += f.write(&buf, start, &ends[done..])?;
        }
        Ok(())
    }

    fn soon() -> Instant {
        Instant::now() + Duration::from_secs(10)
    }

    #[test]
    fn creates_with_modes_and_appends_whole_lines() {
        let d = dir("modes");
        let path = d.join("sub/e.json");
        let mut s = FileSink::new(&path, rotation(1 << 20, 2), adm_gid());
        s.push(b"one");
        s.push(b"two\n");
        assert!(s.written(), "nothing handed over yet");
        assert_eq!(read(&path), "", "nothing before the end of the batch");
        s.flush();
        assert!(s.wait_written(soon()));
        assert_eq!(read(&path), "one\ntwo\n");
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o640);
        assert_eq!(mode(path.parent().unwrap()), 0o750);
        assert_eq!(fs::metadata(&path).unwrap().gid(), adm_gid());
        assert_eq!(s.stop(soon()), 0);
        fs::remove_dir_all(&d).unwrap();
    }

    /// Blocks are reserved a megabyte ahead (one `fallocate` for many batches), and what
    /// was not written is given back when the file is closed or rotated.
    #[test]
    fn reserves_ahead_and_gives_back_at_close() {
        let d = dir("reserve");
        let path = d.join("e.json");
        let allocated = |p: &Path| fs::metadata(p).unwrap().blocks() * 512;
        let mut f = log_file(&path, rotation(8 << 20, 1));
        put(&mut f, &[b"one"]).unwrap();
        assert!(
            allocated(&path) >= RESERVE_AHEAD,
            "{} bytes",
            allocated(&path)
        );
        drop(f);
        assert!(allocated(&path) < 64 << 10, "{} bytes", allocated(&path));
        assert_eq!(read(&path), "one\n");
        // Never past the rotation size, and the rotated file gives its blocks back.
        let line = [b'x'; 998];
        let mut f = log_file(&path, rotation(6000, 1));
        for _ in 0..7 {
            put(&mut f, &[&line]).unwrap();
        }
        assert!(allocated(&path) < 64 << 10, "{} bytes", allocated(&path));
        let rotated = d.join("e.json.1");
        assert!(
            allocated(&rotated) < 64 << 10,
            "{} bytes",
            allocated(&rotated)
        );
        drop(f);
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
            let mut f = log_file(&path, rotation(1 << 30, 1));
            assert_eq!(read(&path), after);
            put(&mut f, &[b"next"]).unwrap();
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
        let mut f = log_file(&path, rotation(100, 3));
        let lines: Vec<String> = (0..60).map(|i| format!("line-{i:04}")).collect();
        for batch in lines.chunks(7) {
            let batch: Vec<&[u8]> = batch.iter().map(|l| l.as_bytes()).collect();
            put(&mut f, &batch).unwrap();
        }
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
        assert_eq!(all, lines[60 - all.len()..]);
        fs::remove_dir_all(&d).unwrap();
    }

    /// logrotate renames the file, or someone removes it: the writer lets go of it (the
    /// next write, or its idle check while nothing comes or the disk is full) and a new
    /// file is started at the path.
    #[test]
    fn lets_go_of_a_moved_or_removed_file() {
        let d = dir("moved");
        let path = d.join("e.xml");
        let mut f = log_file(&path, rotation(1 << 20, 1));
        put(&mut f, &[b"before"]).unwrap();
        fs::rename(&path, d.join("e.xml.old")).unwrap();
        put(&mut f, &[b"after"]).unwrap();
        assert_eq!(read(&d.join("e.xml.old")), "before\n");
        assert_eq!(read(&path), "after\n");
        // Removed: at the idle check the old file is closed (no descriptor of ours names a
        // deleted file) and a new one exists at once.
        let open_deleted = || {
            fs::read_dir("/proc/self/fd").unwrap().any(|e| {
                fs::read_link(e.unwrap().path())
                    .is_ok_and(|t| t.to_string_lossy().contains("e.xml (deleted)"))
            })
        };
        fs::remove_file(&path).unwrap();
        assert!(open_deleted());
        f.idle();
        assert!(!open_deleted(), "the removed file is still open");
        assert!(path.exists(), "no new file at the path");
        put(&mut f, &[b"new"]).unwrap();
        assert_eq!(read(&path), "new\n");
        fs::remove_dir_all(&d).unwrap();
    }

    /// Unwritable: the reader side never waits, lines wait up to the bound, the newest are
    /// counted as dropped; once writable, what waited is written in order.
    #[test]
    fn bounded_while_unwritable() {
        let d = dir("full");
        let path = d.join("e.json");
        fs::create_dir_all(&path).unwrap(); // a directory where the file should be
        let mut s = FileSink::new(&path, rotation(1 << 30, 1), adm_gid());
        // Three times what may wait: at most as much again is in the writer's hands.
        let fit = QUEUE_MAX_BYTES / 1024;
        let total = 3 * fit;
        for i in 0..total {
            s.push(format!("{i:07}-{}", "x".repeat(1015)).as_bytes());
            s.flush();
        }
        assert!(!s.caught_up());
        let dropped = s.take_dropped() as usize;
        assert!(dropped >= total - 2 * fit, "{dropped} dropped");
        fs::remove_dir(&path).unwrap();
        assert!(s.wait_written(soon()), "written once writable");
        let text = read(&path);
        let kept: Vec<usize> = text.lines().map(|l| l[..7].parse().unwrap()).collect();
        assert_eq!(kept.len(), total - dropped);
        // The oldest fill the queue first; later ones fit again once the writer took them
        // in hand. In order, each once.
        assert_eq!(kept[..fit], (0..fit).collect::<Vec<_>>());
        assert!(kept.windows(2).all(|w| w[0] < w[1]), "in order");
        assert!(s.caught_up());
        fs::remove_dir_all(&d).unwrap();
    }
}
