//! FileCreateTime (2), PipeEvent (17/18) and FileExecutableDetected (29) end to end: real
//! syscalls and tools, the real kernel, the agent binary, a real rsyslogd. Each test finds its
//! own events by unique paths.

use std::{ffi::CString, path::Path, process::Command};

use sysmon_tests::{
    CTIME_TRACEPOINTS, config_logging,
    events::Event,
    fs::{c, work_dir},
    has_tracepoint, kernel_test, record_with, record_with_env, unique,
};

fn my_image() -> String {
    std::env::current_exe().unwrap().display().to_string()
}

/// Runs a command to its end; returns its pid.
fn run(cmd: &str, args: &[&str]) -> u32 {
    let mut child = Command::new(cmd).args(args).spawn().unwrap();
    let pid = child.id();
    assert!(child.wait().unwrap().success(), "{cmd} {args:?}");
    pid
}

fn which(cmd: &str) -> String {
    let out = Command::new("sh")
        .args(["-c", &format!("command -v {cmd}")])
        .output()
        .unwrap();
    let p = String::from_utf8(out.stdout).unwrap();
    std::fs::canonicalize(p.trim())
        .unwrap()
        .display()
        .to_string()
}

fn with(events: &[Event], id: u16, field: &str, value: &str) -> Vec<Event> {
    events
        .iter()
        .filter(|e| e.id == id && e.get(field) == Some(value))
        .cloned()
        .collect()
}

/// Sets a file's atime and mtime (seconds, nanoseconds since the epoch) by path.
fn set_times(p: &Path, sec: i64, nsec: i64) {
    let t = [
        libc::timespec {
            tv_sec: sec,
            tv_nsec: nsec,
        },
        libc::timespec {
            tv_sec: sec,
            tv_nsec: nsec,
        },
    ];
    let rc = unsafe { libc::utimensat(libc::AT_FDCWD, c(p).as_ptr(), t.as_ptr(), 0) };
    assert_eq!(rc, 0, "utimensat {}", p.display());
}

/// As [`set_times`], through a descriptor (`futimens`).
fn set_times_by_fd(p: &Path, sec: i64, nsec: i64) {
    let t = [libc::timespec {
        tv_sec: sec,
        tv_nsec: nsec,
    }; 2];
    let fd = unsafe { libc::open(c(p).as_ptr(), libc::O_WRONLY) };
    assert!(fd >= 0, "open {}", p.display());
    let rc = unsafe { libc::futimens(fd, t.as_ptr()) };
    unsafe { libc::close(fd) };
    assert_eq!(rc, 0, "futimens {}", p.display());
}

/// 2020-05-06 07:08:09.123456789 UTC: every file's mtime before the test changes it.
const BEFORE: (i64, i64) = (1_588_748_889, 123_456_789);
const BEFORE_TEXT: &str = "2020-05-06 07:08:09.123";
/// 2001-01-01 00:00:00 UTC.
const STOMP: i64 = 978_307_200;
const STOMP_TEXT: &str = "2001-01-01 00:00:00.000";

#[test]
#[cfg_attr(no_kernel, ignore = "kernel test: needs root, BTF and rsyslogd")]
fn file_create_time_only_when_a_file_is_given_an_earlier_modification_time() {
    let Some(_serial) = kernel_test("file_create_time") else {
        return;
    };
    // This kernel as it is, then as one without the timestamp tracepoints (before 6.13):
    // there a file named by path is not seen, and the agent says so at start.
    for pretend_old in [false, true] {
        file_create_time_on(pretend_old);
    }
}

