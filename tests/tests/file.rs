//! FileCreate (11), FileDelete (23) and RawAccessRead (9) end to end: real syscalls, the real
//! kernel, the agent binary, a real rsyslogd. Each test finds its own events by unique paths.

use std::{
    ffi::CString,
    os::unix::ffi::OsStrExt,
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use sysmon_tests::{
    Session, TempDir, config_logging, cpu_secs,
    events::Event,
    fs::{c, work_dir},
    kernel_test, record_with,
};

fn me() -> (String, String) {
    let image = std::env::current_exe().unwrap().display().to_string();
    (std::process::id().to_string(), image)
}

fn with_target<'a>(events: &'a [Event], id: u16, path: &str) -> Vec<&'a Event> {
    events
        .iter()
        .filter(|e| e.id == id && e.get("TargetFilename").or(e.get("Device")) == Some(path))
        .collect()
}

fn open(path: &Path, flags: i32) -> i32 {
    unsafe { libc::open(c(path).as_ptr(), flags, 0o644) }
}

fn creat(path: &Path, _flags: i32) -> i32 {
    unsafe { libc::creat(c(path).as_ptr(), 0o644) }
}

/// `struct open_how` (libc's is non-exhaustive).
#[repr(C)]
struct OpenHow {
    flags: u64,
    mode: u64,
    resolve: u64,
}

fn openat2(path: &Path, flags: i32) -> i32 {
    let how = OpenHow {
        flags: flags as u64,
        mode: 0o644,
        resolve: 0,
    };
    let p = c(path);
    unsafe {
        libc::syscall(
            libc::SYS_openat2,
            libc::AT_FDCWD,
            p.as_ptr(),
            &how as *const OpenHow,
            std::mem::size_of::<OpenHow>(),
        ) as i32
    }
}

#[test]
#[cfg_attr(no_kernel, ignore = "kernel test: needs root, BTF and rsyslogd")]
fn file_create_once_per_created_file_and_never_for_an_existing_one() {
    let Some(_serial) = kernel_test("file_create") else {
        return;
    };
    type Call = fn(&Path, i32) -> i32;
    const W: i32 = libc::O_WRONLY;
    const CR: i32 = libc::O_WRONLY | libc::O_CREAT;
    // (name, call, flags, file exists before, events expected)
    let cases: &[(&str, Call, i32, bool, usize)] = &[
        ("open-creat-new", open, CR, false, 1),
        ("open-creat-existing", open, CR, true, 0),
        (
            "open-creat-trunc-existing",
            open,
            CR | libc::O_TRUNC,
            true,
            0,
        ),
        ("open-excl-new", open, CR | libc::O_EXCL, false, 1),
        ("open-excl-existing", open, CR | libc::O_EXCL, true, 0),
        ("open-existing-no-creat", open, W, true, 0),
        ("creat-new", creat, 0, false, 1),
        ("creat-existing", creat, 0, true, 0),
        ("openat2-creat-new", openat2, CR, false, 1),
        ("openat2-creat-existing", openat2, CR, true, 0),
        ("openat2-excl-new", openat2, CR | libc::O_EXCL, false, 1),
        ("missing-dir/open-creat", open, CR, false, 0),
        // An unnamed file in the directory `name`: nothing anyone could find by name.
        ("tmpdir", open, libc::O_WRONLY | libc::O_TMPFILE, true, 0),
    ];
    let (_dir, root) = work_dir("fcreate");
    for (name, _, flags, exists, _) in cases {
        if *exists && *flags & libc::O_TMPFILE == libc::O_TMPFILE {
            std::fs::create_dir(root.join(name)).unwrap();
        } else if *exists {
            std::fs::write(root.join(name), b"x").unwrap();
        }
    }
    let config = config_logging(&["FileCreate"]);
    let (events, _) = record_with("fcreate", Some(&config), |_| {
        for (name, call, flags, _, _) in cases {
            let fd = call(&root.join(name), *flags);
            if fd >= 0 {
                unsafe { libc::close(fd) };
            }
        }
    });
    let (pid, image) = me();
    let under_root = events
        .iter()
        .filter(|e| e.id == 11 && e.get("ProcessId") == Some(pid.as_str()))
        .filter(|e| {
            e.get("TargetFilename")
                .unwrap()
                .starts_with(root.to_str().unwrap())
        })
        .count();
    let want_total: usize = cases.iter().map(|c| c.4).sum();
    assert_eq!(
        under_root, want_total,
        "FileCreate events in the test directory"
    );
    for (name, _, _, _, want) in cases {
        let path = root.join(name).display().to_string();
        let got = with_target(&events, 11, &path);
        assert_eq!(got.len(), *want, "{name}: FileCreate events");
        for e in got {
            assert_eq!(e.get("ProcessId"), Some(pid.as_str()), "{name}");
            assert_eq!(e.get("Image"), Some(image.as_str()), "{name}");
            assert_eq!(e.get("User"), Some("root"), "{name}");
            assert_eq!(e.get("CreationUtcTime"), e.get("UtcTime"), "{name}");
            assert_ne!(
                e.get("ProcessGuid"),
                Some("{00000000-0000-0000-0000-000000000000}")
            );
        }
    }
}

