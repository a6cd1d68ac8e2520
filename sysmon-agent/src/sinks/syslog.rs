//! Syslog: ident `sysmon`, facility user, severity info (err for event 255), no pid.
//!
//! Two ways to rsyslogd, chosen by what is there:
//! - **our input's stream socket** (`stream`), which `sysmon -i` installs into rsyslog: each
//!   batch of events is one write, into a ruleset of its own that writes
//!   `/var/log/sysmon.log`; the header carries an RFC 3339 time to the microsecond;
//! - **`/dev/log` datagrams** (`delivery`), one per event, as glibc's `syslog()` sends them:
//!   wherever that socket is missing (journald, syslog-ng, busybox syslogd, an rsyslog
//!   without our file), or while it is away.
//!
//! The stream is used whenever it connects: at start, and checked once a second while on
//! datagrams. When it breaks (rsyslogd restarting) it is tried again for `GRACE` before the
//! events go to `/dev/log` instead; what waited moves with them, in order.
//!
//! Written by hand rather than through the `syslog` crate: one reused buffer and no
//! allocation per event, and control over what happens when the daemon restarts.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{delivery::Delivery, stream::Stream};

pub const DEV_LOG: &str = "/dev/log";
const FACILITY_USER: u8 = 1 << 3;
pub const INFO: u8 = 6;
pub const ERR: u8 = 3;

/// Datagrams per sendmmsg at most (also bounds what waits between flushes).
const BATCH_MAX: usize = 256;
/// A stream batch is written once it holds this much, whatever the rest of the read brings.
const STREAM_BATCH_BYTES: usize = 1 << 20;
/// How long a broken stream is tried again (an rsyslogd restart) before `/dev/log`.
const GRACE: Duration = Duration::from_secs(5);
/// Room for an octet count and its space: an event is at most 128 KiB, six digits.
const COUNT_ROOM: &str = "000000 ";

enum Link {
    Stream(Stream),
    Datagram(Delivery),
}

pub struct Syslog {
    /// Messages (datagrams) or frames (stream) of the current batch, back to back;
    /// `ends[i]` is where the i-th ends. Events are rendered straight into it (see
    /// [`Syslog::begin`]).
    batch: String,
    ends: Vec<usize>,
    /// Where the frame being written starts, and its body.
    frame_at: usize,
    body_at: usize,
    stamp: Stamp,
    link: Link,
    datagram_path: PathBuf,
    stream_path: Option<PathBuf>,
    /// Drops and resends counted by links that were replaced.
    carried_dropped: u64,
    carried_resent: u64,
}

impl Syslog {
    /// Syslog through `stream` (our rsyslog input) when it connects, else datagrams to
    /// `datagram` (`/dev/log`).
    pub fn new(datagram: &Path, stream: Option<&Path>) -> Self {
        let link = match stream.map(Stream::new) {
            Some(s) if s.connected() => Link::Stream(s),
            _ => Link::Datagram(Delivery::new(datagram)),
        };
        Syslog {
            batch: String::with_capacity(64 * 1024),
            ends: Vec::with_capacity(BATCH_MAX),
            frame_at: 0,
            body_at: 0,
            stamp: Stamp::default(),
            link,
            datagram_path: datagram.to_owned(),
            stream_path: stream.map(Path::to_owned),
            carried_dropped: 0,
            carried_resent: 0,
        }
    }

    /// Whether events go through our rsyslog input's stream (else datagrams).
    pub fn streams(&self) -> bool {
        matches!(self.link, Link::Stream(_))
    }

    /// Starts a message stamped `now` (ns since the epoch): writes its header and returns
    /// the batch, to which the caller appends the body (and nothing else), so that an event
    /// is rendered once, in place, with no copy. [`Syslog::end`] ends it.
    pub fn begin(&mut self, severity: u8, now: i128) -> &mut String {
        self.frame_at = self.batch.len();
        let stream = self.streams();
        if stream {
            // The count is known once the body is written (`end`).
            self.batch.push_str(COUNT_ROOM);
        }
        self.batch.push('<');
        self.batch.push_str(itoa(FACILITY_USER | severity));
        self.batch.push('>');
        self.stamp.push(&mut self.batch, now, stream);
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
        if self.streams() {
            let room = self.frame_at..self.frame_at + COUNT_ROOM.len();
            let mut count = [0u8; 24];
            let count = octet_count(self.batch.len() - room.end, &mut count);
            self.batch.replace_range(room, count);
        }
        self.ends.push(self.batch.len());
        let full = match self.link {
            Link::Stream(_) => self.batch.len() >= STREAM_BATCH_BYTES,
            Link::Datagram(_) => self.ends.len() >= BATCH_MAX,
        };
        if full {
            self.flush();
        }
    }