fn file_create_time_on(pretend_old: bool) {
    let env: &[(&str, &str)] = if pretend_old {
        &[("SYSMON_TEST_MISSING_TRACEPOINTS", CTIME_TRACEPOINTS)]
    } else {
        &[]
    };
    let (_dir, root) = work_dir("ftime");
    let names = [
        "touch-d",
        "touch",
        "touch-later",
        "utimensat",
        "utimes",
        "utime",
        "futimesat",
        "omit",
        "now",
    ];
    for n in names {
        let p = root.join(n);
        std::fs::write(&p, b"x").unwrap();
        set_times(&p, BEFORE.0, BEFORE.1);
    }
    let at = |n: &str| root.join(n);
    let s = |n: &str| at(n).display().to_string();
    let me = std::process::id();
    let mut pids = std::collections::HashMap::new();
    let config = config_logging(&["FileCreateTime"]);
    let (events, _) = record_with_env("ftime", Some(&config), env, |_| {
        // touch writes through a descriptor (utimensat(fd, NULL, ...)).
        pids.insert(
            "touch-d",
            run("touch", &["-d", "2001-01-01 00:00:00 UTC", &s("touch-d")]),
        );
        run("touch", &[&s("touch")]);
        // Later than the file's time although earlier than now: not timestomping.
        run(
            "touch",
            &["-m", "-d", "2024-01-01 00:00:00 UTC", &s("touch-later")],
        );
        // By path.
        set_times(&at("utimensat"), STOMP, 0);
        let tv = [
            libc::timeval {
                tv_sec: STOMP,
                tv_usec: 0,
            },
            libc::timeval {
                tv_sec: STOMP,
                tv_usec: 0,
            },
        ];
        // The syscalls themselves (glibc's utimes() and utime() call utimensat).
        let p = c(&at("utimes"));
        let rc = unsafe { libc::syscall(libc::SYS_utimes, p.as_ptr(), tv.as_ptr()) };
        assert_eq!(rc, 0, "utimes");
        let ub = libc::utimbuf {
            actime: STOMP,
            modtime: STOMP,
        };
        let p = c(&at("utime"));
        let rc = unsafe { libc::syscall(libc::SYS_utime, p.as_ptr(), &ub as *const libc::utimbuf) };
        assert_eq!(rc, 0, "utime");
        // Relative to a directory descriptor.
        let dfd = unsafe { libc::open(c(&root).as_ptr(), libc::O_RDONLY | libc::O_DIRECTORY) };
        assert!(dfd >= 0);
        let name = CString::new("futimesat").unwrap();
        let rc = unsafe { libc::syscall(libc::SYS_futimesat, dfd, name.as_ptr(), tv.as_ptr()) };
        assert_eq!(rc, 0, "futimesat: {}", std::io::Error::last_os_error());
        unsafe { libc::close(dfd) };
        // An earlier atime with the mtime left alone, and "now": nothing.
        let omit = [
            libc::timespec {
                tv_sec: STOMP,
                tv_nsec: 0,
            },
            libc::timespec {
                tv_sec: 0,
                tv_nsec: libc::UTIME_OMIT,
            },
        ];
        let now = [libc::timespec {
            tv_sec: 0,
            tv_nsec: libc::UTIME_NOW,
        }; 2];
        for (n, t) in [("omit", omit), ("now", now)] {
            let rc = unsafe { libc::utimensat(libc::AT_FDCWD, c(&at(n)).as_ptr(), t.as_ptr(), 0) };
            assert_eq!(rc, 0, "{n}");
        }
    });
    let touch = which("touch");
    let image = my_image();
    let by_path = !pretend_old && has_tracepoint("ctime_ns_xchg");
    // (file, pid, image, reported)
    let cases = [
        ("touch-d", pids["touch-d"], touch.as_str(), true),
        ("utimensat", me, image.as_str(), by_path),
        ("utimes", me, image.as_str(), by_path),
        ("utime", me, image.as_str(), by_path),
        ("futimesat", me, image.as_str(), by_path),
    ];
    let check = events
        .iter()
        .any(|e| e.id == 255 && e.get("ID") == Some("KernelCheck"));
    assert_eq!(check, !by_path, "event 255 KernelCheck");
    for (n, _, _, _) in cases.iter().filter(|c| !c.3) {
        let got = with(&events, 2, "TargetFilename", &s(n));
        assert!(got.is_empty(), "{n}: {got:?}");
    }
    for (n, pid, image, _) in cases.into_iter().filter(|c| c.3) {
        let got = with(&events, 2, "TargetFilename", &s(n));
        assert_eq!(got.len(), 1, "{n}: FileCreateTime events: {got:?}");
        let e = &got[0];
        assert_eq!(e.get("ProcessId"), Some(pid.to_string().as_str()), "{n}");
        assert_eq!(e.get("Image"), Some(image), "{n}");
        assert_eq!(e.get("CreationUtcTime"), Some(STOMP_TEXT), "{n}");
        assert_eq!(e.get("PreviousCreationUtcTime"), Some(BEFORE_TEXT), "{n}");
        assert_eq!(e.get("User"), Some("root"), "{n}");
        assert_eq!(e.get("RuleName"), Some("-"), "{n}");
        assert!(e.get("UtcTime").unwrap().starts_with("20"), "{n}");
        assert_ne!(
            e.get("ProcessGuid"),
            Some("{00000000-0000-0000-0000-000000000000}"),
            "{n}"
        );
    }
    for n in ["touch", "touch-later", "omit", "now"] {
        let got = with(&events, 2, "TargetFilename", &s(n));
        assert!(got.is_empty(), "{n}: {got:?}");
    }
}

