//! Event 2, FileCreateTime, from a file-info record: a utimes-family call that set a file's
//! modification time earlier than it was. Linux has no creation time to change; the
//! modification time is what `touch -d` and timestomping tools rewrite.

use sysmon_common::file_info::FileInfoRecord;

use super::{Event, file, schema};
use crate::{
    enrich::{Enrich, clock},
    kernel::record::FileTail,
};

pub fn build(ev: &mut Event, rec: &FileInfoRecord, tail: &FileTail, cx: &mut Enrich) {
    ev.reset(schema::by_id(schema::FILE_CREATE_TIME).unwrap());
    let image = file::push_head(ev, &rec.file, cx);
    ev.push(&image);
    file::push_target(ev, &rec.file, tail);
    clock::write_utc_time(ev.buf(), epoch_ns(rec.new_sec, rec.new_nsec));
    ev.close();
    clock::write_utc_time(ev.buf(), epoch_ns(rec.old_sec, rec.old_nsec));
    ev.close();
    file::push_user(ev, &rec.file, cx);
}

fn epoch_ns(sec: i64, nsec: u32) -> i128 {
    sec as i128 * 1_000_000_000 + nsec as i128
}
