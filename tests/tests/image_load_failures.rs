//! ImageLoad (7) cannot be hidden by a call that fails: a library mapped executable by a
//! call that failed after the kernel started it (every way an `mmap(PROT_EXEC)` or an
//! `mprotect(PROT_EXEC)` fails there), then mapped for real, gives its event 7; an
//! `mprotect` that fails part way after making the library executable gives it at once, as
//! does one over a range whose first mapping is not the library, and a mapping made
//! executable by the READ_IMPLIES_EXEC personality without PROT_EXEC.

use std::{path::Path, ptr::null_mut};

use libc::{MAP_ANONYMOUS, MAP_FIXED, MAP_PRIVATE, PROT_EXEC, PROT_NONE, PROT_READ, c_void};
use sysmon_tests::{
    config_logging,
    events::Event,
    fs::{c, library, work_dir},
    kernel_test, record_with, unique,
};

const PAGE: usize = 4096;

/// How a library is first mapped, and what that call must give.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Try {
    /// mmap at an offset that is not page-aligned: EINVAL.
    MisalignedOffset,
    /// mmap of a write-only descriptor: EACCES.
    WriteOnly,
    /// MAP_FIXED_NOREPLACE onto a mapping already there: EEXIST.
    FixedNoReplace,
    /// A length no address space holds: ENOMEM.
    HugeLength,
    /// Under an RLIMIT_AS the mapping would pass: ENOMEM (in a child of its own).
    AddressSpaceLimit,
    /// Opened through a `noexec` mount: EPERM.
    NoexecMount,
    /// Mapped readable through a `noexec` mount, then mprotect(PROT_EXEC): EACCES.
    MprotectNoexec,
    /// mprotect(PROT_EXEC) of the library and the hole after it: ENOMEM, yet the library
    /// is executable (the kernel changed it before it found the hole).
    MprotectPastHole,
    /// mprotect(PROT_EXEC) of an anonymous page and the library after it: succeeds.
    MprotectFromAnon,
    /// mmap(PROT_READ) under the READ_IMPLIES_EXEC personality: executable, no PROT_EXEC.
    ReadImpliesExec,
}

const TRIES: [(Try, i32); 10] = [
    (Try::MisalignedOffset, libc::EINVAL),
    (Try::WriteOnly, libc::EACCES),
    (Try::FixedNoReplace, libc::EEXIST),
    (Try::HugeLength, libc::ENOMEM),
    (Try::AddressSpaceLimit, libc::ENOMEM),
    (Try::NoexecMount, libc::EPERM),
    (Try::MprotectNoexec, libc::EACCES),
    (Try::MprotectPastHole, libc::ENOMEM),
    (Try::MprotectFromAnon, 0),
    (Try::ReadImpliesExec, 0),
];

fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

fn open(p: &Path, flags: i32) -> i32 {
    let fd = unsafe { libc::open(c(p).as_ptr(), flags) };
    assert!(
        fd >= 0,
        "open {}: {}",
        p.display(),
        std::io::Error::last_os_error()
    );
    fd
}

/// mmap's result: the address, or errno.
fn map(addr: usize, len: usize, prot: i32, flags: i32, fd: i32, off: i64) -> Result<usize, i32> {
    let m = unsafe { libc::mmap(addr as *mut c_void, len, prot, flags, fd, off) };
    if m == libc::MAP_FAILED {
        Err(errno())
    } else {
        Ok(m as usize)
    }
}

/// Two pages of address space, inaccessible, for mappings made at a fixed address in them.
fn reserve() -> usize {
    map(0, 2 * PAGE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0).unwrap()
}

/// Whether the page at `addr` is mapped executable, from /proc/self/maps.
fn executable(addr: usize) -> bool {
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
    let line = maps
        .lines()
        .find(|l| {
            let (range, _) = l.split_once(' ').unwrap();
            let (lo, hi) = range.split_once('-').unwrap();
            let (lo, hi) = (
                usize::from_str_radix(lo, 16).unwrap(),
                usize::from_str_radix(hi, 16).unwrap(),
            );
            (lo..hi).contains(&addr)
        })
        .unwrap_or_else(|| panic!("{addr:x} is not mapped"));
    line.split(' ').nth(1).unwrap().contains('x')
}

