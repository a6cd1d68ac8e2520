//! Forwarding with the shipped rsyslog files: a sender (`configs/rsyslog-forward-relp.conf`)
//! and a collector (`configs/rsyslog-collector-relp.conf`), two private rsyslogd on
//! loopback, adapted by this test only in paths and port. The collector goes away for 10 s
//! in the middle of 5 000 events; all of them must reach its per-host file.

use std::{
    collections::HashMap,
    fs,
    os::unix::net::UnixDatagram,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use sysmon_tests::{TempDir, rsyslog, unique};

const FORWARD: &str = include_str!("../../configs/rsyslog-forward-relp.conf");
const COLLECTOR: &str = include_str!("../../configs/rsyslog-collector-relp.conf");
/// omrelp's window: at most this many messages are unacknowledged when a connection
/// breaks, the most RELP may send twice (rsyslog's imrelp documentation).
const RELP_WINDOW: usize = 128;

/// One private rsyslogd with a configuration of its own.
struct Daemon {
    conf: PathBuf,
    pid_file: PathBuf,
    child: Option<Child>,
}

impl Daemon {
    fn start(dir: &Path, name: &str, conf: &str) -> Daemon {
        let conf_path = dir.join(format!("{name}.conf"));
        fs::write(&conf_path, conf).unwrap();
        let mut d = Daemon {
            conf: conf_path,
            pid_file: dir.join(format!("{name}.pid")),
            child: None,
        };
        d.spawn();
        d
    }

    fn spawn(&mut self) {
        let _ = fs::remove_file(&self.pid_file);
        let child = Command::new(rsyslog::binary().unwrap())
            .arg("-n")
            .arg("-f")
            .arg(&self.conf)
            .arg("-i")
            .arg(&self.pid_file)
            .stdin(Stdio::null())
            .spawn()
            .expect("rsyslogd");
        self.child = Some(child);
        rsyslog::wait_for(|| self.pid_file.exists(), "rsyslogd's pid file");
    }

    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
            let _ = c.wait();
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stop();
    }
}

fn relp_installed() -> bool {
    [
        "/usr/lib/x86_64-linux-gnu",
        "/usr/lib/aarch64-linux-gnu",
        "/usr/lib",
    ]
    .iter()
    .any(|d| Path::new(d).join("rsyslog/omrelp.so").exists())
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn forwarding_survives_a_collector_outage() {
    if rsyslog::binary().is_none() || !relp_installed() {
        let why = "rsyslogd with rsyslog-relp is not installed (cargo xtask setup installs it)";
        assert!(std::env::var("CI").as_deref() != Ok("true"), "{why}");
        eprintln!("skipped forwarding_survives_a_collector_outage: {why}");
        return;
    }
    const N: usize = 5000;
    let dir = TempDir::new("relp");
    let port = free_port().to_string();
    let remote = dir.0.join("remote");
    for d in ["sender", "collector"] {
        fs::create_dir_all(dir.0.join(d)).unwrap();
    }

    // Only paths and the port change; the collector also listens on loopback only.
    let collector_conf = format!(
        "global(workDirectory=\"{}\")\n{}",
        dir.0.join("collector").display(),
        COLLECTOR
            .replace("/var/log/sysmon-remote", &remote.display().to_string())
            .replace(
                "port=\"2514\"",
                &format!("port=\"{port}\" address=\"127.0.0.1\"")
            )
    );
    let socket = dir.0.join("log.sock");
    let sender_conf = format!(
        "global(workDirectory=\"{}\" maxMessageSize=\"128k\")\n\
         module(load=\"imuxsock\" SysSock.Use=\"off\")\n\
         input(type=\"imuxsock\" Socket=\"{}\" RateLimit.Interval=\"0\")\n{}",
        dir.0.join("sender").display(),
        socket.display(),
        FORWARD
            .replace("collector.example.org", "127.0.0.1")
            .replace("port=\"2514\"", &format!("port=\"{port}\""))
    );
    assert!(sender_conf.contains("queue.saveOnShutdown=\"on\""));
    assert!(sender_conf.contains("action.resumeRetryCount=\"-1\""));
    let mut collector = Daemon::start(&dir.0, "collector", &collector_conf);
    let _sender = Daemon::start(&dir.0, "sender", &sender_conf);
    rsyslog::wait_for(|| socket.exists(), "the sender's socket");

    let token = format!("fwd-{}", unique());
    let sock = UnixDatagram::unbound().unwrap();
    let send = |i: usize| {
        // As the agent sends them: ident `sysmon`, facility user, severity info.
        let msg = format!("<14>Jan  1 00:00:00 sysmon: <Event>{token} {i}</Event>");
        sock.send_to(msg.as_bytes(), &socket).unwrap();
    };
    let counts = || -> HashMap<usize, usize> {
        let mut counts = HashMap::new();
        for entry in fs::read_dir(&remote).into_iter().flatten() {
            let text = fs::read_to_string(entry.unwrap().path()).unwrap_or_default();
            for line in text.lines().filter(|l| l.contains(&token)) {
                let n = line
                    .rsplit(' ')
                    .next()
                    .and_then(|w| w.strip_suffix("</Event>"))
                    .and_then(|w| w.parse().ok())
                    .unwrap_or_else(|| panic!("bad line: {line}"));
                *counts.entry(n).or_insert(0) += 1;
            }
        }
        counts
    };

    for i in 0..N / 2 {
        send(i);
    }
    rsyslog::wait_for(|| !counts().is_empty(), "the first events at the collector");
    // The collector goes away for 10 s; the second half is sent meanwhile.
    let outage = Instant::now();
    collector.stop();
    for i in N / 2..N {
        send(i);
    }
    std::thread::sleep(Duration::from_secs(10).saturating_sub(outage.elapsed()));
    collector.spawn();
    let mut last = 0;
    let start = Instant::now();
    // The sender retries every few seconds: wait for progress rather than a fixed time.
    loop {
        let n = counts().len();
        if n == N {
            break;
        }
        if n > last {
            last = n;
        } else {
            assert!(
                start.elapsed() < Duration::from_secs(120),
                "only {n} of {N} events reached the collector"
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let counts = counts();
    assert!((0..N).all(|i| counts.contains_key(&i)));
    let extra: usize = counts.values().map(|c| c - 1).sum();
    eprintln!("all {N} events at the collector; {extra} sent twice");
    assert!(
        extra <= RELP_WINDOW,
        "{extra} duplicates, more than one RELP window"
    );
    let files: Vec<_> = fs::read_dir(&remote).unwrap().collect();
    assert_eq!(files.len(), 1, "one file per sending host");
}
