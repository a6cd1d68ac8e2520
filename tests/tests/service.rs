//! The service end to end, without systemd: `sysmon -i` installs into a temporary root and
//! starts the daemon, a private rsyslogd splits its events into `var/log/sysmon.log`, `-c`
//! reloads, `-u` stops. Real kernel, real rsyslogd; each test picks out its own events by
//! unique arguments.

use std::{
    collections::HashSet,
    os::unix::fs::PermissionsExt,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
};

use sysmon_tests::{
    alive, kernel_test,
    rsyslog::wait_for,
    service::{Install, exec_true, sha256_hex},
    unique,
};

const CONFIG: &str =
    "<Sysmon schemaversion=\"4.50\">\n  <EventFiltering>\n  </EventFiltering>\n</Sysmon>\n";
/// Not well-formed: the error must name line 3.
const BROKEN: &str = "<Sysmon schemaversion=\"4.50\">\n  <EventFiltering>\n</Sysmon>\n";

/// ProcessCreate events whose command line holds `token`, each command line once (after a
/// syslog restart an event the old daemon read just before dying may come twice).
fn creates_with(events: &[sysmon_tests::events::Event], token: &str) -> usize {
    events
        .iter()
        .filter(|e| e.id == 1)
        .filter_map(|e| e.get("CommandLine").filter(|c| c.contains(token)))
        .collect::<HashSet<_>>()
        .len()
}

#[test]
fn install_update_uninstall() {
    let Some(_serial) = kernel_test("install_update_uninstall") else {
        return;
    };
    let t = Install::new("svc");
    std::fs::write(t.path("cfg.xml"), CONFIG).unwrap();
    std::fs::write(t.path("new.xml"), CONFIG.replace("4.50", "4.60")).unwrap();
    std::fs::write(t.path("broken.xml"), BROKEN).unwrap();

    // -i: the daemon runs as soon as it returns; event 16 names the config as typed.
    t.ok(&["-accepteula", "-i", "cfg.xml"]);
    let pid = t.daemon().expect("a daemon in the pid file");
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap();
    assert_eq!(comm.trim(), "sysmon", "pgrep -x sysmon finds it");
    let started = t.wait_event("event 16 at start", |e| {
        e.id == 16 && e.agent_pid == pid as u32
    });
    assert_eq!(started.get("Configuration"), Some("cfg.xml"));
    let want_hash = format!("SHA256={}", sha256_hex(&t.path("cfg.xml")));
    assert_eq!(
        started.get("ConfigurationFileHash"),
        Some(want_hash.as_str())
    );

    // An exec shows up in sysmon.log and in no other rsyslog file.
    let token = format!("svc-{}", unique());
    exec_true(&token);
    t.wait_event("our ProcessCreate", |e| {
        e.id == 1 && e.get("CommandLine").is_some_and(|c| c.contains(&token))
    });
    t.sync();
    assert!(
        !t.syslog.lines().iter().any(|l| l.contains(&token)),
        "a sysmon event leaked into the catch-all file"
    );

    // A broken config: exit 87, the file and line named, nothing changed, old rules apply.
    let before = std::fs::read(t.path("opt/sysmon/config.xml")).unwrap();
    let out = t.sysmon(&["-c", "broken.xml"]);
    assert_eq!(out.status.code(), Some(87));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("broken.xml:3"), "error lacks file:line: {err}");
    assert_eq!(
        std::fs::read(t.path("opt/sysmon/config.xml")).unwrap(),
        before
    );
    assert_eq!(t.daemon(), Some(pid), "the daemon was disturbed");
    let token2 = format!("svc-{}", unique());
    exec_true(&token2);
    t.wait_event("ProcessCreate under the old rules", |e| {
        e.id == 1 && e.get("CommandLine").is_some_and(|c| c.contains(&token2))
    });

    // A good config: same daemon, event 16 with the new path and hash.
    let new = t.path("new.xml");
    t.ok(&["-c", new.to_str().unwrap()]);
    let want_hash = format!("SHA256={}", sha256_hex(&new));
    let changed = t.wait_event("event 16 after -c", |e| {
        e.id == 16 && e.get("Configuration") == new.to_str()
    });
    assert_eq!(
        changed.get("ConfigurationFileHash"),
        Some(want_hash.as_str())
    );
    assert_eq!(changed.agent_pid, pid as u32, "-c restarted the daemon");
    // new.xml has no rules: the engine says so (the placeholder prints a header instead).
    let shown = String::from_utf8_lossy(&t.ok(&["-c"]).stdout).into_owned();
    assert!(
        shown.contains("No rules installed") || shown.contains("Rule configuration (version 4."),
        "-c shows: {shown}"
    );

    // -u: event 4 Stopped, no daemon left; the state stays.
    let out = t.ok(&["-u"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("Sysmon stopped."));
    t.wait_event("event 4 Stopped", |e| {
        e.id == 4 && e.agent_pid == pid as u32 && e.get("State") == Some("Stopped")
    });
    assert!(!alive(pid), "the daemon still runs");
    assert!(t.daemon().is_none());
    assert!(t.path("opt/sysmon/eventId").exists());
    assert!(
        t.path("etc/rsyslog.d/30-sysmon.conf").exists(),
        "-u keeps the split"
    );
    t.ok(&["-u", "force"]);
    assert!(
        !t.path("etc/rsyslog.d/30-sysmon.conf").exists(),
        "-u force removes it"
    );
}

