//! Event 29, FileExecutableDetected, from a file-info record: a regular file created with an
//! execute bit, or given one by chmod.

use std::os::unix::fs::MetadataExt;

use sysmon_common::file_info::{FileInfoRecord, S_IXUGO, state};

use super::{Deferred, Event, file, schema};
use crate::{
    enrich::{Enrich, hashes::FileId},
    kernel::record::FileTail,
};

/// False when there is nothing to report: a chmod by path the kernel did not see change
/// the inode (`unseen`), whose file is not a regular executable one now.
pub fn build(ev: &mut Event, rec: &FileInfoRecord, tail: &FileTail, cx: &mut Enrich) -> bool {
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
    let now = std::fs::metadata(&*path);
    let id = match now {
        Ok(m) if unseen(rec) => {
            let id = id_of(&m);
            let executable = m.is_file() && m.mode() & S_IXUGO != 0;
            if cx.modes.swap(id.dev, id.ino, executable) || !executable {
                return false;
            }
            id
        }
        Ok(m) if m.ino() == rec.ino => FileId {
            dev: rec.dev,
            ..id_of(&m)
        },
        _ if unseen(rec) => return false,
        _ => FileId {
            dev: rec.dev,
            ino: rec.ino,
            size: rec.size,
            mtime_sec: rec.old_sec,
            mtime_nsec: rec.old_nsec,
        },
    };
    // Hashed only once the rules keep the event (or need the digest to judge it).
    ev.defer(Deferred::Hashes {
        field: ev.len(),
        path: at,
        file: id,
        pid: rec.file.header.tgid,
    });
    true
}

/// The identity of a file as stat gives it, with the device numbered as the kernel does.
fn id_of(m: &std::fs::Metadata) -> FileId {
    FileId {
        dev: (libc::major(m.dev()) << 20) | libc::minor(m.dev()),
        ino: m.ino(),
        size: m.size() as i64,
        mtime_sec: m.mtime(),
        mtime_nsec: m.mtime_nsec() as u32,
    }
}

/// A chmod by path that the kernel did not see change its inode: before 6.13 no tracepoint
/// gives the inode inside the call. The file is then judged as it is now, against the mode
/// user space last saw it with (`enrich::modes`).
fn unseen(rec: &FileInfoRecord) -> bool {
    rec.state & (state::SEEN | state::OLD) == 0 && rec.ino == 0
}

#[cfg(test)]
mod tests {
    use super::*;

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
            assert!(build(ev, rec, &tail, &mut cx));
            ev.take_deferred().unwrap().fill(ev, &mut cx);
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
