//! The agent as a service: install layout, daemon life, control (`-i`, `-c`, `-u`), state.
//!
//! Every path comes from [`Paths`], so that tests (and unusual hosts) can install into a
//! temporary root with a private rsyslogd instead of touching the machine's own.

pub mod control;
pub mod daemon;
pub mod install;
pub mod limit;
pub mod proc;
pub mod record_id;
pub mod rsyslog;
pub mod unit;

use std::path::{Path, PathBuf};

use crate::sinks::{outputs::Outputs, syslog::DEV_LOG};

/// Where everything lives. Defaults are the real system paths; environment variables move
/// them (documented in README.md):
/// `SYSMON_ROOT` prefixes every system path (default `/`);
/// `SYSMON_STATE_DIR` the install dir (default `<root>/opt/sysmon`);
/// `SYSMON_SYSLOG_SOCKET` the syslog socket (default `/dev/log`, not prefixed);
/// `SYSMON_RSYSLOG_SOCKET` our rsyslog input's socket (default `<root>/run/sysmon-syslog.sock`);
/// `SYSMON_RSYSLOG_PID_FILE` which rsyslogd to restart (default `<root>/run/rsyslogd.pid`).
#[derive(Debug, Clone)]
pub struct Paths {
    /// `SYSMON_ROOT`: where `-o`'s default file paths are.
    pub root: PathBuf,
    pub dir: PathBuf,
    pub unit: PathBuf,
    /// Exists when systemd runs (`/etc/systemd/system` may exist without it).
    pub systemd_running: PathBuf,
    pub rsyslog_conf: PathBuf,
    pub logrotate: PathBuf,
    pub log_file: PathBuf,
    pub pid_file: PathBuf,
    pub rsyslog_pid_file: PathBuf,
    pub syslog_socket: PathBuf,
    /// The stream socket of the rsyslog input that `-i` installs (`rsyslog::CONF`).
    pub rsyslog_socket: PathBuf,
}

impl Paths {
    pub fn from_env() -> Paths {
        let var = |name: &str| std::env::var_os(name).map(PathBuf::from);
        Paths::new(
            &var("SYSMON_ROOT").unwrap_or_else(|| "/".into()),
            var("SYSMON_STATE_DIR"),
            var("SYSMON_SYSLOG_SOCKET"),
            var("SYSMON_RSYSLOG_PID_FILE"),
            var("SYSMON_RSYSLOG_SOCKET"),
        )
    }

    pub fn new(
        root: &Path,
        dir: Option<PathBuf>,
        socket: Option<PathBuf>,
        rsyslog_pid: Option<PathBuf>,
        rsyslog_socket: Option<PathBuf>,
    ) -> Paths {
        let at = |p: &str| root.join(p);
        Paths {
            root: root.to_owned(),
            dir: dir.unwrap_or_else(|| at("opt/sysmon")),
            unit: at("etc/systemd/system/sysmon.service"),
            systemd_running: at("run/systemd/system"),
            rsyslog_conf: at("etc/rsyslog.d/30-sysmon.conf"),
            logrotate: at("etc/logrotate.d/sysmon"),
            log_file: at("var/log/sysmon.log"),
            pid_file: at("run/sysmon.pid"),
            rsyslog_pid_file: rsyslog_pid.unwrap_or_else(|| at("run/rsyslogd.pid")),
            syslog_socket: socket.unwrap_or_else(|| DEV_LOG.into()),
            rsyslog_socket: rsyslog_socket.unwrap_or_else(|| at(RSYSLOG_SOCKET)),
        }
    }

    pub fn systemd(&self) -> bool {
        self.systemd_running.is_dir()
    }

    pub fn config(&self) -> PathBuf {
        self.dir.join("config.xml")
    }

    /// The command line of the last `-i` / `-c`, NUL-separated (as Sysmon's `argv` file).
    pub fn argv(&self) -> PathBuf {
        self.dir.join("argv")
    }

    /// The daemon's answer to the last SIGHUP: `<pid> <count> ok|error <message>`.
    pub fn reload_answer(&self) -> PathBuf {
        self.dir.join("reloaded")
    }

    /// The `-o` list of the last `-i` (absent: syslog only). Apart from `argv`, which `-c`
    /// rewrites: the sinks are chosen at install and kept by `-c`.
    pub fn outputs(&self) -> PathBuf {
        self.dir.join("outputs")
    }

    /// The sinks the daemon writes to.
    pub fn load_outputs(&self) -> Result<Outputs, String> {
        match std::fs::read_to_string(self.outputs()) {
            Ok(list) => Outputs::parse(list.trim(), &self.root)
                .map_err(|e| format!("{}: {e}", self.outputs().display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Outputs::default()),
            Err(e) => Err(format!("{}: {e}", self.outputs().display())),
        }
    }

    pub fn binary(&self) -> PathBuf {
        self.dir.join("sysmon")
    }
}

/// Where our rsyslog input listens (under the root): in /run itself, which exists when
/// rsyslogd starts at boot (a directory of ours would not, and imptcp does not create one).
pub const RSYSLOG_SOCKET: &str = "run/sysmon-syslog.sock";

/// The config written for "no config" (`-i` alone, `-c --`): no rules, manifest defaults.
pub const DEFAULT_CONFIG: &str = "<Sysmon schemaversion=\"4.22\">\n</Sysmon>\n";
