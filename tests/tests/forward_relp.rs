//! Forwarding with the shipped rsyslog files: a sender (`configs/rsyslog-forward-relp.conf`,
//! in the installed host's private rsyslogd, fed by the ruleset of our input) and a collector
//! (`configs/rsyslog-collector-relp.conf`), two private rsyslogd on loopback, adapted by this
//! test only in paths and port. The collector goes away for 10 s in the middle of 5 000
//! events; all of them must reach its per-host file.

use std::{
    collections::HashMap,
    fs,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use sysmon_tests::{
    TempDir, events, kernel_test, rsyslog,
    service::{self, Install, creates_with, exec_true},
    unique,
};

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

/// The collector's config: the shipped file on a private port, loopback only, its files
/// under `dir/remote`.
fn collector_conf(dir: &Path, port: &str) -> String {
    format!(
        "global(workDirectory=\"{}\")\n{}",
        dir.join("collector").display(),
        COLLECTOR
            .replace(
                "/var/log/sysmon-remote",
                &dir.join("remote").display().to_string()
            )
            .replace(
                "port=\"2514\"",
                &format!("port=\"{port}\" address=\"127.0.0.1\"")
            )
    )
}

/// The sender's file: the shipped one pointed at 127.0.0.1:`port`.
fn forward_conf(port: &str) -> String {
    FORWARD
        .replace("collector.example.org", "127.0.0.1")
        .replace("port=\"2514\"", &format!("port=\"{port}\""))
}

/// How often each event line holding `token` is in the collector's files, by CommandLine.
fn received(remote: &Path, token: &str) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for entry in fs::read_dir(remote).into_iter().flatten() {
        let lines = service::lines(&entry.unwrap().path());
        for e in events::parse_lines(&lines) {
            if let Some(c) = e.get("CommandLine").filter(|c| c.contains(token)) {
                *counts.entry(c.to_string()).or_insert(0) += 1;
            }
        }
    }
    counts
}

/// The installed daemon's events through the host's rsyslogd (the shipped forwarding file
/// in the `-i` split's drop-in directory) over RELP to a collector rsyslogd (the shipped collector file);
/// the collector stops for 10 s in the middle of 5 000 execs.
#[test]
#[cfg_attr(no_kernel, ignore = "kernel test: needs root, BTF and rsyslogd")]
fn forwarding_survives_a_collector_outage() {
    if !relp_installed() {
        let why = "rsyslog-relp is not installed (cargo xtask setup installs it)";
        assert!(std::env::var("CI").as_deref() != Ok("true"), "{why}");
        eprintln!("skipped forwarding_survives_a_collector_outage: {why}");
        return;
    }
    let Some(_serial) = kernel_test("forwarding") else {
        return;
    };
    const N: usize = 5000;
    let dir = TempDir::new("relp");
    fs::create_dir_all(dir.0.join("collector")).unwrap();
    let port = free_port().to_string();
    let remote = dir.0.join("remote");
    let mut collector = Daemon::start(&dir.0, "collector", &collector_conf(&dir.0, &port));

    let token = format!("fwd-{}", unique());
    let t = Install::new("relp");
    let forward = forward_conf(&port);
    assert!(forward.contains("queue.saveOnShutdown=\"on\""));
    assert!(forward.contains("action.resumeRetryCount=\"-1\""));
    fs::create_dir_all(t.path("etc/rsyslog.d/sysmon.d")).unwrap();
    // Where the README says to put it: the directory that 30-sysmon.conf, which `-i` adds,
    // includes in the ruleset of sysmon's events.
    fs::write(t.path("etc/rsyslog.d/sysmon.d/forward-relp.conf"), forward).unwrap();
    fs::write(t.path("cfg.xml"), config_for(&token)).unwrap();
    t.ok(&["-accepteula", "-i", "cfg.xml"]);
    assert_eq!(t.stream_connections(), 1, "the daemon is not on our input");
    // The forwarding file loads where it is put (the outage's complaints come later).
    t.sync();
    let complaints = t.rsyslogd_complaints();
    assert!(complaints.is_empty(), "rsyslogd: {complaints:#?}");

    let done = Arc::new(AtomicUsize::new(0));
    let worker = {
        let (token, done) = (token.clone(), done.clone());
        std::thread::spawn(move || {
            for i in 0..N {
                exec_true(&format!("{token}-{i}"));
                done.fetch_add(1, Ordering::Relaxed);
            }
        })
    };
    rsyslog::wait_for(
        || done.load(Ordering::Relaxed) >= N / 3 && !received(&remote, &token).is_empty(),
        "a third of the execs and the first events at the collector",
    );
    let outage = Instant::now();
    collector.stop();
    std::thread::sleep(Duration::from_secs(10).saturating_sub(outage.elapsed()));
    let (execs, arrived) = (
        done.load(Ordering::Relaxed),
        received(&remote, &token).len(),
    );
    assert!(arrived < N, "the outage held nothing back");
    collector.spawn();
    worker.join().unwrap();
    eprintln!("when the collector came back: {execs} execs done, {arrived} at the collector");
    // The sender retries every few seconds: wait as long as there is progress.
    let (mut last, mut since) = (0, Instant::now());
    loop {
        let n = received(&remote, &token).len();
        if n == N {
            break;
        }
        if n > last {
            (last, since) = (n, Instant::now());
        }
        assert!(
            since.elapsed() < Duration::from_secs(60),
            "only {n} of {N} events reached the collector"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    // Also in the host's own file, as before.
    assert_eq!(creates_with(&t.events(), &token), N);
    let counts = received(&remote, &token);
    let extra: usize = counts.values().map(|c| c - 1).sum();
    eprintln!("all {N} events at the collector; {extra} received twice");
    assert!(
        extra <= RELP_WINDOW,
        "{extra} duplicates, more than one RELP window"
    );
    let files: Vec<_> = fs::read_dir(&remote).unwrap().collect();
    assert_eq!(files.len(), 1, "one file per sending host");
    // Forwarded from the same ruleset: nothing else from the host's rsyslogd (its own
    // start and stop messages) reaches the collector.
    let host = files[0].as_ref().unwrap().path();
    let others: Vec<String> = service::lines(&host)
        .into_iter()
        .filter(|l| !l.contains(" sysmon: <Event>"))
        .collect();
    assert!(
        others.is_empty(),
        "forwarded besides sysmon's events: {others:#?}"
    );
    t.ok(&["-u"]);
}

/// Only ProcessCreate of this test's execs.
fn config_for(token: &str) -> String {
    format!(
        "<Sysmon schemaversion=\"4.22\">\n  <EventFiltering>\n    <ProcessCreate \
         onmatch=\"include\">\n      <CommandLine condition=\"contains\">{token}</CommandLine>\n    \
         </ProcessCreate>\n    <ProcessTerminate onmatch=\"include\"/>\n  </EventFiltering>\n\
         </Sysmon>\n"
    )
}
