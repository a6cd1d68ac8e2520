//! sysmonLogView: read syslog lines back and show, filter and summarise events.
//!
//! Data flow, one file per step: `input` (lines from a reused buffer, the event inside a
//! line) → `event` (in-place parse) → `filter` → one of `layout` (SfL's text), `json`,
//! `summary`, `tree`. Values stay escaped until `text` decodes them for output.

pub mod colour;
pub mod event;
pub mod filter;
pub mod input;
pub mod json;
pub mod layout;
pub mod options;
pub mod summary;
pub mod text;
pub mod time;
pub mod tree;

use colour::Palette;
use event::Parser;
use filter::Filter;
use input::{Line, LineReader, find_event};
use json::JsonLayout;
use layout::TextLayout;
use options::{ColorChoice, Mode, Options};
use std::fs::File;
use std::io::{self, IsTerminal, Read, Write};
use std::path::Path;
use summary::Summary;
use tree::Tree;

/// Notes about unreadable lines stop after this many, so a garbage input cannot flood
/// stderr; the total is reported at the end.
const MAX_NOTES: u64 = 100;

/// What a run saw.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Stats {
    pub bytes: u64,
    pub lines: u64,
    /// Lines that held one of our events, readable or not.
    pub events: u64,
    pub shown: u64,
    /// Lines that were ours but could not be read (or were too long).
    pub bad: u64,
}

/// Where the events go.
enum Sink {
    Text(TextLayout),
    Json(JsonLayout),
    Summary(Box<Summary>),
    Tree(Box<Tree>),
}

/// The viewer over any number of inputs.
pub struct Viewer<'o> {
    opts: &'o Options,
    parser: Parser,
    filter: Filter<'o>,
    sink: Sink,
    palette: Palette,
    pub stats: Stats,
}

impl<'o> Viewer<'o> {
    pub fn new(opts: &'o Options, palette: Palette) -> Self {
        let sink = match opts.mode {
            Mode::Text => Sink::Text(TextLayout::new(palette, opts.blank)),
            Mode::Json => Sink::Json(JsonLayout::default()),
            Mode::Summary => Sink::Summary(Box::default()),
            Mode::Tree => Sink::Tree(Box::default()),
        };
        Viewer {
            opts,
            parser: Parser::default(),
            filter: Filter::new(opts),
            sink,
            palette,
            stats: Stats::default(),
        }
    }

    /// Reads `src` to its end. `name` labels notes on `err`. Output is flushed whenever the
    /// input has nothing more buffered (see [`LineReader::next_line`]).
    pub fn read(
        &mut self,
        src: impl Read,
        name: &str,
        out: &mut impl Write,
        err: &mut impl Write,
    ) -> io::Result<()> {
        let mut reader = LineReader::new(src);
        let mut line_no = 0u64;
        while let Some(line) = reader.next_line(&mut || out.flush())? {
            line_no += 1;
            self.stats.lines += 1;
            let line = match line {
                Line::Text(t) => t,
                Line::TooLong => {
                    self.bad_line(err, name, line_no, "line too long, skipped")?;
                    continue;
                }
            };
            self.stats.bytes += line.len() as u64 + 1;
            let Some(xml) = find_event(line) else {
                continue;
            };
            self.stats.events += 1;
            let event = match self.parser.parse(xml) {
                Ok(e) => e,
                Err(why) => {
                    self.bad_line(err, name, line_no, &format!("{why}, skipped"))?;
                    continue;
                }
            };
            if !self.filter.pass(&event) {
                continue;
            }
            self.stats.shown += 1;
            let only = self.opts.select.get(&event.id).map(Vec::as_slice);
            match &mut self.sink {
                Sink::Text(l) => l.write(out, &event, only)?,
                Sink::Json(l) => l.write(out, &event, only)?,
                Sink::Summary(s) => s.add(&event),
                Sink::Tree(t) => t.add(&event),
            }
        }
        Ok(())
    }

    /// Writes what is kept until the end (summary, tree) and the count of notes left out.
    pub fn finish(&mut self, out: &mut impl Write, err: &mut impl Write) -> io::Result<()> {
        match &self.sink {
            Sink::Summary(s) => s.write(out, self.palette)?,
            Sink::Tree(t) => t.write(out, self.palette)?,
            Sink::Text(_) | Sink::Json(_) => {}
        }
        out.flush()?;
        if self.stats.bad > MAX_NOTES {
            writeln!(
                err,
                "sysmonLogView: {} unreadable event lines in all",
                self.stats.bad
            )?;
        }
        Ok(())
    }

