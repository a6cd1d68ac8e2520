//! A private rsyslogd: its own sockets, its own output file, no rate limit.

use std::{
    fs,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

pub fn binary() -> Option<PathBuf> {
    ["/usr/sbin/rsyslogd", "/sbin/rsyslogd"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

pub struct Rsyslog {
    child: Option<Child>,
    conf: PathBuf,
    pub pid_file: PathBuf,
    /// The datagram socket (`/dev/log`'s stand-in).
    pub socket: PathBuf,
    /// The stream socket of an input like the one `sysmon -i` installs, if it has one.
    pub stream: Option<PathBuf>,
    /// Every message: `<programname> <input> <facility> <severity> <msg>`, one per line;
    /// rsyslogd's own among them (`processInternalMessages`), so its complaints show.
    pub output: PathBuf,
}

impl Rsyslog {
    /// An rsyslogd with the stream input of ours (`imptcp`, unix socket) and `/dev/log`'s
    /// (`imuxsock`), both to the catch-all file.
    pub fn start(dir: &Path) -> Rsyslog {
        Self::launch(dir, Inputs::Both)
    }

    /// An rsyslogd without our input: datagrams only, as where `sysmon -i` did not install
    /// the split.
    pub fn start_datagrams_only(dir: &Path) -> Rsyslog {
        Self::launch(dir, Inputs::Datagrams)
    }

    /// With the rules of `include` (a glob, may match nothing) applied before the catch-all:
    /// that is where an installed `/etc/rsyslog.d/30-sysmon.conf` goes (and with it our
    /// input). As on a distribution's rsyslogd, the message size limit is then rsyslog's
    /// default (8 KiB) unless the included files raise it.
    pub fn start_with(dir: &Path, include: &Path) -> Rsyslog {
        Self::launch(dir, Inputs::Include(include))
    }

    fn launch(dir: &Path, inputs: Inputs) -> Rsyslog {
        let socket = dir.join("log.sock");
        let output = dir.join("messages");
        let conf = dir.join("rsyslog.conf");
        let stream = matches!(inputs, Inputs::Both).then(|| dir.join("sysmon.sock"));
        let (max_size, more) = match (&inputs, &stream) {
            (Inputs::Include(glob), _) => (
                "",
                format!("include(file=\"{}\" mode=\"optional\")\n", glob.display()),
            ),
            (_, Some(path)) => (
                " maxMessageSize=\"128k\"",
                format!(
                    "module(load=\"imptcp\")\ninput(type=\"imptcp\" path=\"{}\" unlink=\"on\" \
                     fileCreateMode=\"0600\")\n",
                    path.display()
                ),
            ),
            _ => (" maxMessageSize=\"128k\"", String::new()),
        };
        fs::write(
            &conf,
            format!(
                r#"global(workDirectory="{dir}" processInternalMessages="on"{max_size})
module(load="imuxsock" SysSock.Use="off")
input(type="imuxsock" Socket="{sock}" RateLimit.Interval="0" CreatePath="on")
{more}template(name="line" type="string" string="%programname% %inputname% %syslogfacility-text% %syslogseverity-text% %msg%\n")
*.* action(type="omfile" file="{out}" template="line")
"#,
                dir = dir.display(),
                sock = socket.display(),
                out = output.display(),
            ),
        )
        .unwrap();
        let mut r = Rsyslog {
            child: None,
            conf,
            pid_file: dir.join("rsyslogd.pid"),
            socket,
            stream,
            output,
        };
        r.spawn();
        r
    }

    fn spawn(&mut self) {
        let _ = fs::remove_file(&self.pid_file);
        let child = Command::new(binary().expect("rsyslogd"))
            .args(["-n", "-f"])
            .arg(&self.conf)
            .arg("-i")
            .arg(&self.pid_file)
            .stdin(Stdio::null())
            .spawn()
            .expect("starting rsyslogd");
        self.child = Some(child);
        wait_for(
            || {
                self.socket.exists()
                    && self.stream.as_ref().is_none_or(|s| s.exists())
                    && self.pid().is_some()
            },
            "rsyslogd's sockets and pid file",
        );
    }

    /// The running rsyslogd, which may be one that `sysmon -i` restarted.
    pub fn pid(&self) -> Option<i32> {
        fs::read_to_string(&self.pid_file).ok()?.trim().parse().ok()
    }

    /// Starts it again after `stop`, same configuration and output.
    pub fn resume(&mut self) {
        self.spawn();
    }

    /// Stops it (SIGTERM, as a system restart would) and starts it again.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    /// Stops it and removes its socket: syslog is away until `resume`.
    pub fn stop(&mut self) {
        if let Some(pid) = self.pid() {
            unsafe { libc::kill(pid, libc::SIGTERM) };
            match &mut self.child {
                Some(c) if c.id() as i32 == pid => drop(c.wait()),
                _ => wait_for(|| !crate::alive(pid), "rsyslogd to stop"),
            }
        }
        if let Some(mut c) = self.child.take() {
            unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
            let _ = c.wait();
        }
        let _ = fs::remove_file(&self.socket);
    }

    /// The lines written so far.
    pub fn lines(&self) -> Vec<String> {
        crate::service::lines(&self.output)
    }
}

enum Inputs<'a> {
    Both,
    Datagrams,
    Include(&'a Path),
}

impl Drop for Rsyslog {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Polls `cond` until it holds; panics after a generous guard so a bug fails, not hangs.
pub fn wait_for(mut cond: impl FnMut() -> bool, what: &str) {
    let start = Instant::now();
    while !cond() {
        if start.elapsed() > patience() {
            panic!("gave up waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The guard of [`wait_for`]: a minute, or `$SYSMON_WAIT_SECS` seconds. The guest tests set
/// it longer: under an emulated CPU the agent takes about a minute to load its programs.
pub fn patience() -> Duration {
    let secs = std::env::var("SYSMON_WAIT_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    Duration::from_secs(secs)
}
