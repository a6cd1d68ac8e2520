//! Event 10, ProcessAccess, from an access record: ptrace ATTACH/SEIZE (as Sysmon for
//! Linux), ptrace PEEK*/POKE*, process_vm_readv/writev, and opens of another process's
//! /proc/<pid>/mem. The kernel sends one record per (source, target, kind) a second.

use std::rc::Rc;

use sysmon_common::access::{ACCESS_REPORT_NS, AccessRecord, NO_ACCESS, flag, remote_kind};

use super::{Event, schema};
use crate::enrich::{Enrich, clock, guid::Guid, procfs, recent::Recent};

/// The process an access record is about, as the events show it.
pub struct Target {
    pub tgid: u32,
    pub guid: Guid,
    pub image: Rc<str>,
    pub uid: Option<u32>,
}

/// The target's thread group, from the kernel (/proc/<pid>/mem, a caller in another pid
/// namespace) or, for a thread id as the caller named it, from the cache (a process id) or
/// /proc/<tid>/status. `None` when the target is gone or is a thread of the source itself
/// (not another process). A pid named in another pid namespace that the kernel could not
/// find there (the target exited at once) is shown as named, with no GUID, image or user:
/// the host's process of that number is another one.
pub fn target(rec: &AccessRecord, cx: &mut Enrich) -> Option<Target> {
    let tid = rec.target_tid;
    if rec.flags & flag::NS_UNRESOLVED != 0 {
        return Some(Target {
            tgid: tid,
            guid: Guid::ZERO,
            image: "".into(),
            uid: None,
        });
    }
    let tgid = match rec.target_tgid {
        0 if cx.cache.contains(tid) => tid,
        0 => procfs::tgid_of(tid)?,
        t => t,
    };
    if tgid == rec.header.tgid {
        return None;
    }
    Some(match cx.cache.get(tgid, None) {
        Some(p) => Target {
            tgid,
            guid: p.guid,
            image: p.image.clone(),
            uid: Some(p.uid),
        },
        None => Target {
            tgid,
            guid: Guid::ZERO,
            image: "".into(),
            uid: None,
        },
    })
}

/// The kernel limits each (source, target thread as named, kind) to once a second; this
/// makes it once per target *process*: a debugger attaching to every thread of a process
/// gives one event, not one per thread.
pub struct AccessLimit {
    seen: Recent<(u32, u32, u32)>,
}

/// Keys remembered at most (see `Recent`: past it, an access may be reported twice in a
/// second, never hidden).
const LIMIT_ENTRIES: usize = 4096;

impl Default for AccessLimit {
    fn default() -> Self {
        AccessLimit {
            seen: Recent::new(ACCESS_REPORT_NS, LIMIT_ENTRIES),
        }
    }
}

impl AccessLimit {
    /// Whether an event of `kind` from `source` to `target` at `now_ns` may go out.
    pub fn admit(&mut self, source: u32, target: u32, kind: u32, now_ns: u64) -> bool {
        self.seen.admit((source, target, kind), now_ns)
    }
}

/// Builds the event; false when the record carries no event 10 or its process already had
/// one this second.
pub fn build(ev: &mut Event, rec: &AccessRecord, target: &Target, cx: &mut Enrich) -> bool {
    let h = rec.header;
    if rec.access == NO_ACCESS || !cx.access.admit(h.tgid, target.tgid, rec.access, h.time_ns) {
        return false;
    }
    ev.reset(schema::by_id(schema::PROCESS_ACCESS).unwrap());
    ev.push(""); // RuleName
    clock::write_utc_time(ev.buf(), cx.clock.epoch_ns(h.time_ns));
    ev.close();
    let (guid, image) = source(h.tgid, cx);
    ev.push_fmt(format_args!("{guid}"));
    ev.push_fmt(format_args!("{}", h.tgid));
    ev.push_fmt(format_args!("{}", h.tid));
    ev.push(&image);
    ev.push_fmt(format_args!("{}", target.guid));
    ev.push_fmt(format_args!("{}", target.tgid));
    ev.push(&target.image);
    ev.push_fmt(format_args!("0x{:x}", rec.access));
    ev.push(""); // CallTrace
    push_users(ev, rec.uid, target, cx);
    true
}

/// Whether the record carries an event 8 that may go out (see [`AccessLimit`]).
pub fn remote_due(rec: &AccessRecord, target: &Target, cx: &mut Enrich) -> bool {
    let h = rec.header;
    rec.flags & flag::REMOTE != 0
        && cx
            .access
            .admit(h.tgid, target.tgid, remote_kind(rec.flags), h.time_ns)
}

/// ProcessGuid and image of the acting process.
pub fn source(tgid: u32, cx: &mut Enrich) -> (Guid, Rc<str>) {
    match cx.cache.get(tgid, None) {
        Some(p) => (p.guid, p.image.clone()),
        None => (Guid::ZERO, "".into()),
    }
}

/// SourceUser (root is `root`, unlike Sysmon for Linux) and TargetUser.
pub fn push_users(ev: &mut Event, uid: u32, target: &Target, cx: &mut Enrich) {
    ev.push(cx.users.name(uid).unwrap_or(""));
    let name = target.uid.and_then(|u| cx.users.name(u)).unwrap_or("");
    ev.push(name);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn once_a_second_per_source_target_and_kind() {
        let mut l = AccessLimit::default();
        let s = 1_000_000_000;
        // (source, target, kind, time, admitted)
        let cases = [
            (1, 2, 0x10, 5 * s, true),
            (1, 2, 0x10, 5 * s + 1, false),
            (1, 2, 0x20, 5 * s + 2, true),
            (1, 3, 0x10, 5 * s + 3, true),
            (4, 2, 0x10, 5 * s + 4, true),
            (1, 2, 0x10, 6 * s - 1, false),
            (1, 2, 0x10, 6 * s, true),
        ];
        for (i, (src, tgt, kind, t, want)) in cases.into_iter().enumerate() {
            assert_eq!(l.admit(src, tgt, kind, t), want, "case {i}");
        }
        // A burst of many times the bound in fresh targets: the memory stays bounded, and
        // what was let through last is still limited.
        for n in 0..10 * LIMIT_ENTRIES as u32 {
            assert!(l.admit(100, n, 0, 7 * s + n as u64));
            assert!(l.seen.len() <= LIMIT_ENTRIES);
        }
        assert!(l.seen.forgotten <= 10 * LIMIT_ENTRIES as u64);
        assert!(!l.admit(100, 10 * LIMIT_ENTRIES as u32 - 1, 0, 8 * s));
    }

    #[test]
    fn a_write_does_not_take_the_slot_of_a_new_instruction_pointer() {
        use sysmon_common::access::{REMOTE_IP_KIND, REMOTE_KIND};
        let mut l = AccessLimit::default();
        let write = remote_kind(flag::REMOTE);
        let control = remote_kind(flag::REMOTE | flag::CONTROL);
        assert_eq!((write, control), (REMOTE_KIND, REMOTE_IP_KIND));
        assert!(l.admit(1, 2, write, 10));
        assert!(l.admit(1, 2, control, 11), "SETREGS after POKEDATA");
        assert!(!l.admit(1, 2, write, 12));
        assert!(!l.admit(1, 2, control, 13));
    }
}
