//! Events that wait, in order, for a value the hashing thread computes.
//!
//! The reader thread never hashes: an event whose digest is not known yet waits here, and
//! so does every event after it, so that no sink ever sees events out of order. The head
//! goes out as soon as its digest is in, when it has waited `WAIT` (its `Hashes` then say
//! `-`; the digest still lands in the cache for later events of the file), or at once when
//! the queue is over its bounds (`EVENTS_MAX`, `BYTES_MAX`). So every event leaves at most
//! `WAIT` after it was read, and the reader never stops for it.

use std::{
    collections::VecDeque,
    time::{Duration, Instant},
};

use crate::events::{Deferred, Event};

/// How long an event waits for its digest at most.
pub const WAIT: Duration = Duration::from_secs(1);
/// Events waiting at most; past it the oldest goes out without waiting longer.
pub const EVENTS_MAX: usize = 8192;
/// Bytes of waiting events at most (an event is at most 127 KiB).
pub const BYTES_MAX: usize = 16 << 20;
/// Spare events kept for reuse.
const SPARE_MAX: usize = 64;

pub struct Waiting {
    pub event: Event,
    /// The value it waits for (none: it only waits for the events before it).
    pub deferred: Option<Deferred>,
    /// Judged already (its RuleName set): the rules do not read the deferred field.
    pub judged: bool,
    /// The kernel record's time, for the latency.
    pub record_ns: Option<u64>,
    pub until: Instant,
}

#[derive(Default)]
pub struct Held {
    queue: VecDeque<Waiting>,
    bytes: usize,
    spare: Vec<Event>,
}

impl Held {
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.queue.len()
    }

    /// Queues a copy of `event`.
    pub fn push(
        &mut self,
        event: &Event,
        deferred: Option<Deferred>,
        judged: bool,
        record_ns: Option<u64>,
        until: Instant,
    ) {
        let mut copy = self.spare.pop().unwrap_or_else(|| Event::new(event.kind()));
        copy.copy_from(event);
        self.bytes += copy.bytes();
        self.queue.push_back(Waiting {
            event: copy,
            deferred,
            judged,
            record_ns,
            until,
        });
    }

    /// The first event if it may go at `now`: `ready` says its value is known, or its wait
    /// is over, or the queue is over a bound; with `all`, whatever it waits for.
    pub fn pop(
        &mut self,
        now: Instant,
        all: bool,
        ready: impl Fn(&Deferred) -> bool,
    ) -> Option<Waiting> {
        let head = self.queue.front()?;
        let over = self.queue.len() > EVENTS_MAX || self.bytes > BYTES_MAX;
        let go = all || over || now >= head.until || head.deferred.as_ref().is_none_or(ready);
        if !go {
            return None;
        }
        let w = self.queue.pop_front()?;
        self.bytes -= w.event.bytes();
        Some(w)
    }

    /// Whether an event waits to be judged (its rules read the value it waits for).
    pub fn any_unjudged(&self) -> bool {
        self.queue.iter().any(|w| !w.judged)
    }

    /// Takes back an event that went out, to reuse its buffers.
    pub fn recycle(&mut self, event: Event) {
        if self.spare.len() < SPARE_MAX {
            self.spare.push(event);
        }
    }

    /// When the first event stops waiting, if one waits.
    pub fn next_until(&self) -> Option<Instant> {
        self.queue.front().map(|w| w.until)
    }

    #[cfg(test)]
    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        enrich::hashes::FileId,
        events::schema::{self, PROCESS_TERMINATE},
    };

    fn event(pid: u64) -> Event {
        let mut e = Event::new(schema::by_id(PROCESS_TERMINATE).unwrap());
        e.push("");
        e.push("2024-05-14 09:21:07.731");
        e.push("{g}");
        e.push_u64(pid);
        e.push("/bin/true");
        e.push("root");
        e
    }

    fn hashes(ino: u64) -> Option<Deferred> {
        Some(Deferred::Hashes {
            field: 5,
            path: 4,
            file: FileId {
                dev: 1,
                ino,
                size: 1,
                mtime_sec: 1,
                mtime_nsec: 1,
            },
            pid: 1,
            as_found: false,
        })
    }

    fn ino(d: &Deferred) -> u64 {
        match d {
            Deferred::Hashes { file, .. } => file.ino,
        }
    }

    /// Events leave in order: the head when its value is ready or its wait is over, the
    /// ones behind it only after it.
    #[test]
    fn in_order_and_at_most_wait() {
        let t0 = Instant::now();
        let mut h = Held::default();
        // (pid, waits for inode, until)
        h.push(&event(1), hashes(7), true, None, t0 + WAIT);
        h.push(&event(2), None, true, None, t0 + WAIT);
        h.push(&event(3), hashes(8), true, None, t0 + 2 * WAIT);
        let ready7 = |d: &Deferred| ino(d) == 7;
        let none = |_: &Deferred| false;
        assert!(h.pop(t0, false, none).is_none(), "the head waits");
        let pids = |w: Option<Waiting>| w.map(|w| w.event.get(3).to_string());
        assert_eq!(pids(h.pop(t0, false, ready7)).as_deref(), Some("1"));
        assert_eq!(pids(h.pop(t0, false, none)).as_deref(), Some("2"));
        assert!(h.pop(t0 + WAIT, false, none).is_none(), "3 waits longer");
        assert_eq!(
            pids(h.pop(t0 + 2 * WAIT, false, none)).as_deref(),
            Some("3")
        );
        assert!(h.is_empty());
        assert_eq!(h.bytes(), 0);
    }

    /// A burst far past the bounds: the queue never holds more than its bound, the oldest
    /// going out first, without waiting.
    #[test]
    fn bounded() {
        let t0 = Instant::now();
        let mut h = Held::default();
        let mut out = Vec::new();
        for pid in 0..3 * EVENTS_MAX as u64 {
            h.push(&event(pid), hashes(pid), true, None, t0 + WAIT);
            while let Some(w) = h.pop(t0, false, |_| false) {
                out.push(w.event.get(3).parse::<u64>().unwrap());
                h.recycle(w.event);
            }
            assert!(h.len() <= EVENTS_MAX);
        }
        assert_eq!(out, (0..out.len() as u64).collect::<Vec<_>>());
        assert_eq!(out.len(), 2 * EVENTS_MAX);
    }
}
