//! Times as nanoseconds since the Unix epoch, UTC.
//!
//! SfL's viewer passes both `-t` arguments and `SystemTime` through `mktime`, so in effect
//! everything is compared as UTC; we do the same without touching the process time zone.

/// A `-t` bound: the instant and how precise the user wrote it, so that an end bound of
/// `09:21:07` includes everything within that second (as SfL's whole-second compare does).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bound {
    pub nanos: i64,
    pub unit: i64,
}

const SECOND: i64 = 1_000_000_000;

/// Parses `YYYY-MM-DD HH:MM[:SS[.fff…]]` (a `T` may replace the space, a trailing `Z` is
/// allowed). The smallest unit is one second, as in SfL.
pub fn parse_bound(s: &str) -> Option<Bound> {
    let s = s.trim();
    let s = s.strip_suffix('Z').unwrap_or(s);
    let (date, clock) = s.split_once([' ', 'T'])?;
    let days = parse_date(date)?;
    let mut parts = clock.splitn(3, ':');
    let h = small(parts.next()?, 23)?;
    let m = small(parts.next()?, 59)?;
    let (sec, frac, unit) = match parts.next() {
        None => (0, 0, SECOND),
        Some(rest) => {
            let (sec, frac) = rest.split_once('.').unwrap_or((rest, ""));
            let (frac, digits) = fraction(frac)?;
            let unit = if digits == 0 {
                SECOND
            } else {
                10i64.pow(9 - digits)
            };
            (small(sec, 60)?, frac, unit)
        }
    };
    let nanos = (days * 86_400 + h * 3600 + m * 60 + sec) * SECOND + frac;
    Some(Bound { nanos, unit })
}

/// Parses a `SystemTime` attribute, `YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ`.
pub fn parse_system_time(s: &[u8]) -> Option<i64> {
    let s = std::str::from_utf8(s).ok()?;
    parse_bound(s).map(|b| b.nanos)
}

fn parse_date(s: &str) -> Option<i64> {
    let mut parts = s.splitn(3, '-');
    let y: i64 = digits(parts.next()?)?.parse().ok()?;
    let m = small(parts.next()?, 12)?;
    let d = small(parts.next()?, 31)?;
    if m == 0 || d == 0 {
        return None;
    }
    Some(days_from_civil(y, m, d))
}

fn digits(s: &str) -> Option<&str> {
    (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())).then_some(s)
}

fn small(s: &str, max: i64) -> Option<i64> {
    let v: i64 = digits(s).filter(|s| s.len() <= 2)?.parse().ok()?;
    (v <= max).then_some(v)
}

/// Fraction digits → nanoseconds, and how many digits were given (at most 9 are used).
fn fraction(s: &str) -> Option<(i64, u32)> {
    if s.is_empty() {
        return Some((0, 0));
    }
    let s = digits(s)?;
    let used = &s[..s.len().min(9)];
    let n: i64 = used.parse().ok()?;
    let digits = used.len() as u32;
    Some((n * 10i64.pow(9 - digits), digits))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds() {
        let t0 = 1_715_678_467; // 2024-05-14T09:21:07Z
        let cases: &[(&str, Option<(i64, i64)>)] = &[
            ("2024-05-14 09:21:07", Some((t0 * SECOND, SECOND))),
            ("2024-05-14T09:21:07Z", Some((t0 * SECOND, SECOND))),
            ("2024-05-14 09:21", Some(((t0 - 7) * SECOND, SECOND))),
            (
                "2024-05-14 09:21:07.5",
                Some((t0 * SECOND + 500_000_000, 100_000_000)),
            ),
            (
                "2024-05-14 09:21:07.483",
                Some((t0 * SECOND + 483_000_000, 1_000_000)),
            ),
            ("1970-01-01 00:00", Some((0, SECOND))),
            ("2024-05-14", None),
            ("2024-13-14 09:21", None),
            ("2024-05-14 9:1x", None),
            ("", None),
        ];
        for (s, want) in cases {
            assert_eq!(parse_bound(s).map(|b| (b.nanos, b.unit)), *want, "{s}");
        }
        assert_eq!(
            parse_system_time(b"2024-05-14T09:21:07.483126000Z"),
            Some(t0 * SECOND + 483_126_000)
        );
    }
}
