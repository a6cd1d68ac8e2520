//! Event 23, FileDelete, from a file record: a successful unlink or unlinkat of a file.

use sysmon_common::file::FileRecord;

use super::{Event, file, schema};
use crate::{enrich::Enrich, kernel::record::FileTail};

pub fn build(ev: &mut Event, rec: &FileRecord, tail: &FileTail, cx: &mut Enrich) {
    ev.reset(schema::by_id(schema::FILE_DELETE).unwrap());
    let image = file::push_head(ev, rec, cx);
    file::push_user(ev, rec, cx);
    ev.push(&image);
    file::push_target(ev, rec, tail);
    // Hashes, IsExecutable, Archived: nothing is kept of a deleted file on Linux (Sysmon too).
    for _ in 0..3 {
        ev.push("-");
    }
}
