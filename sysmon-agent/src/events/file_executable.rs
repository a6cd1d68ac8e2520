//! Event 29, FileExecutableDetected, from a file-info record: a regular file created with an
//! execute bit, or given one by chmod.

use sysmon_common::file_info::FileInfoRecord;

use super::{Deferred, Event, file, schema};
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
    // Read by path on the hashing thread, checked against the inode the kernel saw (`-`
    // once it is gone or replaced). The content is what the file holds when read: a file
    // created executable is often still being written.
    let id = FileId {
        dev: rec.dev,
        ino: rec.ino,
        size: rec.size,
        mtime_sec: rec.old_sec,
        mtime_nsec: rec.old_nsec,
    };
    // Hashed only once the rules keep the event (or need the digest to judge it).
    ev.defer(Deferred::Hashes {
        field: ev.len(),
        path: at,
        file: id,
        pid: rec.file.header.tgid,
        as_found: true,
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    fn record_for(path: &std::path::Path) -> FileInfoRecord {
        let m = std::fs::metadata(path).unwrap();
        FileInfoRecord {
            file: sysmon_common::file::FileRecord {
                dir_len: path.as_os_str().len() as u32,
                ..Default::default()
            },
            dev: ((libc::major(m.dev()) << 20) | libc::minor(m.dev())),
            ino: m.ino(),
            size: 0,
            ..Default::default()
        }
    }

    #[test]
    fn hashes_the_content_as_read_and_dash_once_the_file_is_gone() {
        let path = std::env::temp_dir().join(format!("sysmon-fexec-{}", std::process::id()));
        std::fs::write(&path, b"\x7fELF").unwrap();
        let rec = record_for(&path);
        let bytes = path.as_os_str().as_encoded_bytes();
        let tail = FileTail {
            dir: bytes,
            name: b"",
        };
        let mut cx = Enrich::new(Default::default());
        let mut ev = Event::new(schema::by_id(schema::FILE_EXECUTABLE_DETECTED).unwrap());
        // Created empty (size 0 in the record), written since: the content now is hashed.
        let mut build = |ev: &mut Event, rec: &FileInfoRecord| {
            build(ev, rec, &tail, &mut cx);
            ev.take_deferred().unwrap().fill_waiting(ev, &mut cx);
        };
        build(&mut ev, &rec);
        assert!(ev.is_complete());
        assert_eq!(
            ev.field("Hashes"),
            Some("SHA256=3bdbb4fe8397cd2b842430b39ccff01a8663c751945ef5e9a09e267fb8b1d359")
        );
        std::fs::remove_file(&path).unwrap();
        let rec = FileInfoRecord {
            ino: rec.ino + 1,
            ..rec
        };
        build(&mut ev, &rec);
        assert_eq!(ev.field("Hashes"), Some("-"));
    }
}
