//! Sysmon's command line: single-dash switches matched case-insensitively (`-i`, `-C`,
//! `-accepteula`), mapped onto clap.
//!
//! Sysmon's spellings cannot be declared in clap directly (single dash, multi-letter, `-h`
//! meaning help only as the first argument, `--` as a switch), so argv is first normalised
//! into long options (`-i` → `--install`) and clap then does values, conflicts and errors.

use std::{ffi::OsString, os::unix::ffi::OsStrExt, path::PathBuf};

use clap::{Arg, ArgAction, ArgGroup, ArgMatches};

/// Exit code for bad usage, as Sysmon (ERROR_INVALID_PARAMETER).
pub const BAD_USAGE: i32 = 87;
/// Exit code when root is needed, as Sysmon (ERROR_ELEVATION_REQUIRED; the shell sees 228).
pub const NOT_ROOT: i32 = 740;
pub const NOT_ROOT_MSG: &str = "You need to run Sysmon as root.";

#[derive(Debug, PartialEq, Eq)]
pub enum Command {
    /// `-?`, `-h`, `-help` as the first argument.
    Usage,
    /// `-? config`: how to write a configuration.
    ConfigHelp,
    /// `-s [version|all]`.
    PrintSchema(Option<String>),
    /// `-t [config]`: run in the foreground, events to syslog and stdout.
    Debug { config: Option<PathBuf> },
    /// `-i [config]`: install and start the daemon.
    Install { config: Option<PathBuf> },
    /// `-c <config>` update, `-c --` reset to defaults.
    Configure { config: Option<PathBuf> },
    /// `-c` alone: show the installed rules.
    ShowConfig,
    /// `-u [force]`.
    Uninstall { force: bool },
    /// `-service`: internal, the daemon itself (what the unit and `-i` start).
    Service,
    /// `-kernelcheck`: verify every program on this kernel, report how close each is to
    /// the verifier's limits.
    KernelCheck,
}

#[derive(Debug, PartialEq, Eq)]
pub struct Args {
    pub command: Command,
    pub btf: Option<PathBuf>,
    /// `-h <algs>` (not as the first argument).
    pub hash_algorithms: Option<String>,
    /// `-o <sinks>`, checked (see `sinks::outputs`); only with `-i` and `-t`.
    pub outputs: Option<String>,
}

/// Sysmon spelling (lower case) → clap long name.
const SWITCHES: &[(&str, &str)] = &[
    ("i", "install"),
    ("c", "config"),
    ("u", "uninstall"),
    ("s", "print-schema"),
    ("t", "debug"),
    ("btf", "btf"),
    ("accepteula", "accepteula"),
    ("nologo", "nologo"),
    ("h", "hash-algorithms"),
    ("o", "outputs"),
    ("service", "service"),
    ("kernelcheck", "kernelcheck"),
    ("-", "defaults"),
];

/// The arguments after the program name as text. One that is not UTF-8 is bad usage
/// (switches, values and paths are all handled as text): the error names it by position and
/// shows its bytes that are not UTF-8 as `\xNN`.
pub fn utf8_args<I: IntoIterator<Item = OsString>>(args: I) -> Result<Vec<String>, String> {
    args.into_iter()
        .enumerate()
        .map(|(i, a)| {
            a.into_string().map_err(|a| {
                let mut shown = String::new();
                crate::events::text::push_bytes(&mut shown, a.as_bytes());
                format!("argument {} is not valid UTF-8: '{shown}'", i + 1)
            })
        })
        .collect()
}

