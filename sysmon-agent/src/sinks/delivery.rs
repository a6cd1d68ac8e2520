//! Getting datagrams to the syslog daemon across its restarts without losing any silently.
//!
//! The socket is non-blocking: the agent's reader thread never waits for the daemon. When
//! the daemon's queue is full (busy or stuck), messages wait in our queue like when it is
//! away, and go out as soon as it reads again.
//!
//! Two ways to lose a message, two remedies:
//! - the daemon is away (socket missing, refused, busy, stuck): messages wait in a bounded
//!   queue, oldest first, and are resent in order when it is back; what does not fit is
//!   counted.
//! - the daemon exits with messages still in its socket's receive queue: the kernel frees
//!   them, and a datagram sender is not told. So the last messages sent are kept until they
//!   are known to be read: the socket's output count (SIOCOUTQ: bytes sent and not yet read)
//!   at 0 means everything before was read, or freed by a dying reader; a send after that
//!   on the same socket succeeding rules out the second. When a send finds the reader gone,
//!   the messages not known to be read are sent again first (one the old daemon read just
//!   before it died can then appear twice, with the same EventRecordID).

use std::{
    collections::VecDeque,
    io,
    os::{fd::AsRawFd, unix::net::UnixDatagram},
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

/// Bound of the wait queue, so that a syslog that never comes back cannot eat the memory.
pub const QUEUE_MAX_BYTES: usize = 64 << 20;
pub const QUEUE_MAX_MESSAGES: usize = 200_000;
/// How often to try again while syslog is away (each try is a syscall).
const RETRY: Duration = Duration::from_millis(100);
/// ... and while its queue is full (it is reading, just slower than we send). A few
/// messages left over from a batch wait this long, so that they go out together.
const RETRY_BUSY: Duration = Duration::from_millis(2);
/// From this many waiting on a busy reader (a storm), the event loop also waits for the
/// socket to be writable (`busy_fd`) and sends as soon as the reader has read: as fast as
/// it reads, at the price of a wake-up per few messages, which a small backlog is not
/// worth.
const BACKLOG: usize = 256;
/// While syslog reads, only slower than events come, at most this many wait in memory:
/// records then wait in the kernel's ring buffer (which counts what it cannot hold), so
/// the agent's memory stays flat. The larger bounds are for syslog being away (restarts).
pub const BUSY_MAX_MESSAGES: usize = 8192;
/// The size of an event, to guess what a number of them needs.
pub const TYPICAL_BYTES: usize = 4096;
/// Spare buffers kept for reuse; more are freed (a burst does not hold memory forever).
const SPARE_MAX: usize = 1024;
/// Ask the socket whether everything was read every this many sends or this often,
/// whichever comes first: rarely at high rates, at every send at low ones.
const CHECK_EVERY: u32 = 64;
const CHECK_AFTER: Duration = Duration::from_millis(10);
/// Messages per sendmmsg at most.
const MANY_MAX: usize = 256;
/// A reader's queue holds at most `net.unix.max_dgram_qlen` (+1) datagrams; keeping more
/// unconfirmed messages than that would only resend ones it had read.
const UNCONFIRMED_MAX: usize = 4096;

pub struct Delivery {
    path: PathBuf,
    sock: Option<UnixDatagram>,
    queue: VecDeque<Vec<u8>>,
    queued_bytes: usize,
    /// Sent on the current socket, not yet known to be read; oldest first.
    unconfirmed: VecDeque<Vec<u8>>,
    unconfirmed_max: usize,
    /// Buffers to reuse, so that keeping copies costs no allocation per message.
    spare: Vec<Vec<u8>>,
    /// sendmmsg's arguments, kept from call to call (no allocation per batch).
    many: Many,
    sends_since_check: u32,
    last_check: Instant,
    next_retry: Instant,
    /// The reader is there but its queue was full at the last try.
    busy: bool,
    /// Counts connections, so a watcher of the socket knows when it was replaced.
    generation: u64,
    dropped: u64,
    /// Messages sent again after the reader died (some may have been read).
    pub resent: u64,
    pub failed: u64,
}

impl Delivery {
    pub fn new(path: &Path) -> Self {
        let qlen = std::fs::read_to_string("/proc/sys/net/unix/max_dgram_qlen")
            .ok()
            .and_then(|s| s.trim().parse::<usize>().ok())
            .unwrap_or(512);
        let mut d = Delivery {
            path: path.to_owned(),
            sock: None,
            queue: VecDeque::new(),
            queued_bytes: 0,
            unconfirmed: VecDeque::new(),
            unconfirmed_max: (qlen + 1).min(UNCONFIRMED_MAX),
            spare: Vec::new(),
            many: Many::default(),
            sends_since_check: 0,
            last_check: Instant::now(),
            next_retry: Instant::now(),
            busy: false,
            generation: 0,
            dropped: 0,
            resent: 0,
            failed: 0,
        };
        let _ = d.connect();
        d
    }

    /// Sends one message, or queues it behind those waiting; Err says it could not go now.
    pub fn send(&mut self, msg: &[u8]) -> io::Result<()> {
        if self.queue.is_empty() {
            match self.transmit(msg) {
                Ok(()) => return Ok(()),
                Err(e) if too_big(&e) => {
                    self.drop_one();
                    return Err(e);
                }
                Err(e) if busy(&e) => {
                    // The reader is alive: nothing to resend, this one waits its turn.
                    let buf = self.copy(msg);
                    self.enqueue_back(buf);
                    self.next_retry = Instant::now() + RETRY_BUSY;
                    self.busy = true;
                }
                Err(_) => {
                    let buf = self.copy(msg);
                    self.enqueue_back(buf);
                    self.requeue_unconfirmed();
                    // The daemon may simply have restarted: try its new socket now.
                    self.retry();
                }
            }
        } else {
            // Order matters: while older messages wait, this one waits behind them.
            let buf = self.copy(msg);
            self.enqueue_back(buf);
            if Instant::now() >= self.next_retry {
                self.retry();
            }
        }
        if self.queue.is_empty() {
            Ok(())
        } else {
            Err(io::ErrorKind::NotConnected.into())
        }
    }

    /// Sends a batch of messages (`batch[ends[i-1]..ends[i]]`), in order: as few syscalls as
    /// possible (sendmmsg) while syslog takes them, the one-by-one path for the rest.
    pub fn send_batch(&mut self, batch: &[u8], ends: &[usize]) {
        let msg = |i: usize| &batch[if i == 0 { 0 } else { ends[i - 1] }..ends[i]];
        let sent = if self.queue.is_empty() {
            self.transmit_many(batch, ends)
        } else {
            0
        };
        for i in sent..ends.len() {
            let _ = self.send(msg(i));
        }
    }

    /// Sends messages from the start of the batch with sendmmsg; returns how many went. A
    /// failure stops it: the caller sends the rest one by one, which handles the failure.
    fn transmit_many(&mut self, batch: &[u8], ends: &[usize]) -> usize {
        if self.sock.is_none() && self.connect().is_err() {
            return 0;
        }
        let sock = self.sock.as_ref().unwrap();
        // Nothing unread means everything before was read, or freed by a dying reader: a
        // send that then succeeds on this socket rules out the second (see the module doc).
        let all_read = unread_bytes(sock) == Some(0);
        self.sends_since_check = 0;
        self.last_check = Instant::now();
        let mut start = 0;
        let msgs = ends.iter().map(|&end| {
            let m = &batch[start..end];
            start = end;
            m
        });
        let sent = self.many.send(sock, msgs);
        if sent > 0 && all_read {
            for m in self.unconfirmed.drain(..) {
                recycle(&mut self.spare, m);
            }
        }
        let mut start = 0;
        for &end in &ends[..sent] {
            if self.unconfirmed.len() >= self.unconfirmed_max {
                let old = self.unconfirmed.pop_front().unwrap();
                recycle(&mut self.spare, old);
            }
            let copy = self.copy(&batch[start..end]);
            self.unconfirmed.push_back(copy);
            start = end;
        }
        sent
    }

    /// Sends what waits, oldest first; true when nothing waits any more.
    pub fn retry(&mut self) -> bool {
        self.busy = false;
        while !self.queue.is_empty() {
            if self.queue.len() > 1 && self.retry_many() {
                continue;
            }
            // One by one: the first message, and the failure to handle.
            let Some(msg) = self.queue.pop_front() else {
                break;
            };
            self.queued_bytes -= msg.len();
            match self.transmit(&msg) {
                Ok(()) => recycle(&mut self.spare, msg),
                Err(e) if too_big(&e) => {
                    self.drop_one();
                    recycle(&mut self.spare, msg);
                }
                Err(e) if busy(&e) => {
                    self.queued_bytes += msg.len();
                    self.queue.push_front(msg);
                    self.next_retry = Instant::now() + RETRY_BUSY;
                    self.busy = true;
                    return false;
                }
                Err(_) => {
                    self.queued_bytes += msg.len();
                    self.queue.push_front(msg);
                    self.requeue_unconfirmed();
                    self.next_retry = Instant::now() + RETRY;
                    self.busy = false;
                    return false;
                }
            }
        }
        true
    }

    /// Sends the oldest waiting messages with one sendmmsg (those sent move to the
    /// unconfirmed, without a copy); true if all of them went. False leaves the failure to
    /// the one-by-one path, which tells a full queue from a gone reader.
    fn retry_many(&mut self) -> bool {
        let Some(sock) = self.sock.as_ref() else {
            return false;
        };
        // As for one send: the socket is asked rarely at high rates.
        let check =
            self.sends_since_check >= CHECK_EVERY || self.last_check.elapsed() >= CHECK_AFTER;
        let all_read = check && unread_bytes(sock) == Some(0);
        let offered = self.queue.len().min(MANY_MAX);
        let sent = self
            .many
            .send(sock, self.queue.iter().take(MANY_MAX).map(|m| m.as_slice()));
        if sent == 0 {
            return false;
        }
        if check {
            self.sends_since_check = 0;
            self.last_check = Instant::now();
        } else {
            self.sends_since_check += sent as u32;
        }
        if all_read {
            for m in self.unconfirmed.drain(..) {
                recycle(&mut self.spare, m);
            }
        }
        for msg in self.queue.drain(..sent) {
            self.queued_bytes -= msg.len();
            if self.unconfirmed.len() >= self.unconfirmed_max {
                let old = self.unconfirmed.pop_front().unwrap();
                recycle(&mut self.spare, old);
            }
            self.unconfirmed.push_back(msg);
        }
        sent == offered
    }

    pub fn pending(&self) -> usize {
        self.queue.len()
    }

    /// Gives up on every message that waits (counted as dropped); returns how many.
    pub fn discard(&mut self) -> usize {
        let n = self.queue.len();
        for m in self.queue.drain(..) {
            recycle(&mut self.spare, m);
        }
        self.queued_bytes = 0;
        self.dropped += n as u64;
        self.failed += n as u64;
        n
    }

    /// When to try again, if messages wait.
    pub fn retry_at(&self) -> Option<Instant> {
        (!self.queue.is_empty()).then_some(self.next_retry)
    }

    /// Whether `n` more messages (of a typical size) fit in the queue: the agent stops
    /// reading records while they would not, so that a storm the daemon cannot keep up with
    /// is dropped (and counted) in the kernel, per record kind.
    pub fn room_for(&self, n: usize) -> bool {
        let max = if self.busy {
            BUSY_MAX_MESSAGES
        } else {
            QUEUE_MAX_MESSAGES
        };
        self.queue.len() + n <= max && self.queued_bytes + n * TYPICAL_BYTES <= QUEUE_MAX_BYTES
    }

    /// While a backlog waits for a reader whose queue is full: the socket (and its
    /// connection count), to wait until it is writable again, when the reader has read.
    pub fn busy_fd(&self) -> Option<(u64, std::os::fd::BorrowedFd<'_>)> {
        use std::os::fd::AsFd;
        if !self.busy || self.queue.len() < BACKLOG {
            return None;
        }
        Some((self.generation, self.sock.as_ref()?.as_fd()))
    }

    /// Messages dropped since the last call.
    pub fn take_dropped(&mut self) -> u64 {
        std::mem::take(&mut self.dropped)
    }

    /// Every message that waits, and those sent but not known read (unless the socket
    /// says all were read), oldest first, leaving none: for the stream socket, which
    /// replaces this one.
    pub fn take_all(&mut self) -> Vec<Vec<u8>> {
        if self.sock.as_ref().and_then(unread_bytes) == Some(0) {
            self.unconfirmed.clear();
        }
        self.requeue_unconfirmed();
        self.queued_bytes = 0;
        self.busy = false;
        self.queue.drain(..).collect()
    }

    /// One datagram on the current socket (connecting first if there is none). On failure
    /// the socket is dropped: the next try connects again, to a restarted daemon's socket.
    fn transmit(&mut self, msg: &[u8]) -> io::Result<()> {
        if self.sock.is_none() {
            self.connect()?;
        }
        let sock = self.sock.as_ref().unwrap();
        let check =
            self.sends_since_check >= CHECK_EVERY || self.last_check.elapsed() >= CHECK_AFTER;
        let all_read = check && unread_bytes(sock) == Some(0);
        match sock.send(msg) {
            Ok(_) => {
                if check {
                    self.sends_since_check = 0;
                    self.last_check = Instant::now();
                } else {
                    self.sends_since_check += 1;
                }
                if all_read {
                    for m in self.unconfirmed.drain(..) {
                        recycle(&mut self.spare, m);
                    }
                }
                if self.unconfirmed.len() >= self.unconfirmed_max {
                    let old = self.unconfirmed.pop_front().unwrap();
                    recycle(&mut self.spare, old);
                }
                let copy = self.copy(msg);
                self.unconfirmed.push_back(copy);
                Ok(())
            }
            Err(e) if too_big(&e) || busy(&e) => Err(e),
            Err(e) => {
                self.sock = None;
                Err(e)
            }
        }
    }

    fn connect(&mut self) -> io::Result<()> {
        self.sock = None;
        let sock = UnixDatagram::unbound()?;
        sock.connect(&self.path)?;
        sock.set_nonblocking(true)?;
        self.sock = Some(sock);
        self.generation += 1;
        Ok(())
    }

    /// The reader went away: what it may not have read goes out again, before the rest.
    fn requeue_unconfirmed(&mut self) {
        while let Some(msg) = self.unconfirmed.pop_back() {
            self.resent += 1;
            self.queued_bytes += msg.len();
            self.queue.push_front(msg);
        }
    }

    fn enqueue_back(&mut self, msg: Vec<u8>) {
        if self.queue.len() >= QUEUE_MAX_MESSAGES || self.queued_bytes + msg.len() > QUEUE_MAX_BYTES
        {
            self.drop_one();
            recycle(&mut self.spare, msg);
            return;
        }
        self.queued_bytes += msg.len();
        self.queue.push_back(msg);
    }

    fn copy(&mut self, msg: &[u8]) -> Vec<u8> {
        let mut buf = self.spare.pop().unwrap_or_default();
        buf.clear();
        buf.extend_from_slice(msg);
        buf
    }

    fn drop_one(&mut self) {
        self.dropped += 1;
        self.failed += 1;
    }
}

/// Keeps `buf` for reuse unless enough are kept.
fn recycle(spare: &mut Vec<Vec<u8>>, buf: Vec<u8>) {
    if spare.len() < SPARE_MAX {
        spare.push(buf);
    }
}

/// sendmmsg's arguments, reused. They point into the messages only during `send`.
#[derive(Default)]
struct Many {
    iov: Vec<libc::iovec>,
    hdrs: Vec<libc::mmsghdr>,
}

impl Many {
    /// Sends `msgs` (at most `MANY_MAX`) in order, as separate datagrams, until one fails;
    /// returns how many went. sendmmsg stops short only at an error (which it does not
    /// return once one went): the caller's one-by-one path meets it again and handles it.
    fn send<'a>(&mut self, sock: &UnixDatagram, msgs: impl Iterator<Item = &'a [u8]>) -> usize {
        self.iov.clear();
        self.iov.extend(msgs.take(MANY_MAX).map(|m| libc::iovec {
            iov_base: m.as_ptr() as *mut libc::c_void,
            iov_len: m.len(),
        }));
        self.hdrs.clear();
        for v in &mut self.iov {
            // SAFETY: a zeroed msghdr is valid; only the iovec is set.
            let mut h: libc::mmsghdr = unsafe { std::mem::zeroed() };
            h.msg_hdr.msg_iov = v;
            h.msg_hdr.msg_iovlen = 1;
            self.hdrs.push(h);
        }
        let mut sent = 0;
        while sent < self.hdrs.len() {
            // SAFETY: the headers point at `iov`, which points at `msgs`, all alive here.
            let n = unsafe {
                libc::sendmmsg(
                    sock.as_raw_fd(),
                    self.hdrs[sent..].as_mut_ptr(),
                    (self.hdrs.len() - sent) as u32,
                    0,
                )
            };
            if n <= 0 {
                break;
            }
            let all = n as usize == self.hdrs.len() - sent;
            sent += n as usize;
            if !all {
                break;
            }
        }
        // No pointer outlives the messages.
        self.iov.clear();
        self.hdrs.clear();
        sent
    }
}

