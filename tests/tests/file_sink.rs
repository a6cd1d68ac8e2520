//! The agent's own log files (`-o json`) never hold up the events: a file system that
//! stalls, or fills up, stalls or fills only the file, and the agent recovers and stops as
//! an administrator expects.

use std::{
    os::unix::fs::MetadataExt,
    path::Path,
    process::Command,
    time::{Duration, Instant},
};

use sysmon_tests::{
    TempDir,
    agent::Agent,
    alive, events,
    events::Event,
    kernel_test,
    mount::Mount,
    rsyslog::{Rsyslog, wait_for},
    unique,
};

/// An argument this long makes an event of about 33 KB.
const BIG_ARG: usize = 32_000;

fn exec_true(arg: &str) {
    let status = Command::new("/bin/true").arg(arg).status().unwrap();
    assert!(status.success());
}

fn agent_events(syslog: &Rsyslog, pid: u32) -> Vec<Event> {
    events::parse_lines(&syslog.lines())
        .into_iter()
        .filter(|e| e.agent_pid == pid)
        .collect()
}

fn command_line_has(e: &Event, token: &str) -> bool {
    e.id == 1 && e.get("CommandLine").is_some_and(|c| c.contains(token))
}

/// EventRecordIDs of the JSON lines of a log file, and whether `token` is in one.
fn json_ids(path: &Path, token: &str) -> (Vec<u64>, bool) {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let ids = text
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["EventRecordID"].as_u64().unwrap()
        })
        .collect();
    (ids, text.contains(token))
}

/// Whether process `pid` holds a descriptor of a deleted file called `name`.
fn holds_deleted(pid: u32, name: &str) -> bool {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| {
            d.filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
                .any(|t| t.to_string_lossy().ends_with(&format!("{name} (deleted)")))
        })
        .unwrap_or(false)
}

/// How many times the agent said the disk was full.
fn full_reports(dir: &Path) -> usize {
    std::fs::read_to_string(dir.join("agent.stderr"))
        .unwrap_or_default()
        .matches("No space left on device")
        .count()
}

/// SIGTERM; the agent must end by itself within `bound` (a liveness guard, far above the
/// documented stop time). Killed, and the test failed, if it does not.
fn sigterm_and_wait(agent: Agent, syslog: &Rsyslog, bound: Duration) {
    let pid = agent.pid as i32;
    // SAFETY: a signal to our own child.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    let sent = Instant::now();
    while alive(pid) && sent.elapsed() < bound {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        !alive(pid),
        "the agent did not stop within {bound:?} of SIGTERM"
    );
    agent.stop(syslog);
}

