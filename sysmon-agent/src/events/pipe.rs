//! Events 17 and 18, PipeEvent: a FIFO created (mknod, mkfifo) or opened. `EventType` is
//! Sysmon's: `CreatePipe`, `ConnectPipe`.

use sysmon_common::file::FileRecord;

use super::{Event, file, schema};
use crate::{
    enrich::{Enrich, clock, guid::Guid},
    kernel::record::FileTail,
};

pub fn build(ev: &mut Event, id: u16, rec: &FileRecord, tail: &FileTail, cx: &mut Enrich) {
    ev.reset(schema::by_id(id).unwrap());
    ev.push(""); // RuleName
    ev.push(if id == schema::PIPE_CREATED {
        "CreatePipe"
    } else {
        "ConnectPipe"
    });
    clock::write_utc_time(ev.buf(), cx.clock.epoch_ns(rec.header.time_ns));
    ev.close();
    let pid = rec.header.tgid;
    let (guid, image) = match cx.cache.get(pid, None) {
        Some(p) => (p.guid, p.image.clone()),
        None => (Guid::ZERO, "".into()),
    };
    ev.push_fmt(format_args!("{guid}"));
    ev.push_fmt(format_args!("{pid}"));
    file::push_target(ev, rec, tail); // PipeName
    ev.push(&image);
    file::push_user(ev, rec, cx);
}
