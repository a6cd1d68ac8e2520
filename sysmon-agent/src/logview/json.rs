//! `--json`: one object per line, for jq and log shippers; the shape is the one of the
//! agent's JSON file (`render::json`), with every Data field under its own Name, in
//! document order. Values here are raw XML, decoded by `text::write_json`.

use super::event::Event;
use super::text::write_json;
use crate::render::json;
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
        // The header through the shared definition; its raw values go through the XML
        // decoder first.
        json::ids(w, e.id, e.record_id)?;
        for (name, raw) in [
            (json::SYSTEM_TIME, e.system_time),
            (json::COMPUTER, e.computer),
        ] {
            json::key(w, name)?;
            write_json(w, raw, &mut self.scratch)?;
        }
        for (name, value) in e.fields() {
            if only.is_some_and(|only| !only.iter().any(|n| n == name)) {
                continue;
            }
            // Names are plain ASCII in our events; decoded anyway for foreign ones.
            w.write_all(b",")?;
            write_json(w, name, &mut self.scratch)?;
            w.write_all(b":")?;
            write_json(w, value, &mut self.scratch)?;
        }
        json::close(w)
    }
}
