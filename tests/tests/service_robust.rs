//! The daemon when things go wrong around it: syslog away or restarting under load, kill -9
//! (state survives), a daemon that does not stop.

use std::{
    collections::{HashMap, HashSet},
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
};

use sysmon_tests::{
    alive, events, kernel_test,
    rsyslog::wait_for,
    service::{Install, creates_with, exec_true, lines},
    unique,
};

#[test]
#[cfg_attr(no_kernel, ignore = "kernel test: needs root, BTF and rsyslogd")]
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

/// rsyslogd restarts while 1000 execs happen, the agent writing to our input's stream:
/// every ProcessCreate reaches the file, nothing is reported lost, and an event that comes
/// twice (the old daemon read it just before it stopped) is the same event, the same
/// EventRecordID.
#[test]
#[cfg_attr(no_kernel, ignore = "kernel test: needs root, BTF and rsyslogd")]
fn rsyslog_restart_during_a_thousand_execs() {
    let Some(_serial) = kernel_test("rsyslog_restart") else {
        return;
    };
    const N: usize = 1000;
    let mut t = Install::new("restart");
    t.ok(&["-accepteula", "-i"]);
    let pid = t.daemon().expect("daemon");
    assert!(
        t.path("run/sysmon-syslog.sock").exists(),
        "-i installed our input"
    );
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
    wait_for(
        || creates_with(&t.events(), &token) == N,
        "every ProcessCreate",
    );
    // Stopping sends what waits and reports any loss before event 4 Stopped.
    t.ok(&["-u"]);
    t.wait_event("event 4 Stopped", |e| {
        e.id == 4 && e.agent_pid == pid as u32 && e.get("State") == Some("Stopped")
    });
    let lines = lines(&t.path("var/log/sysmon.log"));
    let ours: Vec<&String> = lines.iter().filter(|l| l.contains(&token)).collect();
    let mut by_id: HashMap<u64, HashSet<&str>> = HashMap::new();
    for line in &ours {
        let at = line.find("<Event>").unwrap();
        let event = events::parse(&line[..at], &line[at..]).unwrap();
        by_id
            .entry(event.record_id)
            .or_default()
            .insert(&line[at..]);
    }
    eprintln!("{} lines of our execs, {} events", ours.len(), by_id.len());
    assert!(
        by_id.values().all(|events| events.len() == 1),
        "an EventRecordID with two different events"
    );
    let lost: Vec<_> = t
        .events()
        .into_iter()
        .filter(|e| e.id == 255 && e.agent_pid == pid as u32)
        .filter(|e| matches!(e.get("ID"), Some("SyslogDrops" | "KernelDrops")))
        .filter_map(|e| e.get("Description").map(str::to_owned))
        .collect();
    assert!(lost.is_empty(), "losses reported: {lost:?}");
}

/// Syslog away for a while (socket gone): the daemon keeps running, holds the events and
/// sends them once syslog is back.
#[test]
#[cfg_attr(no_kernel, ignore = "kernel test: needs root, BTF and rsyslogd")]
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
#[cfg_attr(no_kernel, ignore = "kernel test: needs root, BTF and rsyslogd")]
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