#[test]
fn record_ids_continue_after_kill_9_and_reinstall() {
    let Some(_serial) = kernel_test("record_ids_after_kill_9") else {
        return;
    };
    let t = Install::new("ids");
    let mut daemons = Vec::new();
    for round in 0..2 {
        t.ok(&["-accepteula", "-i"]);
        let pid = t.daemon().expect("daemon");
        daemons.push(pid as u32);
        let token = format!("ids-{round}-{}", unique());
        exec_true(&token);
        t.wait_event("our ProcessCreate", |e| {
            e.id == 1 && e.get("CommandLine").is_some_and(|c| c.contains(&token))
        });
        unsafe { libc::kill(pid, libc::SIGKILL) };
        wait_for(|| !alive(pid), "the killed daemon to go");
    }
    let events = t.events();
    let ids = |pid: u32| -> Vec<u64> {
        events
            .iter()
            .filter(|e| e.agent_pid == pid)
            .map(|e| e.record_id)
            .collect()
    };
    let (first, second) = (ids(daemons[0]), ids(daemons[1]));
    assert!(!first.is_empty() && !second.is_empty());
    assert!(
        second.iter().min() > first.iter().max(),
        "EventRecordID went back after kill -9: {first:?} then {second:?}"
    );
    let all: Vec<u64> = first.iter().chain(&second).copied().collect();
    assert_eq!(
        all.iter().collect::<HashSet<_>>().len(),
        all.len(),
        "duplicate ids"
    );
}

#[test]
fn installed_modes_and_root_checks() {
    let Some(_serial) = kernel_test("installed_modes") else {
        return;
    };
    let t = Install::new("modes");
    std::fs::write(t.path("cfg.xml"), CONFIG).unwrap();
    t.ok(&["-accepteula", "-i", "cfg.xml"]);
    // (path under the root, mode) as spec 4.3; the rsyslog and logrotate files are 0644.
    let modes: &[(&str, u32)] = &[
        ("opt/sysmon", 0o700),
        ("opt/sysmon/sysmon", 0o700),
        ("opt/sysmon/sysmonLogView", 0o700),
        ("opt/sysmon/config.xml", 0o600),
        ("opt/sysmon/argv", 0o600),
        ("opt/sysmon/eventId", 0o600),
        ("etc/rsyslog.d/30-sysmon.conf", 0o644),
        ("etc/logrotate.d/sysmon", 0o644),
    ];
    for (path, mode) in modes {
        let meta = std::fs::metadata(t.path(path)).unwrap_or_else(|e| panic!("{path}: {e}"));
        assert_eq!(meta.permissions().mode() & 0o7777, *mode, "mode of {path}");
    }
    let pid = t.daemon();
    let config = std::fs::read(t.path("opt/sysmon/config.xml")).unwrap();
    // Commands that need root, run as nobody: refused (740, seen as 228), nothing changed.
    for args in [&["-c", "cfg.xml"][..], &["-c"], &["-u"], &["-i"]] {
        let out = t.sysmon_as(65534, args);
        assert_eq!(out.status.code(), Some(740 & 0xff), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("You need to run Sysmon as root."),
            "{args:?}: {err}"
        );
    }
    assert_eq!(t.daemon(), pid);
    assert_eq!(
        std::fs::read(t.path("opt/sysmon/config.xml")).unwrap(),
        config
    );
    t.ok(&["-u"]);
}

