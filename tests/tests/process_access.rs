//! ProcessAccess (10), CreateRemoteThread (8) and ProcessTampering (25) end to end: real
//! ptrace, process_vm_readv/writev, /proc/<pid>/mem and fexecve calls against children of
//! this test, the agent binary, a real rsyslogd. Each test finds its events by its own pids.

use std::{
    ffi::CString,
    os::unix::ffi::OsStrExt,
    path::Path,
    sync::atomic::{AtomicU64, Ordering},
    time::{Instant, SystemTime, UNIX_EPOCH},
};

use sysmon_tests::{Session, events::Event, guids_of, kernel_test, rsyslog::wait_for, unique};

/// A word in this binary's data segment (file-backed, so /proc/<pid>/maps names the binary
/// there): children forked from the test have it at the same address.
static WORD: AtomicU64 = AtomicU64::new(0x5eed_5eed);
/// A second one, for rules that tell two written addresses apart.
static OTHER_WORD: AtomicU64 = AtomicU64::new(0x0dd5_0dd5);

/// Where SETREGS points a child's instruction pointer: code in this binary.
#[inline(never)]
extern "C" fn landing() {
    WORD.fetch_add(1, Ordering::Relaxed);
}

const NOBODY: u32 = 65534;
/// ptrace's pointer-sized arguments: a plain `0` would be passed as 32 bits.
const NULL: *mut libc::c_void = std::ptr::null_mut();
const NT_PRSTATUS: usize = 1;

fn all_on() -> String {
    r#"<Sysmon schemaversion="4.81">
  <EventFiltering>
    <ProcessAccess onmatch="exclude"/>
    <CreateRemoteThread onmatch="exclude"/>
    <ProcessTampering onmatch="exclude"/>
  </EventFiltering>
</Sysmon>"#
        .to_string()
}

fn addr_of(w: &AtomicU64) -> u64 {
    w as *const AtomicU64 as u64
}

fn me() -> String {
    std::env::current_exe().unwrap().display().to_string()
}

fn gettid() -> u32 {
    unsafe { libc::gettid() as u32 }
}

/// Wall-clock milliseconds of a `YYYY-MM-DD HH:MM:SS.mmm` UtcTime.
fn utc_ms(s: &str) -> i64 {
    let n = |r: std::ops::Range<usize>| -> i64 { s[r].parse().unwrap() };
    let (y, m, d) = (n(0..4), n(5..7), n(8..10));
    // Days from civil (Howard Hinnant).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let days = era * 146097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719468;
    ((days * 86400 + n(11..13) * 3600 + n(14..16) * 60 + n(17..19)) * 1000) + n(20..23)
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// A forked child that waits (in pause) to be traced or read; killed on drop.
struct Child {
    pid: i32,
    guids: Vec<String>,
}

impl Child {
    fn spawn() -> Child {
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            loop {
                unsafe { libc::pause() };
            }
        }
        assert!(pid > 0);
        Child {
            pid,
            guids: guids_of(pid),
        }
    }

    fn attach(&self) {
        let rc = unsafe { libc::ptrace(libc::PTRACE_ATTACH, self.pid, NULL, NULL) };
        assert_eq!(rc, 0, "attach: {}", std::io::Error::last_os_error());
        let mut status = 0;
        assert_eq!(unsafe { libc::waitpid(self.pid, &mut status, 0) }, self.pid);
        assert!(libc::WIFSTOPPED(status));
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        unsafe {
            libc::kill(self.pid, libc::SIGKILL);
            libc::waitpid(self.pid, std::ptr::null_mut(), libc::__WALL);
        }
    }
}

/// What a tracer in its own process reports: (tracer pid, tracer tid, target pid, ptrace's
/// return value, errno).
type Report = [i64; 5];

/// A process that, as `uid` (root when `None`), ptraces `target` (or a child of its own
/// when `None`) with `request`, reports, then waits to be released so that its events can
/// be read while it and its target still run.
struct Tracer {
    pid: i32,
    release: i32,
    report: Report,
    guids: Vec<String>,
    target_guids: Vec<String>,
}

impl Tracer {
    fn run(uid: Option<u32>, target: Option<i32>, request: libc::c_uint) -> Tracer {
        let (mut up, mut down) = ([0; 2], [0; 2]);
        unsafe {
            assert_eq!(libc::pipe(up.as_mut_ptr()), 0);
            assert_eq!(libc::pipe(down.as_mut_ptr()), 0);
        }
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            // Only async-signal-safe calls from here on: the test has threads.
            unsafe {
                if let Some(uid) = uid {
                    libc::setgid(uid);
                    libc::setuid(uid);
                    // A changed uid makes the process undumpable, which no tracer but
                    // root may attach to; its children inherit this.
                    libc::prctl(libc::PR_SET_DUMPABLE, 1);
                }
                let own = target.is_none();
                let target = match target {
                    Some(t) => t,
                    None => match libc::fork() {
                        0 => loop {
                            libc::pause();
                        },
                        t => t,
                    },
                };
                // Let the parent read the target's start time before anything happens.
                let mut report: Report = [
                    libc::getpid() as i64,
                    libc::gettid() as i64,
                    target as i64,
                    0,
                    0,
                ];
                libc::write(up[1], report.as_ptr().cast(), size_of::<Report>());
                let mut b = 0u8;
                libc::read(down[0], (&raw mut b).cast(), 1);
                let rc = libc::ptrace(request, target, NULL, NULL);
                report[3] = rc;
                report[4] = *libc::__errno_location() as i64;
                libc::write(up[1], report.as_ptr().cast(), size_of::<Report>());
                libc::read(down[0], (&raw mut b).cast(), 1);
                if own {
                    libc::kill(target, libc::SIGKILL);
                }
                libc::_exit(0);
            }
        }
        let read_report = || {
            let mut r: Report = [0; 5];
            let n = unsafe { libc::read(up[0], r.as_mut_ptr().cast(), size_of::<Report>()) };
            assert_eq!(n as usize, size_of::<Report>());
            r
        };
        let first = read_report();
        let guids = guids_of(pid);
        let target_guids = guids_of(first[2] as i32);
        unsafe { libc::write(down[1], [1u8].as_ptr().cast(), 1) };
        let report = read_report();
        unsafe {
            libc::close(up[0]);
            libc::close(up[1]);
            libc::close(down[0]);
        }
        Tracer {
            pid,
            release: down[1],
            report,
            guids,
            target_guids,
        }
    }
}

