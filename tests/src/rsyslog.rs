//! A private rsyslogd: its own socket, its own output file, no rate limit.

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
    child: Child,
    pub socket: PathBuf,
    /// Every message: `<programname> <facility> <severity> <msg>`, one per line.
    pub output: PathBuf,
}

impl Rsyslog {
    pub fn start(dir: &Path) -> Rsyslog {
        let socket = dir.join("log.sock");
        let output = dir.join("messages");
        let conf = dir.join("rsyslog.conf");
        fs::write(
            &conf,
            format!(
                r#"global(maxMessageSize="128k" workDirectory="{dir}")
module(load="imuxsock" SysSock.Use="off")
input(type="imuxsock" Socket="{sock}" RateLimit.Interval="0" CreatePath="on")
template(name="line" type="string" string="%programname% %syslogfacility-text% %syslogseverity-text%%msg%\n")
*.* action(type="omfile" file="{out}" template="line")
"#,
                dir = dir.display(),
                sock = socket.display(),
                out = output.display()
            ),
        )
        .unwrap();
        let child = Command::new(binary().expect("rsyslogd"))
            .args(["-n", "-f"])
            .arg(&conf)
            .arg("-i")
            .arg(dir.join("rsyslogd.pid"))
            .stdin(Stdio::null())
            .spawn()
            .expect("starting rsyslogd");
        wait_for(|| socket.exists(), "rsyslogd's socket");
        Rsyslog {
            child,
            socket,
            output,
        }
    }

    /// The lines written so far.
    pub fn lines(&self) -> Vec<String> {
        fs::read(&self.output)
            .map(|b| {
                String::from_utf8_lossy(&b)
                    .lines()
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl Drop for Rsyslog {
    fn drop(&mut self) {
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
    }
}

/// Polls `cond` until it holds; panics after a generous guard so a bug fails, not hangs.
pub fn wait_for(mut cond: impl FnMut() -> bool, what: &str) {
    let start = Instant::now();
    while !cond() {
        if start.elapsed() > Duration::from_secs(60) {
            panic!("gave up waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
