//! Syslog over the local datagram socket, as glibc's `syslog()` would send it: ident
//! `sysmon`, facility user, severity info (err for event 255), no pid.
//!
//! Written by hand rather than through the `syslog` crate: one reused buffer and no
//! allocation per event, and control over reconnecting when the daemon restarts.

use std::{
    collections::VecDeque,
    io,
    os::unix::net::UnixDatagram,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

pub const DEV_LOG: &str = "/dev/log";
const FACILITY_USER: u8 = 1 << 3;
pub const INFO: u8 = 6;
pub const ERR: u8 = 3;

/// While syslog is away (restarting, socket missing) events wait here, oldest first. Bounded
/// so that a syslog that never comes back cannot eat the machine's memory; what does not fit
/// is counted and reported as event 255 once syslog takes messages again.
const QUEUE_MAX_BYTES: usize = 64 << 20;
const QUEUE_MAX_MESSAGES: usize = 200_000;
/// How often to try again while syslog is away (not on every event: each try is a syscall).
const RETRY: Duration = Duration::from_millis(100);
/// A syslog daemon that stops reading must not stop the agent: a send that blocks this long
/// counts as failed and the event is queued.
const SEND_TIMEOUT: Duration = Duration::from_secs(1);

pub struct Syslog {
    path: PathBuf,
    sock: Option<UnixDatagram>,
    buf: String,
    queue: VecDeque<Box<[u8]>>,
    queued_bytes: usize,
    next_retry: Instant,
    /// Messages dropped since the last `take_dropped`.
    dropped: u64,
    /// Messages dropped in all.
    pub failed: u64,
}

impl Syslog {
    pub fn new(path: &Path) -> Self {
        let mut s = Syslog {
            path: path.to_owned(),
            sock: None,
            buf: String::new(),
            queue: VecDeque::new(),
            queued_bytes: 0,
            next_retry: Instant::now(),
            dropped: 0,
            failed: 0,
        };
        let _ = connect(&mut s.sock, &s.path);
        s
    }

    /// Sends one message, or queues it if syslog cannot take it now (then Err says why).
    pub fn send(&mut self, severity: u8, msg: &str) -> io::Result<()> {
        self.buf.clear();
        self.buf.push('<');
        self.buf.push_str(itoa(FACILITY_USER | severity));
        self.buf.push('>');
        push_timestamp(&mut self.buf);
        self.buf.push_str(" sysmon: ");
        self.buf.push_str(msg);
        if self.queue.is_empty() {
            let result = send_one(&mut self.sock, &self.path, self.buf.as_bytes());
            match &result {
                Ok(()) => return Ok(()),
                Err(e) if too_big(e) => self.drop_one(),
                Err(_) => {
                    self.next_retry = Instant::now() + RETRY;
                    self.enqueue();
                }
            }
            return result;
        }
        // Order matters: while older events wait, this one waits behind them.
        self.enqueue();
        if Instant::now() >= self.next_retry {
            self.retry();
        }
        Err(io::ErrorKind::NotConnected.into())
    }

    /// Sends what waits, oldest first; true when nothing waits any more.
    pub fn retry(&mut self) -> bool {
        while let Some(front) = self.queue.front() {
            match send_one(&mut self.sock, &self.path, front) {
                Ok(()) => {}
                Err(e) if too_big(&e) => self.dropped += 1,
                Err(_) => {
                    self.next_retry = Instant::now() + RETRY;
                    return false;
                }
            }
            let len = front.len();
            self.queue.pop_front();
            self.queued_bytes -= len;
        }
        true
    }

    /// Messages waiting for syslog.
    pub fn pending(&self) -> usize {
        self.queue.len()
    }

    /// Messages dropped since the last call.
    pub fn take_dropped(&mut self) -> u64 {
        std::mem::take(&mut self.dropped)
    }

    fn enqueue(&mut self) {
        let len = self.buf.len();
        if self.queue.len() >= QUEUE_MAX_MESSAGES || self.queued_bytes + len > QUEUE_MAX_BYTES {
            self.drop_one();
            return;
        }
        self.queue.push_back(self.buf.as_bytes().into());
        self.queued_bytes += len;
    }

    fn drop_one(&mut self) {
        self.dropped += 1;
        self.failed += 1;
    }
}

fn connect<'a>(slot: &'a mut Option<UnixDatagram>, path: &Path) -> io::Result<&'a UnixDatagram> {
    *slot = None;
    let sock = UnixDatagram::unbound()?;
    sock.connect(path)?;
    sock.set_write_timeout(Some(SEND_TIMEOUT))?;
    Ok(slot.insert(sock))
}

