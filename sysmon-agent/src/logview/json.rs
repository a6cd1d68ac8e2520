//! `--json`: one object per line, for jq and log shippers.
//!
//! `{"EventID":3,"EventRecordID":1043,"SystemTime":"…","Computer":"web01","RuleName":"…",…}`:
//! the header values first, then every Data field under its own Name, in document order.
//! Written by hand rather than through serde so that no per-event map is built.

use super::event::Event;
use super::text::write_json;
use std::io::{self, Write};

#[derive(Default)]
pub struct JsonLayout {
    scratch: Vec<u8>,
}

impl JsonLayout {
    pub fn write(
        &mut self,
        w: &mut impl Write,
        e: &Event,
        only: Option<&[Vec<u8>]>,
    ) -> io::Result<()> {
        write!(
            w,
            "{{\"EventID\":{},\"EventRecordID\":{},\"SystemTime\":",
            e.id, e.record_id
        )?;
        write_json(w, e.system_time, &mut self.scratch)?;
        w.write_all(b",\"Computer\":")?;
        write_json(w, e.computer, &mut self.scratch)?;
        for (name, value) in e.fields() {
            if only.is_some_and(|only| !only.iter().any(|n| n == name)) {
                continue;
            }
            w.write_all(b",")?;
            write_json(w, name, &mut self.scratch)?;
            w.write_all(b":")?;
            write_json(w, value, &mut self.scratch)?;
        }
        w.write_all(b"}\n")
    }
}