/// `-o json` on a small tmpfs: events fill it, more wait and then are dropped; the
/// administrator deletes the log: its space comes back, the events that waited and the
/// next ones go to a new file at the path, and event 255 counts exactly what was lost. Then
/// the disk fills again and SIGTERM stops the agent, event 4 `Stopped` last.
#[test]
#[cfg_attr(no_kernel, ignore = "kernel test: needs root, BTF and rsyslogd")]
fn a_full_disk_recovers_when_the_log_is_deleted_and_sigterm_still_stops() {
    let Some(_serial) = kernel_test("full_disk") else {
        return;
    };
    let dir = TempDir::new("full-disk");
    let mnt = Mount::tmpfs(&dir.0.join("mnt"), "16m");
    let json = mnt.at.join("e.json");
    let syslog = Rsyslog::start(&dir.0);
    let outputs = format!("json={},syslog", json.display());
    let agent = Agent::start_with(
        &syslog,
        &dir.0,
        None,
        &[],
        &["-o".as_ref(), outputs.as_ref()],
    );
    let pid = agent.pid;
    let token = unique();
    let pad = "p".repeat(BIG_ARG);
    let mut n = 0;
    let mut exec_some = |count: usize| {
        for _ in 0..count {
            exec_true(&format!("{token}-{n}-{pad}"));
            n += 1;
        }
        n
    };

    // Fill the disk, then more than the file's queue holds (8 MiB waiting).
    wait_for(
        || {
            exec_some(20);
            full_reports(&dir.0) >= 1
        },
        "the log's file system to fill",
    );
    let total = exec_some(400);
    let last = format!("{token}-{}-", total - 1);
    wait_for(
        || {
            agent_events(&syslog, pid)
                .iter()
                .any(|e| command_line_has(e, &last))
        },
        "syslog to get every event while the file is full",
    );
    let (old_ids, _) = json_ids(&json, "");
    let old_ino = std::fs::metadata(&json).unwrap().ino();
    let (used, size) = mnt.usage();
    assert!(
        used > size * 9 / 10,
        "the disk is not full: {used} of {size}"
    );

    // The administrator frees the space.
    std::fs::remove_file(&json).unwrap();
    wait_for(
        || !holds_deleted(pid, "e.json"),
        "the agent to close the deleted log",
    );
    let marker = format!("{token}-after-delete");
    exec_true(&marker);
    wait_for(
        || json_ids(&json, &marker).1,
        "the next event in a new file at the path",
    );
    assert_ne!(std::fs::metadata(&json).unwrap().ino(), old_ino);
    // What the file system holds is the new file (and the megabyte reserved ahead of it).
    let (used, _) = mnt.usage();
    let new_size = std::fs::metadata(&json).unwrap().len();
    assert!(
        used <= new_size + (2 << 20),
        "the space did not come back: {used} used, the new log {new_size}"
    );
    let mut report = None;
    wait_for(
        || {
            report = agent_events(&syslog, pid)
                .into_iter()
                .find(|e| e.id == 255 && e.get("ID") == Some("FileSinkDrops"));
            report.is_some()
        },
        "event 255 FileSinkDrops",
    );
    let report = report.unwrap();
    let description = report.get("Description").unwrap();
    let lost: u64 = description
        .split("could not take ")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no count in {description}"));
    assert!(lost > 0, "{description}");
    wait_for(
        || json_ids(&json, "").0.contains(&report.record_id),
        "the report in the new file too",
    );
    // Exactly the events syslog has and neither log file.
    let (new_ids, _) = json_ids(&json, "");
    let missing = agent_events(&syslog, pid)
        .iter()
        .filter(|e| e.record_id < report.record_id)
        .filter(|e| !old_ids.contains(&e.record_id) && !new_ids.contains(&e.record_id))
        .count() as u64;
    assert_eq!(lost, missing, "{description}");

    // Full again: SIGTERM still stops the agent, with event 4 last.
    let reports = full_reports(&dir.0);
    wait_for(
        || {
            exec_some(20);
            full_reports(&dir.0) > reports
        },
        "the log's file system to fill again",
    );
    sigterm_and_wait(agent, &syslog, Duration::from_secs(30));
    let events = agent_events(&syslog, pid);
    let stopped = events.last().unwrap();
    assert_eq!(
        (stopped.id, stopped.get("State")),
        (4, Some("Stopped")),
        "event 4 Stopped comes last"
    );
    drop(mnt);
}

/// `-o json` on a file system whose every call hangs (a FUSE server that never answers, as
/// a hung NFS mount): the agent starts, every other event reaches syslog, and SIGTERM stops
/// it, event 4 `Stopped` last.
#[test]
#[cfg_attr(no_kernel, ignore = "kernel test: needs root, BTF and rsyslogd")]
fn a_stalled_log_file_system_delays_no_syslog_event() {
    let Some(_serial) = kernel_test("stalled_file_sink") else {
        return;
    };
    let dir = TempDir::new("stalled-sink");
    let mnt = Mount::stalled(&dir.0.join("mnt"));
    let syslog = Rsyslog::start(&dir.0);
    let outputs = format!("json={},syslog", mnt.at.join("e.json").display());
    let agent = Agent::start_with(
        &syslog,
        &dir.0,
        None,
        &[],
        &["-o".as_ref(), outputs.as_ref()],
    );
    let pid = agent.pid;
    let token = unique();
    const EXECS: usize = 50;
    for i in 0..EXECS {
        exec_true(&format!("{token}-{i}"));
    }
    wait_for(
        || {
            agent_events(&syslog, pid)
                .iter()
                .filter(|e| command_line_has(e, &token))
                .count()
                == EXECS
        },
        "every exec's event in syslog",
    );
    sigterm_and_wait(agent, &syslog, Duration::from_secs(30));
    let events = agent_events(&syslog, pid);
    let ours: Vec<String> = events
        .iter()
        .filter(|e| command_line_has(e, &token))
        .map(|e| e.get("CommandLine").unwrap().to_string())
        .collect();
    let want: Vec<String> = (0..EXECS)
        .map(|i| format!("/bin/true {token}-{i}"))
        .collect();
    assert_eq!(ours, want, "in order, each once");
    assert_eq!(events.last().map(|e| e.id), Some(4), "event 4 Stopped last");
    drop(mnt);
}
