//! Sysmon's GUIDs: machine id ‖ seconds ‖ key, printed lower case in braces.

use std::fmt;

/// 16 bytes = machine id (u32 LE) ‖ seconds (u32 LE) ‖ key (u64 LE).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Guid {
    pub machine: u32,
    pub seconds: u32,
    pub key: u64,
}

impl Guid {
    pub const ZERO: Guid = Guid {
        machine: 0,
        seconds: 0,
        key: 0,
    };
}

impl Guid {
    /// The text, `{xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx}`, written by hand: a GUID is in
    /// every event, and `core::fmt` with eleven padded hex arguments was a hot spot.
    pub fn text(&self) -> [u8; 38] {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        fn hex(t: &mut [u8], n: u64) {
            let digits = t.len();
            for (k, b) in t.iter_mut().enumerate() {
                *b = HEX[(n >> (4 * (digits - 1 - k)) & 15) as usize];
            }
        }
        let mut t = *b"{00000000-0000-0000-0000-000000000000}";
        hex(&mut t[1..9], self.machine as u64);
        hex(&mut t[10..14], (self.seconds & 0xffff) as u64);
        hex(&mut t[15..19], (self.seconds >> 16) as u64);
        // The key's bytes in memory order (little endian), two digits each.
        let k = self.key.swap_bytes();
        hex(&mut t[20..24], k >> 48);
        hex(&mut t[25..37], k);
        t
    }

    /// Appends the text to `out`.
    pub fn push(&self, out: &mut String) {
        let t = self.text();
        // SAFETY: the text is ASCII.
        out.push_str(unsafe { std::str::from_utf8_unchecked(&t) });
    }
}

impl fmt::Display for Guid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let t = self.text();
        // SAFETY: the text is ASCII.
        f.write_str(unsafe { std::str::from_utf8_unchecked(&t) })
    }
}

/// /proc gives a process's start time in clock ticks (1/100 s); the kernel's records in
/// nanoseconds. A ProcessGuid is made from the start time cut to a tick, so both give one
/// GUID for one process.
pub const TICK_NS: u64 = 10_000_000;
/// The key's low bits: the low bits of the executable's `mm->end_code`, as Sysmon's key.
const IMAGE_BITS: u32 = 35;
/// ... then the hundredth of the start second (7 bits), then the pid (22 bits: the kernel's
/// `PID_MAX_LIMIT` is 2^22).
const CENTI_SHIFT: u32 = IMAGE_BITS;
const PID_SHIFT: u32 = IMAGE_BITS + 7;

/// The ProcessGuid of process `pid` started at `start_epoch_10ms` (its start time in
/// hundredths of a second since the epoch, cut to a tick) running an executable whose text
/// ends at `end_code`.
///
/// Sysmon's GUID is seconds ‖ `end_code`: a child that forks without exec in its parent's
/// second, or any two runs of a non-PIE executable in one second, share one GUID. Ours keeps
/// the seconds and Sysmon's layout, and makes the key unique: the pid and the hundredth of
/// the second it started in, over the low bits of `end_code` (so an exec still gives a new
/// GUID, as in Sysmon). Two processes share a GUID only if one pid is used twice within one
/// hundredth of a second by the same executable, which the kernel cannot do (a pid is
/// handed out again only after going round every other).
pub fn process_guid(machine: u32, pid: u32, start_epoch_10ms: u64, end_code: u64) -> Guid {
    let image = end_code & ((1 << IMAGE_BITS) - 1);
    let centi = start_epoch_10ms % 100;
    Guid {
        machine,
        seconds: (start_epoch_10ms / 100) as u32,
        key: (u64::from(pid) << PID_SHIFT) | (centi << CENTI_SHIFT) | image,
    }
}

/// The `end_code` bits of a ProcessGuid's key: what a forked child shares with its parent.
pub fn image_bits(key: u64) -> u64 {
    key & ((1 << IMAGE_BITS) - 1)
}

/// First 8 hex digits of /etc/machine-id; 0 when missing, as Sysmon.
pub fn machine_id() -> u32 {
    std::fs::read_to_string("/etc/machine-id")
        .ok()
        .and_then(|s| u32::from_str_radix(s.get(..8)?, 16).ok())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_matches_sysmon() {
        let cases = [
            (
                Guid {
                    machine: 0x5f3c0a9e,
                    seconds: 0x66432d03,
                    key: 0x0000_55b9_f623_b4d5,
                },
                "{5f3c0a9e-2d03-6643-d5b4-23f6b9550000}",
            ),
            (
                Guid {
                    machine: 0x5f3c0a9e,
                    seconds: 0,
                    key: 1000,
                },
                "{5f3c0a9e-0000-0000-e803-000000000000}",
            ),
            (Guid::ZERO, "{00000000-0000-0000-0000-000000000000}"),
        ];
        for (g, want) in cases {
            assert_eq!(g.to_string(), want);
            let mut s = String::from("x");
            g.push(&mut s);
            assert_eq!(s, format!("x{want}"));
        }
    }

    /// Processes that differ in pid, start (to the hundredth of a second) or executable
    /// never share a GUID; the same process always gets the same one.
    #[test]
    fn process_guids_are_unique_per_process() {
        let t = 1_715_678_467 * 100; // hundredths of a second since the epoch
        let code = 0x0000_55b9_f623_b4d5;
        let base = process_guid(7, 4242, t, code);
        assert_eq!(base, process_guid(7, 4242, t, code));
        assert_eq!(base.seconds, 1_715_678_467);
        assert_eq!(image_bits(base.key), code & ((1 << 35) - 1));
        // (pid, start, end_code): each differs from `base` in one.
        let others = [
            (4243, t, code),
            ((1 << 22) - 1, t, code),
            (4242, t + 1, code),
            (4242, t + 99, code),
            (4242, t + 100, code),
            (4242, t, code + 0x1000),
        ];
        let mut seen = std::collections::HashSet::from([base]);
        for (pid, start, end) in others {
            let g = process_guid(7, pid, start, end);
            assert!(seen.insert(g), "{pid} {start} {end:#x}: {g}");
        }
        // A forked child in its parent's hundredth still differs by its pid.
        let child = process_guid(7, 4300, t, image_bits(base.key));
        assert_ne!(child, base);
        assert_eq!(image_bits(child.key), image_bits(base.key));
    }
}