#[test]
#[cfg_attr(no_kernel, ignore = "kernel test: needs root, BTF and rsyslogd")]
fn pipe_created_once_and_connected_once_per_process() {
    let Some(_serial) = kernel_test("pipe_event") else {
        return;
    };
    let (_dir, root) = work_dir("pipes");
    let (p, q) = (root.join("p"), root.join("q"));
    let (ps, qs) = (p.display().to_string(), q.display().to_string());
    let mut pids = std::collections::HashMap::new();
    let config = config_logging(&["PipeEvent"]);
    let (events, _) = record_with("pipes", Some(&config), |_| {
        pids.insert("mkfifo", run("mkfifo", &[&ps]));
        pids.insert("mknod", run("mknod", &[&qs, "p"]));
        // A reader in another process, this one writes; then this one opens it twice more.
        let mut cat = Command::new("cat")
            .arg(&p)
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        pids.insert("cat", cat.id());
        std::fs::write(&p, b"hello\n").unwrap();
        assert!(cat.wait().unwrap().success());
        for _ in 0..2 {
            let fd = unsafe { libc::open(c(&p).as_ptr(), libc::O_RDWR) };
            assert!(fd >= 0);
            unsafe { libc::close(fd) };
        }
        // Not a FIFO: nothing.
        std::fs::write(root.join("plain"), b"x").unwrap();
    });
    let me = std::process::id();
    let image = my_image();
    let created = with(&events, 17, "PipeName", &ps);
    assert_eq!(created.len(), 1, "CreatePipe for {ps}: {created:?}");
    let created_q = with(&events, 17, "PipeName", &qs);
    assert_eq!(created_q.len(), 1, "CreatePipe for {qs}: {created_q:?}");
    // (event, who, image)
    let cases = [
        (&created[0], pids["mkfifo"], which("mkfifo"), "CreatePipe"),
        (&created_q[0], pids["mknod"], which("mknod"), "CreatePipe"),
    ];
    for (e, pid, img, ty) in cases {
        assert_eq!(e.get("EventType"), Some(ty));
        assert_eq!(e.get("ProcessId"), Some(pid.to_string().as_str()));
        assert_eq!(e.get("Image"), Some(img.as_str()));
        assert_eq!(e.get("User"), Some("root"));
        assert_eq!(e.get("RuleName"), Some("-"));
    }
    let connects = with(&events, 18, "PipeName", &ps);
    for (pid, img) in [(pids["cat"], which("cat")), (me, image)] {
        let mine: Vec<_> = connects
            .iter()
            .filter(|e| e.get("ProcessId") == Some(pid.to_string().as_str()))
            .collect();
        assert_eq!(mine.len(), 1, "ConnectPipe by {img}: {connects:?}");
        assert_eq!(mine[0].get("EventType"), Some("ConnectPipe"));
        assert_eq!(mine[0].get("Image"), Some(img.as_str()));
        assert_eq!(mine[0].get("User"), Some("root"));
        assert_ne!(
            mine[0].get("ProcessGuid"),
            Some("{00000000-0000-0000-0000-000000000000}")
        );
    }
    assert_eq!(connects.len(), 2, "{connects:?}");
    assert!(with(&events, 18, "PipeName", &qs).is_empty());
}