impl Drop for Tracer {
    fn drop(&mut self) {
        unsafe {
            libc::write(self.release, [1u8].as_ptr().cast(), 1);
            libc::close(self.release);
            libc::waitpid(self.pid, std::ptr::null_mut(), 0);
        }
    }
}

fn of_id(events: &[Event], id: u16, target: i32) -> Vec<&Event> {
    let t = target.to_string();
    events
        .iter()
        .filter(|e| e.id == id && e.get("TargetProcessId") == Some(t.as_str()))
        .collect()
}

/// Events of the running session so far.
fn so_far(s: &Session) -> Vec<Event> {
    sysmon_tests::events::parse_lines(&s.syslog.lines())
        .into_iter()
        .filter(|e| e.agent_pid == s.agent.pid)
        .collect()
}

/// Waits until the agent has written `n` events of `id` about `target`.
fn wait_events(s: &Session, id: u16, target: i32, n: usize) {
    wait_for(
        || of_id(&so_far(s), id, target).len() >= n,
        &format!("{n} events {id} about pid {target}"),
    );
}

/// What an event 10 must say; every field is checked.
struct Access<'a> {
    source: (i32, u32, &'a [String]),
    target: (i32, &'a [String]),
    granted: &'a str,
    users: (&'a str, &'a str),
    window: (i64, i64),
}

fn check_access(e: &Event, want: &Access, label: &str) {
    let image = me();
    let fields: Vec<&str> = e.data.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        fields,
        [
            "RuleName",
            "UtcTime",
            "SourceProcessGUID",
            "SourceProcessId",
            "SourceThreadId",
            "SourceImage",
            "TargetProcessGUID",
            "TargetProcessId",
            "TargetImage",
            "GrantedAccess",
            "CallTrace",
            "SourceUser",
            "TargetUser",
            "ContainerId",
            "ContainerName",
            "ContainerImage",
            "ContainerRuntime",
            "PodName",
            "PodNamespace",
        ],
        "{label}"
    );
    assert_eq!(e.get("RuleName"), Some("-"), "{label}");
    let t = utc_ms(e.get("UtcTime").unwrap());
    assert!(
        want.window.0 - 1 <= t && t <= want.window.1 + 1,
        "{label}: UtcTime {t} outside {:?}",
        want.window
    );
    let g = e.get("SourceProcessGUID").unwrap().to_string();
    assert!(want.source.2.contains(&g), "{label}: source GUID {g}");
    assert_eq!(
        e.get("SourceProcessId"),
        Some(want.source.0.to_string().as_str()),
        "{label}"
    );
    assert_eq!(
        e.get("SourceThreadId"),
        Some(want.source.1.to_string().as_str()),
        "{label}"
    );
    assert_eq!(e.get("SourceImage"), Some(image.as_str()), "{label}");
    let g = e.get("TargetProcessGUID").unwrap().to_string();
    assert!(want.target.1.contains(&g), "{label}: target GUID {g}");
    assert_eq!(
        e.get("TargetProcessId"),
        Some(want.target.0.to_string().as_str()),
        "{label}"
    );
    assert_eq!(e.get("TargetImage"), Some(image.as_str()), "{label}");
    assert_eq!(e.get("GrantedAccess"), Some(want.granted), "{label}");
    assert_eq!(e.get("CallTrace"), Some("-"), "{label}");
    assert_eq!(e.get("SourceUser"), Some(want.users.0), "{label}");
    assert_eq!(e.get("TargetUser"), Some(want.users.1), "{label}");
}

/// What an event 8 must say; every field is checked.
struct Remote<'a> {
    source: (i32, &'a [String]),
    target: (i32, &'a [String]),
    start: u64,
    window: (i64, i64),
}

fn check_remote(e: &Event, want: &Remote, label: &str) {
    let image = me();
    let fields: Vec<&str> = e.data.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        fields,
        [
            "RuleName",
            "UtcTime",
            "SourceProcessGuid",
            "SourceProcessId",
            "SourceImage",
            "TargetProcessGuid",
            "TargetProcessId",
            "TargetImage",
            "NewThreadId",
            "StartAddress",
            "StartModule",
            "StartFunction",
            "SourceUser",
            "TargetUser",
            "ContainerId",
            "ContainerName",
            "ContainerImage",
            "ContainerRuntime",
            "PodName",
            "PodNamespace",
        ],
        "{label}"
    );
    assert_eq!(e.get("RuleName"), Some("-"), "{label}");
    let t = utc_ms(e.get("UtcTime").unwrap());
    assert!(
        want.window.0 - 1 <= t && t <= want.window.1 + 1,
        "{label}: UtcTime"
    );
    let g = e.get("SourceProcessGuid").unwrap().to_string();
    assert!(want.source.1.contains(&g), "{label}: source GUID {g}");
    assert_eq!(
        e.get("SourceProcessId"),
        Some(want.source.0.to_string().as_str()),
        "{label}"
    );
    assert_eq!(e.get("SourceImage"), Some(image.as_str()), "{label}");
    let g = e.get("TargetProcessGuid").unwrap().to_string();
    assert!(want.target.1.contains(&g), "{label}: target GUID {g}");
    let target = want.target.0.to_string();
    assert_eq!(e.get("TargetProcessId"), Some(target.as_str()), "{label}");
    assert_eq!(e.get("TargetImage"), Some(image.as_str()), "{label}");
    assert_eq!(e.get("NewThreadId"), Some(target.as_str()), "{label}");
    let start = format!("0x{:016X}", want.start);
    assert_eq!(e.get("StartAddress"), Some(start.as_str()), "{label}");
    assert_eq!(e.get("StartModule"), Some(image.as_str()), "{label}");
    assert_eq!(e.get("StartFunction"), Some("-"), "{label}");
    assert_eq!(e.get("SourceUser"), Some("root"), "{label}");
    assert_eq!(e.get("TargetUser"), Some("root"), "{label}");
}

