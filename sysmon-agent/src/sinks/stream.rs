//! Syslog over the stream socket of our rsyslog input (`/run/sysmon-syslog.sock`, the
//! `imptcp` input that `sysmon -i` installs): a whole batch of events in one write, as
//! octet-counted frames (RFC 6587 `LEN SP MSG`), so that no byte of an event can break the
//! framing.
//!
//! At least once across rsyslogd restarts, as on the datagram socket (`delivery`). rsyslog
//! acknowledges nothing, but the kernel says how much of what we wrote the reader has not
//! consumed: on a unix stream socket, SIOCOUTQ is the memory of our buffers still queued at
//! the reader, each at least its payload. So of the bytes written before, all but that many
//! were read. A reader that dies frees what it had not read, and the count drops too; but it
//! first marks the connection dead, so a count taken before a write (or a check of the
//! connection) that succeeds is a count of reads. And a reader that closes the connection
//! with bytes unread resets it, where one that had read everything just ends it. What is not
//! known read is kept and written again, from the start of its frame, on the next
//! connection: a frame the old daemon read just before it died then appears twice, the same
//! bytes (same EventRecordID).
//!
//! The socket is non-blocking, so is the connect: the reader thread never waits for
//! rsyslogd. While it is slower than the events, frames wait here (bounded, like the
//! datagrams) and go out when the socket is writable again.

use std::{
    collections::VecDeque,
    io,
    os::{
        fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd},
        unix::ffi::OsStrExt,
    },
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use super::delivery::{BUSY_MAX_MESSAGES, QUEUE_MAX_BYTES, QUEUE_MAX_MESSAGES, TYPICAL_BYTES};

/// How often to try to connect again while the socket is away.
const RETRY: Duration = Duration::from_millis(100);
/// While the reader is slow: the event loop waits for the socket to be writable; this is
/// only the safety net.
const RETRY_BUSY: Duration = Duration::from_millis(20);
/// Confirmed bytes at the front are given back to the allocator past this much.
const COMPACT_AT: usize = 1 << 20;

pub struct Stream {
    path: PathBuf,
    sock: Option<OwnedFd>,
    /// Frames not known read, back to back from `head`: `buf[head..head + written]` went
    /// out on the current connection, the rest waits.
    buf: Vec<u8>,
    head: usize,
    written: usize,
    /// The length of every frame in `buf[head..]`, oldest first.
    frames: VecDeque<usize>,
    /// Frames at the front of `frames` that were written whole, and their bytes.
    whole: usize,
    whole_bytes: usize,
    /// The reader is there, but our socket buffer was full at the last write.
    busy: bool,
    next_retry: Instant,
    /// When the connection was lost (or never made); `None` while connected.
    away_since: Option<Instant>,
    /// Counts connections, so a watcher of the socket knows when it was replaced.
    generation: u64,
    dropped: u64,
    /// Frames written again after the reader died (some may have been read).
    pub resent: u64,
    pub failed: u64,
}

impl Stream {
    /// A stream to `path`, connected now if the socket takes it.
    pub fn new(path: &Path) -> Self {
        let mut s = Stream {
            path: path.to_owned(),
            sock: None,
            buf: Vec::new(),
            head: 0,
            written: 0,
            frames: VecDeque::new(),
            whole: 0,
            whole_bytes: 0,
            busy: false,
            next_retry: Instant::now(),
            away_since: Some(Instant::now()),
            generation: 0,
            dropped: 0,
            resent: 0,
            failed: 0,
        };
        let _ = s.connect();
        s
    }

    pub fn connected(&self) -> bool {
        self.sock.is_some()
    }

    /// How long the socket has been away (zero while connected).
    pub fn away_for(&self) -> Duration {
        self.away_since.map_or(Duration::ZERO, |t| t.elapsed())
    }