/// One datagram; on failure reconnects once (the daemon may have restarted: its socket is
/// a new one at the same path).
fn send_one(slot: &mut Option<UnixDatagram>, path: &Path, bytes: &[u8]) -> io::Result<()> {
    let first = match slot {
        Some(s) => s.send(bytes).map(drop),
        None => Err(io::ErrorKind::NotConnected.into()),
    };
    match first {
        Err(e) if too_big(&e) => Err(e),
        Err(_) => connect(slot, path)?.send(bytes).map(drop),
        ok => ok,
    }
}

/// A message the socket can never take: retrying is pointless.
fn too_big(e: &io::Error) -> bool {
    e.raw_os_error() == Some(libc::EMSGSIZE)
}

fn itoa(n: u8) -> &'static str {
    match n {
        11 => "11",
        14 => "14",
        _ => "13",
    }
}

/// `Mmm dd hh:mm:ss` in local time, as RFC 3164 and glibc.
fn push_timestamp(out: &mut String) {
    use std::fmt::Write;
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let t = unsafe { libc::time(std::ptr::null_mut()) };
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    unsafe { libc::localtime_r(&t, &mut tm) };
    let _ = write!(
        out,
        "{} {:2} {:02}:{:02}:{:02}",
        MONTHS[tm.tm_mon.clamp(0, 11) as usize],
        tm.tm_mday,
        tm.tm_hour,
        tm.tm_min,
        tm.tm_sec
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recv_all(sock: &UnixDatagram) -> Vec<String> {
        sock.set_nonblocking(true).unwrap();
        let mut out = Vec::new();
        let mut buf = vec![0u8; 65536];
        while let Ok(n) = sock.recv(&mut buf) {
            let line = String::from_utf8_lossy(&buf[..n]).into_owned();
            out.push(line.rsplit_once(": ").unwrap().1.to_string());
        }
        out
    }

    /// Syslog away, then back at the same path (a restarted daemon): what waited arrives
    /// in order, before what came after.
    #[test]
    fn queues_while_away_and_resends_in_order() {
        let dir = std::env::temp_dir().join(format!("sysmon-sink-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("log.sock");
        let _ = std::fs::remove_file(&path);
        let first = UnixDatagram::bind(&path).unwrap();
        let mut s = Syslog::new(&path);
        s.send(INFO, "a").unwrap();
        drop(first);
        std::fs::remove_file(&path).unwrap();
        assert!(s.send(INFO, "b").is_err());
        assert!(s.send(INFO, "c").is_err());
        assert_eq!(s.pending(), 2);
        assert!(!s.retry());
        let second = UnixDatagram::bind(&path).unwrap();
        assert!(s.retry());
        s.send(INFO, "d").unwrap();
        assert_eq!(recv_all(&second), ["b", "c", "d"]);
        assert_eq!((s.take_dropped(), s.failed), (0, 0));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn bounded_and_counted() {
        let mut s = Syslog::new(Path::new("/nonexistent/log.sock"));
        for _ in 0..QUEUE_MAX_MESSAGES + 3 {
            let _ = s.send(INFO, "x");
        }
        assert_eq!(s.pending(), QUEUE_MAX_MESSAGES);
        assert_eq!(s.take_dropped(), 3);
        assert_eq!(s.take_dropped(), 0);
        assert_eq!(s.failed, 3);
    }
}
