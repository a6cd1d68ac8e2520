//! How long events take from the kernel's record to the sink: a fixed log-linear histogram
//! (no allocation, about 12% precision), reported in the stop line and read by the bench.

/// Microseconds below this are counted exactly; above, 8 buckets per power of two.
const LINEAR: u64 = 16;
const SUB: u64 = 8;
/// Up to 2^37 µs (38 hours); longer waits go to the last bucket.
const BUCKETS: usize = (LINEAR + (37 - 4 + 1) * SUB) as usize;

#[derive(Clone)]
pub struct Latency {
    counts: [u64; BUCKETS],
    total: u64,
    max_ns: u64,
}

impl Default for Latency {
    fn default() -> Self {
        Latency {
            counts: [0; BUCKETS],
            total: 0,
            max_ns: 0,
        }
    }
}

impl Latency {
    /// Counts one event recorded at `record_ns` and handed to the sinks at `now_ns` (both
    /// CLOCK_BOOTTIME).
    pub fn add(&mut self, record_ns: u64, now_ns: u64) {
        let ns = now_ns.saturating_sub(record_ns);
        self.counts[bucket(ns / 1000)] += 1;
        self.total += 1;
        self.max_ns = self.max_ns.max(ns);
    }

    pub fn count(&self) -> u64 {
        self.total
    }

    /// The latency `q` (0..=1) of the events are at or under, in ns: the upper bound of its
    /// bucket, never above the largest seen.
    pub fn quantile(&self, q: f64) -> u64 {
        let want = ((self.total as f64 * q).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, n) in self.counts.iter().enumerate() {
            seen += n;
            if seen >= want {
                return (upper_us(i) * 1000).min(self.max_ns);
            }
        }
        self.max_ns
    }

    /// `p50 0.41 ms, p99 4.2 ms, max 9.8 ms (N events)`.
    pub fn summary(&self) -> String {
        let ms = |ns: u64| ns as f64 / 1e6;
        format!(
            "p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms ({} events)",
            ms(self.quantile(0.5)),
            ms(self.quantile(0.99)),
            ms(self.max_ns),
            self.total
        )
    }
}

fn bucket(us: u64) -> usize {
    if us < LINEAR {
        return us as usize;
    }
    let e = 63 - us.leading_zeros() as u64; // 4 for 16..31
    let sub = (us >> (e - 3)) & (SUB - 1);
    ((LINEAR + (e - 4) * SUB + sub) as usize).min(BUCKETS - 1)
}

/// The largest µs value bucket `i` holds.
fn upper_us(i: usize) -> u64 {
    let i = i as u64;
    if i < LINEAR {
        return i;
    }
    let (e, sub) = (4 + (i - LINEAR) / SUB, (i - LINEAR) % SUB);
    ((SUB + sub + 1) << (e - 3)) - 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_value_falls_in_a_bucket_that_holds_it() {
        let mut us = 0;
        while us < 1 << 37 {
            let b = bucket(us);
            assert!(
                upper_us(b) >= us,
                "{us} µs in bucket {b} up to {}",
                upper_us(b)
            );
            assert!(
                b == 0 || upper_us(b - 1) < us,
                "{us} µs: bucket {b} too high"
            );
            // Within 12.5% above the value.
            assert!(upper_us(b) as f64 <= us as f64 * 1.125 + 1.0, "{us}");
            us = us * 9 / 8 + 1;
        }
    }

    #[test]
    fn quantiles_of_known_samples() {
        // (latencies in µs, q, expected answer in µs within the bucket's precision)
        let cases: &[(&[u64], f64, u64)] = &[
            (&[5], 0.5, 5),
            (&[1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 0.5, 5),
            (&[1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 0.99, 10),
            (&[100; 99], 0.99, 100),
            (&[1000, 1000, 1000, 1000, 50_000], 0.5, 1000),
            (&[1000, 1000, 1000, 1000, 50_000], 0.99, 50_000),
        ];
        for (samples, q, want) in cases {
            let mut l = Latency::default();
            for us in *samples {
                l.add(1_000_000, 1_000_000 + us * 1000);
            }
            let got = l.quantile(*q) / 1000;
            assert!(
                got >= *want && got as f64 <= *want as f64 * 1.125 + 1.0,
                "{samples:?} q{q}: {got} µs, want {want}"
            );
        }
        let mut l = Latency::default();
        l.add(10, 5); // a clock that went back counts as 0
        assert_eq!((l.quantile(1.0), l.count()), (0, 1));
    }
}