    /// Queues the frames `batch[ends[i-1]..ends[i]]` behind what waits and writes what it
    /// can, in one write while the reader keeps up. Frames past the queue's bounds are
    /// dropped (counted).
    pub fn send_batch(&mut self, batch: &[u8], ends: &[usize]) {
        let mut start = 0;
        let mut taken = 0;
        for &end in ends {
            if self.pending() >= QUEUE_MAX_MESSAGES || self.waiting_bytes() + end > QUEUE_MAX_BYTES
            {
                break;
            }
            self.frames.push_back(end - start);
            taken = end;
            start = end;
        }
        let lost = ends.iter().filter(|&&e| e > taken).count() as u64;
        self.dropped += lost;
        self.failed += lost;
        self.buf.extend_from_slice(&batch[..taken]);
        self.retry();
    }

    /// Writes what waits; true when nothing waits any more.
    pub fn retry(&mut self) -> bool {
        self.busy = false;
        // A connection that breaks at once is not tried again before the next retry.
        let mut connects = 0;
        while self.written < self.buf.len() - self.head {
            if self.sock.is_none() {
                if connects > 0 || Instant::now() < self.next_retry || self.connect().is_err() {
                    self.next_retry = self.next_retry.max(Instant::now() + RETRY);
                    return false;
                }
                connects += 1;
            }
            let sock = self.sock.as_ref().unwrap().as_raw_fd();
            let unread = (self.written > 0).then(|| unread_bytes(sock)).flatten();
            let out = &self.buf[self.head + self.written..];
            // SAFETY: `out` is a live slice for the length given.
            let n = unsafe {
                libc::send(
                    sock,
                    out.as_ptr().cast(),
                    out.len(),
                    libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT,
                )
            };
            if n >= 0 {
                let before = self.written;
                self.wrote(n as usize);
                // The write went through on a live connection: what the count said was
                // consumed before it was read.
                if let Some(unread) = unread {
                    self.confirm(before.saturating_sub(unread));
                }
                continue;
            }
            match io::Error::last_os_error().kind() {
                io::ErrorKind::Interrupted => {}
                io::ErrorKind::WouldBlock => {
                    self.busy = true;
                    self.next_retry = Instant::now() + RETRY_BUSY;
                    return false;
                }
                // Gone (EPIPE, ECONNRESET): a restarted daemon may already listen.
                _ => self.closed(),
            }
        }
        self.compact();
        true
    }

    /// Confirms what the reader consumed while no write went (once a second): the count,
    /// then a look at the connection, which a dead reader would have closed first. A closed
    /// connection is noticed here too, and what it had not read goes out again.
    pub fn check(&mut self) {
        let Some(sock) = self.sock.as_ref().map(|s| s.as_raw_fd()) else {
            return;
        };
        let unread = unread_bytes(sock);
        match peer(sock) {
            Peer::There => {
                if let Some(unread) = unread {
                    self.confirm(self.written.saturating_sub(unread));
                    self.compact();
                }
            }
            _ => {
                self.closed();
                self.retry();
            }
        }
    }

    /// Frames not yet written (a frame written in part counts).
    pub fn pending(&self) -> usize {
        self.frames.len() - self.whole
    }

    /// Gives up on every frame that waits (counted as dropped); returns how many. A frame
    /// written in part stays: the reader would take the next frame's start as its rest.
    pub fn discard(&mut self) -> usize {
        let keep = self.whole + usize::from(self.written > self.whole_bytes);
        let bytes: usize = self.frames.iter().take(keep).sum();
        let n = self.frames.len() - keep;
        self.frames.truncate(keep);
        self.buf.truncate(self.head + bytes);
        self.dropped += n as u64;
        self.failed += n as u64;
        n
    }

    /// Every frame not known read (written or not), oldest first, leaving none: for the
    /// datagram socket, when this one is gone for good.
    pub fn take_all(&mut self) -> Vec<Vec<u8>> {
        self.resent += self.whole as u64;
        let mut at = self.head;
        let out = self
            .frames
            .drain(..)
            .map(|len| {
                at += len;
                self.buf[at - len..at].to_vec()
            })
            .collect();
        self.buf.clear();
        self.head = 0;
        self.written = 0;
        self.whole = 0;
        self.whole_bytes = 0;
        out
    }

