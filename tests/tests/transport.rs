//! How events reach syslog: through the input of ours in rsyslogd (a stream socket) where it
//! is there, by datagrams on `/dev/log` where it is not (an rsyslogd without our file, or no
//! rsyslogd at all), and from one to the other as rsyslogd comes back with or without it.

use std::{
    collections::{BTreeMap, BTreeSet},
    os::unix::net::UnixDatagram,
    path::Path,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use sysmon_tests::{
    TempDir,
    agent::Agent,
    events::{self, Event},
    kernel_test,
    rsyslog::{Rsyslog, wait_for},
    service::exec_true,
    unique,
};

/// The ProcessCreate of `/bin/true <token>` that the agent `pid` sent through `syslog`.
fn create_of(syslog: &Rsyslog, pid: u32, token: &str) -> Option<Event> {
    events::parse_lines(&syslog.lines()).into_iter().find(|e| {
        e.agent_pid == pid && e.id == 1 && e.get("CommandLine").is_some_and(|c| c.ends_with(token))
    })
}

/// The rsyslog input an event came through (`%inputname%` in the test's template).
fn input(e: &Event) -> &str {
    e.syslog.split_whitespace().nth(1).unwrap_or("")
}

/// With our input in rsyslogd every event of the agent goes through it; without it, every
/// one comes by datagram, to the same place.
#[test]
#[cfg_attr(no_kernel, ignore = "kernel test: needs root, BTF and rsyslogd")]
fn each_rsyslogd_gets_every_event_its_way() {
    let Some(_serial) = kernel_test("transport_ways") else {
        return;
    };
    // (what rsyslogd has, the input every event comes through)
    type Start = fn(&Path) -> Rsyslog;
    let cases: [(&str, Start, &str); 2] = [
        ("our input", Rsyslog::start, "imptcp"),
        (
            "no input of ours",
            Rsyslog::start_datagrams_only,
            "imuxsock",
        ),
    ];
    for (what, start, want) in cases {
        let dir = TempDir::new("transport");
        let syslog = start(&dir.0);
        let agent = Agent::start(&syslog, &dir.0, None);
        let pid = agent.pid;
        let token = format!("way-{}", unique());
        exec_true(&token);
        wait_for(
            || create_of(&syslog, pid, &token).is_some(),
            "our ProcessCreate",
        );
        agent.stop(&syslog);
        let ours: Vec<Event> = events::parse_lines(&syslog.lines())
            .into_iter()
            .filter(|e| e.agent_pid == pid)
            .collect();
        let ways: BTreeSet<&str> = ours.iter().map(input).collect();
        assert_eq!(ways, [want].into(), "{what}");
        assert_eq!(
            ours.last().and_then(|e| e.get("State")),
            Some("Stopped"),
            "{what}"
        );
    }
}

/// No rsyslogd at all, a plain datagram reader on the socket (as a minimal syslogd): the
/// events arrive as glibc's `syslog()` would send them, one datagram each.
#[test]
#[cfg_attr(no_kernel, ignore = "kernel test: needs root, BTF and rsyslogd")]
fn a_plain_datagram_reader_gets_the_events() {
    let Some(_serial) = kernel_test("transport_datagrams") else {
        return;
    };
    let dir = TempDir::new("dgram");
    let sock = dir.0.join("log.sock");
    let reader = UnixDatagram::bind(&sock).unwrap();
    reader
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut agent = Command::new(sysmon_tests::sysmon_bin())
        .args(["-accepteula", "-t"])
        .env("SYSMON_SYSLOG_SOCKET", &sock)
        .env("SYSMON_RSYSLOG_SOCKET", dir.0.join("no-stream.sock"))
        .env("SYSMON_STATE_DIR", dir.0.join("state"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .expect("starting sysmon");
    let token = format!("dgram-{}", unique());
    let mut buf = vec![0u8; 1 << 17];
    let mut got = Vec::new();
    let start = Instant::now();
    let mut execed = false;
    let found = loop {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no ProcessCreate of ours in {} datagrams",
            got.len()
        );
        if let Ok(n) = reader.recv(&mut buf) {
            let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
            if msg.contains("<EventID>4</EventID>") && !execed {
                // Started: the probes run.
                exec_true(&token);
                execed = true;
            }
            if msg.contains("<EventID>1</EventID>") && msg.contains(&token) {
                break msg;
            }
            got.push(msg);
        }
    };
    unsafe { libc::kill(agent.id() as i32, libc::SIGTERM) };
    assert!(agent.wait().unwrap().success());
    // `<14>Mmm dd hh:mm:ss sysmon: <Event>…`: user.info, an RFC 3164 time, the tag.
    let (header, event) = found.split_at(found.find(" sysmon: <Event>").unwrap());
    assert!(header.starts_with("<14>"), "{header}");
    assert_eq!(header.len(), "<14>Mmm dd hh:mm:ss".len(), "{header}");
    assert!(
        event.ends_with("</Event>"),
        "one event per datagram: {event}"
    );
}

/// rsyslogd restarted with our input: the agent moves to it within a second or two; restarted
/// without it: after trying it a while, back to datagrams. Every exec's event arrives once.
#[test]
#[cfg_attr(no_kernel, ignore = "kernel test: needs root, BTF and rsyslogd")]
fn events_follow_our_input_as_rsyslogd_changes() {
    let Some(_serial) = kernel_test("transport_switch") else {
        return;
    };
    let dir = TempDir::new("switch");
    let stream = dir.0.join("sysmon.sock");
    let syslog = Rsyslog::start_datagrams_only(&dir.0);
    let env = [("SYSMON_RSYSLOG_SOCKET", stream.to_str().unwrap())];
    let agent = Agent::start_with_env(&syslog, &dir.0, None, &env);
    let pid = agent.pid;
    let prefix = format!("switch-{}", unique());
    let mut tokens = Vec::new();
    // Execs until one arrives through `want`; each exec's event arrives.
    let mut until_through = |syslog: &Rsyslog, want: &str| {
        let start = Instant::now();
        loop {
            let token = format!("{prefix}-{}", tokens.len());
            exec_true(&token);
            tokens.push(token.clone());
            wait_for(
                || create_of(syslog, pid, &token).is_some(),
                "the exec's ProcessCreate",
            );
            if input(&create_of(syslog, pid, &token).unwrap()) == want {
                return;
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "nothing came through {want}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    until_through(&syslog, "imuxsock");
    // Each stops before the next starts (they share the pid file).
    drop(syslog);
    let syslog = Rsyslog::start(&dir.0);
    until_through(&syslog, "imptcp");
    drop(syslog);
    let syslog = Rsyslog::start_datagrams_only(&dir.0);
    assert!(!stream.exists(), "rsyslogd left our input's socket");
    until_through(&syslog, "imuxsock");
    agent.stop(&syslog);
    // By command line, the EventRecordIDs it came with: one per exec (a resend after a
    // restart brings the same one again).
    let mut ids: BTreeMap<String, BTreeSet<u64>> = BTreeMap::new();
    for e in events::parse_lines(&syslog.lines()) {
        if let Some(c) = e.get("CommandLine").filter(|c| c.contains(&prefix))
            && e.agent_pid == pid
            && e.id == 1
        {
            ids.entry(c.to_string()).or_default().insert(e.record_id);
        }
    }
    assert_eq!(ids.len(), tokens.len(), "an exec's event was lost");
    assert!(
        ids.values().all(|s| s.len() == 1),
        "an exec with two events: {ids:?}"
    );
}
