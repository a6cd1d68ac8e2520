//! Event 7, ImageLoad, from a file-info record: a file mapped executable into a process.
//! The Windows-only fields (version resource, signature) are `-`.

use sysmon_common::file_info::FileInfoRecord;

use super::{Deferred, Event, file, schema};
use crate::{
    enrich::{Enrich, hashes::FileId},
    kernel::record::FileTail,
};

pub fn build(ev: &mut Event, rec: &FileInfoRecord, tail: &FileTail, cx: &mut Enrich) {
    ev.reset(schema::by_id(schema::IMAGE_LOAD).unwrap());
    let image = file::push_head(ev, &rec.file, cx);
    ev.push(&image);
    let at = ev.len();
    file::push_target(ev, &rec.file, tail); // ImageLoaded
    // FileVersion, Description, Product, Company, OriginalFileName.
    for _ in 0..5 {
        ev.push("-");
    }
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
        as_found: false,
    });
    // Signed, Signature, SignatureStatus.
    for _ in 0..3 {
        ev.push("-");
    }
    file::push_user(ev, &rec.file, cx);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_only_fields_are_dashes() {
        let mut cx = Enrich::new(Default::default());
        let mut ev = Event::new(schema::by_id(schema::IMAGE_LOAD).unwrap());
        let tail = FileTail {
            dir: b"/nonexistent/libx.so",
            name: b"",
        };
        build(&mut ev, &FileInfoRecord::default(), &tail, &mut cx);
        assert!(ev.is_complete());
        assert_eq!(ev.field("ImageLoaded"), Some("/nonexistent/libx.so"));
        for f in [
            "FileVersion",
            "Description",
            "Product",
            "Company",
            "OriginalFileName",
            "Hashes",
            "Signed",
            "Signature",
            "SignatureStatus",
        ] {
            assert_eq!(ev.field(f), Some("-"), "{f}");
        }
    }
}
