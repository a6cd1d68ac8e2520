//! One event as one JSON line: the shape shared by the agent's JSON file sink and
//! `sysmonLogView --json`, so that both give the same objects.
//!
//! `{"EventID":1,"EventRecordID":1043,"SystemTime":"…","Computer":"web01","RuleName":"…",
//! "UtcTime":"…",…}`: the header values, then every field under its Sysmon name (the names
//! Sigma rules and the Splunk and Elastic Sysmon parsers expect), as strings holding exactly
//! the XML's values unescaped. The agent already writes bytes that are not UTF-8 as the
//! text `\xNN`, so every value is valid UTF-8 and the line is valid JSON.
//!
//! Written by hand into a reused buffer: no map and no allocation per event.

use std::io::{self, Write};

use super::xml::Host;
use crate::events::Event;

/// `{"EventID":<id>,"EventRecordID":<n>,"SystemTime":<time>,"Computer":<name>`; the
/// caller adds fields with [`field`] and ends with [`close`].
pub fn open(
    w: &mut impl Write,
    id: u32,
    record_id: u64,
    system_time: &str,
    computer: &str,
) -> io::Result<()> {
    ids(w, id, record_id)?;
    field(w, SYSTEM_TIME, system_time)?;
    field(w, COMPUTER, computer)
}

/// The header's string keys, after the ids.
pub const SYSTEM_TIME: &str = "SystemTime";
pub const COMPUTER: &str = "Computer";

/// `{"EventID":<id>,"EventRecordID":<n>`: the start of every line.
pub fn ids(w: &mut impl Write, id: u32, record_id: u64) -> io::Result<()> {
    write!(w, "{{\"EventID\":{id},\"EventRecordID\":{record_id}")
}

/// `,"<name>":`.
pub fn key(w: &mut impl Write, name: &str) -> io::Result<()> {
    w.write_all(b",")?;
    string(w, name)?;
    w.write_all(b":")
}

/// `,"<name>":"<value>"`.
pub fn field(w: &mut impl Write, name: &str, value: &str) -> io::Result<()> {
    key(w, name)?;
    string(w, value)
}

/// `}` and the end of the line.
pub fn close(w: &mut impl Write) -> io::Result<()> {
    w.write_all(b"}\n")
}

/// Appends the JSON line of `ev` (with its `\n`) to `out`; `system_time` is the value the
/// XML of the same event carries in `TimeCreated/@SystemTime`.
pub fn render(out: &mut Vec<u8>, ev: &Event, host: &Host, record_id: u64, system_time: &str) {
    // Writing into a Vec cannot fail.
    let _ = open(
        out,
        ev.kind().id as u32,
        record_id,
        system_time,
        &host.computer,
    );
    for (name, value) in ev.pairs() {
        let _ = field(out, name, value);
    }
    let _ = close(out);
}

/// A JSON string with its quotes: `"` and `\` escaped, control characters as `\n`, `\t`,
/// `\r` or `\u00XX`, everything else as is.
pub fn string(w: &mut impl Write, s: &str) -> io::Result<()> {
    w.write_all(b"\"")?;
    escaped(w, s)?;
    w.write_all(b"\"")
}

/// The inside of a JSON string (no quotes), escaped as [`string`] says.
pub fn escaped(w: &mut impl Write, s: &str) -> io::Result<()> {
    let bytes = s.as_bytes();
    let mut done = 0;
    // Every byte escaped is ASCII, so no character is split.
    for (i, &b) in bytes.iter().enumerate() {
        let esc: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\t' => b"\\t",
            b'\r' => b"\\r",
            0..0x20 | 0x7f => b"",
            _ => continue,
        };
        w.write_all(&bytes[done..i])?;
        if esc.is_empty() {
            write!(w, "\\u{b:04x}")?;
        } else {
            w.write_all(esc)?;
        }
        done = i + 1;
    }
    w.write_all(&bytes[done..])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{schema, service};

    #[test]
    fn strings() {
        // (value, JSON)
        let cases = [
            ("plain", r#""plain""#),
            ("q\"b\\", r#""q\"b\\""#),
            ("l1\nl2\r\tx", r#""l1\nl2\r\tx""#),
            ("esc\u{1b}[0m\u{7f}", r#""esc\u001b[0m\u007f""#),
            ("café \\xff", r#""café \\xff""#),
            ("", r#""""#),
        ];
        for (value, want) in cases {
            let mut out = Vec::new();
            string(&mut out, value).unwrap();
            assert_eq!(String::from_utf8(out.clone()).unwrap(), want);
            let back: String = serde_json::from_slice(&out).unwrap();
            assert_eq!(back, value);
        }
    }

    #[test]
    fn event_line() {
        let mut ev = Event::new(schema::by_id(schema::ERROR).unwrap());
        service::error(&mut ev, "FileSinkDrops", "a \"quoted\"\nline");
        let host = Host {
            computer: "web01".into(),
            pid: 1,
            tid: 1,
            euid: 0,
        };
        let mut out = Vec::new();
        render(&mut out, &ev, &host, 42, "2024-05-14T09:21:07.479126300Z");
        assert_eq!(out.iter().filter(|b| **b == b'\n').count(), 1);
        assert!(out.ends_with(b"}\n"));
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["EventID"], 255);
        assert_eq!(v["EventRecordID"], 42);
        assert_eq!(v["Computer"], "web01");
        assert_eq!(v["SystemTime"], "2024-05-14T09:21:07.479126300Z");
        for (name, value) in ev.pairs() {
            assert_eq!(v[name], value, "{name}");
        }
    }
}
