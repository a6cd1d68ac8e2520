//! Event 29, FileExecutableDetected, from a file-info record: a regular file created with an
//! execute bit, or given one by chmod.

use std::os::unix::fs::MetadataExt;

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
    // Read by path, checked against the inode the kernel saw: `-` once it is gone or replaced.
    // The content is what it is when read: a file created executable is often still being
    // written, so its size and time are taken now, not from the record.
    let path: std::rc::Rc<str> = ev.get(at).into();
    let (size, mtime_sec, mtime_nsec) = match std::fs::metadata(&*path) {
        Ok(m) if m.ino() == rec.ino => (m.size() as i64, m.mtime(), m.mtime_nsec() as u32),
        _ => (rec.size, rec.old_sec, rec.old_nsec),
    };
    let id = FileId {
        dev: rec.dev,
        ino: rec.ino,
        size,
        mtime_sec,
        mtime_nsec,
    };
    let hashes = cx
        .hasher
        .hashes(id, rec.file.header.tgid, &path)
        .unwrap_or("");
    ev.push(hashes);
}
