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
    Session, TempDir, alive, config_logging, events::Event, kernel_test, mount::Mount,
    rsyslog::wait_for, service::sha256_hex, unique,
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

/// Holds back one process's opens of one file, as a hung file system would: the kernel
/// asks us before each open of it completes (a fanotify permission event); while shut,
/// the opens of `holder` are not answered, everyone else's are allowed at once.
struct Gate {
    fan: Arc<std::os::fd::OwnedFd>,
    shut: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    /// Opens of `holder` waiting for an answer.
    held: Arc<std::sync::Mutex<Vec<i32>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Gate {
    fn new(path: &Path, holder: u32) -> Gate {
        use std::os::fd::{AsRawFd, FromRawFd};
        // SAFETY: plain syscalls; the descriptor is owned from here on.
        let fan = unsafe {
            let fd = libc::fanotify_init(
                libc::FAN_CLASS_CONTENT | libc::FAN_CLOEXEC,
                (libc::O_RDONLY | libc::O_LARGEFILE) as u32,
            );
            assert!(
                fd >= 0,
                "fanotify_init: {}",
                std::io::Error::last_os_error()
            );
            std::os::fd::OwnedFd::from_raw_fd(fd)
        };
        let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: a path that outlives the call.
        let rc = unsafe {
            libc::fanotify_mark(
                fan.as_raw_fd(),
                libc::FAN_MARK_ADD,
                libc::FAN_OPEN_PERM,
                libc::AT_FDCWD,
                c.as_ptr(),
            )
        };
        assert_eq!(rc, 0, "fanotify_mark: {}", std::io::Error::last_os_error());
        let mut gate = Gate {
            fan: Arc::new(fan),
            shut: Arc::new(AtomicBool::new(true)),
            stop: Arc::new(AtomicBool::new(false)),
            held: Arc::default(),
            thread: None,
        };
        let (fan, shut, stop, held) = (
            gate.fan.clone(),
            gate.shut.clone(),
            gate.stop.clone(),
            gate.held.clone(),
        );
        gate.thread = Some(std::thread::spawn(move || {
            let fd = fan.as_raw_fd();
            let mut buf = [0u8; 4096];
            while !stop.load(Ordering::Relaxed) {
                let mut p = libc::pollfd {
                    fd,
                    events: libc::POLLIN,
                    revents: 0,
                };
                // SAFETY: one pollfd; the buffer outlives the read.
                if unsafe { libc::poll(&mut p, 1, 50) } <= 0 {
                    continue;
                }
                let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
                let mut at = 0;
                while n > 0 && at + size_of::<libc::fanotify_event_metadata>() <= n as usize {
                    // SAFETY: the kernel wrote whole records; read unaligned.
                    let m: libc::fanotify_event_metadata =
                        unsafe { std::ptr::read_unaligned(buf[at..].as_ptr().cast()) };
                    at += m.event_len as usize;
                    if m.pid as u32 == holder && shut.load(Ordering::Relaxed) {
                        held.lock().unwrap().push(m.fd);
                    } else {
                        allow(fd, m.fd);
                    }
                }
            }
        }));
        gate
    }

    fn held(&self) -> usize {
        self.held.lock().unwrap().len()
    }

    /// Answers what was held back, and everything from now on.
    fn open(&self) {
        use std::os::fd::AsRawFd;
        self.shut.store(false, Ordering::Relaxed);
        for fd in self.held.lock().unwrap().drain(..) {
            allow(self.fan.as_raw_fd(), fd);
        }
    }
}

/// Lets the open behind permission event `fd` go on.
fn allow(fan: i32, fd: i32) {
    let r = libc::fanotify_response {
        fd,
        response: libc::FAN_ALLOW,
    };
    // SAFETY: a plain struct written to the fanotify descriptor; `fd` is ours to close.
    unsafe {
        libc::write(
            fan,
            (&raw const r).cast(),
            size_of::<libc::fanotify_response>(),
        );
        libc::close(fd);
    }
}

impl Drop for Gate {
    fn drop(&mut self) {
        self.open();
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A new modification time, as `touch` gives (a new file version to the hash cache),
/// without opening the file.
fn touch(path: &Path, secs: i64) {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    let t = libc::timespec {
        tv_sec: 1_700_000_000 + secs,
        tv_nsec: 0,
    };
    // SAFETY: two timespecs and a path that outlive the call.
    let rc = unsafe { libc::utimensat(libc::AT_FDCWD, c.as_ptr(), [t, t].as_ptr(), 0) };
    assert_eq!(rc, 0);
}

/// A 60 MiB executable touched (a new file version each time) and run in a loop while its
/// reads hang (held back by the test, as on a hung mount of its own): every other
/// process's event still goes out, with its digest, in order after the big one's, which
/// says `Hashes` `-`; once the file can be read, a later run of it carries its digest.
/// Hashing on the reader thread would hold every event behind the first open of the file.
#[test]
#[cfg_attr(no_kernel, ignore = "kernel test: needs root, BTF and rsyslogd")]
fn a_touched_executable_run_in_a_loop_holds_back_no_other_event() {
    let Some(_serial) = kernel_test("touch_loop") else {
        return;
    };
    const LOOPS: usize = 30;
    let s = Session::start("touch-loop", Some(HASH_ALL));
    // On a device of its own, as a hung mount would be: only its files wait for it.
    let mnt = Mount::tmpfs(&s.dir.0.join("mnt"), "100m");
    let big = mnt.at.join("big-true");
    std::fs::copy("/bin/true", &big).unwrap();
    File::options()
        .write(true)
        .open(&big)
        .unwrap()
        .set_len(60 << 20)
        .unwrap();
    std::fs::set_permissions(&big, std::fs::Permissions::from_mode(0o755)).unwrap();
    let big = std::fs::canonicalize(&big).unwrap();
    let gate = Gate::new(&big, s.agent.pid);
    let token = unique();
    let pid = s.agent.pid;
    let mine = || {
        sysmon_tests::events::parse_lines(&s.syslog.lines())
            .into_iter()
            .filter(|e| e.agent_pid == pid && command_line_has(e, &token))
            .collect::<Vec<_>>()
    };
    for i in 0..LOOPS {
        touch(&big, i as i64);
        run(&big, &format!("{token}-big-{i}"));
        run(Path::new("/bin/true"), &format!("{token}-other-{i}"));
    }
    wait_for(
        || mine().len() == 2 * LOOPS,
        "every run's event while the big file cannot be read",
    );
    assert!(gate.held() >= 1, "the agent never tried to read the file");
    let events = mine();
    for i in 0..LOOPS {
        let (b, o) = (&events[2 * i], &events[2 * i + 1]);
        assert_eq!(
            b.get("CommandLine"),
            Some(format!("{} {token}-big-{i}", big.display()).as_str()),
            "in order"
        );
        assert_eq!(
            o.get("CommandLine"),
            Some(format!("/bin/true {token}-other-{i}").as_str()),
            "in order"
        );
        assert_eq!(b.get("Hashes"), Some("-"), "run {i} of the big file");
        assert_ne!(o.get("Hashes"), Some("-"), "run {i} of /bin/true");
    }
    // Readable again: a later run (another version) carries its digest.
    gate.open();
    let mut n = 0;
    wait_for(
        || {
            n += 1;
            touch(&big, 1000 + n);
            run(&big, &format!("{token}-again-{n}"));
            std::thread::sleep(Duration::from_millis(200));
            mine().iter().any(|e| {
                command_line_has(e, &format!("{token}-again-")) && e.get("Hashes") != Some("-")
            })
        },
        "the big file's digest once readable",
    );
    let want = sha256_hex(&big);
    drop(gate);
    let (events, _) = s.stop();
    drop(mnt);
    let hashed = events
        .iter()
        .find(|e| command_line_has(e, &format!("{token}-again-")) && e.get("Hashes") != Some("-"))
        .unwrap();
    assert!(
        hashed
            .get("Hashes")
            .unwrap()
            .ends_with(&format!(",SHA256={want}")),
        "{:?}",
        hashed.get("Hashes")
    );
}
