//! Event 29, FileExecutableDetected, from a file-info record: a regular file created with an
//! execute bit, or given one by chmod.

use sysmon_common::file_info::FileInfoRecord;

use super::{Event, file, schema};
use crate::{
    enrich::{Enrich, hashes::FileId},
    kernel::record::FileTail,
};

pub fn build(ev: &mut Event, rec: &FileInfoRecord, tail: &FileTail, cx: &mut Enrich) {
    ev.reset(schema::by_id(schema::FILE_EXECUTABLE_DETECTED).unwrap());
    let image = file::push_head(ev, &rec.file, cx);
    file::push_user(ev, &rec.file, cx);
    ev.push(&image);
    let at = ev.len();
    file::push_target(ev, &rec.file, tail);
    let id = FileId {
        dev: rec.dev,
        ino: rec.ino,
        size: rec.size,
        mtime_sec: rec.old_sec,
        mtime_nsec: rec.old_nsec,
    };
    // Read by path, checked against the inode the kernel saw: `-` once it is gone or replaced.
    let path: std::rc::Rc<str> = ev.get(at).into();
    let hashes = cx
        .hasher
        .hashes(id, rec.file.header.tgid, &path)
        .unwrap_or("");
    ev.push(hashes);
}
