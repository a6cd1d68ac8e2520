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

impl fmt::Display for Guid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let k = self.key.to_le_bytes();
        write!(
            f,
            "{{{:08x}-{:04x}-{:04x}-{:02x}{:02x}-{:02x}{:02x}{:02x}{:02x}{:02x}{:02x}}}",
            self.machine,
            self.seconds & 0xffff,
            self.seconds >> 16,
            k[0],
            k[1],
            k[2],
            k[3],
            k[4],
            k[5],
            k[6],
            k[7]
        )
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
        }
    }
}