/// Forks a child that changes to `dir` and runs `f`; returns the child's pid after it ended.
fn in_child(dir: &Path, f: impl FnOnce() -> i32) -> u32 {
    let d = c(dir);
    match unsafe { libc::fork() } {
        0 => {
            // Only async-signal-safe calls from here on: the parent has threads.
            let ok = unsafe { libc::chdir(d.as_ptr()) } == 0 && f() == 0;
            unsafe { libc::_exit(if ok { 0 } else { 1 }) }
        }
        pid => {
            let mut status = 0;
            unsafe { libc::waitpid(pid, &mut status, 0) };
            assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0);
            pid as u32
        }
    }
}

/// A file removed on drop if the test did not get to delete it.
struct Removed(PathBuf);

impl Drop for Removed {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[test]
#[cfg_attr(no_kernel, ignore = "kernel test: needs root, BTF and rsyslogd")]
fn file_delete_gives_the_absolute_path_however_the_name_was_passed() {
    let Some(_serial) = kernel_test("file_delete") else {
        return;
    };
    let (_dir, root) = work_dir("fdelete");
    let sub = root.join("sub");
    std::fs::create_dir(&sub).unwrap();
    let names = [
        "abs",
        "rel-unlink",
        "rel-unlinkat",
        "dirfd",
        "rm-in-shell",
        "dot-rel",
    ];
    for n in names {
        std::fs::write(sub.join(n), b"x").unwrap();
    }
    std::fs::create_dir(sub.join("a-dir")).unwrap();
    std::fs::create_dir(sub.join("rmdir")).unwrap();
    let root_file = Removed(PathBuf::from(format!(
        "/sysmon-delete-{}",
        sysmon_tests::unique()
    )));
    let at_root = &root_file.0;
    let config = config_logging(&["FileDelete"]);
    let mut pids = std::collections::HashMap::new();
    let me = std::process::id();
    let (events, _) = record_with("fdelete", Some(&config), |_| {
        let cs = |n: &str| CString::new(n).unwrap();
        assert_eq!(unsafe { libc::unlink(c(&sub.join("abs")).as_ptr()) }, 0);
        pids.insert("abs", me);
        let name = cs("rel-unlink");
        pids.insert(
            "rel-unlink",
            in_child(&sub, || unsafe { libc::unlink(name.as_ptr()) }),
        );
        let name = cs("rel-unlinkat");
        pids.insert(
            "rel-unlinkat",
            in_child(&sub, || unsafe {
                libc::unlinkat(libc::AT_FDCWD, name.as_ptr(), 0)
            }),
        );
        let name = cs("./dot-rel");
        pids.insert(
            "dot-rel",
            in_child(&sub, || unsafe { libc::unlink(name.as_ptr()) }),
        );
        let dfd = unsafe { libc::open(c(&sub).as_ptr(), libc::O_RDONLY | libc::O_DIRECTORY) };
        assert!(dfd >= 0);
        assert_eq!(unsafe { libc::unlinkat(dfd, cs("dirfd").as_ptr(), 0) }, 0);
        pids.insert("dirfd", me);
        // Not deletes of files: a directory, a failed call.
        assert_eq!(
            unsafe { libc::unlinkat(dfd, cs("a-dir").as_ptr(), libc::AT_REMOVEDIR) },
            0
        );
        assert_eq!(unsafe { libc::rmdir(c(&sub.join("rmdir")).as_ptr()) }, 0);
        assert_ne!(unsafe { libc::unlink(c(&sub.join("missing")).as_ptr()) }, 0);
        unsafe { libc::close(dfd) };
        // From the root directory: `/name`, not `//name`.
        std::fs::write(at_root, b"x").unwrap();
        let name = cs(at_root.file_name().unwrap().to_str().unwrap());
        pids.insert(
            "from-root",
            in_child(Path::new("/"), || unsafe { libc::unlink(name.as_ptr()) }),
        );
        let status = Command::new("sh")
            .arg("-c")
            .arg(format!("cd '{}' && rm rm-in-shell", sub.display()))
            .status()
            .unwrap();
        assert!(status.success());
    });
    let at = |n: &str| sub.join(n).display().to_string();
    let image = std::env::current_exe().unwrap().display().to_string();
    // (name, TargetFilename)
    let cases = [
        ("abs", at("abs")),
        ("rel-unlink", at("rel-unlink")),
        ("rel-unlinkat", at("rel-unlinkat")),
        ("dot-rel", format!("{}/./dot-rel", sub.display())),
        ("dirfd", at("dirfd")),
        ("from-root", at_root.display().to_string()),
    ];
    for (name, path) in &cases {
        let got = with_target(&events, 23, path);
        assert_eq!(got.len(), 1, "{name}: FileDelete events for {path}");
        let e = got[0];
        assert_eq!(e.get("ProcessId"), Some(pids[name].to_string().as_str()));
        assert_eq!(e.get("Image"), Some(image.as_str()), "{name}");
        assert_eq!(e.get("User"), Some("root"), "{name}");
        for f in ["Hashes", "IsExecutable", "Archived"] {
            assert_eq!(e.get(f), Some("-"), "{name} {f}");
        }
    }
    let rm = with_target(&events, 23, &at("rm-in-shell"));
    assert_eq!(rm.len(), 1, "rm in a shell that changed directory");
    assert!(rm[0].get("Image").unwrap().ends_with("/rm"), "{:?}", rm[0]);
    for n in ["a-dir", "rmdir", "missing"] {
        assert!(with_target(&events, 23, &at(n)).is_empty(), "{n}");
    }
}

/// A loop device over a small image file, detached on drop (also when the test fails).
struct Loop(String);

impl Loop {
    fn attach(img: &Path) -> Loop {
        let out = Command::new("losetup")
            .args(["--find", "--show"])
            .arg(img)
            .output()
            .expect("losetup");
        assert!(out.status.success(), "losetup: {out:?}");
        Loop(String::from_utf8(out.stdout).unwrap().trim().to_string())
    }
}

impl Drop for Loop {
    fn drop(&mut self) {
        let _ = Command::new("losetup").args(["-d", &self.0]).status();
    }
}

#[test]
#[cfg_attr(no_kernel, ignore = "kernel test: needs root, BTF and rsyslogd")]
fn raw_access_read_of_a_block_device() {
    let Some(_serial) = kernel_test("raw_access_read") else {
        return;
    };
    let (_dir, root) = work_dir("rawread");
    let img = root.join("disk.img");
    std::fs::write(&img, vec![0u8; 1 << 20]).unwrap();
    let dev = Loop::attach(&img);
    let config = config_logging(&["RawAccessRead"]);
    let (events, _) = record_with("rawread", Some(&config), |_| {
        use std::io::Read;
        let mut buf = vec![0u8; 4096];
        let mut f = std::fs::File::open(&dev.0).unwrap();
        f.read_exact(&mut buf).unwrap();
        // A regular file is not raw access.
        std::fs::File::open(&img)
            .unwrap()
            .read_exact(&mut buf)
            .unwrap();
    });
    let (pid, image) = me();
    let mine: Vec<_> = events
        .iter()
        .filter(|e| e.id == 9 && e.get("ProcessId") == Some(pid.as_str()))
        .collect();
    assert_eq!(mine.len(), 1, "RawAccessRead events: {mine:?}");
    assert_eq!(mine[0].get("Device"), Some(dev.0.as_str()));
    assert_eq!(mine[0].get("Image"), Some(image.as_str()));
    assert_eq!(mine[0].get("User"), Some("root"));
}

/// Files the storm creates. Timing is printed (run with --nocapture), never asserted.
const STORM: usize = 200_000;

/// A directory for the storm: on tmpfs when there is one, so the disk does not set the pace.
fn storm_dir(tag: &str) -> (TempDir, PathBuf) {
    let shm = Path::new("/dev/shm");
    if !shm.is_dir() {
        return work_dir(tag);
    }
    let dir = TempDir(shm.join(format!("sysmon-{tag}-{}", sysmon_tests::unique())));
    std::fs::create_dir(&dir.0).unwrap();
    let canon = std::fs::canonicalize(&dir.0).unwrap();
    (dir, canon)
}

/// Creates `STORM` files in `dir`; returns how long it took.
fn create_storm(dir: &Path) -> Duration {
    let start = Instant::now();
    for i in 0..STORM {
        let fd = open(&dir.join(format!("f{i}")), libc::O_WRONLY | libc::O_CREAT);
        assert!(fd >= 0, "creating file {i}");
        unsafe { libc::close(fd) };
    }
    start.elapsed()
}

#[test]
#[cfg_attr(no_kernel, ignore = "kernel test: needs root, BTF and rsyslogd")]
fn file_create_storm_every_creation_is_an_event_or_a_counted_drop() {
    let Some(_serial) = kernel_test("file_create_storm") else {
        return;
    };
    // The same storm without the agent, for the cost of the probe.
    let baseline = {
        let (_dir, root) = storm_dir("storm-base");
        create_storm(&root)
    };
    // (ring buffer bytes: the default, then one so small that records must be dropped)
    for ring in [None, Some("16384")] {
        storm(baseline, ring);
    }
}

fn storm(baseline: Duration, ring: Option<&str>) {
    let (_dir, root) = storm_dir("storm");
    let config = config_logging(&["FileCreate"]);
    let env: Vec<_> = ring.map(|r| ("SYSMON_RING_BYTES", r)).into_iter().collect();
    let s = Session::start_with_env("storm", Some(&config), &env);
    let cpu0 = cpu_secs(s.agent.pid);
    let start = Instant::now();
    let storm = create_storm(&root);
    // The agent is done when syslog has stopped growing for two seconds.
    let (mut size, mut last_growth) = (0, Instant::now());
    while last_growth.elapsed() < Duration::from_secs(2) {
        let now = std::fs::metadata(&s.syslog.output).map_or(0, |m| m.len());
        if now != size {
            (size, last_growth) = (now, Instant::now());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let handled = last_growth.duration_since(start);
    let cpu = cpu_secs(s.agent.pid) - cpu0;
    let (events, stderr) = s.stop();

    let prefix = format!("{}/f", root.display());
    let mut seen = std::collections::HashSet::new();
    for e in events.iter().filter(|e| e.id == 11) {
        let t = e.get("TargetFilename").unwrap();
        if t.starts_with(&prefix) {
            assert!(seen.insert(t.to_string()), "duplicate event for {t}");
        }
    }
    // Drops are counted per record kind, for the whole machine; event 255 reports them.
    let drops: u64 = events
        .iter()
        .filter(|e| e.id == 255)
        .filter_map(|e| e.get("Description"))
        .map(|d| {
            // One clause per cause: `<why>: lost N FileCreate records, …; <why>: lost …`.
            let parts: Vec<&str> = d.split(" FileCreate records").collect();
            parts[..parts.len() - 1]
                .iter()
                .filter_map(|before| before.rsplit(' ').next()?.parse::<u64>().ok())
                .sum::<u64>()
        })
        .sum();
    let got = seen.len();
    let rate = |d: Duration| STORM as f64 / d.as_secs_f64();
    println!(
        "storm (ring {}): {STORM} files in {:.2} s ({:.0}/s; {:.0}/s without the agent); \
         {got} events, {drops} FileCreate drops; all handled after {:.2} s ({:.0} events/s); \
         agent CPU {:.2} s ({:.1} µs/event)",
        ring.unwrap_or("default"),
        storm.as_secs_f64(),
        rate(storm),
        rate(baseline),
        handled.as_secs_f64(),
        got as f64 / handled.as_secs_f64(),
        cpu,
        cpu / got.max(1) as f64 * 1e6,
    );
    println!("agent: {}", stderr.trim());
    assert!(
        got as u64 + drops >= STORM as u64,
        "{} creations neither reported nor counted as dropped",
        STORM as u64 - got as u64 - drops
    );
}

/// Whether the page holding `addr` is in this process's page tables (/proc/self/pagemap
/// bit 63), i.e. whether a probe could read it without faulting it in.
fn page_present(addr: usize) -> bool {
    use std::io::{Read, Seek, SeekFrom};
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as usize;
    let mut f = std::fs::File::open("/proc/self/pagemap").unwrap();
    f.seek(SeekFrom::Start((addr / page * 8) as u64)).unwrap();
    let mut entry = [0u8; 8];
    f.read_exact(&mut entry).unwrap();
    u64::from_le_bytes(entry) >> 63 == 1
}

/// A delete whose name lies in a page the process never touched (a fresh file mapping): the
/// probe at syscall entry cannot read it (it may not fault), the unlink itself faults it in.
/// The name is read again at exit, so the delete is reported with its name, not lost.
#[test]
#[cfg_attr(no_kernel, ignore = "kernel test: needs root, BTF and rsyslogd")]
fn file_delete_of_a_name_in_a_page_not_yet_faulted_in() {
    let Some(_serial) = kernel_test("file_delete_unmapped") else {
        return;
    };
    let (_dir, root) = work_dir("fdelete-fault");
    let target = root.join("target");
    std::fs::write(&target, b"x").unwrap();
    let holder = root.join("name");
    let mut name = target.as_os_str().as_bytes().to_vec();
    name.push(0);
    std::fs::write(&holder, &name).unwrap();
    let config = config_logging(&["FileDelete"]);
    let (events, _) = record_with("fdelete-fault", Some(&config), |_| {
        let f = std::fs::File::open(&holder).unwrap();
        let at = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                4096,
                libc::PROT_READ,
                libc::MAP_PRIVATE,
                std::os::fd::AsRawFd::as_raw_fd(&f),
                0,
            )
        };
        assert_ne!(at, libc::MAP_FAILED);
        assert!(
            !page_present(at as usize),
            "the name's page is not mapped yet"
        );
        assert_eq!(unsafe { libc::unlink(at as *const libc::c_char) }, 0);
        assert!(page_present(at as usize), "the unlink faulted it in");
        unsafe { libc::munmap(at, 4096) };
    });
    let path = target.display().to_string();
    let got = with_target(&events, 23, &path);
    assert_eq!(got.len(), 1, "FileDelete events for {path}");
    assert_eq!(
        got[0].get("ProcessId"),
        Some(std::process::id().to_string().as_str())
    );
}
