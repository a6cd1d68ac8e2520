//! How often the agent reads the ring while records flow, which is the longest a record
//! waits for it. The budget is 50 ms from the kernel to the sinks (p99; a detection pipeline
//! counts its delays in seconds): the ring is read every 32 ms while records come, at any
//! rate, and the rest of the budget is for the read itself (a 50 000/s storm's read handles
//! about 1 600 records) and a wake-up that comes late on a busy machine.
//!
//! A timer wake-up costs 45–80 µs of CPU on a small VM (`cargo bench --bench wakeup`): 31 a
//! second are about 0.2 % of a core, where the 4 ms period of a 5 ms budget cost 1.1–1.3 %.
//! The ring holds far more than 32 ms of any flow (8 MiB: 40 000 file-creation records), and
//! past a quarter full every record wakes the agent anyway (`sysmon-ebpf` `wake_flags`).

use std::time::Duration;

pub const PERIOD: Duration = Duration::from_millis(32);
/// Without a record for this long, the agent stops polling and sleeps until a record wakes
/// it: idle is idle (no timer), and the first record after a quiet spell is not delayed.
const IDLE_AFTER: Duration = Duration::from_millis(100);

#[derive(Debug, PartialEq, Eq)]
pub enum Next {
    /// Read again in a period.
    Same,
    /// Nothing came for a while: sleep until a record wakes the agent.
    Sleep,
}

#[derive(Debug, Default)]
pub struct Pace {
    /// How long the reads have found nothing.
    quiet: Duration,
}

impl Pace {
    /// After a read that handled `n` records.
    pub fn read(&mut self, n: usize) -> Next {
        self.quiet = if n > 0 {
            Duration::ZERO
        } else {
            self.quiet + PERIOD
        };
        if self.quiet >= IDLE_AFTER {
            Next::Sleep
        } else {
            Next::Same
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sleeps_only_after_a_quiet_spell() {
        use Next::{Same, Sleep};
        // (reads' records, in order; what the last read decides)
        let cases: [(&[usize], Next); 5] = [
            (&[150, 150, 150], Same),
            (&[3, 0, 0], Same),
            // 4 empty reads of 32 ms: past 100 ms.
            (&[3, 0, 0, 0, 0], Sleep),
            // A record in between starts the count again.
            (&[0, 0, 0, 1, 0, 0, 0], Same),
            (&[0, 0, 0, 0], Sleep),
        ];
        for (reads, last) in cases {
            let mut pace = Pace::default();
            let mut got = Same;
            for &n in reads {
                got = pace.read(n);
            }
            assert_eq!(got, last, "{reads:?}");
        }
    }
}