    /// Sends the batch: one write (stream) or one sendmmsg (datagrams) for many messages.
    pub fn flush(&mut self) {
        if self.ends.is_empty() {
            return;
        }
        let batch = self.batch.as_bytes();
        match &mut self.link {
            Link::Stream(s) => s.send_batch(batch, &self.ends),
            Link::Datagram(d) => d.send_batch(batch, &self.ends),
        }
        self.batch.clear();
        self.ends.clear();
        self.fall_back();
    }

    /// Sends what waits for syslog; true when nothing waits any more.
    pub fn retry(&mut self) -> bool {
        let done = match &mut self.link {
            Link::Stream(s) => s.retry(),
            Link::Datagram(d) => d.retry(),
        };
        self.fall_back();
        done
    }

    /// Once a second: on the stream, confirms what rsyslogd read (and notices a closed
    /// connection); on datagrams, moves to the stream if it is back. Then what waits.
    pub fn tick(&mut self) {
        self.flush();
        match &mut self.link {
            Link::Stream(s) => s.check(),
            Link::Datagram(d) => {
                if let Some(path) = self.stream_path.as_deref().filter(|p| p.exists()) {
                    let mut s = Stream::new(path);
                    if s.connected() {
                        self.carried_dropped += d.take_dropped();
                        self.carried_resent += d.resent;
                        let (batch, ends) = to_frames(d.take_all(), &mut self.stamp);
                        s.send_batch(&batch, &ends);
                        self.link = Link::Stream(s);
                    }
                }
            }
        }
        self.retry();
    }

    /// A stream broken for longer than `GRACE`: what waits for it goes to `/dev/log`. Not
    /// with a batch begun: its frames were rendered for the stream.
    fn fall_back(&mut self) {
        let Link::Stream(s) = &mut self.link else {
            return;
        };
        if s.connected() || s.away_for() < GRACE || !self.ends.is_empty() {
            return;
        }
        self.carried_dropped += s.take_dropped();
        let waiting = s.take_all();
        self.carried_resent += s.resent;
        let mut d = Delivery::new(&self.datagram_path);
        for frame in waiting {
            let _ = d.send(&to_datagram(&frame));
        }
        self.link = Link::Datagram(d);
    }

    /// Gives up on what waits (counted as dropped); returns how many.
    pub fn discard(&mut self) -> usize {
        match &mut self.link {
            Link::Stream(s) => s.discard(),
            Link::Datagram(d) => d.discard(),
        }
    }

    /// The socket to wait on while syslog reads slower than we write (see
    /// `Delivery::busy_fd`).
    pub fn busy_fd(&self) -> Option<(u64, std::os::fd::BorrowedFd<'_>)> {
        match &self.link {
            Link::Stream(s) => s.busy_fd(),
            Link::Datagram(d) => d.busy_fd(),
        }
    }

    /// When to try again, if messages wait.
    pub fn retry_at(&self) -> Option<std::time::Instant> {
        match &self.link {
            Link::Stream(s) => s.retry_at(),
            Link::Datagram(d) => d.retry_at(),
        }
    }

    /// Whether `n` more messages fit in the wait queue.
    pub fn room_for(&self, n: usize) -> bool {
        match &self.link {
            Link::Stream(s) => s.room_for(n),
            Link::Datagram(d) => d.room_for(n),
        }
    }

    /// Messages waiting for syslog.
    pub fn pending(&self) -> usize {
        match &self.link {
            Link::Stream(s) => s.pending(),
            Link::Datagram(d) => d.pending(),
        }
    }

    /// Messages dropped since the last call.
    pub fn take_dropped(&mut self) -> u64 {
        std::mem::take(&mut self.carried_dropped)
            + match &mut self.link {
                Link::Stream(s) => s.take_dropped(),
                Link::Datagram(d) => d.take_dropped(),
            }
    }

    /// Messages sent again after a syslog restart (the old daemon may have read some).
    pub fn resent(&self) -> u64 {
        self.carried_resent
            + match &self.link {
                Link::Stream(s) => s.resent,
                Link::Datagram(d) => d.resent,
            }
    }
}

fn itoa(n: u8) -> &'static str {
    match n {
        11 => "11",
        14 => "14",
        _ => "13",
    }
}