/// Parses the arguments after the program name.
pub fn parse<I: IntoIterator<Item = String>>(args: I) -> Result<Args, String> {
    let argv: Vec<String> = args.into_iter().collect();
    if let Some(first) = argv.first().map(|a| a.to_ascii_lowercase()) {
        if first.starts_with("-?") || first == "-h" || first == "-help" {
            let config = argv.get(1).map(|a| a.to_ascii_lowercase());
            let command = match config.as_deref() {
                Some("config" | "configuration") => Command::ConfigHelp,
                _ => Command::Usage,
            };
            return Ok(Args {
                command,
                btf: None,
                hash_algorithms: None,
                outputs: None,
            });
        }
    }
    if argv.is_empty() {
        return Err("no command given".into());
    }
    let m = clap_command()
        .try_get_matches_from(std::iter::once("sysmon".to_string()).chain(normalise(&argv)?))
        .map_err(|e| {
            let text = e.to_string();
            let first = text.lines().next().unwrap_or("bad usage");
            first.trim_start_matches("error: ").to_string()
        })?;
    interpret(&m)
}

/// Sysmon's spellings → clap's: switches lower-cased and made long; values left alone.
fn normalise(argv: &[String]) -> Result<Vec<String>, String> {
    let mut out = Vec::with_capacity(argv.len());
    for arg in argv {
        let Some(switch) = arg.strip_prefix('-') else {
            // A value; clap decides whether a switch before it takes one.
            out.push(arg.clone());
            continue;
        };
        let lower = switch.to_ascii_lowercase();
        let long = SWITCHES
            .iter()
            .find(|(s, _)| *s == lower)
            .map(|(_, l)| *l)
            .ok_or_else(|| format!("unknown switch '{arg}'"))?;
        out.push(format!("--{long}"));
    }
    Ok(out)
}

fn clap_command() -> clap::Command {
    let optional = |name: &'static str, value: &'static str, help: &'static str| {
        Arg::new(name)
            .long(name)
            .num_args(0..=1)
            .action(ArgAction::Set)
            .value_name(value)
            .help(help)
    };
    let flag = |name: &'static str, help: &'static str| {
        Arg::new(name)
            .long(name)
            .action(ArgAction::SetTrue)
            .help(help)
    };
    clap::Command::new("sysmon")
        .no_binary_name(false)
        .disable_help_flag(true)
        .disable_version_flag(true)
        .arg(optional(
            "install",
            "configfile",
            "Install the service and start it (default config: process create and \
             terminate); the config is validated first",
        ))
        .arg(optional(
            "config",
            "configfile",
            "Update the running configuration (no restart); alone, show the current rules; \
             -c -- resets to the defaults",
        ))
        .arg(optional(
            "uninstall",
            "force",
            "Stop the service and disable it (state in /opt/sysmon stays); force also kills \
             a daemon that does not stop and removes the rsyslog and logrotate files",
        ))
        .arg(optional(
            "print-schema",
            "version|all",
            "Print the event schema",
        ))
        .arg(optional(
            "debug",
            "configfile",
            "Run in the foreground: events go to syslog and, in the sysmonLogView layout, to \
             stdout (Ctrl-C to stop)",
        ))
        .arg(
            Arg::new("btf")
                .long("btf")
                .num_args(1)
                .value_name("file")
                .value_hint(clap::ValueHint::FilePath)
                .help("Read kernel struct offsets from this BTF file instead of /sys/kernel/btf/vmlinux"),
        )
        .arg(
            Arg::new("hash-algorithms")
                .long("hash-algorithms")
                .num_args(1)
                .value_name("alg[,alg...]")
                .help("Hash algorithms (sha1, md5, sha256, *) unless the config sets them"),
        )
        .arg(
            Arg::new("outputs")
                .long("outputs")
                .num_args(1)
                .value_name("sinks")
                .help("With -i or -t: where events go: syslog, json[=PATH], xml[=PATH], size=N[K|M|G], keep=N"),
        )
        .arg(flag("accepteula", "Accepted for compatibility"))
        .arg(flag("nologo", "Accepted for compatibility"))
        .arg(flag("service", "Internal: run as the daemon"))
        .arg(flag(
            "kernelcheck",
            "Verify every eBPF program on this kernel (nothing is attached) and report each \
             one's verified instructions and stack against the verifier's limits",
        ))
        .arg(flag("defaults", "With -c: reset to the default configuration"))
        // Sysmon's "exclusive" switches.
        .group(
            ArgGroup::new("mode")
                .args([
                    "install",
                    "config",
                    "uninstall",
                    "print-schema",
                    "debug",
                    "service",
                    "kernelcheck",
                ])
                .multiple(false),
        )
}