#[test]
#[cfg_attr(no_kernel, ignore = "kernel test: needs root, BTF and rsyslogd")]
fn ptrace_attach_and_seize_give_process_access_and_a_failed_attach_none() {
    let Some(_serial) = kernel_test("ptrace_attach") else {
        return;
    };
    let s = Session::start("ptrace-attach", Some(&all_on()));
    let t0 = now_ms();
    // (label, tracer uid, request)
    let cases: &[(&str, Option<u32>, libc::c_uint)] = &[
        ("attach by nobody", Some(NOBODY), libc::PTRACE_ATTACH),
        ("seize by nobody", Some(NOBODY), libc::PTRACE_SEIZE),
        ("attach by root", None, libc::PTRACE_ATTACH),
        ("seize by root", None, libc::PTRACE_SEIZE),
    ];
    let tracers: Vec<Tracer> = cases
        .iter()
        .map(|(_, uid, req)| Tracer::run(*uid, None, *req))
        .collect();
    // nobody may not trace a root process: refused, no event.
    let root_child = Child::spawn();
    let refused = Tracer::run(Some(NOBODY), Some(root_child.pid), libc::PTRACE_ATTACH);
    assert_eq!(refused.report[3], -1, "the attach must fail");
    assert_eq!(refused.report[4], libc::EPERM as i64);
    for t in &tracers {
        assert_eq!(t.report[3], 0, "ptrace failed: errno {}", t.report[4]);
        wait_events(&s, 10, t.report[2] as i32, 1);
    }
    let t1 = now_ms();
    let events = so_far(&s);
    for ((label, uid, _), t) in cases.iter().zip(&tracers) {
        let got = of_id(&events, 10, t.report[2] as i32);
        assert_eq!(got.len(), 1, "{label}: {got:?}");
        let user = if uid.is_some() { "nobody" } else { "root" };
        check_access(
            got[0],
            &Access {
                source: (t.report[0] as i32, t.report[1] as u32, &t.guids),
                target: (t.report[2] as i32, &t.target_guids),
                granted: "0x0",
                users: (user, user),
                window: (t0, t1),
            },
            label,
        );
        assert!(
            of_id(&events, 8, t.report[2] as i32).is_empty(),
            "{label}: no event 8"
        );
    }
    drop(tracers);
    drop(refused);
    let (events, _) = s.stop();
    assert!(
        of_id(&events, 10, root_child.pid).is_empty(),
        "a refused attach gives no event"
    );
}

/// One access from this test (root) to a fresh child.
enum Act {
    VmRead,
    VmWrite,
    MemOpen(i32),
    PeekThousand,
}

fn act(child: &Child, what: &Act) -> Option<f64> {
    let mut buf: u64 = if let Act::VmWrite = what { 7 } else { 0 };
    let local = libc::iovec {
        iov_base: (&raw mut buf).cast(),
        iov_len: 8,
    };
    let remote = libc::iovec {
        iov_base: addr_of(&WORD) as *mut _,
        iov_len: 8,
    };
    match what {
        Act::VmRead => {
            let n = unsafe { libc::process_vm_readv(child.pid, &local, 1, &remote, 1, 0) };
            assert_eq!(n, 8, "readv: {}", std::io::Error::last_os_error());
            assert_eq!(buf, 0x5eed_5eed);
        }
        Act::VmWrite => {
            let n = unsafe { libc::process_vm_writev(child.pid, &local, 1, &remote, 1, 0) };
            assert_eq!(n, 8, "writev: {}", std::io::Error::last_os_error());
        }
        Act::MemOpen(flags) => {
            let p = CString::new(format!("/proc/{}/mem", child.pid)).unwrap();
            let fd = unsafe { libc::open(p.as_ptr(), *flags) };
            assert!(fd >= 0, "open mem: {}", std::io::Error::last_os_error());
            unsafe { libc::close(fd) };
        }
        Act::PeekThousand => {
            child.attach();
            let start = Instant::now();
            for _ in 0..1000 {
                unsafe { *libc::__errno_location() = 0 };
                let v =
                    unsafe { libc::ptrace(libc::PTRACE_PEEKDATA, child.pid, addr_of(&WORD), NULL) };
                assert_eq!(v, 0x5eed_5eed, "peek");
            }
            return Some(start.elapsed().as_secs_f64());
        }
    }
    None
}

