//! Event 25, ProcessTampering, Linux meaning: a process runs code that has no file on disk.
//! Raised at exec, besides that exec's event 1, when the executable has no links: a memfd
//! (memfd_create + fexecve/execveat), an O_TMPFILE file, or a file unlinked before the exec.

use sysmon_common::process::ExecRecord;

use super::{Event, schema};
use crate::enrich::{Enrich, clock};

/// Whether this exec ran an executable with no file on disk.
pub fn applies(rec: &ExecRecord) -> bool {
    rec.exe_nlink == 0 && rec.exe_len > 0
}

/// `image` as event 1 of the same exec shows it.
pub fn build(ev: &mut Event, rec: &ExecRecord, image: &str, cx: &mut Enrich) {
    ev.reset(schema::by_id(schema::PROCESS_TAMPERING).unwrap());
    ev.push(""); // RuleName
    clock::write_utc_time(ev.buf(), cx.clock.epoch_ns(rec.header.time_ns));
    ev.close();
    let guid = cx.cache.guid(rec.header.tgid, rec.start_ns, rec.end_code);
    ev.push_fmt(format_args!("{guid}"));
    ev.push_fmt(format_args!("{}", rec.header.tgid));
    ev.push(image);
    ev.push("Image is replaced"); // Type
    ev.push(cx.users.name(rec.uid).unwrap_or(""));
}
