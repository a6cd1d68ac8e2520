//! Time: kernel boot-relative nanoseconds to wall-clock, and Sysmon's two text formats.

use std::fmt::Write;

use crate::render::digits::push_padded;

/// Converts CLOCK_BOOTTIME nanoseconds (what the programs and /proc report) to nanoseconds
/// since the Unix epoch, with the offset measured once. ProcessGuids use this one: a
/// process keeps one GUID even when the wall clock steps.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    boot_epoch_ns: i128,
}

impl Clock {
    pub fn new() -> Self {
        Self::read(now)
    }

    fn read(source: Source) -> Self {
        Clock {
            boot_epoch_ns: source(libc::CLOCK_REALTIME) - source(libc::CLOCK_BOOTTIME),
        }
    }

    /// A clock whose boot happened `boot_epoch_ns` after the epoch (tests).
    pub fn at(boot_epoch_ns: i128) -> Self {
        Clock { boot_epoch_ns }
    }

    pub fn epoch_ns(&self, boot_ns: u64) -> i128 {
        self.boot_epoch_ns + boot_ns as i128
    }

    pub fn epoch_secs(&self, boot_ns: u64) -> u32 {
        (self.epoch_ns(boot_ns) / 1_000_000_000) as u32
    }
}

impl Default for Clock {
    fn default() -> Self {
        Self::new()
    }
}

/// Reads a clock (`CLOCK_REALTIME` or `CLOCK_BOOTTIME`) in nanoseconds; tests pass a fake.
pub type Source = fn(libc::clockid_t) -> i128;

/// How stale the boot-to-wall offset may get before it is read again.
const REREAD_NS: u64 = 1_000_000_000;

/// The clock UtcTime fields use: follows a step of the wall clock (NTP, `date -s`) within a
/// second. The offset is read again when a record is more than a second younger than the
/// last read, so its cost (two vDSO clock reads) is paid at most once a second of records,
/// and per event there is only a comparison.
#[derive(Debug)]
pub struct WallClock {
    clock: Clock,
    /// CLOCK_BOOTTIME of the last read.
    read_at: u64,
    source: Source,
}

impl WallClock {
    pub fn new() -> Self {
        Self::with_source(now)
    }

    pub fn with_source(source: Source) -> Self {
        let mut c = WallClock {
            clock: Clock::at(0),
            read_at: 0,
            source,
        };
        c.reread();
        c
    }

    /// The epoch time of `boot_ns`, with an offset at most a second older than it.
    pub fn epoch_ns(&mut self, boot_ns: u64) -> i128 {
        if boot_ns > self.read_at.saturating_add(REREAD_NS) {
            self.reread();
        }
        self.clock.epoch_ns(boot_ns)
    }

    fn reread(&mut self) {
        let real = (self.source)(libc::CLOCK_REALTIME);
        let boot = (self.source)(libc::CLOCK_BOOTTIME);
        self.clock = Clock::at(real - boot);
        self.read_at = boot.max(0) as u64;
    }
}

impl Default for WallClock {
    fn default() -> Self {
        Self::new()
    }
}

/// `clock` now, in ns (`CLOCK_BOOTTIME` is the clock of the records' `time_ns`).
pub fn now(clock: libc::clockid_t) -> i128 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid timespec to fill.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    ts.tv_sec as i128 * 1_000_000_000 + ts.tv_nsec as i128
}

/// Nanoseconds since the epoch, now.
pub fn wall_ns() -> i128 {
    now(libc::CLOCK_REALTIME)
}

/// `YYYY-MM-DD HH:MM:SS.mmm` (UtcTime fields), milliseconds truncated.
pub fn write_utc_time(out: &mut String, epoch_ns: i128) {
    let ns = write_date_time(out, epoch_ns, ' ');
    out.push('.');
    push_padded(out, (ns / 1_000_000) as u64, 3);
}

/// `YYYY-MM-DDTHH:MM:SS.uuuuuu000Z` (TimeCreated/@SystemTime): 100 ns precision, as Sysmon.
pub fn write_system_time(out: &mut String, epoch_ns: i128) {
    let ns = write_date_time(out, epoch_ns, 'T');
    out.push('.');
    push_padded(out, (ns / 100 * 100) as u64, 9);
    out.push('Z');
}

/// Writes `YYYY-MM-DD<sep>HH:MM:SS`; returns the nanoseconds left over.
fn write_date_time(out: &mut String, epoch_ns: i128, sep: char) -> u32 {
    let ((y, mo, d, h, mi, s), ns) = split(epoch_ns);
    if !(0..=9999).contains(&y) {
        let _ = write!(out, "{y:04}-{mo:02}-{d:02}{sep}{h:02}:{mi:02}:{s:02}");
        return ns;
    }
    // By hand: two times in every event, and `write!` was a hot spot.
    push_padded(out, y as u64, 4);
    for (before, n) in [('-', mo), ('-', d), (sep, h), (':', mi), (':', s)] {
        out.push(before);
        push_padded(out, n as u64, 2);
    }
    ns
}