/// The attempt: its errno (0: it succeeded), whether the library is executable after it,
/// and the process that made it.
fn attempt(t: Try, lib: &Path, noexec: &Path) -> (i32, bool, u32) {
    let me = std::process::id();
    let rx = PROT_READ | PROT_EXEC;
    let fd = open(lib, libc::O_RDONLY);
    let failed = |r: Result<usize, i32>| match r {
        Ok(m) => {
            unsafe { libc::munmap(m as *mut c_void, PAGE) };
            (0, true, me)
        }
        Err(e) => (e, false, me),
    };
    let out = match t {
        Try::MisalignedOffset => failed(map(0, PAGE, rx, MAP_PRIVATE, fd, 100)),
        Try::WriteOnly => {
            let w = open(lib, libc::O_WRONLY);
            let r = failed(map(0, PAGE, rx, MAP_PRIVATE, w, 0));
            unsafe { libc::close(w) };
            r
        }
        Try::FixedNoReplace => {
            let at = reserve();
            let r = failed(map(
                at,
                PAGE,
                rx,
                MAP_PRIVATE | libc::MAP_FIXED_NOREPLACE,
                fd,
                0,
            ));
            unsafe { libc::munmap(at as *mut c_void, 2 * PAGE) };
            r
        }
        Try::HugeLength => failed(map(0, 1 << 47, rx, MAP_PRIVATE, fd, 0)),
        Try::AddressSpaceLimit => limited_child(fd),
        Try::NoexecMount => {
            let n = open(noexec, libc::O_RDONLY);
            let r = failed(map(0, PAGE, rx, MAP_PRIVATE, n, 0));
            unsafe { libc::close(n) };
            r
        }
        Try::MprotectNoexec => {
            let n = open(noexec, libc::O_RDONLY);
            let m = map(0, PAGE, PROT_READ, MAP_PRIVATE, n, 0).unwrap();
            let rc = unsafe { libc::mprotect(m as *mut c_void, PAGE, rx) };
            let r = (if rc == 0 { 0 } else { errno() }, executable(m), me);
            unsafe { libc::munmap(m as *mut c_void, PAGE) };
            unsafe { libc::close(n) };
            r
        }
        Try::MprotectPastHole => {
            let at = reserve();
            map(at, PAGE, PROT_READ, MAP_PRIVATE | MAP_FIXED, fd, 0).unwrap();
            unsafe { libc::munmap((at + PAGE) as *mut c_void, PAGE) };
            let rc = unsafe { libc::mprotect(at as *mut c_void, 2 * PAGE, rx) };
            let r = (if rc == 0 { 0 } else { errno() }, executable(at), me);
            unsafe { libc::munmap(at as *mut c_void, PAGE) };
            r
        }
        Try::ReadImpliesExec => {
            const READ_IMPLIES_EXEC: libc::c_ulong = 0x0400000;
            // This thread's personality only; put back after.
            let was = unsafe { libc::personality(0xffff_ffff) };
            unsafe { libc::personality(was as libc::c_ulong | READ_IMPLIES_EXEC) };
            let r = map(0, PAGE, PROT_READ, MAP_PRIVATE, fd, 0);
            unsafe { libc::personality(was as libc::c_ulong) };
            let m = r.unwrap();
            let r = (0, executable(m), me);
            unsafe { libc::munmap(m as *mut c_void, PAGE) };
            r
        }
        Try::MprotectFromAnon => {
            let at = reserve();
            map(
                at,
                PAGE,
                PROT_READ,
                MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED,
                -1,
                0,
            )
            .unwrap();
            map(at + PAGE, PAGE, PROT_READ, MAP_PRIVATE | MAP_FIXED, fd, 0).unwrap();
            let rc = unsafe { libc::mprotect(at as *mut c_void, 2 * PAGE, rx) };
            let r = (if rc == 0 { 0 } else { errno() }, executable(at + PAGE), me);
            unsafe { libc::munmap(at as *mut c_void, 2 * PAGE) };
            r
        }
    };
    unsafe { libc::close(fd) };
    out
}

/// A child that maps `fd` executable under an RLIMIT_AS of one byte (ENOMEM), lifts the
/// limit and maps it again (the real load). Its exit code says what failed.
fn limited_child(fd: i32) -> (i32, bool, u32) {
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        // Only async-signal-safe calls here: the test has threads.
        unsafe {
            let mut lim: libc::rlimit = std::mem::zeroed();
            libc::getrlimit(libc::RLIMIT_AS, &mut lim);
            let low = libc::rlimit {
                rlim_cur: 1,
                rlim_max: lim.rlim_max,
            };
            libc::setrlimit(libc::RLIMIT_AS, &low);
            let m = libc::mmap(null_mut(), PAGE, PROT_READ | PROT_EXEC, MAP_PRIVATE, fd, 0);
            let code = if m != libc::MAP_FAILED {
                1
            } else if *libc::__errno_location() != libc::ENOMEM {
                2
            } else {
                libc::setrlimit(libc::RLIMIT_AS, &lim);
                let m = libc::mmap(null_mut(), PAGE, PROT_READ | PROT_EXEC, MAP_PRIVATE, fd, 0);
                if m == libc::MAP_FAILED { 3 } else { 0 }
            };
            libc::_exit(code);
        }
    }
    let mut status = 0;
    assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
    let code = libc::WEXITSTATUS(status);
    assert!(
        libc::WIFEXITED(status) && code == 0,
        "RLIMIT_AS child: exit {code} ({status:#x})"
    );
    // The child has made both calls: the failed one (ENOMEM) and the real load.
    (libc::ENOMEM, true, pid as u32)
}