#[test]
#[cfg_attr(no_kernel, ignore = "kernel test: needs root, BTF and rsyslogd")]
fn process_vm_and_proc_mem_and_peeks_give_process_access_once_a_second() {
    let Some(_serial) = kernel_test("process_vm") else {
        return;
    };
    let s = Session::start("process-vm", Some(&all_on()));
    let t0 = now_ms();
    // (label, action, GrantedAccess of the one event 10, event 8)
    let cases = [
        ("process_vm_readv", Act::VmRead, "0x10", false),
        ("process_vm_writev", Act::VmWrite, "0x20", true),
        (
            "/proc/pid/mem read",
            Act::MemOpen(libc::O_RDONLY),
            "0x10",
            false,
        ),
        (
            "/proc/pid/mem write",
            Act::MemOpen(libc::O_WRONLY),
            "0x20",
            false,
        ),
        (
            "/proc/pid/mem read-write",
            Act::MemOpen(libc::O_RDWR),
            "0x30",
            false,
        ),
        ("1000 PTRACE_PEEKDATA", Act::PeekThousand, "0x10", false),
    ];
    let children: Vec<Child> = cases.iter().map(|_| Child::spawn()).collect();
    let mut peek_secs = 0.0;
    for ((_, what, _, _), child) in cases.iter().zip(&children) {
        if let Some(secs) = act(child, what) {
            peek_secs = secs;
        }
    }
    // Its own memory is no other process's: no event.
    let own = CString::new("/proc/self/mem").unwrap();
    let fd = unsafe { libc::open(own.as_ptr(), libc::O_RDONLY) };
    assert!(fd >= 0);
    unsafe { libc::close(fd) };
    for ((_, _, _, remote), child) in cases.iter().zip(&children) {
        wait_events(&s, 10, child.pid, 1);
        if *remote {
            wait_events(&s, 8, child.pid, 1);
        }
    }
    let t1 = now_ms();
    let me_pid = std::process::id() as i32;
    let my_guids = guids_of(me_pid);
    let events = so_far(&s);
    for ((label, what, granted, remote), child) in cases.iter().zip(&children) {
        let got = of_id(&events, 10, child.pid);
        let want = Access {
            source: (me_pid, gettid(), &my_guids),
            target: (child.pid, &child.guids),
            granted,
            users: ("root", "root"),
            window: (t0, t1),
        };
        if let Act::PeekThousand = what {
            // The attach, then the peeks: one event each however many peeks, unless the
            // loop itself took longer than the once-a-second limit.
            let peeks: Vec<_> = got
                .iter()
                .filter(|e| e.get("GrantedAccess") == Some("0x10"))
                .collect();
            let most = 1 + peek_secs.floor() as usize;
            assert!(
                !peeks.is_empty() && peeks.len() <= most,
                "{label}: {} events",
                peeks.len()
            );
            check_access(peeks[0], &want, label);
            let attach: Vec<_> = got
                .iter()
                .filter(|e| e.get("GrantedAccess") == Some("0x0"))
                .collect();
            assert_eq!(attach.len(), 1, "{label}: the attach");
            check_access(
                attach[0],
                &Access {
                    granted: "0x0",
                    ..want
                },
                label,
            );
            continue;
        }
        assert_eq!(got.len(), 1, "{label}: {got:?}");
        check_access(got[0], &want, label);
        let remote_events = of_id(&events, 8, child.pid);
        assert_eq!(remote_events.len(), *remote as usize, "{label}: event 8");
        if *remote {
            check_remote(
                remote_events[0],
                &Remote {
                    source: (me_pid, &my_guids),
                    target: (child.pid, &child.guids),
                    start: addr_of(&WORD),
                    window: (t0, t1),
                },
                label,
            );
        }
    }
    drop(children);
    let (events, _) = s.stop();
    assert!(
        of_id(&events, 10, me_pid).is_empty(),
        "no event for its own memory"
    );
}

#[test]
#[cfg_attr(no_kernel, ignore = "kernel test: needs root, BTF and rsyslogd")]
fn every_thread_of_a_process_is_that_process_once_a_second() {
    let Some(_serial) = kernel_test("access_threads") else {
        return;
    };
    let s = Session::start("access-threads", Some(&all_on()));
    let t0 = now_ms();
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        // glibc's fork leaves malloc usable, so the child may start threads.
        for _ in 0..3 {
            std::thread::spawn(|| {
                loop {
                    unsafe { libc::pause() };
                }
            });
        }
        loop {
            unsafe { libc::pause() };
        }
    }
    let child = Child {
        pid,
        guids: guids_of(pid),
    };
    let tids = || -> Vec<i32> {
        std::fs::read_dir(format!("/proc/{pid}/task"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_str().unwrap().parse().unwrap())
            .collect()
    };
    wait_for(|| tids().len() == 4, "the child's threads");
    let mut tids = tids();
    tids.sort_by_key(|t| (*t == pid, *t)); // threads first, the leader last
    for tid in &tids {
        let mut buf = 0u64;
        let local = libc::iovec {
            iov_base: (&raw mut buf).cast(),
            iov_len: 8,
        };
        let remote = libc::iovec {
            iov_base: addr_of(&WORD) as *mut _,
            iov_len: 8,
        };
        assert_eq!(
            unsafe { libc::process_vm_readv(*tid, &local, 1, &remote, 1, 0) },
            8
        );
        let rc = unsafe { libc::ptrace(libc::PTRACE_SEIZE, *tid, NULL, NULL) };
        assert_eq!(rc, 0, "seize {tid}: {}", std::io::Error::last_os_error());
    }
    wait_events(&s, 10, pid, 2);
    let t1 = now_ms();
    let me_pid = std::process::id() as i32;
    let my_guids = guids_of(me_pid);
    let (events, _) = s.stop();
    let mut got = of_id(&events, 10, pid);
    got.sort_by_key(|e| e.get("GrantedAccess").unwrap().to_string());
    assert_eq!(
        got.len(),
        2,
        "one read and one attach for four threads: {got:?}"
    );
    for (e, granted) in got.iter().zip(["0x0", "0x10"]) {
        check_access(
            e,
            &Access {
                source: (me_pid, gettid(), &my_guids),
                target: (pid, &child.guids),
                granted,
                users: ("root", "root"),
                window: (t0, t1),
            },
            granted,
        );
    }
    let tids: Vec<String> = tids.iter().map(|t| t.to_string()).collect();
    assert!(
        events
            .iter()
            .filter(|e| e.id == 10)
            .all(|e| !tids[..3].contains(&e.get("TargetProcessId").unwrap().to_string())),
        "no thread id as TargetProcessId"
    );
    // Traced threads stay zombies until their tracer (this thread) reaps each one.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    for tid in &tids {
        unsafe { libc::waitpid(tid.parse().unwrap(), std::ptr::null_mut(), libc::__WALL) };
    }
    drop(child);
}

