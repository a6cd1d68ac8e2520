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
}
