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

#[cfg(test)]
mod tests {
    use super::*;
    use sysmon_common::file::FileRecord;

    #[test]
    fn new_and_previous_times_are_the_records_mtimes() {
        let mut cx = Enrich::new(Default::default());
        let rec = FileInfoRecord {
            file: FileRecord {
                dir_len: 2,
                ..Default::default()
            },
            new_sec: 978_307_200,
            old_sec: 1_588_748_889,
            old_nsec: 123_456_789,
            ..Default::default()
        };
        let mut ev = Event::new(schema::by_id(schema::FILE_CREATE_TIME).unwrap());
        build(
            &mut ev,
            &rec,
            &FileTail {
                dir: b"/f",
                name: b"",
            },
            &mut cx,
        );
        assert!(ev.is_complete());
        assert_eq!(ev.field("TargetFilename"), Some("/f"));
        assert_eq!(ev.field("CreationUtcTime"), Some("2001-01-01 00:00:00.000"));
        assert_eq!(
            ev.field("PreviousCreationUtcTime"),
            Some("2020-05-06 07:08:09.123")
        );
    }
}
