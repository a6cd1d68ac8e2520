//! Syslog over the local datagram socket, as glibc's `syslog()` would send it: ident
//! `sysmon`, facility user, severity info (err for event 255), no pid.
//!
//! Written by hand rather than through the `syslog` crate: one reused buffer and no
//! allocation per event, and control over what happens when the daemon restarts
//! (`delivery`).

use std::path::Path;

use super::delivery::Delivery;

pub const DEV_LOG: &str = "/dev/log";
const FACILITY_USER: u8 = 1 << 3;
pub const INFO: u8 = 6;
pub const ERR: u8 = 3;

/// Messages sent per sendmmsg at most (also bounds what waits between flushes).
const BATCH_MAX: usize = 256;

pub struct Syslog {
    /// Messages of the current batch, back to back; `ends[i]` is where message i ends.
    /// Events are rendered straight into it (see [`Syslog::begin`]).
    batch: String,
    ends: Vec<usize>,
    /// Where the body of the message being written starts.
    body_at: usize,
    /// The RFC 3164 timestamp of `stamp_sec`, formatted once per second.
    stamp: String,
    stamp_sec: i64,
    delivery: Delivery,
}

impl Syslog {
    pub fn new(path: &Path) -> Self {
        Syslog {
            batch: String::with_capacity(64 * 1024),
            ends: Vec::with_capacity(BATCH_MAX),
            body_at: 0,
            stamp: String::new(),
            stamp_sec: -1,
            delivery: Delivery::new(path),
        }
    }

    /// Adds one message to the batch; a full batch goes out at once. Call [`Syslog::flush`]
    /// at the end of each batch of records.
    pub fn send(&mut self, severity: u8, msg: &str) {
        self.begin(severity).push_str(msg);
        self.end();
    }

    /// Starts a message: writes its header and returns the batch, to which the caller
    /// appends the body (and nothing else), so that an event is rendered once, in place,
    /// with no copy. [`Syslog::end`] ends it.
    pub fn begin(&mut self, severity: u8) -> &mut String {
        self.batch.push('<');
        self.batch.push_str(itoa(FACILITY_USER | severity));
        self.batch.push('>');
        let now = unsafe { libc::time(std::ptr::null_mut()) };
        if now != self.stamp_sec {
            self.stamp.clear();
            push_timestamp(&mut self.stamp, now);
            self.stamp_sec = now;
        }
        self.batch.push_str(&self.stamp);
        self.batch.push_str(" sysmon: ");
        self.body_at = self.batch.len();
        &mut self.batch
    }

    /// The body of the message begun last.
    pub fn body(&self) -> &str {
        &self.batch[self.body_at..]
    }

    /// Ends the message begun last; a full batch goes out at once.
    pub fn end(&mut self) {
        self.ends.push(self.batch.len());
        if self.ends.len() >= BATCH_MAX {
            self.flush();
        }
    }

    /// Sends the batch: one sendmmsg for many messages instead of one send each.
    pub fn flush(&mut self) {
        if !self.ends.is_empty() {
            self.delivery.send_batch(self.batch.as_bytes(), &self.ends);
            self.batch.clear();
            self.ends.clear();
        }
    }

    /// Sends what waits for syslog; true when nothing waits any more.
    pub fn retry(&mut self) -> bool {
        self.delivery.retry()
    }

    /// Gives up on what waits (counted as dropped); returns how many.
    pub fn discard(&mut self) -> usize {
        self.delivery.discard()
    }

    /// When to try again, if messages wait.
    /// The socket to wait on while syslog's queue is full (see `Delivery::busy_fd`).
    pub fn busy_fd(&self) -> Option<(u64, std::os::fd::BorrowedFd<'_>)> {
        self.delivery.busy_fd()
    }

    pub fn retry_at(&self) -> Option<std::time::Instant> {
        self.delivery.retry_at()
    }

    /// Whether `n` more messages fit in the wait queue.
    pub fn room_for(&self, n: usize) -> bool {
        self.delivery.room_for(n)
    }

    /// Messages waiting for syslog.
    pub fn pending(&self) -> usize {
        self.delivery.pending()
    }

    /// Messages dropped since the last call.
    pub fn take_dropped(&mut self) -> u64 {
        self.delivery.take_dropped()
    }

    /// Messages sent again after a syslog restart (the old daemon may have read some).
    pub fn resent(&self) -> u64 {
        self.delivery.resent
    }

    /// Messages dropped in all.
    pub fn failed(&self) -> u64 {
        self.delivery.failed
    }
}

fn itoa(n: u8) -> &'static str {
    match n {
        11 => "11",
        14 => "14",
        _ => "13",
    }
}

/// `Mmm dd hh:mm:ss` in local time, as RFC 3164 and glibc.
fn push_timestamp(out: &mut String, t: libc::time_t) {
    use std::fmt::Write;
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
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
