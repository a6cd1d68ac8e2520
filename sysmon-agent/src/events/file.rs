//! What the file events (9, 11, 23) share: the acting process and the target path.

use sysmon_common::{file::FileRecord, truncated};

use super::Event;
use crate::{enrich::Enrich, kernel::record::FileTail};

/// RuleName, UtcTime, ProcessGuid and ProcessId, the start of every file event; returns the
/// acting process's image (empty if unknown).
pub fn push_head(ev: &mut Event, rec: &FileRecord, cx: &mut Enrich) -> std::rc::Rc<str> {
    super::push_actor(ev, rec.header.tgid, rec.header.time_ns, cx)
}

pub fn push_user(ev: &mut Event, rec: &FileRecord, cx: &mut Enrich) {
    let name = cx.users.name(rec.uid).unwrap_or("");
    ev.push(name);
}

/// The target path: the kernel-built path, the name as passed, or `dir/name` for a relative
/// name. A path cut at the kernel's bounds starts with `+`, as in Sysmon.
pub fn push_target(ev: &mut Event, rec: &FileRecord, tail: &FileTail) {
    let buf = ev.buf();
    if rec.flags & truncated::PATH != 0 {
        buf.push('+');
    }
    super::text::push_bytes(buf, tail.dir);
    if !tail.dir.is_empty() && !tail.name.is_empty() && !tail.dir.ends_with(b"/") {
        buf.push('/');
    }
    super::text::push_bytes(buf, tail.name);
    ev.close();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::schema;

    #[test]
    fn target_joins_dir_and_name() {
        // (dir, name, truncated, text)
        let cases: &[(&[u8], &[u8], bool, &str)] = &[
            (b"/tmp/new", b"", false, "/tmp/new"),
            (b"", b"/abs/x", false, "/abs/x"),
            (b"/home/u", b"x", false, "/home/u/x"),
            (b"/home/u", b"../y", false, "/home/u/../y"),
            (b"/", b"x", false, "/x"),
            (b"/deep", b"x", true, "+/deep/x"),
        ];
        for (dir, name, cut, want) in cases {
            let mut ev = Event::new(schema::by_id(schema::FILE_CREATE).unwrap());
            let rec = FileRecord {
                flags: if *cut { truncated::PATH } else { 0 },
                ..Default::default()
            };
            push_target(&mut ev, &rec, &FileTail { dir, name });
            assert_eq!(ev.get(0), *want);
        }
    }
}