/// SHA256 of `\x7fELF` and of nothing.
const ELF4: &str = "SHA256=3bdbb4fe8397cd2b842430b39ccff01a8663c751945ef5e9a09e267fb8b1d359";
const EMPTY: &str = "SHA256=e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

#[test]
#[cfg_attr(no_kernel, ignore = "kernel test: needs root, BTF and rsyslogd")]
fn file_executable_detected_when_a_regular_file_becomes_executable() {
    let Some(_serial) = kernel_test("file_executable") else {
        return;
    };
    // This kernel as it is, then as one without the timestamp tracepoints (before 6.13),
    // where user space judges a chmod by path from the file after the call: the same events.
    for pretend_old in [false, true] {
        file_executable_on(pretend_old);
    }
}

fn file_executable_on(pretend_old: bool) {
    let env: &[(&str, &str)] = if pretend_old {
        &[("SYSMON_TEST_MISSING_TRACEPOINTS", CTIME_TRACEPOINTS)]
    } else {
        &[]
    };
    let (_dir, root) = work_dir("fexec");
    let s = |n: &str| root.join(n).display().to_string();
    std::fs::write(root.join("fd"), b"\x7fELF").unwrap();
    let mut pids = std::collections::HashMap::new();
    let config = config_logging(&["FileExecutableDetected"]);
    let (events, _) = record_with_env("fexec", Some(&config), env, |_| {
        let sh = format!("printf '\\177ELF' > '{}'", s("f"));
        run("sh", &["-c", &sh]);
        pids.insert("f", run("chmod", &["+x", &s("f")]));
        // Already executable: nothing.
        run("chmod", &["+x", &s("f")]);
        run("chmod", &["go-x", &s("f")]);
        pids.insert("g", run("install", &["-m", "755", &s("f"), &s("g")]));
        // Created 0755 by open (umask 022 leaves it so), and 0644 (nothing).
        let me = std::process::id();
        unsafe { libc::umask(0o022) };
        for (n, mode) in [("open755", 0o755), ("open644", 0o644)] {
            let fd = unsafe {
                libc::open(
                    c(&root.join(n)).as_ptr(),
                    libc::O_CREAT | libc::O_WRONLY,
                    mode,
                )
            };
            assert!(fd >= 0);
            unsafe { libc::close(fd) };
        }
        pids.insert("open755", me);
        // By descriptor, and a mode without execute bits.
        let fd = unsafe { libc::open(c(&root.join("fd")).as_ptr(), libc::O_RDONLY) };
        assert_eq!(unsafe { libc::fchmod(fd, 0o700) }, 0);
        unsafe { libc::close(fd) };
        pids.insert("fd", me);
        run("chmod", &["600", &s("open644")]);
        // The chmod syscall itself (coreutils and glibc use fchmodat).
        std::fs::write(root.join("sys"), b"\x7fELF").unwrap();
        let p = c(&root.join("sys"));
        let rc = unsafe { libc::syscall(libc::SYS_chmod, p.as_ptr(), 0o750) };
        assert_eq!(rc, 0, "chmod");
        pids.insert("sys", me);
    });
    let image = my_image();
    // (file, image, hashes)
    let cases = [
        ("f", which("chmod"), ELF4),
        ("g", which("install"), ELF4),
        ("open755", image.clone(), EMPTY),
        ("fd", image.clone(), ELF4),
        ("sys", image.clone(), ELF4),
    ];
    for (n, img, hashes) in &cases {
        let got = with(&events, 29, "TargetFilename", &s(n));
        assert_eq!(
            got.len(),
            1,
            "{n} (pretend_old {pretend_old}): FileExecutableDetected events: {got:?}"
        );
        let e = &got[0];
        assert_eq!(
            e.get("ProcessId"),
            Some(pids[n].to_string().as_str()),
            "{n}"
        );
        assert_eq!(e.get("Image"), Some(img.as_str()), "{n}");
        assert_eq!(e.get("Hashes"), Some(*hashes), "{n}");
        assert_eq!(e.get("User"), Some("root"), "{n}");
        assert_eq!(e.get("RuleName"), Some("-"), "{n}");
        assert_ne!(
            e.get("ProcessGuid"),
            Some("{00000000-0000-0000-0000-000000000000}"),
            "{n}"
        );
    }
    assert!(with(&events, 29, "TargetFilename", &s("open644")).is_empty());
}