type Civil = (i64, u32, u32, u32, u32, u32);

fn split(epoch_ns: i128) -> (Civil, u32) {
    let secs = epoch_ns.div_euclid(1_000_000_000) as i64;
    let ns = epoch_ns.rem_euclid(1_000_000_000) as u32;
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400) as u32;
    let (y, m, d) = civil_from_days(days);
    ((y, m, d, rem / 3600, rem / 60 % 60, rem % 60), ns)
}

/// Howard Hinnant's days-to-civil algorithm.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    thread_local! {
        /// The fake clocks: (realtime, boottime) in ns.
        static FAKE: Cell<(i128, i128)> = const { Cell::new((0, 0)) };
    }

    fn fake(id: libc::clockid_t) -> i128 {
        let (real, boot) = FAKE.get();
        if id == libc::CLOCK_REALTIME {
            real
        } else {
            boot
        }
    }

    /// Moves both fake clocks on by `ns`; `step` more for the wall clock alone (NTP).
    fn advance(ns: i128, step: i128) {
        let (real, boot) = FAKE.get();
        FAKE.set((real + ns + step, boot + ns));
    }

    #[test]
    fn utc_time_follows_a_wall_clock_step_within_a_second() {
        const S: i128 = 1_000_000_000;
        const HOUR: i128 = 3600 * S;
        // Booted at 2024-05-14 09:00:00 UTC; now 100 s after boot.
        let boot_epoch = 1_715_677_200 * S;
        FAKE.set((boot_epoch + 100 * S, 100 * S));
        let mut wall = WallClock::with_source(fake);
        let guids = Clock::read(fake);
        let at = |t: i128| t as u64;
        assert_eq!(wall.epoch_ns(at(100 * S)), boot_epoch + 100 * S);
        // NTP steps the wall clock one hour forward, half a second later.
        advance(S / 2, HOUR);
        let t = 100 * S + S / 2;
        // Within the second since the last read the old offset may still be used...
        assert_eq!(wall.epoch_ns(at(t)), boot_epoch + t);
        // ...but a record more than a second after the last read has the new one.
        advance(S, 0);
        let t = 101 * S + S / 2;
        assert_eq!(wall.epoch_ns(at(t)), boot_epoch + HOUR + t);
        let mut s = String::new();
        write_utc_time(&mut s, wall.epoch_ns(at(t)));
        assert_eq!(s, "2024-05-14 10:01:41.500");
        // A record older than the last read is not a reason to read again; it gets the new
        // offset too.
        assert_eq!(wall.epoch_ns(at(50 * S)), boot_epoch + HOUR + 50 * S);
        // ProcessGuids keep the offset of their start: one process, one GUID.
        assert_eq!(guids.epoch_ns(at(t)), boot_epoch + t);
    }

    #[test]
    fn a_backward_step_too() {
        const S: i128 = 1_000_000_000;
        FAKE.set((1_000_000 * S, 10 * S));
        let mut wall = WallClock::with_source(fake);
        advance(2 * S, -3600 * S);
        assert_eq!(wall.epoch_ns(12 * S as u64), (1_000_000 - 3600 + 2) * S);
    }

    #[test]
    fn formats() {
        // 2024-05-14 09:21:07.479126 UTC
        let ns = 1_715_678_467_479_126_345i128;
        let mut s = String::new();
        write_utc_time(&mut s, ns);
        assert_eq!(s, "2024-05-14 09:21:07.479");
        s.clear();
        write_system_time(&mut s, ns);
        assert_eq!(s, "2024-05-14T09:21:07.479126300Z");
        s.clear();
        write_utc_time(&mut s, 0);
        assert_eq!(s, "1970-01-01 00:00:00.000");
        s.clear();
        write_utc_time(&mut s, 951_782_400_000_000_000); // leap day
        assert_eq!(s, "2000-02-29 00:00:00.000");
        // The hand-written digits say what `write!` says, from the epoch to year 9999 and
        // beyond (where `write!` itself is used).
        let mut t: i128 = -1_000_000_007;
        while t < 400_000_000_000_000_000_000 {
            let ((y, mo, d, h, mi, sec), ns) = split(t);
            s.clear();
            write_utc_time(&mut s, t);
            let want = format!(
                "{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{sec:02}.{:03}",
                ns / 1_000_000
            );
            assert_eq!(s, want);
            s.clear();
            write_system_time(&mut s, t);
            let want = format!(
                "{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{sec:02}.{:09}Z",
                ns / 100 * 100
            );
            assert_eq!(s, want);
            t = t * 3 / 2 + 987_654_321_123;
        }
    }
}
