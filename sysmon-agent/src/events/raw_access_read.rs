//! Event 9, RawAccessRead, from a file record: a successful open of a block device.

use sysmon_common::file::FileRecord;

use super::{Event, file, schema};
use crate::{enrich::Enrich, kernel::record::FileTail};

pub fn build(ev: &mut Event, rec: &FileRecord, tail: &FileTail, cx: &mut Enrich) {
    ev.reset(schema::by_id(schema::RAW_ACCESS_READ).unwrap());
    let image = file::push_head(ev, rec, cx);
    ev.push(&image);
    file::push_target(ev, rec, tail); // Device
    file::push_user(ev, rec, cx);
}
