//! SfL's text layout: `Event <manifest name>`, then `\t<Name>: <value>` per Data element in
//! document order (`--NULL--` for an empty value), `-X` adding an empty line.

use super::colour::Palette;
use super::event::Event;
use super::text::write_display;
use crate::events::schema;
use std::io::{self, Write};

/// Writes an event's manifest name; ids outside the catalogue get `SYSMONEVENT_UNKNOWN_<id>`
/// (SfL indexes past its table for 255).
pub fn write_name(w: &mut impl Write, id: u32) -> io::Result<()> {
    match u16::try_from(id).ok().and_then(schema::by_id) {
        Some(kind) => w.write_all(kind.name.as_bytes()),
        None => write!(w, "SYSMONEVENT_UNKNOWN_{id}"),
    }
}

pub struct TextLayout {
    palette: Palette,
    blank: bool,
    scratch: Vec<u8>,
}

impl TextLayout {
    pub fn new(palette: Palette, blank: bool) -> Self {
        TextLayout {
            palette,
            blank,
            scratch: Vec::new(),
        }
    }

    /// `only`: the `-E` field list for this event id, if any.
    pub fn write(
        &mut self,
        w: &mut impl Write,
        e: &Event,
        only: Option<&[Vec<u8>]>,
    ) -> io::Result<()> {
        let p = self.palette;
        w.write_all(b"Event ")?;
        w.write_all(p.header(e.id).as_bytes())?;
        write_name(w, e.id)?;
        w.write_all(p.reset().as_bytes())?;
        w.write_all(b"\n")?;
        for (name, value) in e.fields() {
            if only.is_some_and(|only| !only.iter().any(|n| n == name)) {
                continue;
            }
            w.write_all(b"\t")?;
            w.write_all(p.name().as_bytes())?;
            w.write_all(name)?;
            w.write_all(b":")?;
            w.write_all(p.reset().as_bytes())?;
            w.write_all(b" ")?;
            if value.is_empty() {
                w.write_all(b"--NULL--")?;
            } else {
                write_display(w, value, &mut self.scratch)?;
            }
            w.write_all(b"\n")?;
        }
        if self.blank {
            w.write_all(b"\n")?;
        }
        Ok(())
    }
}
