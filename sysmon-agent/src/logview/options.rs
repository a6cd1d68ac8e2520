//! Command line: SfL's getopt options (`h?e:r:t:f:E:XT`, repeatable, adding up) plus ours.

use super::time::{self, Bound};
use clap::{ArgAction, Parser, ValueEnum};
use std::collections::HashMap;
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(
    name = "sysmonLogView",
    about = "Show Sysmon for Linux events from syslog in readable form",
    after_help = "Reads syslog lines (traditional, RFC 5424 or high-precision timestamps), bare \
                  <Event> lines or /var/log/sysmon.log from the files given, or from stdin.\n\
                  Example: sudo tail -f /var/log/syslog | sysmonLogView -e 1,3"
)]
struct Args {
    /// Only these EventIDs (e.g. -e 1,3); repeatable
    #[arg(short = 'e', value_name = "ID[,ID…]", action = ArgAction::Append)]
    events: Vec<String>,
    /// EventRecordID range, inclusive: MIN,MAX or MIN, or ,MAX
    #[arg(short = 'r', value_name = "MIN,MAX")]
    records: Option<String>,
    /// Time range on SystemTime (UTC): "YYYY-MM-DD HH:MM[:SS[.mmm]]" on either side of a comma
    #[arg(short = 't', value_name = "START,END")]
    times: Option<String>,
    /// Only events whose Field (if they have it) is one of the values; repeatable, AND-ed
    #[arg(short = 'f', value_name = "FIELD=V[,V…]", action = ArgAction::Append)]
    fields: Vec<String>,
    /// For this EventID print only these fields; repeatable
    #[arg(short = 'E', value_name = "ID=FIELD[,FIELD…]", action = ArgAction::Append)]
    select: Vec<String>,
    /// Empty line after each event
    #[arg(short = 'X')]
    blank: bool,
    /// Print the parsed settings and exit
    #[arg(short = 'T', hide = true)]
    show_settings: bool,
    /// Only events whose RuleName is NAME (like ausearch -k); repeatable, OR-ed
    #[arg(short = 'k', long = "key", value_name = "NAME", action = ArgAction::Append)]
    keys: Vec<String>,
    /// One JSON object per line: EventID, EventRecordID, SystemTime, Computer, every Data field
    #[arg(long, conflicts_with_all = ["summary", "tree"])]
    json: bool,
    /// Report tables (per event type, Image, RuleName, User, destination) at the end
    #[arg(long, conflicts_with = "tree")]
    summary: bool,
    /// Process trees from ProcessGuid/ParentProcessGuid with each process's activity
    #[arg(long)]
    tree: bool,
    /// Colour: auto (when stdout is a terminal), always or never
    #[arg(long, value_enum, default_value_t = ColorChoice::Auto, value_name = "WHEN")]
    color: ColorChoice,
    /// Input files ("-" is stdin); stdin when none
    files: Vec<PathBuf>,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ColorChoice {
    Auto,
    Always,
    Never,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Text,
    Json,
    Summary,
    Tree,
}

/// Everything the viewer was asked to do, checked and ready to use.
#[derive(Debug)]
pub struct Options {
    /// Empty: all events.
    pub events: Vec<u32>,
    pub records: (u64, u64),
    pub start: Option<Bound>,
    pub end: Option<Bound>,
    /// (field name, accepted values); an event must pass every entry.
    pub fields: Vec<(Vec<u8>, Vec<Vec<u8>>)>,
    /// EventID → the fields to print.
    pub select: HashMap<u32, Vec<Vec<u8>>>,
    pub keys: Vec<Vec<u8>>,
    pub blank: bool,
    pub show_settings: bool,
    pub mode: Mode,
    pub color: ColorChoice,
    pub files: Vec<PathBuf>,
    /// The `-t` argument as given, for `-T`.
    times_text: Option<String>,
}

/// What to do instead of running: print `text` to stdout (help) or stderr (error) and exit.
#[derive(Debug)]
pub struct Exit {
    pub text: String,
    pub code: i32,
    pub to_stdout: bool,
}

/// The viewer's command line, for its man page and completions.
pub fn command() -> clap::Command {
    // The version is for the page's footer; the viewer itself has no -V.
    <Args as clap::CommandFactory>::command()
        .version(env!("CARGO_PKG_VERSION"))
        .disable_version_flag(true)
        .long_about(
            "sysmonLogView reads Sysmon events from syslog files (or stdin) and prints them the \
             way Sysmon's viewer does, filtered by event id, record id, time, field values or \
             rule name; or as JSON lines, summary tables or process trees.",
        )
}

impl Options {
    pub fn parse<I: IntoIterator<Item = String>>(args: I) -> Result<Options, Exit> {
        // getopt's `-?` means help; clap has no such flag.
        let args = args
            .into_iter()
            .map(|a| if a == "-?" { "-h".to_string() } else { a });
        let args = Args::try_parse_from(args).map_err(|e| Exit {
            text: e.render().to_string(),
            code: if e.use_stderr() { 2 } else { 0 },
            to_stdout: !e.use_stderr(),
        })?;
        Options::from_args(args).map_err(|msg| Exit {
            text: format!("sysmonLogView: {msg}\n"),
            code: 2,
            to_stdout: false,
        })
    }