/// `len` and a space, as an octet count (no leading zero), written into `buf`.
fn octet_count(mut len: usize, buf: &mut [u8; 24]) -> &str {
    let mut at = buf.len() - 1;
    buf[at] = b' ';
    loop {
        at -= 1;
        buf[at] = b'0' + (len % 10) as u8;
        len /= 10;
        if len == 0 {
            break;
        }
    }
    // Digits and a space: ASCII.
    std::str::from_utf8(&buf[at..]).unwrap_or(" ")
}

/// The header's time, formatted once per second: `Mmm dd hh:mm:ss` (RFC 3164, as glibc
/// sends it, for datagrams) or `YYYY-MM-DDThh:mm:ss` and the zone's offset (RFC 3339, for
/// the stream, with the microseconds added per message). Local time, as syslog daemons
/// write it.
#[derive(Default)]
struct Stamp {
    sec: Option<i64>,
    legacy: String,
    date_time: String,
    offset: String,
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

impl Stamp {
    fn push(&mut self, out: &mut String, now: i128, rfc3339: bool) {
        let sec = now.div_euclid(1_000_000_000) as i64;
        if self.sec != Some(sec) {
            // SAFETY: a zeroed tm is valid; localtime_r fills it from a valid time_t.
            let mut tm: libc::tm = unsafe { std::mem::zeroed() };
            unsafe { libc::localtime_r(&(sec as libc::time_t), &mut tm) };
            self.fill(&tm);
            self.sec = Some(sec);
        }
        if rfc3339 {
            out.push_str(&self.date_time);
            let mut micros = (now.rem_euclid(1_000_000_000) / 1000) as u32;
            let mut digits = [b'0'; 7];
            digits[0] = b'.';
            for d in digits[1..].iter_mut().rev() {
                *d = b'0' + (micros % 10) as u8;
                micros /= 10;
            }
            // A dot and digits: ASCII.
            out.push_str(std::str::from_utf8(&digits).unwrap_or(""));
            out.push_str(&self.offset);
        } else {
            out.push_str(&self.legacy);
        }
    }

