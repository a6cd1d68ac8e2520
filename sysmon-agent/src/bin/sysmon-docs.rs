//! `sysmon-docs <dir>`: the man pages and shell completions, generated from the clap
//! definitions the binaries parse with, so they cannot drift from `-?`. Run at package time
//! (`cargo xtask package`); not installed.
//!
//! Writes `<dir>/man/sysmon.8`, `<dir>/man/sysmonLogView.1` and
//! `<dir>/completions/{bash,zsh,fish}/…`.

use std::{fs, path::Path};

use clap_complete::Shell;
use sysmon_agent::{cli, logview::options};

const SYSMON_EXTRA: &[(&str, &str)] = &[
    (
        "EXIT STATUS",
        "0 on success. 87: bad usage or a bad configuration (the message names the file, \
         line and column). 228 (Sysmon's 740, cut to a byte): not run as root.",
    ),
    (
        "FILES",
        "/opt/sysmon: the installed copy of the binaries, the configuration in force \
         (config.xml), the last command line (argv) and the EventRecordID counter (eventId), \
         kept across re-installs and package upgrades.\n\n\
         /etc/rsyslog.d/30-sysmon.conf sends events to /var/log/sysmon.log; \
         /etc/logrotate.d/sysmon rotates it. /etc/systemd/system/sysmon.service when systemd \
         runs; /run/sysmon.pid.\n\n\
         /usr/share/sysmon-ebpf/default.xml: a starting configuration. \
         /usr/share/doc/sysmon-ebpf/: the README and example configurations.",
    ),
    ("SEE ALSO", "sysmonLogView(1), rsyslogd(8), logrotate(8)"),
];

const VIEWER_EXTRA: &[(&str, &str)] = &[
    (
        "EXAMPLES",
        "tail -f /var/log/sysmon.log | sysmonLogView -e 1,3\n\n\
         sysmonLogView --summary /var/log/sysmon.log",
    ),
    ("SEE ALSO", "sysmon(8)"),
];

fn main() -> std::io::Result<()> {
    let Some(dir) = std::env::args_os().nth(1) else {
        eprintln!("usage: sysmon-docs <output dir>");
        std::process::exit(2);
    };
    let dir = Path::new(&dir);
    let man = dir.join("man");
    fs::create_dir_all(&man)?;
    let sysmon = cli::documented();
    let viewer = options::command();
    fs::write(
        man.join("sysmon.8"),
        single_dash_roff(&page(sysmon.clone(), "8", SYSMON_EXTRA)?),
    )?;
    fs::write(
        man.join("sysmonLogView.1"),
        page(viewer.clone(), "1", VIEWER_EXTRA)?,
    )?;
    for (shell, file) in [
        (Shell::Bash, "bash/{}"),
        (Shell::Zsh, "zsh/_{}"),
        (Shell::Fish, "fish/{}.fish"),
    ] {
        for (cmd, sysmon_style) in [(&sysmon, true), (&viewer, false)] {
            let name = cmd.get_name().to_string();
            let path = dir.join("completions").join(file.replace("{}", &name));
            fs::create_dir_all(path.parent().unwrap())?;
            let mut out = Vec::new();
            clap_complete::generate(shell, &mut cmd.clone(), &name, &mut out);
            let mut text = String::from_utf8(out).expect("completions are UTF-8");
            if sysmon_style {
                text = single_dash_completion(shell, &text);
            }
            fs::write(path, text)?;
        }
    }
    Ok(())
}

/// A page: clap_mangen's sections, then `extra` (title, paragraphs split on blank lines).
fn page(cmd: clap::Command, section: &str, extra: &[(&str, &str)]) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    let man = clap_mangen::Man::new(cmd)
        .section(section)
        .manual(if section == "8" {
            "System Administration"
        } else {
            "User Commands"
        })
        .source(concat!("sysmon-ebpf ", env!("CARGO_PKG_VERSION")));
    man.render_title(&mut out)?;
    man.render_name_section(&mut out)?;
    man.render_synopsis_section(&mut out)?;
    man.render_description_section(&mut out)?;
    man.render_options_section(&mut out)?;
    for (title, text) in extra {
        let mut roff = roff::Roff::new();
        roff.control("SH", [*title]);
        for para in text.split("\n\n") {
            roff.control("PP", []).text([roff::roman(para)]);
        }
        roff.to_writer(&mut out)?;
    }
    man.render_version_section(&mut out)?;
    Ok(out)
}

/// Sysmon's switches are single-dash (`-i`, `-accepteula`); clap writes every long name as
/// `\-\-name` in roff. `-c --` stays.
fn single_dash_roff(page: &[u8]) -> String {
    single_dash(&String::from_utf8_lossy(page), "\\-\\-", "\\-")
}

/// The same for the completion scripts: offer `-i`, `-accepteula`, not `--i`.
fn single_dash_completion(shell: Shell, script: &str) -> String {
    match shell {
        // fish: `-l name` completes `--name`, `-o name` the old-style `-name`.
        Shell::Fish => script.replace(" -l ", " -o "),
        // zsh: `-i=` would also offer `-i=value`, which Sysmon does not take.
        Shell::Zsh => single_dash(script, "--", "-").replace("=[", "["),
        // bash lists the switches literally.
        _ => single_dash(script, "--", "-"),
    }
}

/// `double` followed by a switch name (a letter or `?`) becomes `single`.
fn single_dash(text: &str, double: &str, single: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(double) {
        out.push_str(&rest[..at]);
        let after = &rest[at + double.len()..];
        let switch = after
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '?');
        out.push_str(if switch { single } else { double });
        rest = after;
    }
    out.push_str(rest);
    out
}
