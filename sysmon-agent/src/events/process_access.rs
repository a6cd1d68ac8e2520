//! Event 10, ProcessAccess, from an access record: ptrace ATTACH/SEIZE (as Sysmon for
//! Linux), ptrace PEEK*/POKE*, process_vm_readv/writev, and opens of another process's
//! /proc/<pid>/mem. The kernel sends one record per (source, target, kind) a second.

use std::rc::Rc;

use sysmon_common::access::{AccessRecord, NO_ACCESS};

use super::{Event, schema};
use crate::enrich::{Enrich, clock, guid::Guid, procfs};

/// The process an access record is about, as the events show it.
pub struct Target {
    pub tgid: u32,
    pub guid: Guid,
    pub image: Rc<str>,
    pub uid: Option<u32>,
}

/// The target's thread group, from the kernel (/proc/<pid>/mem) or, for a thread id as the
/// caller named it, from the cache (a process id) or /proc/<tid>/status. `None` when the
/// target is gone or is a thread of the source itself (not another process).
pub fn target(rec: &AccessRecord, cx: &mut Enrich) -> Option<Target> {
    let tid = rec.target_tid;
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

/// Builds the event; false when the record carries no event 10.
pub fn build(ev: &mut Event, rec: &AccessRecord, target: &Target, cx: &mut Enrich) -> bool {
    if rec.access == NO_ACCESS {
        return false;
    }
    ev.reset(schema::by_id(schema::PROCESS_ACCESS).unwrap());
    let h = rec.header;
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
