//! Event 22, DnsQuery, from a DNS record: a UDP datagram from port 53 as the receiving
//! process got it. One event per response (so a lookup of A and AAAA is two), at most once
//! per process, name and type per second, so that a retry storm is one event.

use super::{
    Event,
    dns::{self, Response},
    schema,
};
use crate::{
    enrich::{Enrich, recent::Recent},
    kernel::record::DnsMessage,
};

/// A name is reported again by the same process for the same type after this long.
const REPEAT_NS: u64 = 1_000_000_000;
/// Responses remembered for that at most (see `Recent`: past it, a repeat may be reported
/// twice, never hidden).
const RECENT_MAX: usize = 4096;

/// What the builder keeps between records: the parse buffers and the recent responses.
pub struct DnsState {
    response: Response,
    /// (pid, query type, hash of the name) of the events of the last second.
    recent: Recent<(u32, u16, u64)>,
    /// Keyed at random at start: with a known key, a name could be found whose hash is
    /// that of a harmless one asked just before, and its event would be held back.
    names: std::hash::RandomState,
}

impl Default for DnsState {
    fn default() -> Self {
        DnsState {
            response: Response::default(),
            recent: Recent::new(REPEAT_NS, RECENT_MAX),
            names: std::hash::RandomState::new(),
        }
    }
}

/// Builds the event into `ev`; false when there is none (not a well-formed response, or
/// the same one less than a second ago).
pub fn build(ev: &mut Event, rec: &DnsMessage, st: &mut DnsState, cx: &mut Enrich) -> bool {
    if dns::parse(rec.data, rec.cut, &mut st.response).is_err() {
        return false;
    }
    let pid = rec.header.tgid;
    let now = rec.header.time_ns;
    if !st.admit(pid, now) {
        return false;
    }
    let r = &st.response;
    ev.reset(schema::by_id(schema::DNS_QUERY).unwrap());
    let image = super::push_actor(ev, pid, now, cx);
    ev.push(&r.name);
    ev.push_fmt(format_args!("{}", r.status));
    ev.push(&r.results);
    ev.push(&image);
    ev.push(cx.users.name(rec.uid).unwrap_or(""));
    true
}

impl DnsState {
    /// Whether the response just parsed is the first of its (process, name, type) within
    /// `REPEAT_NS`; remembers it.
    fn admit(&mut self, pid: u32, now: u64) -> bool {
        use std::hash::BuildHasher;
        let r = &self.response;
        let hash = self.names.hash_one(&r.name);
        self.recent.admit((pid, r.qtype, hash), now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::dns::tests::response;

    fn state_with(name: &str, qtype: u16) -> DnsState {
        let mut st = DnsState::default();
        let msg = response(name, qtype, 0, &[]);
        dns::parse(&msg, false, &mut st.response).unwrap();
        st
    }

    #[test]
    fn once_per_process_name_and_type_per_second() {
        let mut st = state_with("a.example", 1);
        let s = REPEAT_NS;
        // (pid, time, admitted)
        let steps = [
            (10, 0, true),
            (10, s / 2, false),
            (11, s / 2, true),
            (10, s + 1, true),
            (10, s + 2, false),
        ];
        for (i, (pid, t, want)) in steps.into_iter().enumerate() {
            assert_eq!(st.admit(pid, t), want, "step {i}");
        }
        // Another type or another name is another event.
        let mut other = state_with("a.example", 28);
        (other.recent, other.names) = (st.recent.clone(), st.names.clone());
        assert!(other.admit(10, s + 3));
        let mut other = state_with("b.example", 1);
        (other.recent, other.names) = (st.recent, st.names);
        assert!(other.admit(10, s + 3));
    }

    /// A burst of many times the bound in fresh (process, name) pairs: the memory stays
    /// within the bound, the work linear in the burst.
    #[test]
    fn a_burst_of_fresh_names_stays_bounded() {
        let mut st = state_with("a.example", 1);
        let n = 20 * RECENT_MAX as u32;
        for pid in 0..n {
            assert!(st.admit(pid, REPEAT_NS + pid as u64));
            assert!(st.recent.len() <= RECENT_MAX);
        }
        assert!(st.recent.forgotten <= n as u64);
        assert!(!st.admit(n - 1, 2 * REPEAT_NS));
    }
}