    fn from_args(a: Args) -> Result<Options, String> {
        let mut events = Vec::new();
        for list in &a.events {
            for id in pieces(list) {
                events.push(number(id).ok_or(format!("-e: bad event id '{id}'"))? as u32);
            }
        }
        let records = match &a.records {
            None => (0, u64::MAX),
            Some(r) => {
                let (lo, hi) = r
                    .split_once(',')
                    .ok_or(format!("-r: expected MIN,MAX, got '{r}'"))?;
                let end = |s: &str, open| {
                    if s.trim().is_empty() {
                        Some(open)
                    } else {
                        number(s.trim())
                    }
                };
                let lo = end(lo, 0).ok_or(format!("-r: bad minimum '{lo}'"))?;
                let hi = end(hi, u64::MAX).ok_or(format!("-r: bad maximum '{hi}'"))?;
                (lo, hi)
            }
        };
        let (start, end) = match &a.times {
            None => (None, None),
            Some(t) => {
                let (s, e) = t
                    .split_once(',')
                    .ok_or(format!("-t: expected START,END, got '{t}'"))?;
                let bound = |s: &str| -> Result<Option<Bound>, String> {
                    if s.trim().is_empty() {
                        return Ok(None);
                    }
                    time::parse_bound(s).map(Some).ok_or(format!(
                        "-t: bad time '{s}', want YYYY-MM-DD HH:MM[:SS[.mmm]]"
                    ))
                };
                (bound(s)?, bound(e)?)
            }
        };
        let mut fields: Vec<(Vec<u8>, Vec<Vec<u8>>)> = Vec::new();
        for f in &a.fields {
            let (name, values) = f
                .split_once('=')
                .ok_or(format!("-f: expected FIELD=VALUE, got '{f}'"))?;
            let values = values.split(',').map(|v| v.as_bytes().to_vec());
            // Values for the same field are OR-ed, so they go into one entry.
            match fields.iter_mut().find(|(n, _)| n == name.as_bytes()) {
                Some((_, vs)) => vs.extend(values),
                None => fields.push((name.as_bytes().to_vec(), values.collect())),
            }
        }
        let mut select: HashMap<u32, Vec<Vec<u8>>> = HashMap::new();
        for s in &a.select {
            let (id, names) = s.split_once('=').ok_or(format!(
                "-E: expected EVENTID=FIELD[,FIELD…], got '{s}' (the event id is required)"
            ))?;
            let id = number(id.trim()).ok_or(format!("-E: bad event id '{id}'"))? as u32;
            select
                .entry(id)
                .or_default()
                .extend(pieces(names).map(|n| n.as_bytes().to_vec()));
        }
        let mode = if a.json {
            Mode::Json
        } else if a.summary {
            Mode::Summary
        } else if a.tree {
            Mode::Tree
        } else {
            Mode::Text
        };
        Ok(Options {
            events,
            records,
            start,
            end,
            fields,
            select,
            keys: a.keys.iter().map(|k| k.as_bytes().to_vec()).collect(),
            blank: a.blank,
            show_settings: a.show_settings,
            mode,
            color: a.color,
            files: a.files,
            times_text: a.times,
        })
    }
}

impl Options {
    /// The settings in readable form, for `-T`.
    pub fn describe(&self) -> String {
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        let list = |v: &[Vec<u8>]| v.iter().map(|b| text(b)).collect::<Vec<_>>().join(",");
        let mut s = String::new();
        let ids: Vec<String> = self.events.iter().map(u32::to_string).collect();
        let ids = if ids.is_empty() {
            "all".to_string()
        } else {
            ids.join(",")
        };
        s += &format!("Event IDs: {ids}\n");
        let (lo, hi) = self.records;
        let hi = if hi == u64::MAX {
            "max".to_string()
        } else {
            hi.to_string()
        };
        s += &format!("EventRecordID range: {lo} - {hi}\n");
        s += &format!(
            "Time range: {}\n",
            self.times_text.as_deref().unwrap_or("all")
        );
        for (name, values) in &self.fields {
            s += &format!("Field filter: {} = {}\n", text(name), list(values));
        }
        let mut select: Vec<_> = self.select.iter().collect();
        select.sort_by_key(|(id, _)| **id);
        for (id, names) in select {
            s += &format!("Fields of event {id}: {}\n", list(names));
        }
        if !self.keys.is_empty() {
            s += &format!("RuleName keys: {}\n", list(&self.keys));
        }
        s += &format!("Blank line after event: {}\n", self.blank);
        s += &format!("Output: {:?}, colour {:?}\n", self.mode, self.color);
        let files: Vec<String> = self.files.iter().map(|f| f.display().to_string()).collect();
        let files = if files.is_empty() {
            "stdin".to_string()
        } else {
            files.join(" ")
        };
        s += &format!("Input: {files}\n");
        s
    }
}

fn pieces(list: &str) -> impl Iterator<Item = &str> {
    list.split(',').map(str::trim).filter(|s| !s.is_empty())
}

/// `strtoul(s, 0)`: decimal or `0x` hex.
fn number(s: &str) -> Option<u64> {
    match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => s.parse().ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Options, Exit> {
        Options::parse(
            std::iter::once("sysmonLogView")
                .chain(args.iter().copied())
                .map(String::from),
        )
    }

    #[test]
    fn getopt_style() {
        let o = parse(&[
            "-e",
            "1,3",
            "-e5",
            "-E",
            "1=Image,CommandLine",
            "-E1=User",
            "-X",
            "-r",
            "10,",
            "-f",
            "User=alice",
            "-f",
            "User=root,bob",
            "log",
        ])
        .unwrap();
        assert_eq!(o.events, [1, 3, 5]);
        assert_eq!(o.records, (10, u64::MAX));
        assert_eq!(
            o.select[&1],
            [b"Image".to_vec(), b"CommandLine".to_vec(), b"User".to_vec()]
        );
        assert_eq!(
            o.fields,
            [(
                b"User".to_vec(),
                vec![b"alice".to_vec(), b"root".to_vec(), b"bob".to_vec()]
            )]
        );
        assert!(o.blank);
        assert_eq!(o.files, [PathBuf::from("log")]);
        assert_eq!(o.mode, Mode::Text);
    }

    #[test]
    fn ranges() {
        let o = parse(&["-r", ",20", "-t", "2024-05-14 09:00,"]).unwrap();
        assert_eq!(o.records, (0, 20));
        assert!(o.start.is_some() && o.end.is_none());
    }

    #[test]
    fn errors_and_help() {
        for bad in [
            &["-e", "x"][..],
            &["-r", "5"],
            &["-t", "yesterday,"],
            &["-E", "Image"],
            &["-f", "User"],
            &["--json", "--tree"],
        ] {
            let e = parse(bad).unwrap_err();
            assert_eq!(e.code, 2, "{bad:?}");
        }
        let help = parse(&["-?"]).unwrap_err();
        assert!(help.to_stdout && help.code == 0 && help.text.contains("-E"));
    }
}