#[cfg(target_arch = "x86_64")]
#[test]
#[cfg_attr(no_kernel, ignore = "kernel test: needs root, BTF and rsyslogd")]
fn pokes_and_new_instruction_pointers_give_create_remote_thread() {
    let Some(_serial) = kernel_test("remote_thread") else {
        return;
    };
    let s = Session::start("remote-thread", Some(&all_on()));
    let t0 = now_ms();
    let landing_at = landing as *const () as u64;
    type Poke = fn(i32, u64);
    fn poke(pid: i32, _: u64) {
        let rc = unsafe { libc::ptrace(libc::PTRACE_POKEDATA, pid, addr_of(&WORD), 0x77u64) };
        assert_eq!(rc, 0, "poke: {}", std::io::Error::last_os_error());
    }
    fn setregs(pid: i32, ip: u64) {
        let mut regs: libc::user_regs_struct = unsafe { std::mem::zeroed() };
        unsafe {
            assert_eq!(libc::ptrace(libc::PTRACE_GETREGS, pid, NULL, &mut regs), 0);
            regs.rip = ip;
            assert_eq!(libc::ptrace(libc::PTRACE_SETREGS, pid, NULL, &regs), 0);
        }
    }
    fn setregset(pid: i32, ip: u64) {
        let mut regs: libc::user_regs_struct = unsafe { std::mem::zeroed() };
        let mut iov = libc::iovec {
            iov_base: (&raw mut regs).cast(),
            iov_len: size_of::<libc::user_regs_struct>(),
        };
        unsafe {
            assert_eq!(
                libc::ptrace(libc::PTRACE_GETREGSET, pid, NT_PRSTATUS, &mut iov),
                0
            );
            (*iov.iov_base.cast::<libc::user_regs_struct>()).rip = ip;
            assert_eq!(
                libc::ptrace(libc::PTRACE_SETREGSET, pid, NT_PRSTATUS, &iov),
                0
            );
        }
    }
    // A write then, within the second, a new instruction pointer on the same target: two
    // events 8, the write cannot take the slot of the control-flow change.
    fn poke_then_setregs(pid: i32, ip: u64) {
        poke(pid, ip);
        setregs(pid, ip);
    }
    fn writev_then_setregset(pid: i32, ip: u64) {
        let mut value = 0x99u64;
        let local = libc::iovec {
            iov_base: (&raw mut value).cast(),
            iov_len: 8,
        };
        let remote = libc::iovec {
            iov_base: addr_of(&WORD) as *mut libc::c_void,
            iov_len: 8,
        };
        let n = unsafe { libc::process_vm_writev(pid, &local, 1, &remote, 1, 0) };
        assert_eq!(n, 8, "writev: {}", std::io::Error::last_os_error());
        setregset(pid, ip);
    }
    let (word, land) = (addr_of(&WORD), landing_at);
    // (label, what it does to an attached child, StartAddress of each event 8 in order,
    // GrantedAccess of the events 10 besides the attach's)
    let cases: [(&str, Poke, &[u64], &[&str]); 5] = [
        ("PTRACE_POKEDATA", poke as Poke, &[word], &["0x20"]),
        ("PTRACE_SETREGS", setregs, &[land], &[]),
        ("PTRACE_SETREGSET", setregset, &[land], &[]),
        (
            "POKEDATA, then SETREGS",
            poke_then_setregs,
            &[word, land],
            &["0x20"],
        ),
        (
            "process_vm_writev, then SETREGSET",
            writev_then_setregset,
            &[word, land],
            &["0x20"],
        ),
    ];
    let children: Vec<Child> = cases.iter().map(|_| Child::spawn()).collect();
    for ((_, f, _, _), child) in cases.iter().zip(&children) {
        child.attach();
        f(child.pid, landing_at);
    }
    for ((_, _, starts, _), child) in cases.iter().zip(&children) {
        wait_events(&s, 8, child.pid, starts.len());
    }
    let t1 = now_ms();
    let me_pid = std::process::id() as i32;
    let my_guids = guids_of(me_pid);
    let (events, _) = s.stop();
    for ((label, _, starts, access), child) in cases.iter().zip(&children) {
        let got = of_id(&events, 8, child.pid);
        assert_eq!(got.len(), starts.len(), "{label}: {got:#?}");
        for (e, start) in got.iter().zip(starts.iter()) {
            check_remote(
                e,
                &Remote {
                    source: (me_pid, &my_guids),
                    target: (child.pid, &child.guids),
                    start: *start,
                    window: (t0, t1),
                },
                label,
            );
        }
        let mut granted: Vec<&str> = of_id(&events, 10, child.pid)
            .iter()
            .map(|e| e.get("GrantedAccess").unwrap())
            .collect();
        granted.sort();
        let mut want = vec!["0x0"];
        want.extend(access.iter());
        assert_eq!(granted, want, "{label}: events 10");
    }
    drop(children);
}

/// Copies /bin/true's bytes into `fd`.
fn write_true(fd: i32) {
    let bytes = std::fs::read("/bin/true").unwrap();
    let n = unsafe { libc::write(fd, bytes.as_ptr().cast(), bytes.len()) };
    assert_eq!(n as usize, bytes.len());
}

/// Forks a child that opens `open` read-only, closes `close` and any write access, unlinks
/// `unlink` if set, then fexecve()s the descriptor with `argv`; returns its pid after it
/// ended, and whether the exec worked.
fn fexecve_child(
    open: &CString,
    close: i32,
    unlink: Option<&CString>,
    argv: &[CString],
) -> (i32, bool) {
    let args: Vec<*const libc::c_char> = argv
        .iter()
        .map(|a| a.as_ptr())
        .chain([std::ptr::null()])
        .collect();
    let env: [*const libc::c_char; 1] = [std::ptr::null()];
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        unsafe {
            let fd = libc::open(open.as_ptr(), libc::O_RDONLY);
            if close >= 0 {
                libc::close(close);
            }
            if let Some(u) = unlink {
                libc::unlink(u.as_ptr());
            }
            libc::fexecve(fd, args.as_ptr(), env.as_ptr());
            libc::_exit(127);
        }
    }
    let mut status = 0;
    unsafe { libc::waitpid(pid, &mut status, 0) };
    (
        pid,
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
    )
}

