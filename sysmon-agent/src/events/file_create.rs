//! Event 11, FileCreate, from a file record: a successful open that created the file.

use sysmon_common::file::FileRecord;

use super::{Event, file, schema};
use crate::{
    enrich::{Enrich, clock},
    kernel::record::FileTail,
};

pub fn build(ev: &mut Event, rec: &FileRecord, tail: &FileTail, cx: &mut Enrich) {
    ev.reset(schema::by_id(schema::FILE_CREATE).unwrap());
    let image = file::push_head(ev, rec, cx);
    ev.push(&image);
    file::push_target(ev, rec, tail);
    // CreationUtcTime: the event time, as Sysmon (the file was created by this very call).
    clock::write_utc_time(ev.buf(), cx.clock.epoch_ns(rec.header.time_ns));
    ev.close();
    file::push_user(ev, rec, cx);
}
