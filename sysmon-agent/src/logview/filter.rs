//! Which events pass: `-e`, `-r`, `-t`, `-f` (SfL's semantics) and `-k`.

use super::event::Event;
use super::options::Options;
use super::text::decode;
use super::time::parse_system_time;

pub struct Filter<'o> {
    opts: &'o Options,
    scratch: Vec<u8>,
}

impl<'o> Filter<'o> {
    pub fn new(opts: &'o Options) -> Self {
        Filter {
            opts,
            scratch: Vec::new(),
        }
    }

    pub fn pass(&mut self, e: &Event) -> bool {
        let o = self.opts;
        if !o.events.is_empty() && !o.events.contains(&e.id) {
            return false;
        }
        if e.record_id < o.records.0 || e.record_id > o.records.1 {
            return false;
        }
        if (o.start.is_some() || o.end.is_some()) && !self.in_time(e) {
            return false;
        }
        // SfL: an event without the field is not filtered out by it.
        for (name, values) in &o.fields {
            if let Some(raw) = e.field(name) {
                if !self.value_in(raw, values) {
                    return false;
                }
            }
        }
        // Like `ausearch -k`: an event without a RuleName has no key, so it never matches.
        if !o.keys.is_empty() {
            match e.field(b"RuleName") {
                Some(raw) if self.value_in(raw, &o.keys) => {}
                _ => return false,
            }
        }
        true
    }

    fn in_time(&self, e: &Event) -> bool {
        let Some(t) = parse_system_time(e.system_time) else {
            return false;
        };
        let o = self.opts;
        o.start.is_none_or(|s| t >= s.nanos) && o.end.is_none_or(|b| t < b.nanos + b.unit)
    }

    /// Exact, case-sensitive compare of the decoded value.
    fn value_in(&mut self, raw: &[u8], values: &[Vec<u8>]) -> bool {
        self.scratch.clear();
        decode(raw, &mut self.scratch);
        values.contains(&self.scratch)
    }
}

#[cfg(test)]
mod tests {
    use super::super::event::Parser;
    use super::*;

    const LINE: &str = r#"<Event><System><EventID>1</EventID><TimeCreated SystemTime="2024-05-14T09:21:07.483126000Z"/><EventRecordID>1042</EventRecordID></System><EventData><Data Name="RuleName">r&amp;d</Data><Data Name="User">alice</Data><Data Name="Image">/usr/bin/curl</Data></EventData></Event>"#;

    #[test]
    fn table() {
        let cases: &[(&[&str], bool)] = &[
            (&[], true),
            (&["-e", "1"], true),
            (&["-e", "3,5"], false),
            (&["-r", "1042,1042"], true),
            (&["-r", "1043,"], false),
            (&["-r", ",1041"], false),
            (&["-t", "2024-05-14 09:21:07,"], true),
            (&["-t", ",2024-05-14 09:21:07"], true),
            (&["-t", ",2024-05-14 09:21"], false),
            (&["-t", ",2024-05-14 09:21:07.483"], true),
            (&["-t", ",2024-05-14 09:21:07.482"], false),
            (&["-t", "2024-05-14 09:22,"], false),
            (&["-f", "User=alice"], true),
            (&["-f", "User=bob,alice"], true),
            (&["-f", "User=Alice"], false),
            (&["-f", "User=alice", "-f", "Image=/bin/sh"], false),
            (&["-f", "DestinationIp=1.2.3.4"], true),
            (&["-k", "r&d"], true),
            (&["-k", "other", "-k", "r&d"], true),
            (&["-k", "r"], false),
        ];
        let mut p = Parser::default();
        let e = p.parse(LINE.as_bytes()).unwrap();
        for (args, want) in cases {
            let argv = std::iter::once("x")
                .chain(args.iter().copied())
                .map(String::from);
            let o = Options::parse(argv).unwrap();
            assert_eq!(Filter::new(&o).pass(&e), *want, "{args:?}");
        }
    }
}
