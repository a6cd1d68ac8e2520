//! Event 8, CreateRemoteThread, Linux meaning: one process changed another's code or control
//! flow (ptrace POKETEXT/POKEDATA/POKEUSR/SETREGS/SETREGSET, process_vm_writev). From the
//! same access record as event 10; the kernel sends it once per (source, target) a second.

use sysmon_common::access::AccessRecord;

use super::{
    Event,
    process_access::{Target, push_users, remote_due, source},
    schema,
};
use crate::enrich::{Enrich, clock, procfs};

/// Builds the event; false when the record carries no event 8 or its process already had
/// one this second.
pub fn build(ev: &mut Event, rec: &AccessRecord, target: &Target, cx: &mut Enrich) -> bool {
    if !remote_due(rec, target, cx) {
        return false;
    }
    ev.reset(schema::by_id(schema::CREATE_REMOTE_THREAD).unwrap());
    let h = rec.header;
    ev.push(""); // RuleName
    clock::write_utc_time(ev.buf(), cx.clock.epoch_ns(h.time_ns));
    ev.close();
    let (guid, image) = source(h.tgid, cx);
    ev.push_fmt(format_args!("{guid}"));
    ev.push_fmt(format_args!("{}", h.tgid));
    ev.push(&image);
    ev.push_fmt(format_args!("{}", target.guid));
    ev.push_fmt(format_args!("{}", target.tgid));
    ev.push(&target.image);
    ev.push_fmt(format_args!("{}", rec.target_tid)); // NewThreadId
    ev.push_fmt(format_args!("0x{:016X}", rec.address)); // StartAddress
    // StartModule: the file mapped there, read while the target still runs.
    match procfs::mapped_file(target.tgid, rec.address) {
        Some(path) => ev.push(&path),
        None => ev.push(""),
    }
    ev.push(""); // StartFunction
    push_users(ev, rec.uid, target, cx);
    true
}
