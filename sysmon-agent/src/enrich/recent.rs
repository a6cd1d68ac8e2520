//! "Once per window": whether a key was let through less than a window ago, in bounded
//! memory and constant time per key, however many fresh keys a burst brings.
//!
//! Keys live in two generations, each at most half the bound: the current one takes the
//! keys let through, and is made the previous one (the previous one is forgotten) when a
//! window has passed since it began, or when it is full. A key is then remembered for at
//! least a window, unless more than half the bound of fresh keys came within that window:
//! then the older ones are forgotten early and a repeat of one is let through again. The
//! limit errs on the side of reporting twice, never of hiding an event.

use std::{collections::HashMap, hash::Hash};

#[derive(Clone, Debug)]
pub struct Recent<K> {
    window_ns: u64,
    /// Keys per generation at most (half the bound).
    half: usize,
    current: HashMap<K, u64>,
    previous: HashMap<K, u64>,
    /// When the current generation began (ns since boot).
    began: u64,
    /// Entries forgotten so far (tests: the work a burst costs).
    pub forgotten: u64,
}

impl<K: Hash + Eq> Recent<K> {
    /// At most `max` keys, each let through once per `window_ns`.
    pub fn new(window_ns: u64, max: usize) -> Self {
        Recent {
            window_ns,
            half: (max / 2).max(1),
            current: HashMap::new(),
            previous: HashMap::new(),
            began: 0,
            forgotten: 0,
        }
    }

    /// Whether `key` may go through at `now_ns` (not let through within the last window);
    /// remembers it if so. A record a little older than the last one (records of two CPUs)
    /// counts as within the window of a later one.
    pub fn admit(&mut self, key: K, now_ns: u64) -> bool {
        if now_ns.saturating_sub(self.began) >= self.window_ns || self.current.len() >= self.half {
            self.forgotten += self.previous.len() as u64;
            // Swapped and cleared, so both keep their allocation from one window to the next.
            std::mem::swap(&mut self.current, &mut self.previous);
            self.current.clear();
            self.began = now_ns;
        }
        let last = self.current.get(&key).or_else(|| self.previous.get(&key));
        if last.is_some_and(|t| now_ns.saturating_sub(*t) < self.window_ns) {
            return false;
        }
        self.current.insert(key, now_ns);
        true
    }

    /// Keys remembered now.
    pub fn len(&self) -> usize {
        self.current.len() + self.previous.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    #[test]
    fn once_per_window() {
        let mut r = Recent::new(S, 16);
        // (key, time, let through)
        let steps = [
            (1, 5 * S, true),
            (1, 5 * S + 1, false),
            (2, 5 * S + 2, true),
            // A record a little older than the last one is within the window.
            (1, 5 * S - 10, false),
            // Across a generation change: still remembered.
            (3, 6 * S - 1, true),
            (1, 6 * S - 1, false),
            (3, 6 * S + 5, false),
            (1, 6 * S, true),
            (3, 7 * S - 1, true),
            (3, 7 * S, false),
        ];
        for (i, (key, t, want)) in steps.into_iter().enumerate() {
            assert_eq!(r.admit(key, t), want, "step {i}");
        }
    }

    /// A burst of many times the bound in fresh keys, all within one window: memory stays
    /// within the bound and the work is linear in the burst (the old sweep-when-full went
    /// over the whole table at every key past the bound).
    #[test]
    fn a_burst_of_fresh_keys_stays_bounded_and_linear() {
        const MAX: usize = 4096;
        // (keys in the burst, keys per nanosecond step)
        for n in [MAX as u64 * 10, MAX as u64 * 100] {
            let mut r = Recent::new(S, MAX);
            let mut largest = 0;
            for k in 0..n {
                assert!(r.admit(k, S + k), "fresh key {k}");
                largest = largest.max(r.len());
            }
            assert!(largest <= MAX, "{largest} keys kept");
            assert!(r.forgotten <= n, "{} forgotten for {n} keys", r.forgotten);
            // A repeat of a recent key is still held back.
            assert!(!r.admit(n - 1, S + n));
        }
    }
}