/// The daemon's queue is full: it is alive, the message can go later on this socket.
fn busy(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::WouldBlock
}

/// Bytes sent on this socket and not yet read by the receiver (SIOCOUTQ).
fn unread_bytes(sock: &UnixDatagram) -> Option<i32> {
    let mut n: libc::c_int = 0;
    let r = unsafe { libc::ioctl(sock.as_raw_fd(), libc::TIOCOUTQ, &mut n) };
    (r == 0).then_some(n)
}

/// A message the socket can never take: retrying is pointless.
fn too_big(e: &io::Error) -> bool {
    e.raw_os_error() == Some(libc::EMSGSIZE)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recv_all(sock: &UnixDatagram) -> Vec<String> {
        sock.set_nonblocking(true).unwrap();
        let mut out = Vec::new();
        let mut buf = vec![0u8; 65536];
        while let Ok(n) = sock.recv(&mut buf) {
            out.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
        out
    }

    fn socket_dir(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("sysmon-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let _ = std::fs::remove_file(dir.join("log.sock"));
        dir
    }

    /// Syslog away, then back at the same path (a restarted daemon): what waited arrives
    /// in order, before what came after.
    #[test]
    fn queues_while_away_and_resends_in_order() {
        let dir = socket_dir("away");
        let path = dir.join("log.sock");
        let first = UnixDatagram::bind(&path).unwrap();
        let mut d = Delivery::new(&path);
        d.send(b"a").unwrap();
        assert_eq!(recv_all(&first), ["a"]);
        // Let the read be noticed (the next send checks the socket).
        std::thread::sleep(CHECK_AFTER);
        d.send(b"a2").unwrap();
        assert_eq!(recv_all(&first), ["a2"]);
        drop(first);
        std::fs::remove_file(&path).unwrap();
        assert!(d.send(b"b").is_err());
        assert!(d.send(b"c").is_err());
        assert!(!d.retry());
        let second = UnixDatagram::bind(&path).unwrap();
        assert!(d.retry());
        d.send(b"d").unwrap();
        // "a" was confirmed read; "a2" was not yet, so it goes again, first.
        assert_eq!(recv_all(&second), ["a2", "b", "c", "d"]);
        assert_eq!((d.take_dropped(), d.failed), (0, 0));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A batch arrives in order as separate datagrams; unread ones are kept for a resend,
    /// and a batch while syslog is away waits behind what already waits.
    #[test]
    fn batches_keep_order_and_resend_guarantees() {
        let dir = socket_dir("batch");
        let path = dir.join("log.sock");
        let first = UnixDatagram::bind(&path).unwrap();
        let mut d = Delivery::new(&path);
        let (batch, ends) = (b"onetwothree".as_slice(), [3, 6, 11]);
        d.send_batch(batch, &ends);
        assert_eq!(recv_all(&first), ["one", "two", "three"]);
        d.send_batch(b"four", &[4]);
        drop(first); // "four" never read
        std::fs::remove_file(&path).unwrap();
        d.send_batch(b"fivesix", &[4, 7]);
        assert_eq!(d.pending(), 3, "four (unread), five, six wait");
        let second = UnixDatagram::bind(&path).unwrap();
        assert!(d.retry());
        let got = recv_all(&second);
        assert_eq!(got[got.len() - 3..], ["four", "five", "six"]);
        assert_eq!((d.take_dropped(), d.failed), (0, 0));
        // What a retry sent (one sendmmsg) is kept until read too: a reader that dies
        // without reading it gets it again.
        d.send_batch(b"seven", &[5]);
        drop(second);
        std::fs::remove_file(&path).unwrap();
        d.send_batch(b"eightnine", &[5, 9]);
        assert!(!d.retry());
        let third = UnixDatagram::bind(&path).unwrap();
        assert!(d.retry());
        d.send_batch(b"ten", &[3]);
        let got = recv_all(&third);
        assert_eq!(got[got.len() - 4..], ["seven", "eight", "nine", "ten"]);
        assert_eq!((d.take_dropped(), d.failed), (0, 0));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// The reader dies with messages unread in its queue: they are sent again.
    #[test]
    fn unread_messages_of_a_dead_reader_are_resent() {
        let dir = socket_dir("unread");
        let path = dir.join("log.sock");
        let first = UnixDatagram::bind(&path).unwrap();
        let mut d = Delivery::new(&path);
        d.send(b"1").unwrap();
        d.send(b"2").unwrap();
        drop(first); // never read: the kernel frees both
        std::fs::remove_file(&path).unwrap();
        let second = UnixDatagram::bind(&path).unwrap();
        d.send(b"3").unwrap();
        assert_eq!(recv_all(&second), ["1", "2", "3"]);
        assert_eq!(d.resent, 2);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A reader that stops reading (busy or stuck) does not block the sender: what its
    /// queue cannot take waits in ours, and arrives once, in order, when it reads again.
    #[test]
    fn a_full_reader_queue_does_not_block() {
        let dir = socket_dir("busy");
        let path = dir.join("log.sock");
        let reader = UnixDatagram::bind(&path).unwrap();
        let mut d = Delivery::new(&path);
        let n = 3000; // more than any max_dgram_qlen default
        let msgs: Vec<String> = (0..n).map(|i| format!("m{i}")).collect();
        for m in &msgs[..n / 2] {
            let _ = d.send(m.as_bytes());
        }
        let ends: Vec<usize> = msgs[n / 2..]
            .iter()
            .scan(0, |end, m| {
                *end += m.len();
                Some(*end)
            })
            .collect();
        d.send_batch(msgs[n / 2..].concat().as_bytes(), &ends);
        assert!(d.pending() > 0, "the reader's queue should have filled");
        let mut got = Vec::new();
        while d.pending() > 0 {
            got.extend(recv_all(&reader));
            d.retry();
        }
        got.extend(recv_all(&reader));
        assert_eq!(got, msgs);
        assert_eq!((d.take_dropped(), d.failed, d.resent), (0, 0, 0));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn bounded_and_counted() {
        let mut d = Delivery::new(Path::new("/nonexistent/log.sock"));
        for _ in 0..QUEUE_MAX_MESSAGES + 3 {
            let _ = d.send(b"x");
        }
        assert_eq!(d.pending(), QUEUE_MAX_MESSAGES);
        assert_eq!(d.take_dropped(), 3);
        assert_eq!(d.take_dropped(), 0);
        assert_eq!(d.failed, 3);
    }
}