#[test]
#[cfg_attr(no_kernel, ignore = "kernel test: needs root, BTF and rsyslogd")]
fn the_config_includes_excludes_and_names_file_time_pipe_and_executable_events() {
    let Some(_serial) = kernel_test("file_more_config") else {
        return;
    };
    let token = format!("cfg-{}", unique());
    let config = format!(
        r#"<Sysmon schemaversion="4.90">
  <HashAlgorithms>sha256</HashAlgorithms>
  <EventFiltering>
    <RuleGroup name="" groupRelation="or">
      <FileCreateTime onmatch="include">
        <TargetFilename name="stomp" condition="contains">{token}-in</TargetFilename>
      </FileCreateTime>
    </RuleGroup>
    <RuleGroup name="" groupRelation="or">
      <PipeEvent onmatch="include">
        <PipeName name="fifo" condition="contains">{token}-in</PipeName>
      </PipeEvent>
    </RuleGroup>
    <RuleGroup name="" groupRelation="or">
      <FileExecutableDetected onmatch="include">
        <TargetFilename name="dropper" condition="contains">{token}-in</TargetFilename>
      </FileExecutableDetected>
    </RuleGroup>
  </EventFiltering>
</Sysmon>"#
    );
    let (_dir, root) = work_dir("fmorecfg");
    let at = |kind: &str, which: &str| root.join(format!("{kind}-{token}-{which}"));
    for which in ["in", "out"] {
        let p = at("time", which);
        std::fs::write(&p, b"x").unwrap();
        set_times(&p, BEFORE.0, BEFORE.1);
        std::fs::write(at("exe", which), b"x").unwrap();
    }
    let (events, _) = record_with("fmorecfg", Some(&config), |_| {
        for which in ["in", "out"] {
            // By descriptor: seen on every kernel (by path needs 6.13's tracepoints).
            set_times_by_fd(&at("time", which), STOMP, 0);
            let fifo = at("fifo", which);
            assert_eq!(unsafe { libc::mkfifo(c(&fifo).as_ptr(), 0o600) }, 0);
            let fd = unsafe { libc::open(c(&fifo).as_ptr(), libc::O_RDWR) };
            assert!(fd >= 0);
            unsafe { libc::close(fd) };
            let exe = c(&at("exe", which));
            assert_eq!(unsafe { libc::chmod(exe.as_ptr(), 0o755) }, 0);
        }
    });
    // (event id, field, kind, rule name)
    let cases = [
        (2, "TargetFilename", "time", "stomp"),
        (17, "PipeName", "fifo", "fifo"),
        (18, "PipeName", "fifo", "fifo"),
        (29, "TargetFilename", "exe", "dropper"),
    ];
    for (id, field, kind, rule) in cases {
        let inc = with(&events, id, field, &at(kind, "in").display().to_string());
        assert_eq!(inc.len(), 1, "event {id}, included: {inc:?}");
        assert_eq!(inc[0].get("RuleName"), Some(rule), "event {id}");
        let exc = with(&events, id, field, &at(kind, "out").display().to_string());
        assert!(exc.is_empty(), "event {id}, not included: {exc:?}");
    }
}
