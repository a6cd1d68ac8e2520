//! Rate limit for event 255, so that a persistent error cannot flood the log: at most
//! `MAX` per window; what was held back is counted and said in the next one let through.

use std::time::{Duration, Instant};

const MAX: u32 = 10;
const WINDOW: Duration = Duration::from_secs(60);

#[derive(Debug, Default)]
pub struct ErrorLimit {
    window_start: Option<Instant>,
    sent: u32,
    held_back: u64,
}

impl ErrorLimit {
    /// Whether `admit` would let one through now: reports that add up counts (drops) wait
    /// while it would not, so that their counts go into the next one instead of being lost.
    pub fn would_admit(&self, now: Instant) -> bool {
        self.window_start
            .is_none_or(|s| now.duration_since(s) >= WINDOW)
            || self.sent < MAX
    }

    /// `None`: hold this one back. `Some(n)`: send it, saying that `n` were held back.
    pub fn admit(&mut self, now: Instant) -> Option<u64> {
        if self
            .window_start
            .is_none_or(|s| now.duration_since(s) >= WINDOW)
        {
            self.window_start = Some(now);
            self.sent = 0;
        }
        if self.sent >= MAX {
            self.held_back += 1;
            return None;
        }
        self.sent += 1;
        Some(std::mem::take(&mut self.held_back))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ten_per_minute_then_counted() {
        let mut l = ErrorLimit::default();
        let t0 = Instant::now();
        for _ in 0..MAX {
            assert_eq!(l.admit(t0), Some(0));
        }
        assert!(!l.would_admit(t0));
        for _ in 0..5 {
            assert_eq!(l.admit(t0 + Duration::from_secs(30)), None);
        }
        assert!(l.would_admit(t0 + WINDOW));
        assert_eq!(l.admit(t0 + WINDOW), Some(5));
        assert_eq!(l.admit(t0 + WINDOW), Some(0));
    }
}