/// In a mount namespace of this thread's own: `exec` bind-mounted at `noexec`, noexec.
fn noexec_view(exec: &Path, noexec: &Path) {
    let rc = unsafe { libc::unshare(libc::CLONE_NEWNS) };
    assert_eq!(rc, 0, "unshare: {}", std::io::Error::last_os_error());
    let mount = |src: Option<&Path>, dst: &Path, flags: libc::c_ulong| {
        let src = src.map(c);
        let rc = unsafe {
            libc::mount(
                src.as_ref().map_or(std::ptr::null(), |s| s.as_ptr()),
                c(dst).as_ptr(),
                std::ptr::null(),
                flags,
                std::ptr::null(),
            )
        };
        assert_eq!(
            rc,
            0,
            "mount {}: {}",
            dst.display(),
            std::io::Error::last_os_error()
        );
    };
    mount(None, Path::new("/"), libc::MS_REC | libc::MS_PRIVATE);
    mount(Some(exec), noexec, libc::MS_BIND);
    mount(
        None,
        noexec,
        libc::MS_REMOUNT | libc::MS_BIND | libc::MS_NOEXEC,
    );
}

fn loads<'a>(events: &'a [Event], name: &str) -> Vec<&'a Event> {
    events
        .iter()
        .filter(|e| e.id == 7)
        .filter(|e| e.get("ImageLoaded").is_some_and(|p| p.ends_with(name)))
        .collect()
}

#[test]
#[cfg_attr(no_kernel, ignore = "kernel test: needs root, BTF and rsyslogd")]
fn a_failed_executable_mapping_hides_no_later_image_load() {
    let Some(_serial) = kernel_test("image_load_failures") else {
        return;
    };
    let (_dir, root) = work_dir("imgfail");
    let (exec, noexec) = (root.join("x"), root.join("nx"));
    std::fs::create_dir(&exec).unwrap();
    std::fs::create_dir(&noexec).unwrap();
    let libz = library("libz.so.1");
    let token = unique();
    let names: Vec<String> = TRIES
        .iter()
        .map(|(t, _)| format!("lib{t:?}-{token}.so"))
        .collect();
    for n in &names {
        std::fs::copy(&libz, exec.join(n)).unwrap();
    }
    let config = config_logging(&["ImageLoad"]);
    let mut pids = Vec::new();
    let (events, _) = record_with("imgfail", Some(&config), |_| {
        pids = std::thread::scope(|s| {
            s.spawn(|| {
                noexec_view(&exec, &noexec);
                let mut pids = Vec::new();
                for ((t, want), name) in TRIES.iter().zip(&names) {
                    let lib = exec.join(name);
                    let (got, executable, pid) = attempt(*t, &lib, &noexec.join(name));
                    assert_eq!(got, *want, "{t:?}: errno");
                    // Nothing but a mapping of the library made it executable.
                    let expect_exec = matches!(
                        t,
                        Try::MprotectPastHole
                            | Try::MprotectFromAnon
                            | Try::AddressSpaceLimit
                            | Try::ReadImpliesExec
                    );
                    assert_eq!(executable, expect_exec, "{t:?}: executable after the call");
                    if !executable {
                        // The real load.
                        let fd = open(&lib, libc::O_RDONLY);
                        let m = map(0, PAGE, PROT_READ | PROT_EXEC, MAP_PRIVATE, fd, 0).unwrap();
                        unsafe { libc::munmap(m as *mut c_void, PAGE) };
                        unsafe { libc::close(fd) };
                    }
                    pids.push(pid);
                }
                pids
            })
            .join()
            .unwrap()
        });
    });
    let mut hidden = Vec::new();
    for (((t, _), name), pid) in TRIES.iter().zip(&names).zip(&pids) {
        let got = loads(&events, name);
        if got.is_empty() {
            hidden.push(*t);
            continue;
        }
        assert_eq!(got.len(), 1, "{t:?}: {got:#?}");
        let want_path = exec.join(name).display().to_string();
        assert_eq!(got[0].get("ImageLoaded"), Some(want_path.as_str()), "{t:?}");
        assert_eq!(
            got[0].get("ProcessId"),
            Some(pid.to_string().as_str()),
            "{t:?}"
        );
    }
    assert!(hidden.is_empty(), "image loads hidden after: {hidden:?}");
}