/// The command line as documented in the man page and completions: the parser's own
/// arguments and help, renamed to Sysmon's spellings. clap prints every long name with two
/// dashes, so whoever renders this turns `--x` into `-x` (see `sysmon-docs`).
pub fn documented() -> clap::Command {
    let mut cmd = clap::Command::new("sysmon")
        .disable_help_flag(true)
        .disable_version_flag(true)
        .about("Monitor and log system activity (Sysmon for Linux, on eBPF)")
        .long_about(
            "sysmon records what processes do (process creation and termination, network \
             connections, file creation and deletion, raw disk reads) with eBPF programs in \
             the kernel, filters the events with a Sysmon XML configuration and writes one \
             Sysmon-format XML event per action to syslog (ident sysmon, facility user). \
             Switches are single-dash and case-insensitive. Installing the package starts \
             nothing: run sysmon -accepteula -i [configfile] as root.",
        )
        .version(env!("CARGO_PKG_VERSION"));
    for arg in clap_command().get_arguments() {
        let id = arg.get_id().as_str();
        let spelling = SWITCHES
            .iter()
            .find(|(_, long)| *long == id)
            .map(|(s, _)| *s);
        match spelling {
            // `-service` is internal; `--` only makes sense after -c, whose help says so.
            _ if id == "service" || id == "defaults" => {}
            Some(spelling) => cmd = cmd.arg(arg.clone().long(spelling)),
            None => cmd = cmd.arg(arg.clone()),
        }
    }
    cmd.arg(
        Arg::new("help")
            .long("?")
            .num_args(0..=1)
            .value_name("config")
            .help("This help, or (with config) how to write a configuration"),
    )
}

fn interpret(m: &ArgMatches) -> Result<Args, String> {
    let value = |name: &str| m.get_one::<String>(name).cloned();
    let given = |name: &str| m.contains_id(name);
    let defaults = m.get_flag("defaults");
    if defaults && !given("config") {
        return Err(
            "The '--' switch must be used with -c switch (config update) to set defaults.".into(),
        );
    }
    let command = if given("install") {
        Command::Install {
            config: value("install").map(PathBuf::from),
        }
    } else if given("config") {
        match (value("config"), defaults) {
            (Some(_), true) => {
                return Err("Cannot use specific settings with enforcing defaults.".into());
            }
            (Some(c), false) => Command::Configure {
                config: Some(c.into()),
            },
            (None, true) => Command::Configure { config: None },
            (None, false) => Command::ShowConfig,
        }
    } else if given("uninstall") {
        match value("uninstall")
            .map(|v| v.to_ascii_lowercase())
            .as_deref()
        {
            None => Command::Uninstall { force: false },
            Some("force") => Command::Uninstall { force: true },
            Some(_) => return Err("Invalid option for -u.".into()),
        }
    } else if given("print-schema") {
        Command::PrintSchema(value("print-schema"))
    } else if given("debug") {
        // `-t verbose` is Sysmon's spelling of debug mode; our `-t` value is a config file.
        let config = value("debug").filter(|v| !v.eq_ignore_ascii_case("verbose"));
        Command::Debug {
            config: config.map(PathBuf::from),
        }
    } else if m.get_flag("service") {
        Command::Service
    } else if m.get_flag("kernelcheck") {
        Command::KernelCheck
    } else {
        return Err("no command given".into());
    };
    let outputs = value("outputs");
    if let Some(list) = &outputs {
        if !matches!(command, Command::Install { .. } | Command::Debug { .. }) {
            return Err("-o is set at install (-i) or with -t; -c keeps the installed one.".into());
        }
        crate::sinks::outputs::Outputs::parse(list, std::path::Path::new("/"))?;
    }
    Ok(Args {
        command,
        btf: value("btf").map(PathBuf::from),
        hash_algorithms: value("hash-algorithms"),
        outputs,
    })
}

