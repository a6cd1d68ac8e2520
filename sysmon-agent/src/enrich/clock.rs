//! Time: kernel boot-relative nanoseconds to wall-clock, and Sysmon's two text formats.

use std::fmt::Write;

/// Converts CLOCK_BOOTTIME nanoseconds (what the programs and /proc report) to nanoseconds
/// since the Unix epoch, with the offset measured once at start.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    boot_epoch_ns: i128,
}

impl Clock {
    pub fn new() -> Self {
        let real = now(libc::CLOCK_REALTIME);
        let boot = now(libc::CLOCK_BOOTTIME);
        Clock {
            boot_epoch_ns: real - boot,
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

fn now(clock: libc::clockid_t) -> i128 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
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
    let _ = write!(out, ".{:03}", ns / 1_000_000);
}

/// `YYYY-MM-DDTHH:MM:SS.uuuuuu000Z` (TimeCreated/@SystemTime): 100 ns precision, as Sysmon.
pub fn write_system_time(out: &mut String, epoch_ns: i128) {
    let ns = write_date_time(out, epoch_ns, 'T');
    let _ = write!(out, ".{:09}Z", ns / 100 * 100);
}

/// Writes `YYYY-MM-DD<sep>HH:MM:SS`; returns the nanoseconds left over.
fn write_date_time(out: &mut String, epoch_ns: i128, sep: char) -> u32 {
    let ((y, mo, d, h, mi, s), ns) = split(epoch_ns);
    let _ = write!(out, "{y:04}-{mo:02}-{d:02}{sep}{h:02}:{mi:02}:{s:02}");
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
    }
}
