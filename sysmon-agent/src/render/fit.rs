//! Keeping an event within a size budget by cutting its longest values, so that no event is
//! lost to its size: an attacker who pads an exec's arguments (a 32 KiB command line of `"`
//! is 192 KiB once escaped) still gets the exec reported, cut, instead of refused by syslog.
//!
//! The cut is made on the [`Event`], so every sink gets the same values; the cost of a value
//! is the sink's escaped length (`xml::escaped_len` for XML).

use crate::events::Event;

/// The most bytes one event's XML may take. With the syslog header (`<14>Mmm dd hh:mm:ss
/// sysmon: `, 28 bytes) it fits rsyslog's `maxMessageSize` as `configs/30-sysmon.conf` sets it
/// (128 KiB) and one datagram on the local socket (the kernel's default socket buffer,
/// `net.core.wmem_default`, is 208 KiB).
pub const BUDGET: usize = 127 * 1024;

/// Sysmon's mark for a cut value.
pub const MARK: &str = "...";

/// Cut before anything else: what an attacker controls and what is longest.
const FIRST: &[&str] = &["CommandLine", "ParentCommandLine"];

/// Cuts values of `ev` so that the sum of `cost(value)` over its fields falls by at least
/// `excess`: the command lines first, then every field. Within a group the longest values are
/// cut to a common length, so short values are kept whole and long ones share what is left.
/// A cut value ends with [`MARK`]. Returns false when even `...` for every value is not enough.
pub fn shrink(ev: &mut Event, excess: usize, cost: fn(&str) -> usize) -> bool {
    let first: Vec<usize> = FIRST
        .iter()
        .filter_map(|name| ev.kind().field_index(name))
        .filter(|i| *i < ev.len())
        .collect();
    let left = level(ev, &first, excess, cost);
    if left == 0 {
        return true;
    }
    let all: Vec<usize> = (0..ev.len()).collect();
    level(ev, &all, left, cost) == 0
}

/// Cuts the fields `idx` down to one length (in cost) so that their total falls by `excess`;
/// returns what could not be saved.
fn level(ev: &mut Event, idx: &[usize], excess: usize, cost: fn(&str) -> usize) -> usize {
    let costs: Vec<usize> = idx.iter().map(|i| cost(ev.get(*i))).collect();
    let saved_at = |cap: usize| -> usize { costs.iter().map(|c| c.saturating_sub(cap)).sum() };
    let floor = MARK.len();
    let mut cap = floor;
    if saved_at(floor) > excess {
        // The largest cap that still saves enough: saved_at(lo) >= excess > saved_at(hi).
        let (mut lo, mut hi) = (floor, costs.iter().copied().max().unwrap_or(floor));
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            if saved_at(mid) >= excess {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        cap = lo;
    }
    let mut saved = 0;
    for (k, i) in idx.iter().enumerate() {
        if costs[k] > cap {
            let value = cut(ev.get(*i), cap, cost);
            saved += costs[k] - cost(&value);
            ev.set(*i, &value);
        }
    }
    excess.saturating_sub(saved)
}

/// The longest start of `value` that, with [`MARK`] after it, costs at most `room` (at least
/// the mark's own length). A `\xNN` written for a byte is kept whole or dropped whole.
pub fn cut(value: &str, room: usize, cost: fn(&str) -> usize) -> String {
    let keep = room.saturating_sub(MARK.len());
    let mut used = 0;
    let mut end = 0;
    for (i, c) in value.char_indices() {
        let n = cost(c.encode_utf8(&mut [0; 4]));
        if used + n > keep {
            break;
        }
        used += n;
        end = i + c.len_utf8();
    }
    if let Some(p) = value[..end].rfind('\\') {
        if end - p < 4 && value[p..].starts_with("\\x") && value.len() >= p + 4 {
            end = p;
        }
    }
    let mut out = String::with_capacity(end + MARK.len());
    out.push_str(&value[..end]);
    out.push_str(MARK);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        events::schema::{self, by_id},
        render::xml::escaped_len,
    };

    fn process_create(cmd: &str, parent_cmd: &str, image: &str) -> Event {
        let kind = by_id(schema::PROCESS_CREATE).unwrap();
        let mut e = Event::new(kind);
        for f in kind.fields {
            e.push(match *f {
                "CommandLine" => cmd,
                "ParentCommandLine" => parent_cmd,
                "Image" => image,
                _ => "x",
            });
        }
        e
    }

    fn total(e: &Event) -> usize {
        e.pairs().map(|(_, v)| escaped_len(v)).sum()
    }

    #[test]
    fn cuts_command_lines_first_and_evenly() {
        // (CommandLine, ParentCommandLine, Image, bytes to save,
        //  escaped lengths wanted for CommandLine, ParentCommandLine, Image)
        let q = "\"".repeat(32 * 1024); // 6 bytes each once escaped
        let a = "a".repeat(32 * 1024);
        let p = "/p".repeat(2048);
        let cases: &[(&str, &str, &str, usize, [usize; 3])] = &[
            // The longer command line alone gives up what is needed.
            (&q, &a, "/bin/sh", 100_000, [96_608, 32 * 1024, 7]),
            // Both are cut to the same length; the image is kept whole.
            (&q, &q, &p, 300_000, [46_608, 46_608, 4096]),
            // Command lines down to the mark are not enough: the image goes too.
            (&a, &a, &p, 2 * 32 * 1024, [3, 3, 4096 - 6 + 3]),
        ];
        for (i, (cmd, parent, image, excess, want)) in cases.iter().enumerate() {
            let mut e = process_create(cmd, parent, image);
            let before = total(&e);
            assert!(shrink(&mut e, *excess, escaped_len), "case {i}");
            assert!(before - total(&e) >= *excess, "case {i}: saved enough");
            let got = ["CommandLine", "ParentCommandLine", "Image"]
                .map(|f| escaped_len(e.field(f).unwrap()));
            for (g, w) in got.iter().zip(want) {
                assert!(
                    g.abs_diff(*w) <= 6,
                    "case {i}: got {got:?}, want about {want:?}"
                );
            }
            for (value, f) in
                [cmd, parent, image]
                    .iter()
                    .zip(["CommandLine", "ParentCommandLine", "Image"])
            {
                let was_cut = e.field(f).unwrap() != **value;
                assert_eq!(
                    e.field(f).unwrap().ends_with(MARK),
                    was_cut,
                    "case {i}: {f}"
                );
            }
        }
    }

    #[test]
    fn cut_keeps_characters_and_byte_escapes_whole() {
        // (value, room, result)
        let cases = [
            ("abcdef", 6, "abc..."),
            ("ab\"cd", 9, "ab..."),
            ("ab\"cd", 11, "ab\"..."),
            ("caf\u{e9}s", 7, "caf..."),
            ("ab\\xffcd", 8, "ab..."),
            ("ab\\xffcd", 9, "ab\\xff..."),
            ("abc", 2, "..."),
        ];
        for (value, room, want) in cases {
            assert_eq!(cut(value, room, escaped_len), want, "{value:?} in {room}");
        }
    }

    #[test]
    fn budget_fits_the_shipped_rsyslog_limit() {
        let conf = crate::service::rsyslog::CONF;
        let at = conf
            .find("maxMessageSize=\"")
            .expect("30-sysmon.conf sets maxMessageSize");
        let rest = &conf[at + "maxMessageSize=\"".len()..];
        let kib: usize = rest[..rest.find('k').unwrap()].parse().unwrap();
        let header = "<14>Dec 31 23:59:59 sysmon: ".len();
        assert!(BUDGET + header <= kib * 1024);
    }
}