    /// When to try again, if frames wait.
    pub fn retry_at(&self) -> Option<Instant> {
        (self.pending() > 0).then_some(self.next_retry)
    }

    /// Whether `n` more frames fit in what may wait: while the reader is there but slow, a
    /// smaller bound, so that records wait in the kernel's ring instead of in memory.
    pub fn room_for(&self, n: usize) -> bool {
        let max = if self.busy {
            BUSY_MAX_MESSAGES
        } else {
            QUEUE_MAX_MESSAGES
        };
        self.pending() + n <= max && self.waiting_bytes() + n * TYPICAL_BYTES <= QUEUE_MAX_BYTES
    }

    /// While frames wait for a reader that is slower than us: the socket (and its connection
    /// count), to wait until it is writable.
    pub fn busy_fd(&self) -> Option<(u64, BorrowedFd<'_>)> {
        if !self.busy {
            return None;
        }
        Some((self.generation, self.sock.as_ref()?.as_fd()))
    }

    /// Frames dropped since the last call.
    pub fn take_dropped(&mut self) -> u64 {
        std::mem::take(&mut self.dropped)
    }

    fn waiting_bytes(&self) -> usize {
        self.buf.len() - self.head - self.written
    }

    /// `n` more bytes went out.
    fn wrote(&mut self, n: usize) {
        self.written += n;
        while let Some(&len) = self.frames.get(self.whole)
            && self.whole_bytes + len <= self.written
        {
            self.whole_bytes += len;
            self.whole += 1;
        }
    }

    /// The first `read` bytes were read: their whole frames are done.
    fn confirm(&mut self, mut read: usize) {
        while self.whole > 0
            && let Some(&len) = self.frames.front()
            && len <= read
        {
            self.frames.pop_front();
            self.whole -= 1;
            self.whole_bytes -= len;
            self.head += len;
            self.written -= len;
            read -= len;
        }
    }

    /// The reader closed the connection. The kernel tells how: a reader that closes with
    /// bytes unread in its queue resets the connection (ECONNRESET), one that had read
    /// everything just ends it (end of file), and then every whole frame written was read.
    fn closed(&mut self) {
        if let Some(sock) = &self.sock
            && peer(sock.as_raw_fd()) == Peer::Ended
        {
            self.confirm(self.written);
        }
        self.lost();
    }

    /// The connection broke: everything not known read goes out again on the next one.
    fn lost(&mut self) {
        self.sock = None;
        self.resent += self.whole as u64;
        self.written = 0;
        self.whole = 0;
        self.whole_bytes = 0;
        self.away_since.get_or_insert_with(Instant::now);
        self.next_retry = Instant::now();
    }

    fn compact(&mut self) {
        if self.head == self.buf.len() {
            self.buf.clear();
            self.head = 0;
            if self.buf.capacity() > 4 * COMPACT_AT {
                self.buf.shrink_to(COMPACT_AT);
            }
        } else if self.head >= COMPACT_AT {
            self.buf.drain(..self.head);
            self.head = 0;
        }
    }

    fn connect(&mut self) -> io::Result<()> {
        self.sock = None;
        let sock = connect_nonblocking(&self.path)?;
        self.sock = Some(sock);
        self.away_since = None;
        self.generation += 1;
        Ok(())
    }
}