    /// Counts an unreadable line and notes it on stderr, up to [`MAX_NOTES`] notes.
    fn bad_line(
        &mut self,
        err: &mut impl Write,
        name: &str,
        line_no: u64,
        what: &str,
    ) -> io::Result<()> {
        self.stats.bad += 1;
        match self.stats.bad {
            n if n <= MAX_NOTES => writeln!(err, "sysmonLogView: {name}:{line_no}: {what}"),
            n if n == MAX_NOTES + 1 => {
                writeln!(
                    err,
                    "sysmonLogView: further notes about unreadable lines suppressed"
                )
            }
            _ => Ok(()),
        }
    }
}

/// The whole program; returns the exit code.
pub fn main_with_args(args: impl IntoIterator<Item = String>) -> i32 {
    let opts = match Options::parse(args) {
        Ok(o) => o,
        Err(exit) => {
            if exit.to_stdout {
                print!("{}", exit.text);
            } else {
                eprint!("{}", exit.text);
            }
            return exit.code;
        }
    };
    if opts.show_settings {
        print!("{}", opts.describe());
        return 0;
    }
    let stdout = io::stdout();
    let colour = match opts.color {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto => stdout.is_terminal(),
    };
    let mut out = io::BufWriter::with_capacity(256 << 10, stdout.lock());
    let mut err = io::stderr().lock();
    match run(&opts, Palette::new(colour), &mut out, &mut err) {
        Ok(code) => code,
        // `sysmonLogView … | head` closing the pipe is a normal way to stop.
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => 0,
        Err(e) => {
            let _ = writeln!(err, "sysmonLogView: {e}");
            1
        }
    }
}

/// Reads every input named in `opts` (stdin when none). Returns the exit code: 1 if an input
/// could not be opened or read, else 0. Errors writing `out` are returned.
pub fn run(
    opts: &Options,
    palette: Palette,
    out: &mut impl Write,
    err: &mut impl Write,
) -> io::Result<i32> {
    let mut viewer = Viewer::new(opts, palette);
    let mut code = 0;
    let stdin_only = [Path::new("-").to_path_buf()];
    let files = if opts.files.is_empty() {
        &stdin_only[..]
    } else {
        &opts.files[..]
    };
    for path in files {
        let result = if path.as_os_str() == "-" {
            viewer.read(io::stdin().lock(), "<stdin>", out, err)
        } else {
            let name = path.display().to_string();
            match File::open(path) {
                Ok(f) => viewer.read(f, &name, out, err),
                Err(e) => Err(e),
            }
        };
        match result {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => return Err(e),
            Err(e) => {
                // Output errors other than a closed pipe are rare; report and go on, as a
                // read error on one file should not lose the others.
                writeln!(err, "sysmonLogView: {}: {e}", path.display())?;
                code = 1;
            }
        }
    }
    viewer.finish(out, err)?;
    Ok(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notes_are_capped_and_counted() {
        let opts = Options::parse(["sysmonLogView".to_string()]).unwrap();
        let input = "host sysmon: <Event><System>\n".repeat(150);
        let mut viewer = Viewer::new(&opts, Palette::new(false));
        let (mut out, mut err) = (Vec::new(), Vec::new());
        viewer
            .read(input.as_bytes(), "in", &mut out, &mut err)
            .unwrap();
        viewer.finish(&mut out, &mut err).unwrap();
        let err = String::from_utf8(err).unwrap();
        let lines: Vec<&str> = err.lines().collect();
        assert_eq!(lines.len(), MAX_NOTES as usize + 2);
        assert_eq!(
            lines[0],
            "sysmonLogView: in:1: truncated event (no </Event>), skipped"
        );
        assert_eq!(
            lines[MAX_NOTES as usize],
            "sysmonLogView: further notes about unreadable lines suppressed"
        );
        assert_eq!(
            lines[MAX_NOTES as usize + 1],
            "sysmonLogView: 150 unreadable event lines in all"
        );
        assert!(out.is_empty());
        assert_eq!(viewer.stats.bad, 150);
    }
}