/// A memfd holding /bin/true, named `name`: (its fd, a path that opens it read-only).
fn memfd_true(name: &str) -> (i32, CString) {
    let n = CString::new(name).unwrap();
    let fd = unsafe { libc::memfd_create(n.as_ptr(), 0) };
    assert!(fd >= 0);
    write_true(fd);
    (fd, CString::new(format!("/proc/self/fd/{fd}")).unwrap())
}

/// /bin/true copied to `path` (executable).
fn file_true(path: &Path) -> CString {
    std::fs::copy("/bin/true", path).unwrap();
    CString::new(path.as_os_str().as_bytes()).unwrap()
}

#[test]
#[cfg_attr(no_kernel, ignore = "kernel test: needs root, BTF and rsyslogd")]
fn memfd_and_deleted_file_execs_give_process_tampering_besides_process_create() {
    let Some(_serial) = kernel_test("tampering") else {
        return;
    };
    let token = unique();
    let s = Session::start("tampering", Some(&all_on()));
    let dir = std::fs::canonicalize(&s.dir.0).unwrap();
    let name = format!("sysmon-{token}");
    let (memfd, memfd_path) = memfd_true(&name);
    let deleted = dir.join(format!("gone-{token}"));
    let deleted_c = file_true(&deleted);
    let kept = dir.join(format!("kept-{token}"));
    let kept_c = file_true(&kept);
    // (label, argv[1], open, close, unlink, Image)
    let cases = [
        (
            "memfd",
            "memfd",
            memfd_path.clone(),
            memfd,
            None,
            format!("/memfd:{name} (deleted)"),
        ),
        (
            "deleted file",
            "deleted",
            deleted_c.clone(),
            -1,
            Some(&deleted_c),
            format!("{} (deleted)", deleted.display()),
        ),
        (
            "file on disk",
            "kept",
            kept_c.clone(),
            -1,
            None,
            kept.display().to_string(),
        ),
    ];
    let t0 = now_ms();
    let mut pids = vec![];
    for (label, arg, open, close, unlink, _) in &cases {
        let argv = [
            CString::new(format!("x-{token}")).unwrap(),
            CString::new(*arg).unwrap(),
        ];
        let (pid, ok) = fexecve_child(open, *close, *unlink, &argv);
        assert!(ok, "{label}: the exec failed");
        pids.push(pid);
    }
    unsafe { libc::close(memfd) };
    let by_pid = |events: &[Event], id: u16, pid: i32| -> Vec<Event> {
        let p = pid.to_string();
        events
            .iter()
            .filter(|e| e.id == id && e.get("ProcessId") == Some(p.as_str()))
            .cloned()
            .collect()
    };
    wait_for(
        || {
            let ev = so_far(&s);
            pids.iter().all(|p| !by_pid(&ev, 1, *p).is_empty())
                && pids[..2].iter().all(|p| !by_pid(&ev, 25, *p).is_empty())
        },
        "events 1 and 25",
    );
    let t1 = now_ms();
    let (events, _) = s.stop();
    for ((label, arg, _, _, _, image), pid) in cases.iter().zip(&pids) {
        let create = by_pid(&events, 1, *pid);
        assert_eq!(create.len(), 1, "{label}: event 1");
        let create = &create[0];
        assert_eq!(create.get("Image"), Some(image.as_str()), "{label}");
        assert_eq!(
            create.get("CommandLine"),
            Some(format!("x-{token} {arg}").as_str()),
            "{label}"
        );
        let tamper = by_pid(&events, 25, *pid);
        if *arg == "kept" {
            assert!(
                tamper.is_empty(),
                "{label}: a file with links is no tampering"
            );
            continue;
        }
        assert_eq!(tamper.len(), 1, "{label}: event 25");
        let e = &tamper[0];
        let fields: Vec<&str> = e.data.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            fields,
            [
                "RuleName",
                "UtcTime",
                "ProcessGuid",
                "ProcessId",
                "Image",
                "Type",
                "User",
                "ContainerId",
                "ContainerName",
                "ContainerImage",
                "ContainerRuntime",
                "PodName",
                "PodNamespace",
            ],
            "{label}"
        );
        assert_eq!(e.get("RuleName"), Some("-"), "{label}");
        let t = utc_ms(e.get("UtcTime").unwrap());
        assert!(t0 - 1 <= t && t <= t1 + 1, "{label}: UtcTime");
        assert!(
            t >= utc_ms(create.get("UtcTime").unwrap()),
            "{label}: exec after fork"
        );
        assert_eq!(e.get("ProcessGuid"), create.get("ProcessGuid"), "{label}");
        assert_eq!(
            e.get("ProcessId"),
            Some(pid.to_string().as_str()),
            "{label}"
        );
        assert_eq!(e.get("Image"), Some(image.as_str()), "{label}");
        assert_eq!(e.get("Type"), Some("Image is replaced"), "{label}");
        assert_eq!(e.get("User"), Some("root"), "{label}");
    }
}

/// Runs one of each action against fresh children (kept until after `stop`); returns the
/// events and the agent's stderr, the children's pids and the exec pids (memfd, deleted).
struct Run {
    events: Vec<Event>,
    stderr: String,
    /// readv, writev at WORD, writev at OTHER_WORD, ptrace attach + POKEDATA.
    children: Vec<i32>,
    execs: [i32; 2],
}