pub const BANNER: &str = concat!(
    "\nSysmon v",
    env!("CARGO_PKG_VERSION"),
    " - Monitors system events (eBPF, Rust)\n",
    "Licensed under MIT\n\n"
);

pub const USAGE: &str = "\
Usage:
    sysmon -i [<configfile>]     install the service and start it (default config: process
                                 create and terminate); the config is validated first
    sysmon -c [<configfile>]     update the running configuration (no restart);
                                 -c alone shows the current rules, -c -- resets to defaults
    sysmon -u [force]            stop the service and disable it (state in /opt/sysmon stays);
                                 force also kills a daemon that does not stop
    sysmon -s [<version>|all]    print the event schema
    sysmon -t [<configfile>]     run in the foreground: events go to syslog and, in the
                                 sysmonLogView layout, to stdout (Ctrl-C to stop)
    sysmon -kernelcheck          verify every eBPF program on this kernel (nothing is
                                 attached): verified instructions and stack of each
    sysmon -? [config]           this help, or how to write a configuration
Options:
    -h <alg>[,<alg>...]          hash algorithms (sha1, md5, sha256, *) unless the config sets them
    -o <sink>[,<sink>...]        where events go (default: syslog), kept by the install:
                                 syslog, json[=PATH] (JSON lines, default
                                 /var/log/sysmon/sysmon.json), xml[=PATH] (the syslog XML,
                                 one event per line, default /var/log/sysmon/sysmon.xml);
                                 files rotate at size=N[K|M|G] (100M) keeping keep=N (5);
                                 a list without syslog turns syslog off
    -btf <file>                  read kernel struct offsets from this BTF file instead of
                                 /sys/kernel/btf/vmlinux
    -accepteula, -nologo         accepted for compatibility
