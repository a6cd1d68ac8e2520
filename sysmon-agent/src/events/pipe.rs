//! Events 17 and 18, PipeEvent: a FIFO created (mknod, mkfifo) or opened. `EventType` is
//! Sysmon's: `CreatePipe`, `ConnectPipe`.

use sysmon_common::file::FileRecord;

use super::{Event, file, schema};
use crate::{
    enrich::{Enrich, clock, guid::Guid},
    kernel::record::FileTail,
};

pub fn build(ev: &mut Event, id: u16, rec: &FileRecord, tail: &FileTail, cx: &mut Enrich) {
    ev.reset(schema::by_id(id).unwrap());
    ev.push(""); // RuleName
    ev.push(if id == schema::PIPE_CREATED {
        "CreatePipe"
    } else {
        "ConnectPipe"
    });
    clock::write_utc_time(ev.buf(), cx.clock.epoch_ns(rec.header.time_ns));
    ev.close();
    let pid = rec.header.tgid;
    let (guid, image) = match cx.cache.get(pid, None) {
        Some(p) => (p.guid, p.image.clone()),
        None => (Guid::ZERO, "".into()),
    };
    ev.push_fmt(format_args!("{guid}"));
    ev.push_fmt(format_args!("{pid}"));
    file::push_target(ev, rec, tail); // PipeName
    ev.push(&image);
    file::push_user(ev, rec, cx);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_type_comes_before_the_time_and_names_the_operation() {
        let mut cx = Enrich::new(Default::default());
        for (id, ty) in [
            (schema::PIPE_CREATED, "CreatePipe"),
            (schema::PIPE_CONNECTED, "ConnectPipe"),
        ] {
            let mut ev = Event::new(schema::by_id(id).unwrap());
            let tail = FileTail {
                dir: b"/tmp",
                name: b"fifo",
            };
            build(&mut ev, id, &FileRecord::default(), &tail, &mut cx);
            assert!(ev.is_complete());
            assert_eq!(ev.get(1), ty);
            assert_eq!(ev.field("PipeName"), Some("/tmp/fifo"));
        }
    }
}
