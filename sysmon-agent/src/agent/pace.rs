//! How often the agent reads the ring while records flow, which is the longest a record
//! waits for it: 4 ms while they come fast, so p99 stays under 5 ms at 1600 exec/s. A timer
//! wake-up costs 45–80 µs of CPU on a small VM (`cargo bench --bench wakeup`): 250 a second
//! is more than a percent of a core before any record is handled. So a slow flow is read
//! less often, up to every 32 ms, each read finding about `RECORDS`.
//!
//! A slower period needs 32 ms of reads to show the slower flow (one sparse read among busy
//! ones changes nothing); a faster one is taken at the first read that shows it.

use std::time::Duration;

pub const MIN: Duration = Duration::from_millis(4);
pub const MAX: Duration = Duration::from_millis(32);
/// What a read should find.
const RECORDS: u128 = 8;
/// Without a record for this long, the agent stops polling and sleeps until a record wakes
/// it: idle is idle (no timer), and the first record after a quiet spell is not delayed.
const IDLE_AFTER: Duration = Duration::from_millis(100);

#[derive(Debug, PartialEq, Eq)]
pub enum Next {
    Same,
    Period(Duration),
    Sleep,
}

#[derive(Debug)]
pub struct Pace {
    pub period: Duration,
    /// Records and time since the period was last decided.
    seen: usize,
    span: Duration,
    /// How long the reads have found nothing.
    quiet: Duration,
}

impl Default for Pace {
    fn default() -> Self {
        Pace {
            period: MIN,
            seen: 0,
            span: Duration::ZERO,
            quiet: Duration::ZERO,
        }
    }
}

impl Pace {
    /// After a read that handled `n` records.
    pub fn read(&mut self, n: usize) -> Next {
        self.quiet = if n > 0 {
            Duration::ZERO
        } else {
            self.quiet + self.period
        };
        if self.quiet >= IDLE_AFTER {
            return Next::Sleep;
        }
        self.seen += n;
        self.span += self.period;
        let faster = period_for(self.period, n);
        let next = if faster < self.period {
            faster
        } else if self.span >= MAX {
            period_for(self.span, self.seen)
        } else {
            return Next::Same;
        };
        self.seen = 0;
        self.span = Duration::ZERO;
        if next == self.period {
            return Next::Same;
        }
        self.period = next;
        Next::Period(next)
    }
}

/// The shortest power-of-two multiple of `MIN` in which a flow of `n` records per `span`
/// brings `RECORDS`, at most `MAX`. Powers of two keep the timer from being set again
/// after every read.
fn period_for(span: Duration, n: usize) -> Duration {
    let mut p = MIN;
    while p < MAX && (n as u128) * p.as_nanos() < RECORDS * span.as_nanos() {
        p *= 2;
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    const fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn period_for_a_flow() {
        // (span, records in it, period)
        let cases = [
            (ms(4), 19, ms(4)),   // 1600 exec/s: three records per exec
            (ms(4), 8, ms(4)),    // just enough
            (ms(4), 7, ms(8)),    // a little short
            (ms(32), 38, ms(8)),  // 400 exec/s
            (ms(32), 10, ms(32)), // 100 exec/s
            (ms(4), 1, ms(32)),   // slower still: the longest
            (ms(32), 64, ms(4)),  // a burst
            (ms(32), 0, ms(32)),  // nothing
            (ms(4), 4096, ms(4)), // a full drain
        ];
        for (span, n, want) in cases {
            assert_eq!(period_for(span, n), want, "{n} records in {span:?}");
        }
    }

    #[test]
    fn paces_reads_by_the_flow() {
        use Next::{Period, Same, Sleep};
        // (reads' records, in order; what the last read decides; the period after it)
        let cases: [(&[usize], Next, Duration); 7] = [
            // 1600 exec/s with one sparse read: still every 4 ms.
            (&[19, 19, 5, 19, 19, 19, 19, 19], Same, ms(4)),
            // 100 exec/s: slower once 32 ms of reads show it, not before.
            (&[1, 1, 1, 1, 1, 1, 1], Same, ms(4)),
            (&[1, 1, 1, 1, 1, 1, 1, 1], Period(ms(32)), ms(32)),
            // ... and back to 4 ms at the first busy read.
            (&[1, 1, 1, 1, 1, 1, 1, 1, 64], Period(ms(4)), ms(4)),
            // 400 exec/s.
            (&[5, 5, 5, 5, 5, 5, 5, 5], Period(ms(8)), ms(8)),
            // Nothing for 100 ms: sleep (8 reads of 4 ms, then 32 ms ones).
            (&[0, 0, 0, 0, 0, 0, 0, 0, 0, 0], Same, ms(32)),
            (&[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], Sleep, ms(32)),
        ];
        for (reads, last, period) in cases {
            let mut pace = Pace::default();
            let mut got = Same;
            for &n in reads {
                got = pace.read(n);
            }
            assert_eq!((got, pace.period), (last, period), "{reads:?}");
        }
    }
}