Switches are single-dash and case-insensitive. Exit code 87: bad usage or bad configuration.
";

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn commands() {
        let p = |p: &str| Some(PathBuf::from(p));
        let cases: &[(&[&str], Command)] = &[
            (&["-t"], Command::Debug { config: None }),
            (&["-kernelcheck"], Command::KernelCheck),
            (&["-KernelCheck", "-btf", "x"], Command::KernelCheck),
            (
                &["-accepteula", "-T", "c.xml"],
                Command::Debug { config: p("c.xml") },
            ),
            (&["-t", "-btf", "/b"], Command::Debug { config: None }),
            (&["-t", "VERBOSE"], Command::Debug { config: None }),
            (&["-?"], Command::Usage),
            (&["-h"], Command::Usage),
            (&["-HELP"], Command::Usage),
            (&["-?", "CONFIG"], Command::ConfigHelp),
            (&["-?", "configuration"], Command::ConfigHelp),
            (&["-accepteula", "-i"], Command::Install { config: None }),
            (
                &["-accepteula", "-I", "c.xml"],
                Command::Install { config: p("c.xml") },
            ),
            (
                &["-i", "c.xml", "-h", "md5"],
                Command::Install { config: p("c.xml") },
            ),
            (&["-c"], Command::ShowConfig),
            (
                &["-c", "new.xml"],
                Command::Configure {
                    config: p("new.xml"),
                },
            ),
            (&["-c", "--"], Command::Configure { config: None }),
            (&["-u"], Command::Uninstall { force: false }),
            (&["-U", "FORCE"], Command::Uninstall { force: true }),
            (&["-s"], Command::PrintSchema(None)),
            (&["-s", "all"], Command::PrintSchema(Some("all".into()))),
            (&["-service"], Command::Service),
            (&["-nologo", "-accepteula", "-c"], Command::ShowConfig),
        ];
        for (argv, want) in cases {
            let got = parse(s(argv)).unwrap_or_else(|e| panic!("{argv:?}: {e}"));
            assert_eq!(&got.command, want, "argv {argv:?}");
        }
    }

    #[test]
    fn bad_usage() {
        // (argv, what the message must say)
        let cases: &[(&[&str], &str)] = &[
            (&[], "no command"),
            (&["bare"], "bare"),
            (&["-bogus"], "unknown switch '-bogus'"),
            (&["-btf"], "btf"),
            (&["-i", "-c"], "cannot be used with"),
            (&["-i", "-u"], "cannot be used with"),
            (&["-u", "now"], "Invalid option for -u."),
            (&["-i", "--"], "must be used with -c"),
            (&["-c", "x.xml", "--"], "Cannot use specific settings"),
            (&["-accepteula"], "no command"),
            (&["-i", "a.xml", "b.xml"], "b.xml"),
        ];
        for (argv, want) in cases {
            let err = parse(s(argv)).expect_err(&format!("{argv:?} should fail"));
            assert!(err.contains(want), "{argv:?}: {err:?} lacks {want:?}");
        }
    }

    /// The man page and completions (`documented()`) list exactly the switches the parser
    /// takes, in Sysmon's spelling, and `-?` names each of them too.
    #[test]
    fn documented_switches_are_the_parsed_ones() {
        let doc = documented();
        let mut documented: Vec<&str> = doc.get_arguments().filter_map(|a| a.get_long()).collect();
        documented.sort();
        let mut parsed: Vec<&str> = SWITCHES
            .iter()
            .map(|(spelling, _)| *spelling)
            .filter(|s| !matches!(*s, "service" | "-"))
            .chain(["?"])
            .collect();
        parsed.sort();
        assert_eq!(documented, parsed);
        for switch in parsed {
            assert!(USAGE.contains(&format!("-{switch}")), "-? lacks -{switch}");
            let arg = doc
                .get_arguments()
                .find(|a| a.get_long() == Some(switch))
                .unwrap();
            assert!(arg.get_help().is_some(), "-{switch} has no help");
        }
    }

    #[test]
    fn arguments_that_are_not_utf8_are_named() {
        use std::os::unix::ffi::OsStringExt;
        let os = |b: &[u8]| OsString::from_vec(b.to_vec());
        // (argv, error)
        type Case<'a> = (&'a [&'a [u8]], Result<&'a [&'a str], &'a str>);
        let cases: &[Case] = &[
            (&[b"-i", b"caf\xc3\xa9.xml"], Ok(&["-i", "caf\u{e9}.xml"])),
            (&[b"\xff"], Err("argument 1 is not valid UTF-8: '\\xff'")),
            (
                &[b"-c", b"a\xfe\xffb.xml"],
                Err("argument 2 is not valid UTF-8: 'a\\xfe\\xffb.xml'"),
            ),
        ];
        for (argv, want) in cases {
            let got = utf8_args(argv.iter().map(|a| os(a)));
            match want {
                Ok(w) => assert_eq!(got.unwrap(), *w),
                Err(w) => assert_eq!(got.unwrap_err(), *w),
            }
        }
    }

    #[test]
    fn outputs_switch() {
        let a = parse(s(&["-i", "c.xml", "-O", "json,syslog,size=10M"])).unwrap();
        assert_eq!(a.outputs.as_deref(), Some("json,syslog,size=10M"));
        // (argv, what the message must say)
        let cases: &[(&[&str], &str)] = &[
            (&["-i", "-o", "csv"], "unknown item 'csv'"),
            (&["-i", "-o", "json,size=1Q"], "bad size"),
            (&["-i", "-o"], "outputs"),
            (&["-c", "x.xml", "-o", "json"], "set at install"),
        ];
        for (argv, want) in cases {
            let err = parse(s(argv)).expect_err(&format!("{argv:?} should fail"));
            assert!(err.contains(want), "{argv:?}: {err:?} lacks {want:?}");
        }
    }

    #[test]
    fn options() {
        let a = parse(s(&["-i", "c.xml", "-H", "md5,sha1", "-BTF", "/b"])).unwrap();
        assert_eq!(a.hash_algorithms.as_deref(), Some("md5,sha1"));
        assert_eq!(a.btf, Some("/b".into()));
    }
}
