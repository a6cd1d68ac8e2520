//! Syslog over the local datagram socket, as glibc's `syslog()` would send it: ident
//! `sysmon`, facility user, severity info (err for event 255), no pid.
//!
//! Written by hand rather than through the `syslog` crate: one reused buffer and no
//! allocation per event, and control over what happens when the daemon restarts
//! (`delivery`).

use std::{io, path::Path};

use super::delivery::Delivery;

pub const DEV_LOG: &str = "/dev/log";
const FACILITY_USER: u8 = 1 << 3;
pub const INFO: u8 = 6;
pub const ERR: u8 = 3;

pub struct Syslog {
    buf: String,
    /// The RFC 3164 timestamp of `stamp_sec`, formatted once per second.
    stamp: String,
    stamp_sec: i64,
    delivery: Delivery,
}

impl Syslog {
    pub fn new(path: &Path) -> Self {
        Syslog {
            buf: String::new(),
            stamp: String::new(),
            stamp_sec: -1,
            delivery: Delivery::new(path),
        }
    }

    /// Sends one message, or queues it if syslog cannot take it now (then Err says why).
    pub fn send(&mut self, severity: u8, msg: &str) -> io::Result<()> {
        self.buf.clear();
        self.buf.push('<');
        self.buf.push_str(itoa(FACILITY_USER | severity));
        self.buf.push('>');
        let now = unsafe { libc::time(std::ptr::null_mut()) };
        if now != self.stamp_sec {
            self.stamp.clear();
            push_timestamp(&mut self.stamp, now);
            self.stamp_sec = now;
        }
        self.buf.push_str(&self.stamp);
        self.buf.push_str(" sysmon: ");
        self.buf.push_str(msg);
        self.delivery.send(self.buf.as_bytes())
    }

    /// Sends what waits for syslog; true when nothing waits any more.
    pub fn retry(&mut self) -> bool {
        self.delivery.retry()
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
