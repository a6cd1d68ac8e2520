//! `sysmon -i` / `-c` / `-u` against a temporary root: the install goes to `<root>/opt/sysmon`,
//! the rsyslog split to `<root>/etc/rsyslog.d`, events to `<root>/var/log/sysmon.log`
//! through a private rsyslogd that includes that directory. The machine's own rsyslogd and
//! /opt/sysmon are never touched.

use std::{
    collections::HashSet,
    os::unix::process::CommandExt,
    path::{Path, PathBuf},
    process::{Command, Output},
};

use crate::{
    TempDir, events,
    rsyslog::{Rsyslog, wait_for},
};

pub struct Install {
    pub syslog: Rsyslog,
    pub root: TempDir,
}

impl Install {
    /// A fresh root and its rsyslogd; nothing installed yet.
    pub fn new(tag: &str) -> Install {
        let root = TempDir::new(tag);
        let include = root.0.join("etc/rsyslog.d/*.conf");
        // /run is there when rsyslogd starts, as on a booted system: our input's socket.
        std::fs::create_dir_all(root.0.join("run")).unwrap();
        let syslog = Rsyslog::start_with(&root.0, &include);
        Install { syslog, root }
    }

    pub fn path(&self, p: &str) -> PathBuf {
        self.root.0.join(p)
    }

    /// Runs the installed-to-be `sysmon` with these arguments, in the root, as `uid`.
    pub fn sysmon_as(&self, uid: u32, args: &[&str]) -> Output {
        self.sysmon_env(uid, args, &[])
    }

    /// As `sysmon_as`, with extra environment variables.
    pub fn sysmon_env(&self, uid: u32, args: &[&str], env: &[(&str, String)]) -> Output {
        let out = Command::new(crate::sysmon_bin())
            .args(args)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .current_dir(&self.root.0)
            .env("SYSMON_ROOT", &self.root.0)
            .env("SYSMON_SYSLOG_SOCKET", &self.syslog.socket)
            .env("SYSMON_RSYSLOG_PID_FILE", &self.syslog.pid_file)
            .env_remove("SYSMON_STATE_DIR")
            .env_remove("SYSMON_RSYSLOG_SOCKET")
            .uid(uid)
            .output()
            .expect("running sysmon");
        eprintln!(
            "sysmon {args:?}: {}\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    pub fn sysmon(&self, args: &[&str]) -> Output {
        self.sysmon_as(0, args)
    }

    /// Runs sysmon and requires success.
    pub fn ok(&self, args: &[&str]) -> Output {
        let out = self.sysmon(args);
        assert!(out.status.success(), "sysmon {args:?} failed");
        out
    }

    /// The daemon's pid, from its pid file, if it runs.
    pub fn daemon(&self) -> Option<i32> {
        let pid = std::fs::read_to_string(self.path("run/sysmon.pid"))
            .ok()?
            .trim()
            .parse()
            .ok()?;
        crate::alive(pid).then_some(pid)
    }

    /// What rsyslogd said of its own at severity warning or worse (a configuration it did
    /// not like), from its catch-all file.
    pub fn rsyslogd_complaints(&self) -> Vec<String> {
        self.syslog
            .lines()
            .into_iter()
            .filter(|l| {
                let w: Vec<&str> = l.split_whitespace().take(4).collect();
                // rsyslogd, or rsyslogd-<error number>.
                w.first().is_some_and(|p| p.starts_with("rsyslogd"))
                    && matches!(
                        w.get(3),
                        Some(&("warning" | "err" | "crit" | "alert" | "emerg"))
                    )
            })
            .collect()
    }

    /// Connections open to our rsyslog input's socket (`/proc/net/unix` names the path on
    /// the accepting side).
    pub fn stream_connections(&self) -> usize {
        let path = self.path("run/sysmon-syslog.sock");
        let path = path.to_string_lossy();
        std::fs::read_to_string("/proc/net/unix")
            .unwrap_or_default()
            .lines()
            .filter(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                // Type 0001 stream, state 03 connected.
                f.len() == 8 && f[4] == "0001" && f[5] == "03" && f[7] == path
            })
            .count()
    }

    /// Every event in the split-off sysmon log.
    pub fn events(&self) -> Vec<events::Event> {
        events::parse_lines(&lines(&self.path("var/log/sysmon.log")))
    }

    /// Waits for an event that `pred` accepts and returns it.
    pub fn wait_event(&self, what: &str, pred: impl Fn(&events::Event) -> bool) -> events::Event {
        let mut found = None;
        wait_for(
            || {
                found = self.events().into_iter().find(|e| pred(e));
                found.is_some()
            },
            what,
        );
        found.unwrap()
    }

    /// Waits until a message sent now through rsyslogd is in its catch-all file: everything
    /// sent before it has been written wherever it goes.
    pub fn sync(&self) {
        let marker = format!("sync-{}", crate::unique());
        let sock = std::os::unix::net::UnixDatagram::unbound().unwrap();
        sock.send_to(
            format!("<13>marker: {marker}").as_bytes(),
            &self.syslog.socket,
        )
        .unwrap();
        wait_for(
            || self.syslog.lines().iter().any(|l| l.contains(&marker)),
            "the sync marker",
        );
    }
}

impl Drop for Install {
    fn drop(&mut self) {
        // Whatever the test left running goes; the rsyslogd after it (field order).
        if let Some(pid) = self.daemon() {
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }
}

/// The whole lines of a log file written so far (none if it does not exist yet).
pub fn lines(path: &Path) -> Vec<String> {
    std::fs::read(path)
        .map(|mut b| {
            // A line still being written (rsyslogd writes a long one in several pieces) is
            // read at the next poll, whole.
            b.truncate(b.iter().rposition(|c| *c == b'\n').map_or(0, |i| i + 1));
            String::from_utf8_lossy(&b)
                .lines()
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// Runs `/bin/true <arg>` and waits for it.
pub fn exec_true(arg: &str) {
    assert!(
        Command::new("/bin/true")
            .arg(arg)
            .status()
            .unwrap()
            .success()
    );
}

pub fn sha256_hex(path: &Path) -> String {
    let out = Command::new("sha256sum").arg(path).output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

/// A config with no rules (schema 4.50).
pub const CONFIG: &str =
    "<Sysmon schemaversion=\"4.50\">\n  <EventFiltering>\n  </EventFiltering>\n</Sysmon>\n";
/// Not well-formed: the error must name line 3.
pub const BROKEN: &str = "<Sysmon schemaversion=\"4.50\">\n  <EventFiltering>\n</Sysmon>\n";

/// ProcessCreate events whose command line holds `token`, each command line once (after a
/// syslog restart an event the old daemon read just before dying may come twice).
pub fn creates_with(events: &[events::Event], token: &str) -> usize {
    events
        .iter()
        .filter(|e| e.id == 1)
        .filter_map(|e| e.get("CommandLine").filter(|c| c.contains(token)))
        .collect::<HashSet<_>>()
        .len()
}