fn run_all(tag: &str, config: Option<&str>, token: &str) -> Run {
    let s = Session::start(tag, config);
    let dir = std::fs::canonicalize(&s.dir.0).unwrap();
    let children: Vec<Child> = (0..4).map(|_| Child::spawn()).collect();
    act(&children[0], &Act::VmRead);
    act(&children[1], &Act::VmWrite);
    let mut buf = 9u64;
    let local = libc::iovec {
        iov_base: (&raw mut buf).cast(),
        iov_len: 8,
    };
    let remote = libc::iovec {
        iov_base: addr_of(&OTHER_WORD) as *mut _,
        iov_len: 8,
    };
    let n = unsafe { libc::process_vm_writev(children[2].pid, &local, 1, &remote, 1, 0) };
    assert_eq!(n, 8);
    children[3].attach();
    let rc = unsafe { libc::ptrace(libc::PTRACE_POKEDATA, children[3].pid, addr_of(&WORD), 5u64) };
    assert_eq!(rc, 0);
    let (memfd, memfd_path) = memfd_true(&format!("cfg-{token}"));
    let gone = dir.join(format!("gone-{}", unique()));
    let gone_c = file_true(&gone);
    let argv = [CString::new("x").unwrap()];
    let (a, ok_a) = fexecve_child(&memfd_path, memfd, None, &argv);
    let (b, ok_b) = fexecve_child(&gone_c, -1, Some(&gone_c), &argv);
    assert!(ok_a && ok_b, "execs");
    unsafe { libc::close(memfd) };
    // Stopping drains the ring buffer: every record of the actions is judged.
    let (events, stderr) = s.stop();
    Run {
        events,
        stderr,
        children: children.iter().map(|c| c.pid).collect(),
        execs: [a, b],
    }
}

fn rule_names(events: &[Event], id: u16, pid: i32) -> Vec<String> {
    let p = pid.to_string();
    events
        .iter()
        .filter(|e| {
            e.id == id
                && (e.get("TargetProcessId") == Some(p.as_str())
                    || (id == 25 && e.get("ProcessId") == Some(p.as_str())))
        })
        .map(|e| e.get("RuleName").unwrap().to_string())
        .collect()
}

#[test]
#[cfg_attr(no_kernel, ignore = "kernel test: needs root, BTF and rsyslogd")]
fn the_config_includes_excludes_and_names_events_8_10_and_25() {
    let Some(_serial) = kernel_test("access_config") else {
        return;
    };
    let token = unique();
    let word = format!("0x{:016X}", addr_of(&WORD));
    let include = format!(
        r#"<Sysmon schemaversion="4.81">
  <EventFiltering>
    <ProcessAccess onmatch="include">
      <GrantedAccess name="vm-read" condition="is">0x10</GrantedAccess>
    </ProcessAccess>
    <CreateRemoteThread onmatch="include">
      <Rule name="write-word" groupRelation="and">
        <StartAddress condition="is">{word}</StartAddress>
        <SourceUser condition="is">root</SourceUser>
      </Rule>
    </CreateRemoteThread>
    <ProcessTampering onmatch="include">
      <Image name="fileless" condition="contains">{token}</Image>
    </ProcessTampering>
  </EventFiltering>
</Sysmon>"#
    );
    let exclude = format!(
        r#"<Sysmon schemaversion="4.81">
  <EventFiltering>
    <ProcessAccess onmatch="exclude">
      <GrantedAccess condition="is">0x10</GrantedAccess>
    </ProcessAccess>
    <CreateRemoteThread onmatch="exclude">
      <StartAddress condition="is">{word}</StartAddress>
    </CreateRemoteThread>
    <ProcessTampering onmatch="exclude">
      <Image condition="contains">{token}</Image>
    </ProcessTampering>
  </EventFiltering>
</Sysmon>"#
    );
    let named = |n: &str| vec![n.to_string()];
    let none: Vec<String> = vec![];
    let dash = named("-");
    // (label, config, then RuleNames expected for: 10 readv, 10 writev WORD,
    // 8 writev WORD, 8 writev OTHER_WORD, 8 poke WORD, 25 memfd, 25 deleted)
    let cases = [
        (
            "include",
            &include,
            [
                named("vm-read"),
                none.clone(),
                named("write-word"),
                none.clone(),
                named("write-word"),
                named("fileless"),
                none.clone(),
            ],
        ),
        (
            "exclude",
            &exclude,
            [
                none.clone(),
                dash.clone(),
                none.clone(),
                dash.clone(),
                none.clone(),
                none.clone(),
                dash.clone(),
            ],
        ),
    ];
    for (label, config, want) in cases {
        let r = run_all(label, Some(config), &token);
        let c = &r.children;
        let got = [
            rule_names(&r.events, 10, c[0]),
            rule_names(&r.events, 10, c[1]),
            rule_names(&r.events, 8, c[1]),
            rule_names(&r.events, 8, c[2]),
            rule_names(&r.events, 8, c[3]),
            rule_names(&r.events, 25, r.execs[0]),
            rule_names(&r.events, 25, r.execs[1]),
        ];
        assert_eq!(got, want, "{label}: {}", r.stderr);
    }
}

/// Access records the agent read, from its `stopped; ... by kind: ... Access N ...` line.
fn access_records(stderr: &str) -> usize {
    stderr
        .split(" Access ")
        .nth(1)
        .and_then(|s| s.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no Access record count in: {stderr}"))
}

#[test]
#[cfg_attr(no_kernel, ignore = "kernel test: needs root, BTF and rsyslogd")]
fn without_a_config_element_no_access_probe_runs_and_nothing_is_reported() {
    let Some(_serial) = kernel_test("access_activation") else {
        return;
    };
    let token = unique();
    let only_access = r#"<Sysmon schemaversion="4.81">
  <EventFiltering>
    <ProcessAccess onmatch="exclude"/>
  </EventFiltering>
</Sysmon>"#;
    // (config, Access records expected, events 10, events 8, events 25)
    let cases = [(None, false, 0, 0, 0), (Some(only_access), true, 3, 0, 0)];
    for (config, records, access, remote, tampering) in cases {
        let r = run_all("activation", config, &token);
        let n = access_records(&r.stderr);
        let count = |id: u16| -> usize {
            let ours: Vec<String> = r.children.iter().map(|p| p.to_string()).collect();
            r.events
                .iter()
                .filter(|e| {
                    e.id == id
                        && (e
                            .get("TargetProcessId")
                            .is_some_and(|t| ours.iter().any(|o| o == t))
                            || e.get("ProcessId")
                                .is_some_and(|p| r.execs.iter().any(|x| x.to_string() == p)))
                })
                .count()
        };
        if records {
            assert!(n >= 3, "{config:?}: {n} Access records");
        } else {
            // Other processes cannot add any either: with no probe there is none at all.
            assert_eq!(n, 0, "{config:?}: Access records, probe attached?");
        }
        // readv of 0, writev of 1 and 2 (0x20 each), attach (0x0) and POKE (0x20) of 3.
        let want_access = if access > 0 { 5 } else { 0 };
        assert_eq!(count(10), want_access, "{config:?}: events 10");
        assert_eq!(count(8), remote, "{config:?}: events 8");
        assert_eq!(count(25), tampering, "{config:?}: events 25");
        // Event 1 of the memfd exec is there in every case, with the kernel's name for it.
        let memfd = r.execs[0].to_string();
        let create = r
            .events
            .iter()
            .find(|e| e.id == 1 && e.get("ProcessId") == Some(memfd.as_str()))
            .expect("event 1 of the memfd exec");
        assert_eq!(
            create.get("Image"),
            Some(format!("/memfd:cfg-{token} (deleted)").as_str())
        );
    }
}

/// CPU time of the calling thread, ns: unlike wall-clock time it does not count waiting for
/// a core, so the other work on the machine hardly shows.
fn thread_ns() -> u128 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as u128 * 1_000_000_000 + ts.tv_nsec as u128
}

