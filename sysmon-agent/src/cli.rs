//! Sysmon's command line: single-dash switches, matched case-insensitively.
//!
//! This covers the foreground agent (`-t`) and the switches every mode accepts; the service
//! commands (`-i`, `-c`, `-u`) come with the service work.

use std::path::PathBuf;

/// Exit code for bad usage, as Sysmon (ERROR_INVALID_PARAMETER).
pub const BAD_USAGE: i32 = 87;

#[derive(Debug, PartialEq, Eq)]
pub enum Command {
    /// `-t [config]`: run in the foreground, events to syslog and stdout.
    Debug { config: Option<PathBuf> },
    /// `-?`, `-h`, `-help`.
    Usage,
}

#[derive(Debug, PartialEq, Eq)]
pub struct Args {
    pub command: Command,
    pub btf: Option<PathBuf>,
}

pub fn parse<I: IntoIterator<Item = String>>(args: I) -> Result<Args, String> {
    let mut it = args.into_iter().peekable();
    let mut command = None;
    let mut btf = None;
    while let Some(arg) = it.next() {
        let Some(switch) = arg.strip_prefix('-') else {
            return Err(format!("unexpected argument '{arg}'"));
        };
        // A value is the next argument unless it is itself a switch.
        let mut value = || it.next_if(|v| !v.starts_with('-'));
        match switch.to_ascii_lowercase().as_str() {
            "t" => {
                command = Some(Command::Debug {
                    config: value().map(PathBuf::from),
                })
            }
            "btf" => btf = Some(PathBuf::from(value().ok_or("-btf needs a file")?)),
            "accepteula" | "nologo" => {}
            "?" | "h" | "help" => command = Some(Command::Usage),
            "i" | "c" | "u" | "s" => {
                return Err(format!(
                    "-{switch} is not available in this build yet; use -t"
                ));
            }
            _ => return Err(format!("unknown switch '{arg}'")),
        }
    }
    Ok(Args {
        command: command.unwrap_or(Command::Usage),
        btf,
    })
}

pub const USAGE: &str = "\
Usage:
    sysmon -t [<configfile>]     run in the foreground: events go to syslog and, in the
                                 sysmonLogView layout, to stdout (Ctrl-C to stop)
    sysmon -?                    this help
Options:
    -btf <file>                  read kernel struct offsets from this BTF file instead of
                                 /sys/kernel/btf/vmlinux
    -accepteula, -nologo         accepted for compatibility
";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        let cases: &[(&[&str], Result<Command, ()>)] = &[
            (&["-t"], Ok(Command::Debug { config: None })),
            (
                &["-accepteula", "-T", "c.xml"],
                Ok(Command::Debug {
                    config: Some("c.xml".into()),
                }),
            ),
            (&["-t", "-btf", "/b"], Ok(Command::Debug { config: None })),
            (&["-?"], Ok(Command::Usage)),
            (&[], Ok(Command::Usage)),
            (&["bare"], Err(())),
            (&["-bogus"], Err(())),
            (&["-btf"], Err(())),
        ];
        for (argv, want) in cases {
            let got = parse(s(argv)).map(|a| a.command).map_err(|_| ());
            assert_eq!(&got, want, "argv {argv:?}");
        }
        assert_eq!(
            parse(s(&["-t", "-btf", "/b"])).unwrap().btf,
            Some("/b".into())
        );
    }
}