/// rsyslogd restarts while 1000 execs happen: each ProcessCreate reaches the file, or is
/// counted in an event 255.
#[test]
fn rsyslog_restart_during_a_thousand_execs() {
    let Some(_serial) = kernel_test("rsyslog_restart") else {
        return;
    };
    const N: usize = 1000;
    let mut t = Install::new("restart");
    t.ok(&["-accepteula", "-i"]);
    let pid = t.daemon().expect("daemon");
    let token = format!("rst-{}", unique());
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
    wait_for(
        || done.load(Ordering::Relaxed) >= N / 4,
        "a quarter of the execs",
    );
    let before = t.syslog.pid();
    t.syslog.restart();
    assert_ne!(t.syslog.pid(), before, "rsyslogd was not restarted");
    worker.join().unwrap();
    let dropped = |events: &[sysmon_tests::events::Event]| -> u64 {
        events
            .iter()
            .filter(|e| e.id == 255 && e.agent_pid == pid as u32)
            .filter_map(|e| e.get("Description"))
            .filter_map(|d| d.split_whitespace().find_map(|w| w.parse::<u64>().ok()))
            .sum()
    };
    wait_for(
        || {
            let events = t.events();
            creates_with(&events, &token) as u64 + dropped(&events) >= N as u64
        },
        "every ProcessCreate or its loss report",
    );
    let events = t.events();
    eprintln!(
        "creates in the file: {}, reported lost: {}",
        creates_with(&events, &token),
        dropped(&events)
    );
    t.ok(&["-u"]);
}

/// Syslog away for a while (socket gone): the daemon keeps running, holds the events and
/// sends them once syslog is back.
#[test]
fn events_wait_while_syslog_is_away() {
    let Some(_serial) = kernel_test("syslog_away") else {
        return;
    };
    const N: usize = 100;
    let mut t = Install::new("away");
    t.ok(&["-accepteula", "-i"]);
    let pid = t.daemon().expect("daemon");
    t.syslog.stop();
    let token = format!("away-{}", unique());
    for i in 0..N {
        exec_true(&format!("{token}-{i}"));
    }
    t.syslog.resume();
    wait_for(
        || creates_with(&t.events(), &token) == N,
        "the held-back ProcessCreate events",
    );
    assert_eq!(t.daemon(), Some(pid), "the daemon did not survive");
    t.ok(&["-u"]);
}

