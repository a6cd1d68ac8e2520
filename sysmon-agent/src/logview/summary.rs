//! `--summary`: aureport-style count tables over the events that passed the filters.

use super::colour::Palette;
use super::event::Event;
use super::layout::write_name;
use super::text::write_display;
use std::collections::HashMap;
use std::io::{self, Write};

/// Counts keyed by the raw (still escaped) value: looking up a borrowed slice allocates
/// nothing, only a value seen for the first time is copied.
#[derive(Default)]
struct Counts(HashMap<Vec<u8>, u64>);

impl Counts {
    fn add(&mut self, key: &[u8]) {
        match self.0.get_mut(key) {
            Some(n) => *n += 1,
            None => {
                self.0.insert(key.to_vec(), 1);
            }
        }
    }

    /// Most frequent first; ties in byte order so the output is stable.
    fn sorted(&self) -> Vec<(&[u8], u64)> {
        let mut rows: Vec<_> = self.0.iter().map(|(k, &n)| (k.as_slice(), n)).collect();
        rows.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        rows
    }
}

#[derive(Default)]
pub struct Summary {
    events: u64,
    first: Option<Vec<u8>>,
    last: Option<Vec<u8>>,
    by_id: HashMap<u32, u64>,
    images: Counts,
    rules: Counts,
    users: Counts,
    destinations: Counts,
    computers: Counts,
    key: Vec<u8>,
}

impl Summary {
    pub fn add(&mut self, e: &Event) {
        self.events += 1;
        if !e.system_time.is_empty() {
            // SystemTime is fixed-width ISO 8601, so byte order is time order.
            if self.first.as_deref().is_none_or(|f| e.system_time < f) {
                self.first = Some(e.system_time.to_vec());
            }
            if self.last.as_deref().is_none_or(|l| e.system_time > l) {
                self.last = Some(e.system_time.to_vec());
            }
        }
        *self.by_id.entry(e.id).or_default() += 1;
        self.computers.add(e.computer);
        // Event 10 names its actor with a Source prefix.
        if let Some(image) = e.field(b"Image").or_else(|| e.field(b"SourceImage")) {
            self.images.add(image);
        }
        if let Some(user) = e.field(b"User").or_else(|| e.field(b"SourceUser")) {
            self.users.add(user);
        }
        if let Some(rule) = e.field(b"RuleName") {
            if !rule.is_empty() && rule != b"-" {
                self.rules.add(rule);
            }
        }
        if let (Some(ip), Some(port)) = (e.field(b"DestinationIp"), e.field(b"DestinationPort")) {
            self.key.clear();
            let v6 = ip.contains(&b':');
            if v6 {
                self.key.push(b'[');
            }
            self.key.extend_from_slice(ip);
            if v6 {
                self.key.push(b']');
            }
            self.key.push(b':');
            self.key.extend_from_slice(port);
            self.destinations.add(&self.key);
        }
    }

    pub fn write(&self, w: &mut impl Write, p: Palette) -> io::Result<()> {
        let mut scratch = Vec::new();
        let rule = "======================================";
        writeln!(w, "{}Summary Report{}\n{rule}", p.header(0), p.reset())?;
        w.write_all(b"Range of time: ")?;
        match (&self.first, &self.last) {
            (Some(f), Some(l)) => {
                write_display(w, f, &mut scratch)?;
                w.write_all(b" - ")?;
                write_display(w, l, &mut scratch)?;
            }
            _ => w.write_all(b"none")?,
        }
        writeln!(w, "\nNumber of events: {}", self.events)?;
        writeln!(w, "Number of computers: {}", self.computers.0.len())?;

        let mut ids: Vec<_> = self.by_id.iter().map(|(&id, &n)| (id, n)).collect();
        ids.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        table_head(w, p, "Event Type Report", "event")?;
        for (id, n) in ids {
            write!(w, "{n}  ")?;
            write_name(w, id)?;
            writeln!(w, " ({id})")?;
        }
        let tables = [
            ("Image Report", "image", &self.images),
            ("Rule Name Report", "rulename", &self.rules),
            ("User Report", "user", &self.users),
            ("Destination Report", "destination", &self.destinations),
        ];
        for (title, column, counts) in tables {
            table_head(w, p, title, column)?;
            for (key, n) in counts.sorted() {
                write!(w, "{n}  ")?;
                if key.is_empty() {
                    w.write_all(b"--NULL--")?;
                } else {
                    write_display(w, key, &mut scratch)?;
                }
                w.write_all(b"\n")?;
            }
        }
        Ok(())
    }
}

fn table_head(w: &mut impl Write, p: Palette, title: &str, column: &str) -> io::Result<()> {
    let rule = "======================================";
    writeln!(
        w,
        "\n{}{title}{}\n{rule}\ntotal  {column}\n{rule}",
        p.header(0),
        p.reset()
    )
}
