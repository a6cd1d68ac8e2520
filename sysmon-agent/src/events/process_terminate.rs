//! Event 5, ProcessTerminate, from an exit record (once per process).

use sysmon_common::process::ExitRecord;

use super::{Event, schema};
use crate::enrich::{Enrich, clock};

pub fn build(ev: &mut Event, rec: &ExitRecord, cx: &mut Enrich) {
    ev.reset(schema::by_id(schema::PROCESS_TERMINATE).unwrap());
    let pid = rec.header.tgid;
    ev.push(""); // RuleName
    clock::write_utc_time(ev.buf(), cx.clock.epoch_ns(rec.header.time_ns));
    ev.close();
    let start = rec.start_ns;
    let guid = cx.cache.guid(pid, start, 0);
    match cx.cache.get(pid, Some(start)) {
        Some(p) => {
            ev.push_guid(&p.guid);
            ev.push_u64(pid as u64);
            ev.push(&p.image);
        }
        None => {
            // Unknown to the cache and already gone from /proc: the GUID keeps its start
            // time (key 0, as Sysmon for a process without memory), the image is unknown.
            ev.push_guid(&guid);
            ev.push_u64(pid as u64);
            ev.push("");
        }
    }
    ev.push(cx.users.name(rec.uid).unwrap_or(""));
    cx.cache.exited(pid, start);
}