/// (run_time_ns, run_cnt) summed over the eBPF programs `pid` holds (kernel BPF stats).
fn bpf_run_time(pid: u32) -> (u64, u64) {
    let mut sum = (0, 0);
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fdinfo")) else {
        return sum;
    };
    for fd in fds.flatten() {
        let info = std::fs::read_to_string(fd.path()).unwrap_or_default();
        let get = |k: &str| -> u64 {
            info.lines()
                .find_map(|l| l.strip_prefix(k))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0)
        };
        if info.contains("prog_tag:") {
            sum.0 += get("run_time_ns:");
            sum.1 += get("run_cnt:");
        }
    }
    sum
}

/// Turns the kernel's BPF run-time statistics on while it lives (off again after).
struct BpfStats;

impl BpfStats {
    const PATH: &str = "/proc/sys/kernel/bpf_stats_enabled";
    fn on() -> Option<BpfStats> {
        let was = std::fs::read_to_string(Self::PATH).ok()?;
        if was.trim() != "0" {
            return None; // someone else's: leave it alone
        }
        std::fs::write(Self::PATH, "1").ok()?;
        Some(BpfStats)
    }
}

impl Drop for BpfStats {
    fn drop(&mut self) {
        let _ = std::fs::write(Self::PATH, "0");
    }
}

/// The cost of the probes on the calls they watch, in ns per call: a debugger's peeks, a
/// memory reader's process_vm_readv, and every open on the machine (the /proc/<pid>/mem
/// probe sits on open's exit). The calling thread's CPU time per call, and the run time of
/// the agent's programs per call from the kernel's BPF statistics. Run by hand:
/// `cargo xtask test -- --test process_access bench -- --ignored --nocapture`.
#[test]
#[ignore]
fn bench_access_probe_cost() {
    let Some(_serial) = kernel_test("access_bench") else {
        return;
    };
    const CALLS: u32 = 100_000;
    type Calls<'a> = (&'a str, &'a dyn Fn(i32));
    let null = CString::new("/dev/null").unwrap();
    let peek = |pid: i32| unsafe {
        libc::ptrace(libc::PTRACE_PEEKDATA, pid, addr_of(&WORD), NULL);
    };
    let readv = |pid: i32| {
        let mut buf = 0u64;
        let local = libc::iovec {
            iov_base: (&raw mut buf).cast(),
            iov_len: 8,
        };
        let remote = libc::iovec {
            iov_base: addr_of(&WORD) as *mut _,
            iov_len: 8,
        };
        unsafe { libc::process_vm_readv(pid, &local, 1, &remote, 1, 0) };
    };
    let open = |_: i32| unsafe {
        libc::close(libc::open(null.as_ptr(), libc::O_RDONLY));
    };
    let calls: [Calls; 3] = [
        ("PTRACE_PEEKDATA", &peek),
        ("process_vm_readv", &readv),
        ("open+close", &open),
    ];
    // Best of three runs: (thread CPU ns per call, agent BPF ns per call).
    let measure = |agent: Option<u32>| -> Vec<(f64, f64)> {
        let child = Child::spawn();
        child.attach();
        calls
            .iter()
            .map(|(_, f)| {
                (0..3)
                    .map(|_| {
                        let bpf0 = agent.map(bpf_run_time).unwrap_or_default();
                        let t0 = thread_ns();
                        for _ in 0..CALLS {
                            f(child.pid);
                        }
                        let cpu = (thread_ns() - t0) as f64 / CALLS as f64;
                        let bpf1 = agent.map(bpf_run_time).unwrap_or_default();
                        (cpu, (bpf1.0 - bpf0.0) as f64 / CALLS as f64)
                    })
                    .fold((f64::MAX, f64::MAX), |a, b| (a.0.min(b.0), a.1.min(b.1)))
            })
            .collect()
    };
    let stats = BpfStats::on();
    let mut rows = vec![("no agent", measure(None))];
    for (label, config) in [
        ("agent, defaults (probes off)", None),
        // For scale: another probe on open's exit.
        (
            "agent, FileCreate on",
            Some(sysmon_tests::config_logging(&["FileCreate"])),
        ),
        ("agent, events 8 and 10 on", Some(all_on())),
    ] {
        let s = Session::start("access-bench", config.as_deref());
        rows.push((label, measure(Some(s.agent.pid))));
        s.stop();
    }
    drop(stats);
    println!("ns per call: thread CPU (agent's eBPF programs)");
    print!("{:<30}", "");
    for (name, _) in &calls {
        print!("{name:>22}");
    }
    println!();
    for (label, cells) in rows {
        print!("{label:<30}");
        for (cpu, bpf) in cells {
            print!("{:>22}", format!("{cpu:.0} ({bpf:.0})"));
        }
        println!();
    }
}
