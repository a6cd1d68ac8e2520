//! Reading input: lines out of a reused buffer, and finding our event inside a line.

use memchr::memchr;
use memchr::memmem::Finder;
use std::io::{self, Read};
use std::sync::LazyLock;

const CHUNK: usize = 1 << 20;
/// Longer lines are not ours (SfL caps an event at 64 KiB; syslog daemons cut shorter) and
/// are dropped rather than buffered without bound.
pub const MAX_LINE: usize = 4 << 20;

/// One item of input.
#[derive(Debug, PartialEq, Eq)]
pub enum Line<'a> {
    Text(&'a [u8]),
    /// A line longer than [`MAX_LINE`]; its bytes were dropped.
    TooLong,
}

/// Splits a byte stream into lines without allocating per line.
pub struct LineReader<R> {
    src: R,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    /// Bytes before `scanned` (from `start`) hold no newline.
    scanned: usize,
    eof: bool,
    /// Dropping the rest of an over-long line.
    skipping: bool,
}

impl<R: Read> LineReader<R> {
    pub fn new(src: R) -> Self {
        LineReader {
            src,
            buf: vec![0; CHUNK],
            start: 0,
            end: 0,
            scanned: 0,
            eof: false,
            skipping: false,
        }
    }

    /// The next line without its `\n` (and `\r`), or `None` at end of input.
    /// `before_wait` runs before every read that may block: the caller flushes its output
    /// there, so a viewer behind `tail -f` shows each event as soon as it is read, while a
    /// viewer reading a file writes in large blocks.
    pub fn next_line(
        &mut self,
        before_wait: &mut impl FnMut() -> io::Result<()>,
    ) -> io::Result<Option<Line<'_>>> {
        loop {
            if let Some(i) = memchr(b'\n', &self.buf[self.scanned..self.end]) {
                let nl = self.scanned + i;
                let line = self.start..nl;
                self.start = nl + 1;
                self.scanned = self.start;
                if self.skipping {
                    self.skipping = false;
                    return Ok(Some(Line::TooLong));
                }
                return Ok(Some(Line::Text(strip_cr(&self.buf[line]))));
            }
            self.scanned = self.end;
            if self.eof {
                if self.start == self.end {
                    return Ok(None);
                }
                let line = self.start..self.end;
                self.start = self.end;
                if std::mem::take(&mut self.skipping) {
                    return Ok(Some(Line::TooLong));
                }
                return Ok(Some(Line::Text(strip_cr(&self.buf[line]))));
            }
            self.make_room();
            before_wait()?;
            match self.src.read(&mut self.buf[self.end..]) {
                Ok(0) => self.eof = true,
                Ok(n) => self.end += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Moves the partial line to the front, grows the buffer for a long line, or starts
    /// dropping a line that is too long.
    fn make_room(&mut self) {
        let pending = self.end - self.start;
        if pending >= MAX_LINE {
            self.skipping = true;
            self.start = 0;
            self.end = 0;
            self.scanned = 0;
            return;
        }
        if self.start > 0 && (self.end == self.buf.len() || self.buf.len() - self.end < CHUNK / 4) {
            self.buf.copy_within(self.start..self.end, 0);
            self.end = pending;
            self.scanned -= self.start;
            self.start = 0;
        }
        if self.end == self.buf.len() {
            self.buf.resize(self.buf.len() * 2, 0);
        }
    }
}

fn strip_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// Finds the XML of a sysmon event in a line, as SfL's viewer does: after the syslog tag
/// (`" sysmon"`, which covers `sysmon:`, `sysmon[812]:` and RFC 5424's `sysmon - -`), the
/// first `<Event>`. A line that starts with `<Event>` (a bare event, e.g. from `sysmon -t`
/// or a file sink) is taken as is. Other lines are not ours.
pub fn find_event(line: &[u8]) -> Option<&[u8]> {
    // Built once: a searcher per call costs more than the search on short syslog prefixes.
    static TAG: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b" sysmon"));
    static EVENT: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b"<Event>"));
    let trimmed = line.trim_ascii_start();
    if trimmed.starts_with(b"<Event>") {
        return Some(trimmed);
    }
    let tag = TAG.find(line)?;
    let rest = &line[tag + TAG.needle().len()..];
    let at = EVENT.find(rest)?;
    Some(&rest[at..])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hands out its data a few bytes per read, to cross every buffer boundary.
    struct Dribble<'a>(&'a [u8], usize);
    impl Read for Dribble<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = self.1.min(buf.len()).min(self.0.len());
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    fn collect(data: &[u8], step: usize) -> (Vec<String>, usize) {
        let mut r = LineReader::new(Dribble(data, step));
        let mut waits = 0;
        let mut out = Vec::new();
        while let Some(l) = r
            .next_line(&mut || {
                waits += 1;
                Ok(())
            })
            .unwrap()
        {
            out.push(match l {
                Line::Text(t) => String::from_utf8_lossy(t).into_owned(),
                Line::TooLong => "<too long>".into(),
            });
        }
        (out, waits)
    }

    #[test]
    fn lines_across_reads() {
        for step in [1, 3, 7, 4096] {
            let (lines, waits) = collect(b"a\r\nbb\n\nccc", step);
            assert_eq!(lines, ["a", "bb", "", "ccc"], "step {step}");
            assert!(waits >= 2);
        }
    }

    #[test]
    fn long_line_grows_and_too_long_is_dropped() {
        let mut data = vec![b'x'; CHUNK * 2 + 5];
        data.push(b'\n');
        data.extend(std::iter::repeat_n(b'y', MAX_LINE + 10));
        data.extend_from_slice(b"\nok\n");
        let (lines, _) = collect(&data, 1 << 16);
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[0].len(), CHUNK * 2 + 5);
        assert_eq!(lines[1], "<too long>");
        assert_eq!(lines[2], "ok");
    }

    #[test]
    fn find_event_table() {
        let cases: &[(&str, Option<&str>)] = &[
            (
                "May 14 09:21:07 web01 sysmon: <Event><x/>",
                Some("<Event><x/>"),
            ),
            (
                "May 14 09:21:07 web01 sysmon[812]: <Event>",
                Some("<Event>"),
            ),
            (
                "<14>1 2024-05-14T09:21:07.483126+00:00 web01 sysmon - - - <Event>a",
                Some("<Event>a"),
            ),
            (
                "2024-05-14T09:21:07.483126+00:00 web01 sysmon: <Event>",
                Some("<Event>"),
            ),
            ("  <Event><System>", Some("<Event><System>")),
            ("May 14 09:21:07 web01 sshd[9]: Accepted <Event>", None),
            ("May 14 09:21:07 web01 sysmon: starting", None),
            ("", None),
        ];
        for (line, want) in cases {
            let got = find_event(line.as_bytes()).map(|b| std::str::from_utf8(b).unwrap());
            assert_eq!(got, *want, "{line}");
        }
    }
}