/// A non-blocking unix stream connection: a listener whose backlog is full refuses
/// (EAGAIN) instead of making us wait.
fn connect_nonblocking(path: &Path) -> io::Result<OwnedFd> {
    // SAFETY: a plain syscall; the fd is owned at once.
    let fd = unsafe {
        libc::socket(
            libc::AF_UNIX,
            libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a new descriptor that nothing else owns.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: a zeroed sockaddr_un is valid; the path is copied in below, bounded.
    let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
    let bytes = path.as_os_str().as_bytes();
    if bytes.len() >= addr.sun_path.len() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "socket path too long",
        ));
    }
    for (d, s) in addr.sun_path.iter_mut().zip(bytes) {
        *d = *s as libc::c_char;
    }
    let len = std::mem::offset_of!(libc::sockaddr_un, sun_path) + bytes.len() + 1;
    // SAFETY: `addr` is a valid sockaddr_un of at least `len` bytes.
    let r = unsafe {
        libc::connect(
            sock.as_raw_fd(),
            (&raw const addr).cast(),
            len as libc::socklen_t,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(sock)
}

#[derive(PartialEq, Eq)]
enum Peer {
    There,
    /// Closed after reading everything.
    Ended,
    /// Closed with bytes unread, or the connection failed.
    Reset,
}

/// A look at the other end, without reading (rsyslogd never writes to us).
fn peer(fd: i32) -> Peer {
    let mut byte = 0u8;
    // SAFETY: a one-byte buffer; MSG_PEEK leaves anything there in place.
    let n = unsafe {
        libc::recv(
            fd,
            (&raw mut byte).cast(),
            1,
            libc::MSG_PEEK | libc::MSG_DONTWAIT,
        )
    };
    match n {
        1.. => Peer::There,
        0 => Peer::Ended,
        _ if io::Error::last_os_error().kind() == io::ErrorKind::WouldBlock => Peer::There,
        _ => Peer::Reset,
    }
}

/// Memory of what we sent on this socket that the reader has not consumed (SIOCOUTQ), at
/// least the bytes it holds.
fn unread_bytes(fd: i32) -> Option<usize> {
    let mut n: libc::c_int = 0;
    // SAFETY: TIOCOUTQ writes one int.
    let r = unsafe { libc::ioctl(fd, libc::TIOCOUTQ, &mut n) };
    (r == 0 && n >= 0).then_some(n as usize)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::os::unix::net::{UnixListener, UnixStream};

    fn socket_dir(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("sysmon-stream-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let _ = std::fs::remove_file(dir.join("s.sock"));
        dir
    }

    /// `msgs` as octet-counted frames, and where each ends.
    fn frames<S: AsRef<str>>(msgs: &[S]) -> (Vec<u8>, Vec<usize>) {
        let mut buf = Vec::new();
        let mut ends = Vec::new();
        for m in msgs {
            let m = m.as_ref();
            buf.extend_from_slice(format!("{} {m}", m.len()).as_bytes());
            ends.push(buf.len());
        }
        (buf, ends)
    }

    /// Appends everything readable now on `conn` to `bytes`.
    fn read_now(conn: &mut UnixStream, bytes: &mut Vec<u8>) {
        conn.set_nonblocking(true).unwrap();
        let mut buf = vec![0u8; 1 << 16];
        while let Ok(n @ 1..) = conn.read(&mut buf) {
            bytes.extend_from_slice(&buf[..n]);
        }
    }

    /// Octet-counted frames back into messages.
    fn unframe(mut rest: &[u8]) -> Vec<String> {
        let mut out = Vec::new();
        while let Some(sp) = rest.iter().position(|b| *b == b' ') {
            let len: usize = std::str::from_utf8(&rest[..sp]).unwrap().parse().unwrap();
            out.push(String::from_utf8_lossy(&rest[sp + 1..sp + 1 + len]).into_owned());
            rest = &rest[sp + 1 + len..];
        }
        out
    }

    fn read_frames(conn: &mut UnixStream) -> Vec<String> {
        let mut bytes = Vec::new();
        read_now(conn, &mut bytes);
        unframe(&bytes)
    }

    /// What the reader read is confirmed and not sent again; what a reader that died had not
    /// read goes to the next one, first, then the rest in order.
    #[test]
    fn resends_only_what_a_dead_reader_had_not_read() {
        let dir = socket_dir("resend");
        let path = dir.join("s.sock");
        let listener = UnixListener::bind(&path).unwrap();
        let mut s = Stream::new(&path);
        let (mut first, _) = listener.accept().unwrap();
        let (b, e) = frames(&["one", "two"]);
        s.send_batch(&b, &e);
        assert_eq!(read_frames(&mut first), ["one", "two"]);
        // The next write confirms them (nothing unread before it).
        let (b, e) = frames(&["three"]);
        s.send_batch(&b, &e);
        assert_eq!(
            (s.frames.len(), s.pending()),
            (1, 0),
            "only three unconfirmed"
        );
        // The reader dies without reading "three".
        drop(first);
        drop(listener);
        std::fs::remove_file(&path).unwrap();
        let (b, e) = frames(&["four"]);
        s.send_batch(&b, &e);
        assert!(!s.connected());
        assert_eq!(s.pending(), 2, "three and four wait");
        let listener = UnixListener::bind(&path).unwrap();
        s.next_retry = Instant::now();
        assert!(s.retry());
        let (mut second, _) = listener.accept().unwrap();
        assert_eq!(read_frames(&mut second), ["three", "four"]);
        assert_eq!((s.resent, s.failed), (1, 0));
        // Read, then confirmed by the once-a-second check: a reader that dies now costs no
        // resend.
        s.check();
        assert_eq!(s.frames.len(), 0);
        drop(second);
        s.check();
        assert!(!s.connected(), "the check notices a closed connection");
        // A reader that read everything and then closed (a clean rsyslogd stop): the write
        // that meets the closed connection resends nothing.
        let (mut third, _) = {
            s.next_retry = Instant::now();
            let (b, e) = frames(&["five"]);
            s.send_batch(&b, &e);
            listener.accept().unwrap()
        };
        assert_eq!(read_frames(&mut third), ["five"]);
        drop(third);
        let (b, e) = frames(&["six"]);
        s.send_batch(&b, &e);
        let (mut fourth, _) = listener.accept().unwrap();
        assert_eq!(read_frames(&mut fourth), ["six"]);
        assert_eq!((s.resent, s.failed), (1, 0));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A reader that does not read: the socket fills, a write goes out in part, frames wait
    /// without blocking us, and all arrive once, in order, as it reads.
    #[test]
    fn a_slow_reader_gets_everything_in_order() {
        let dir = socket_dir("slow");
        let path = dir.join("s.sock");
        let listener = UnixListener::bind(&path).unwrap();
        let mut s = Stream::new(&path);
        let (mut conn, _) = listener.accept().unwrap();
        let msgs: Vec<String> = (0..20_000)
            .map(|i| format!("message {i:05} {}", "x".repeat(100)))
            .collect();
        for chunk in msgs.chunks(1000) {
            let (b, e) = frames(chunk);
            s.send_batch(&b, &e);
        }
        assert!(s.pending() > 0, "the socket should have filled");
        assert!(s.busy_fd().is_some());
        let mut bytes = Vec::new();
        loop {
            read_now(&mut conn, &mut bytes);
            if s.retry() {
                break;
            }
        }
        read_now(&mut conn, &mut bytes);
        assert_eq!(unframe(&bytes), msgs);
        assert_eq!((s.take_dropped(), s.failed, s.resent), (0, 0, 0));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// Away for good: frames wait up to the bound, the rest is counted; so is a discard.
    #[test]
    fn bounded_and_counted() {
        let mut s = Stream::new(Path::new("/nonexistent/s.sock"));
        assert!(!s.connected());
        let (b, e) = frames(&["x"; 1000]);
        for _ in 0..QUEUE_MAX_MESSAGES / 1000 {
            s.send_batch(&b, &e);
        }
        s.send_batch(&b, &e[..3]);
        assert_eq!(s.pending(), QUEUE_MAX_MESSAGES);
        assert_eq!(s.take_dropped(), 3);
        assert_eq!(s.discard(), QUEUE_MAX_MESSAGES);
        assert_eq!((s.pending(), s.failed), (0, QUEUE_MAX_MESSAGES as u64 + 3));
        assert!(s.take_all().is_empty());
    }
}
