//! Syslog over the local datagram socket, as glibc's `syslog()` would send it: ident
//! `sysmon`, facility user, severity info (err for event 255), no pid.
//!
//! Written by hand rather than through the `syslog` crate: one reused buffer and no
//! allocation per event, and control over reconnecting when the daemon restarts.

use std::{
    io,
    os::unix::net::UnixDatagram,
    path::{Path, PathBuf},
};

pub const DEV_LOG: &str = "/dev/log";
const FACILITY_USER: u8 = 1 << 3;
pub const INFO: u8 = 6;
pub const ERR: u8 = 3;

pub struct Syslog {
    path: PathBuf,
    sock: Option<UnixDatagram>,
    buf: String,
    /// The RFC 3164 timestamp of `stamp_sec`, formatted once per second.
    stamp: String,
    stamp_sec: i64,
    /// Messages the daemon could not take.
    pub failed: u64,
}

impl Syslog {
    pub fn new(path: &Path) -> Self {
        let mut s = Syslog {
            path: path.to_owned(),
            sock: None,
            buf: String::new(),
            stamp: String::new(),
            stamp_sec: -1,
            failed: 0,
        };
        let _ = s.connect();
        s
    }

    fn connect(&mut self) -> io::Result<&UnixDatagram> {
        let sock = UnixDatagram::unbound()?;
        sock.connect(&self.path)?;
        Ok(self.sock.insert(sock))
    }

    /// Sends one message; on failure reconnects once (the daemon may have restarted).
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
        let first = match &self.sock {
            Some(s) => s.send(self.buf.as_bytes()).map(drop),
            None => Err(io::ErrorKind::NotConnected.into()),
        };
        let result = first.or_else(|_| {
            let bytes = self.buf.clone();
            self.connect()
                .and_then(|s| s.send(bytes.as_bytes()))
                .map(drop)
        });
        if result.is_err() {
            self.failed += 1;
        }
        result
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