/// A daemon that does not answer SIGTERM (stopped here with SIGSTOP): `-u` says so and
/// leaves it, `-u force` kills it; a re-install starts a fresh one.
#[test]
fn uninstall_force_kills_a_hung_daemon() {
    let Some(_serial) = kernel_test("uninstall_force") else {
        return;
    };
    let t = Install::new("hung");
    t.ok(&["-accepteula", "-i"]);
    let pid = t.daemon().expect("daemon");
    unsafe { libc::kill(pid, libc::SIGSTOP) };
    let out = t.sysmon(&["-u"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("-u force"));
    assert!(alive(pid));
    t.ok(&["-u", "force"]);
    assert!(!alive(pid), "-u force left the daemon");
    t.ok(&["-accepteula", "-i"]);
    let again = t.daemon().expect("a new daemon");
    assert_ne!(again, pid);
    t.ok(&["-u"]);
}

/// The installed config turns bad behind sysmon's back (`-c` would refuse it): on SIGHUP the
/// daemon keeps its rules and says why in an event 255.
#[test]
fn a_bad_reload_is_an_error_event_and_changes_nothing() {
    let Some(_serial) = kernel_test("bad_reload") else {
        return;
    };
    let t = Install::new("reload");
    t.ok(&["-accepteula", "-i"]);
    let pid = t.daemon().expect("daemon");
    std::fs::write(t.path("opt/sysmon/config.xml"), BROKEN).unwrap();
    unsafe { libc::kill(pid, libc::SIGHUP) };
    let err = t.wait_event("event 255 ConfigReload", |e| {
        e.id == 255 && e.agent_pid == pid as u32 && e.get("ID") == Some("ConfigReload")
    });
    assert!(err.get("Description").unwrap().contains("config.xml:3"));
    // The daemon's stderr goes to syslog under its own ident, so not into sysmon.log.
    wait_for(
        || {
            t.syslog
                .lines()
                .iter()
                .any(|l| l.starts_with("sysmon-daemon user err") && l.contains("ConfigReload"))
        },
        "the daemon's diagnostic in the system log",
    );
    let token = format!("reload-{}", unique());
    exec_true(&token);
    t.wait_event("a ProcessCreate after the bad reload", |e| {
        e.id == 1 && e.get("CommandLine").is_some_and(|c| c.contains(&token))
    });
    assert_eq!(t.daemon(), Some(pid));
    t.ok(&["-u"]);
}

/// With systemd (here: `<root>/run/systemd/system` and a `systemctl` that only records its
/// arguments), `-i` writes the unit and hands the daemon to systemd; `-u` stops and
/// disables it.
#[test]
fn with_systemd_the_unit_is_written_and_systemctl_drives_it() {
    let Some(_serial) = kernel_test("systemd_path") else {
        return;
    };
    let t = Install::new("systemd");
    std::fs::create_dir_all(t.path("run/systemd/system")).unwrap();
    std::fs::create_dir_all(t.path("bin")).unwrap();
    let log = t.path("systemctl.log");
    let fake = t.path("bin/systemctl");
    std::fs::write(
        &fake,
        format!("#!/bin/sh\necho \"$@\" >> {}\n", log.display()),
    )
    .unwrap();
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!(
        "{}:{}",
        t.path("bin").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let env = [("PATH", path)];
    assert!(
        t.sysmon_env(0, &["-accepteula", "-i"], &env)
            .status
            .success()
    );
    assert!(
        t.daemon().is_none(),
        "systemd, not sysmon, starts the daemon"
    );
    let unit = std::fs::read_to_string(t.path("etc/systemd/system/sysmon.service")).unwrap();
    let exec = format!(
        "ExecStart={} -service",
        t.path("opt/sysmon/sysmon").display()
    );
    assert!(unit.lines().any(|l| l == exec), "unit: {unit}");
    assert!(unit.lines().any(|l| l == "Type=forking"));
    assert!(t.sysmon_env(0, &["-u"], &env).status.success());
    let calls = std::fs::read_to_string(&log).unwrap();
    assert_eq!(
        calls.lines().collect::<Vec<_>>(),
        [
            "stop sysmon.service",
            "try-restart rsyslog.service",
            "daemon-reload",
            "enable sysmon.service",
            "restart sysmon.service",
            "stop sysmon.service",
            "disable sysmon.service",
        ]
    );
}

/// `-c` with an exclude rule: the next exec after `-c` returns is judged by it. The rule check needs the real
/// config engine (the placeholder includes everything); until it lands only the reload is
/// checked.
#[test]
fn new_rules_decide_the_next_exec() {
    let Some(_serial) = kernel_test("new_rules") else {
        return;
    };
    let t = Install::new("rules");
    t.ok(&["-accepteula", "-i"]);
    let pid = t.daemon().expect("daemon") as u32;
    let token = format!("rules-{}", unique());
    let config = format!(
        "<Sysmon schemaversion=\"4.50\">\n  <EventFiltering>\n    <RuleGroup name=\"\" groupRelation=\"or\">\n      <ProcessCreate onmatch=\"exclude\">\n        <CommandLine condition=\"contains\">{token}-hidden</CommandLine>\n      </ProcessCreate>\n    </RuleGroup>\n  </EventFiltering>\n</Sysmon>\n"
    );
    std::fs::write(t.path("rules.xml"), config).unwrap();
    // Once `-c` returns, the new rules are in force: exec straight away.
    t.ok(&["-c", "rules.xml"]);
    exec_true(&format!("{token}-hidden"));
    t.wait_event("event 16 for rules.xml", |e| {
        e.id == 16 && e.agent_pid == pid && e.get("Configuration") == Some("rules.xml")
    });
    exec_true(&format!("{token}-shown"));
    t.wait_event("the included exec", |e| {
        e.id == 1
            && e.get("CommandLine")
                .is_some_and(|c| c.contains(&format!("{token}-shown")))
    });
    let shown = String::from_utf8_lossy(&t.ok(&["-c"]).stdout).into_owned();
    if shown.contains("ProcessCreate") {
        assert_eq!(creates_with(&t.events(), &format!("{token}-hidden")), 0);
    } else {
        eprintln!("rule check skipped: the config engine is the placeholder");
    }
    // `-c --`: back to the defaults, said as such in event 16.
    t.ok(&["-c", "--"]);
    let reset = t.wait_event("event 16 for -c --", |e| {
        e.id == 16 && e.agent_pid == pid && e.get("Configuration") == Some("Defaults")
    });
    assert_eq!(reset.get("ConfigurationFileHash"), Some("-"));
    t.ok(&["-u"]);
}

/// Bad usage and bad configs are refused before anything is touched: exit 87, a message
/// saying what is wrong, no install dir, no daemon.
#[test]
fn bad_usage_and_bad_configs_touch_nothing() {
    let Some(_serial) = kernel_test("bad_usage") else {
        return;
    };
    let t = Install::new("usage");
    std::fs::write(t.path("broken.xml"), BROKEN).unwrap();
    // (arguments, what stderr must say)
    let cases: &[(&[&str], &str)] = &[
        (&["-accepteula", "-i", "broken.xml"], "broken.xml:3"),
        (&["-i", "missing.xml"], "missing.xml"),
        (&["-u", "now"], "Invalid option for -u."),
        (&["-i", "-u"], "cannot be used with"),
        (&["-i", "--"], "must be used with -c"),
        (&["-bogus"], "unknown switch '-bogus'"),
        (&["stray"], "stray"),
    ];
    for (args, want) in cases {
        let out = t.sysmon(args);
        assert_eq!(out.status.code(), Some(87), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(want), "{args:?}: {err:?} lacks {want:?}");
    }
    assert!(
        !t.path("opt/sysmon").exists(),
        "a refused command installed something"
    );
    assert!(!t.path("etc/rsyslog.d/30-sysmon.conf").exists());
    assert!(t.daemon().is_none());
}

/// `-h` on the `-i` command line is stored with it: the daemon hashes with those algorithms.
#[test]
fn hash_algorithms_from_the_command_line_reach_the_daemon() {
    let Some(_serial) = kernel_test("install_hash_algorithms") else {
        return;
    };
    let t = Install::new("hashes");
    t.ok(&["-accepteula", "-i", "-h", "md5,sha256"]);
    let token = format!("hashes-{}", unique());
    exec_true(&token);
    let e = t.wait_event("our ProcessCreate", |e| {
        e.id == 1 && e.get("CommandLine").is_some_and(|c| c.contains(&token))
    });
    let hashes = e.get("Hashes").unwrap();
    assert!(
        hashes.starts_with("MD5=") && hashes.contains(",SHA256="),
        "Hashes {hashes}"
    );
    t.ok(&["-u"]);
}