    fn fill(&mut self, tm: &libc::tm) {
        use std::fmt::Write;
        let month = tm.tm_mon.clamp(0, 11) as usize;
        self.legacy.clear();
        let _ = write!(
            self.legacy,
            "{} {:2} {:02}:{:02}:{:02}",
            MONTHS[month], tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec
        );
        self.date_time.clear();
        let _ = write!(
            self.date_time,
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
            tm.tm_year + 1900,
            month + 1,
            tm.tm_mday,
            tm.tm_hour,
            tm.tm_min,
            tm.tm_sec
        );
        let minutes = tm.tm_gmtoff / 60;
        let sign = if minutes < 0 { '-' } else { '+' };
        let minutes = minutes.abs();
        self.offset.clear();
        let _ = write!(self.offset, "{sign}{:02}:{:02}", minutes / 60, minutes % 60);
    }
}

/// A stream frame (`LEN <PRI>YYYY-MM-DDThh:mm:ss.ffffff+hh:mm sysmon: …`) as the datagram
/// glibc would send (`<PRI>Mmm dd hh:mm:ss sysmon: …`), for a stream that went away.
fn to_datagram(frame: &[u8]) -> Vec<u8> {
    let msg = frame
        .iter()
        .position(|b| *b == b' ')
        .map_or(frame, |sp| &frame[sp + 1..]);
    let Some(gt) = msg.iter().position(|b| *b == b'>') else {
        return msg.to_vec();
    };
    let (pri, rest) = msg.split_at(gt + 1);
    let Some(sp) = rest.iter().position(|b| *b == b' ') else {
        return msg.to_vec();
    };
    let (stamp, tail) = rest.split_at(sp);
    let field = |r: std::ops::Range<usize>| -> Option<usize> {
        std::str::from_utf8(stamp.get(r)?).ok()?.parse().ok()
    };
    let (Some(month @ 1..=12), Some(day), Some(time)) =
        (field(5..7), field(8..10), stamp.get(11..19))
    else {
        return msg.to_vec();
    };
    let mut out = pri.to_vec();
    out.extend_from_slice(format!("{} {day:2} ", MONTHS[month - 1]).as_bytes());
    out.extend_from_slice(time);
    out.extend_from_slice(tail);
    out
}

/// Datagrams (`<PRI>Mmm dd hh:mm:ss sysmon: …`) as stream frames stamped now, for the
/// stream that replaces `/dev/log`; and where each ends.
fn to_frames(msgs: Vec<Vec<u8>>, stamp: &mut Stamp) -> (Vec<u8>, Vec<usize>) {
    const LEGACY: usize = "Mmm dd hh:mm:ss".len();
    let now = crate::enrich::clock::wall_ns();
    let mut out = Vec::new();
    let mut ends = Vec::with_capacity(msgs.len());
    let mut msg = String::new();
    for m in msgs {
        let Some(gt) = m.iter().position(|b| *b == b'>') else {
            continue;
        };
        msg.clear();
        msg.push_str(&String::from_utf8_lossy(&m[..=gt]));
        stamp.push(&mut msg, now, true);
        msg.push_str(&String::from_utf8_lossy(
            m.get(gt + 1 + LEGACY..).unwrap_or_default(),
        ));
        let mut count = [0u8; 24];
        out.extend_from_slice(octet_count(msg.len(), &mut count).as_bytes());
        out.extend_from_slice(msg.as_bytes());
        ends.push(out.len());
    }
    (out, ends)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-03-04 05:06:07.089012, in ns.
    const T: i128 = 1_772_600_767_089_012_000;

    #[test]
    fn header_times() {
        // (UTC offset in seconds, RFC 3339 date, time and offset)
        let cases = [
            (0, "2026-03-04T05:06:07", "+00:00"),
            (5 * 3600 + 1800, "2026-03-04T05:06:07", "+05:30"),
            (-3 * 3600, "2026-03-04T05:06:07", "-03:00"),
        ];
        for (gmtoff, date_time, offset) in cases {
            // SAFETY: a zeroed tm is valid; the fields read are set.
            let mut tm: libc::tm = unsafe { std::mem::zeroed() };
            (tm.tm_year, tm.tm_mon, tm.tm_mday) = (126, 2, 4);
            (tm.tm_hour, tm.tm_min, tm.tm_sec) = (5, 6, 7);
            tm.tm_gmtoff = gmtoff;
            let mut s = Stamp {
                sec: Some(T.div_euclid(1_000_000_000) as i64),
                ..Stamp::default()
            };
            s.fill(&tm);
            let (mut legacy, mut rfc) = (String::new(), String::new());
            s.push(&mut legacy, T, false);
            s.push(&mut rfc, T, true);
            assert_eq!(legacy, "Mar  4 05:06:07");
            assert_eq!(rfc, format!("{date_time}.089012{offset}"));
        }
    }

    #[test]
    fn octet_counts() {
        for n in [0, 7, 10, 131_072, 999_999] {
            let mut buf = [0u8; 24];
            assert_eq!(octet_count(n, &mut buf), format!("{n} "));
        }
    }

    #[test]
    fn frames_and_datagrams_convert_both_ways() {
        let body = "<Event><System>…</System></Event>";
        let msg = format!("<14>2026-03-04T05:06:07.089012+00:00 sysmon: {body}");
        let frame = format!("{} {msg}", msg.len());
        let datagram = to_datagram(frame.as_bytes());
        assert_eq!(
            String::from_utf8(datagram.clone()).unwrap(),
            format!("<14>Mar  4 05:06:07 sysmon: {body}")
        );
        let (frames, ends) = to_frames(vec![datagram.clone(), datagram], &mut Stamp::default());
        let text = String::from_utf8(frames).unwrap();
        let first = &text[..ends[0]];
        let (count, rest) = first.split_once(' ').unwrap();
        assert_eq!(count.parse::<usize>().unwrap(), rest.len());
        assert!(rest.starts_with("<14>20") && rest.ends_with(&format!(" sysmon: {body}")));
        assert_eq!(&text[ends[0]..], first, "{text}");
    }

    /// Events rendered for the stream are octet-counted frames, back to back.
    #[test]
    fn stream_frames_count_their_bytes() {
        let dir = std::env::temp_dir().join(format!("sysmon-frames-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("s.sock");
        let _ = std::fs::remove_file(&path);
        let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
        let mut s = Syslog::new(&dir.join("no-dev-log"), Some(&path));
        assert!(s.streams());
        let bodies = ["a".to_string(), "é".repeat(60_000)];
        for body in &bodies {
            s.begin(INFO, T).push_str(body);
            s.end();
        }
        let mut rest = s.batch.as_str();
        for want in &bodies {
            let (count, after) = rest.split_once(' ').unwrap();
            let n: usize = count.parse().unwrap();
            assert!(after[..n].starts_with("<14>"));
            assert!(after[..n].ends_with(&format!(" sysmon: {want}")));
            rest = &after[n..];
        }
        assert!(rest.is_empty());
        drop(listener);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
