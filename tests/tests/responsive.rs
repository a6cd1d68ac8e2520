//! The event loop never waits on slow work: a huge executable is hashed in the background
//! while the events of other processes go out, and SIGTERM in a storm stops the agent.

use std::{
    fs::File,
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    process::Command,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use sysmon_tests::{
    Session, TempDir, alive, config_logging, events::Event, kernel_test, rsyslog::wait_for,
    service::sha256_hex, unique,
};

/// All three digests: the more work per byte, the longer the window in which a stalled
/// loop would show.
const HASH_ALL: &str = "<Sysmon schemaversion=\"4.22\">\n  <HashAlgorithms>*</HashAlgorithms>\n  \
     <EventFiltering>\n  </EventFiltering>\n</Sysmon>\n";

/// A copy of /bin/true padded to 1 GiB (sparse: the loader ignores bytes after the ELF's
/// segments, so it still runs).
fn big_true(dir: &Path) -> PathBuf {
    let path = dir.join("big-true");
    std::fs::copy("/bin/true", &path).unwrap();
    let f = File::options().write(true).open(&path).unwrap();
    f.set_len(1 << 30).unwrap();
    drop(f);
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::canonicalize(&path).unwrap()
}

fn run(program: &Path, arg: &str) {
    let status = Command::new(program).arg(arg).status().unwrap();
    assert!(status.success(), "{} {arg}: {status}", program.display());
}

fn command_line_has(e: &Event, token: &str) -> bool {
    e.id == 1 && e.get("CommandLine").is_some_and(|c| c.contains(token))
}

#[test]
#[cfg_attr(no_kernel, ignore = "kernel test: needs root, BTF and rsyslogd")]
fn a_huge_executable_does_not_hold_other_events() {
    let Some(_serial) = kernel_test("huge_executable") else {
        return;
    };
    const OTHERS: usize = 20;
    let s = Session::start("huge", Some(HASH_ALL));
    let big = big_true(&s.dir.0);
    let token = unique();
    let pid = s.agent.pid;
    let mine = |token: &str| {
        sysmon_tests::events::parse_lines(&s.syslog.lines())
            .into_iter()
            .filter(|e| e.agent_pid == pid && command_line_has(e, token))
            .collect::<Vec<_>>()
    };

    run(&big, &format!("{token}-big-first"));
    for i in 0..OTHERS {
        run(Path::new("/bin/true"), &format!("{token}-other-{i}"));
    }
    wait_for(
        || mine(&format!("{token}-other-")).len() == OTHERS,
        "the other processes' events",
    );
    // Run the big one again until its event carries the digest computed in the background.
    let mut n = 0;
    wait_for(
        || {
            n += 1;
            run(&big, &format!("{token}-big-again-{n}"));
            std::thread::sleep(Duration::from_millis(200));
            mine(&format!("{token}-big-again-"))
                .iter()
                .any(|e| e.get("Hashes") != Some("-"))
        },
        "the big executable's hashes",
    );
    let want_sha256 = sha256_hex(&big);
    let (events, _) = s.stop();

    let position = |pred: &dyn Fn(&Event) -> bool| events.iter().position(pred);
    let first = &events[position(&|e| command_line_has(e, &format!("{token}-big-first")))
        .expect("the big executable's first event")];
    assert_eq!(first.get("Image"), Some(big.to_str().unwrap()));
    assert_eq!(
        first.get("Hashes"),
        Some("-"),
        "the first exec of a 1 GiB file is not hashed on the reader"
    );
    let hashed_at = position(&|e| {
        command_line_has(e, &format!("{token}-big-again-")) && e.get("Hashes") != Some("-")
    })
    .unwrap();
    let hashes = events[hashed_at].get("Hashes").unwrap();
    assert!(
        hashes.starts_with("SHA1=") && hashes.contains(",MD5="),
        "{hashes}"
    );
    assert!(
        hashes.ends_with(&format!(",SHA256={want_sha256}")),
        "{hashes}"
    );
    // Every other process's event went out before the digest was done.
    for i in 0..OTHERS {
        let cmdline = format!("/bin/true {token}-other-{i}");
        let at = position(&|e| e.id == 1 && e.get("CommandLine") == Some(cmdline.as_str()))
            .unwrap_or_else(|| panic!("no event for {cmdline}"));
        assert!(
            at < hashed_at,
            "other process {i}'s event came after the big file's hash"
        );
    }
    println!(
        "huge executable: {} execs of it before its hashes were in the cache",
        n + 1
    );
}

/// Files the storm creates at most.
const STORM: usize = 200_000;

#[test]
#[cfg_attr(no_kernel, ignore = "kernel test: needs root, BTF and rsyslogd")]
fn sigterm_during_a_storm_stops_the_agent_promptly() {
    let Some(_serial) = kernel_test("sigterm_storm") else {
        return;
    };
    let s = Session::start("stop-storm", Some(&config_logging(&["FileCreate"])));
    let shm = Path::new("/dev/shm");
    let dir = if shm.is_dir() {
        let d = TempDir(shm.join(format!("sysmon-stop-storm-{}", unique())));
        std::fs::create_dir(&d.0).unwrap();
        d
    } else {
        TempDir::new("stop-storm-files")
    };
    let created = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let storm = {
        let (root, created, stop) = (dir.0.clone(), created.clone(), stop.clone());
        std::thread::spawn(move || {
            for i in 0..STORM {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                File::create(root.join(format!("f{i}"))).unwrap();
                created.store(i + 1, Ordering::Relaxed);
            }
        })
    };
    // Mid-storm: the ring buffer and syslog are busy.
    wait_for(
        || created.load(Ordering::Relaxed) >= STORM / 4,
        "a quarter of the storm",
    );
    let pid = s.agent.pid as i32;
    let at_term = created.load(Ordering::Relaxed);
    let sent = Instant::now();
    unsafe { libc::kill(pid, libc::SIGTERM) };
    let mut stopped_in = None;
    while stopped_in.is_none() && sent.elapsed() < Duration::from_secs(60) {
        if !alive(pid) {
            stopped_in = Some(sent.elapsed());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    stop.store(true, Ordering::Relaxed);
    storm.join().unwrap();
    let stopped_in = stopped_in.expect("the agent did not stop within 60 s of SIGTERM");
    let (events, stderr) = s.stop();
    let creates = events.iter().filter(|e| e.id == 11).count();
    println!(
        "SIGTERM during a storm ({at_term} files created when it was sent): the agent stopped \
         in {:.2} s; {creates} FileCreate events written",
        stopped_in.as_secs_f64()
    );
    println!("agent: {}", stderr.trim());
    // A liveness bound, generous for a loaded 2-core machine (the issue asks for it).
    assert!(
        stopped_in < Duration::from_secs(10),
        "the agent took {stopped_in:?} to stop"
    );
    assert!(
        events
            .iter()
            .any(|e| e.id == 4 && e.get("State") == Some("Stopped")),
        "no Stopped event"
    );
    assert!(creates > 0, "the storm gave no events at all");
}
