//! 32-bit syscalls made with `int $0x80` from this 64-bit test (the kernel takes them as a
//! 32-bit process's, and gives them no per-syscall tracepoint) give the same events as the
//! 64-bit calls: ptrace attach, POKEDATA, SETREGS and process_vm_writev of another process
//! (10, 8), an open of its /proc/<pid>/mem (10), chmod +x (29), creat (11), unlink (23),
//! mknod of a FIFO (17), utimes (2), an executable mmap2 and mprotect of a library (7),
//! DNS answers received with recvfrom, recvmsg and socketcall (22), and TCP connections
//! accepted with accept4 and socketcall (3). Their arguments,
//! 32 bits wide, point into memory below 4 GiB (`MAP_32BIT`).
#![cfg(target_arch = "x86_64")]

use std::{
    net::{TcpListener, TcpStream, UdpSocket},
    os::{fd::AsRawFd, unix::ffi::OsStrExt},
    path::Path,
    time::{Duration, Instant},
};

use sysmon_tests::{
    Session, config_logging,
    dns::{in_netns, response},
    events::Event,
    fs::{library, work_dir},
    kernel_test, record_with, unique,
};

/// ia32 syscall numbers and ptrace/socketcall requests used here.
mod nr {
    pub const UNLINK: u32 = 10;
    pub const OPEN: u32 = 5;
    pub const CREAT: u32 = 8;
    pub const MKNOD: u32 = 14;
    pub const CHMOD: u32 = 15;
    pub const PTRACE: u32 = 26;
    pub const GETPPID: u32 = 64;
    pub const SOCKETCALL: u32 = 102;
    pub const MPROTECT: u32 = 125;
    pub const MMAP2: u32 = 192;
    pub const UTIMES: u32 = 271;
    pub const PROCESS_VM_WRITEV: u32 = 348;
    pub const RECVFROM: u32 = 371;
    pub const RECVMSG: u32 = 372;
    pub const PTRACE_POKEDATA: u32 = 5;
    pub const PTRACE_GETREGS: u32 = 12;
    pub const PTRACE_SETREGS: u32 = 13;
    pub const PTRACE_ATTACH: u32 = 16;
    pub const ACCEPT4: u32 = 364;
    pub const SYS_RECVFROM: u32 = 12;
    pub const SYS_ACCEPT4: u32 = 18;
}

/// A 32-bit syscall through `int $0x80`: arguments in ebx, ecx, edx, esi, edi, ebp; the
/// kernel's return value (a negative errno on failure).
fn int80(nr: u32, a: [u32; 6]) -> i32 {
    let ret: u32;
    // SAFETY: the kernel reads the registers as this call's arguments and writes eax only;
    // rbx and rbp (which LLVM keeps for itself) are saved around it on the stack.
    unsafe {
        std::arch::asm!(
            "push rbx",
            "push rbp",
            "mov ebx, {a0:e}",
            "mov ebp, {a5:e}",
            "int 0x80",
            "pop rbp",
            "pop rbx",
            a0 = in(reg) a[0],
            a5 = in(reg) a[5],
            inlateout("eax") nr => ret,
            in("ecx") a[1],
            in("edx") a[2],
            in("esi") a[3],
            in("edi") a[4],
            out("r8") _,
            out("r9") _,
            out("r10") _,
            out("r11") _,
        );
    }
    ret as i32
}

fn call(nr: u32, args: &[u32]) -> i32 {
    let mut a = [0; 6];
    a[..args.len()].copy_from_slice(args);
    int80(nr, a)
}

/// Memory below 4 GiB, where 32-bit pointers reach: bytes put there one after the other.
struct Low {
    base: usize,
    used: usize,
}

const LOW_SIZE: usize = 1 << 20;

impl Low {
    fn new() -> Low {
        let m = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                LOW_SIZE,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_32BIT,
                -1,
                0,
            )
        };
        assert_ne!(m, libc::MAP_FAILED);
        assert!((m as usize) < 1 << 32);
        Low {
            base: m as usize,
            used: 0,
        }
    }

    /// Copies `bytes` in (8-byte aligned); their 32-bit address.
    fn put(&mut self, bytes: &[u8]) -> u32 {
        let at = self.base + self.used;
        assert!(self.used + bytes.len() <= LOW_SIZE);
        unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), at as *mut u8, bytes.len()) };
        self.used += bytes.len().div_ceil(8) * 8;
        at as u32
    }

    fn path(&mut self, p: &Path) -> u32 {
        let mut b = p.as_os_str().as_bytes().to_vec();
        b.push(0);
        self.put(&b)
    }

    fn words(&mut self, w: &[u32]) -> u32 {
        let b: Vec<u8> = w.iter().flat_map(|w| w.to_ne_bytes()).collect();
        self.put(&b)
    }

    fn read_u32(&self, at: u32) -> u32 {
        unsafe { (at as usize as *const u32).read() }
    }
}

/// A forked child that waits in pause(); killed on drop.
struct Child(i32);

impl Child {
    fn spawn() -> Child {
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            loop {
                unsafe { libc::pause() };
            }
        }
        assert!(pid > 0);
        Child(pid)
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        unsafe {
            libc::kill(self.0, libc::SIGKILL);
            libc::waitpid(self.0, std::ptr::null_mut(), libc::__WALL);
        }
    }
}

/// An event expected: (what did it, event id, field, value, ProcessId).
type Want = (&'static str, u16, &'static str, String, u32);

/// The file, process and mapping calls; what each must give.
fn file_and_process_calls(low: &mut Low, root: &Path, kids: &[Child; 3]) -> Vec<Want> {
    let me = std::process::id();
    let mut want: Vec<Want> = Vec::new();
    let mut expect = |what, id, field, value: String| want.push((what, id, field, value, me));
    let ok = |what: &str, rc: i32| assert!(rc >= 0, "{what}: {}", -rc);

    // ptrace attach, then a write and a new instruction pointer into the stopped child.
    let [traced, mem, written] = kids;
    ok(
        "ptrace attach",
        call(nr::PTRACE, &[nr::PTRACE_ATTACH, traced.0 as u32]),
    );
    let mut status = 0;
    assert_eq!(unsafe { libc::waitpid(traced.0, &mut status, 0) }, traced.0);
    let word = low.put(&[0; 8]);
    let poke = [nr::PTRACE_POKEDATA, traced.0 as u32, word, 0x77];
    ok("ptrace poke", call(nr::PTRACE, &poke));
    // The 32-bit register set (struct user_regs_struct32, eip at byte 48).
    let regs = low.put(&[0; 68]);
    ok(
        "getregs",
        call(nr::PTRACE, &[nr::PTRACE_GETREGS, traced.0 as u32, 0, regs]),
    );
    let new_ip = 0x1234_5678u32;
    unsafe { ((regs as usize + 48) as *mut u32).write(new_ip) };
    ok(
        "setregs",
        call(nr::PTRACE, &[nr::PTRACE_SETREGS, traced.0 as u32, 0, regs]),
    );
    let t = traced.0.to_string();
    expect("ptrace attach", 10, "GrantedAccess", format!("{t} 0x0"));
    expect("ptrace poke", 10, "GrantedAccess", format!("{t} 0x20"));
    expect(
        "ptrace poke",
        8,
        "StartAddress",
        format!("{t} 0x{word:016X}"),
    );
    expect(
        "ptrace setregs",
        8,
        "StartAddress",
        format!("{t} 0x{new_ip:016X}"),
    );

    let proc_mem = low.path(Path::new(&format!("/proc/{}/mem", mem.0)));
    let fd = call(nr::OPEN, &[proc_mem, libc::O_RDONLY as u32]);
    ok("open /proc/<pid>/mem", fd);
    unsafe { libc::close(fd) };
    expect("open mem", 10, "GrantedAccess", format!("{} 0x10", mem.0));

    // The child has this address space's copy of `low`: the same addresses.
    let target = low.put(&[0; 8]);
    let local = low.put(&0x99u32.to_ne_bytes());
    let (liov, riov) = (low.words(&[local, 4]), low.words(&[target, 4]));
    let n = call(
        nr::PROCESS_VM_WRITEV,
        &[written.0 as u32, liov, 1, riov, 1, 0],
    );
    assert_eq!(n, 4, "process_vm_writev");
    let w = written.0.to_string();
    expect("writev", 10, "GrantedAccess", format!("{w} 0x20"));
    expect("writev", 8, "StartAddress", format!("{w} 0x{target:016X}"));

    let elf = root.join("elf");
    std::fs::write(&elf, b"\x7fELF").unwrap();
    ok("chmod", call(nr::CHMOD, &[low.path(&elf), 0o755]));
    expect("chmod", 29, "TargetFilename", elf.display().to_string());

    let created = root.join("created");
    let fd = call(nr::CREAT, &[low.path(&created), 0o644]);
    ok("creat", fd);
    unsafe { libc::close(fd) };
    expect("creat", 11, "TargetFilename", created.display().to_string());

    let doomed = root.join("doomed");
    std::fs::write(&doomed, b"x").unwrap();
    ok("unlink", call(nr::UNLINK, &[low.path(&doomed)]));
    expect("unlink", 23, "TargetFilename", doomed.display().to_string());

    let fifo = root.join("fifo");
    ok(
        "mknod",
        call(nr::MKNOD, &[low.path(&fifo), libc::S_IFIFO | 0o644, 0]),
    );
    expect("mknod", 17, "PipeName", fifo.display().to_string());

    let stamped = root.join("stamped");
    std::fs::write(&stamped, b"x").unwrap();
    // struct timeval32[2]: atime, then mtime, in 2001.
    let tv = low.words(&[1_000_000_000, 0, 1_000_000_000, 0]);
    ok("utimes", call(nr::UTIMES, &[low.path(&stamped), tv]));
    expect("utimes", 2, "TargetFilename", stamped.display().to_string());

    let libz = library("libz.so.1");
    let [mapped, protected] = ["mmap2", "mprotect"].map(|n| {
        let p = root.join(format!("lib{n}-{}.so", unique()));
        std::fs::copy(&libz, &p).unwrap();
        p
    });
    let fd = unsafe { libc::open(sysmon_tests::fs::c(&mapped).as_ptr(), libc::O_RDONLY) };
    let rx = (libc::PROT_READ | libc::PROT_EXEC) as u32;
    let at = call(
        nr::MMAP2,
        &[0, 4096, rx, libc::MAP_PRIVATE as u32, fd as u32, 0],
    );
    assert!(!(-4095..=0).contains(&at), "mmap2: {at}");
    unsafe { libc::close(fd) };
    expect("mmap2", 7, "ImageLoaded", mapped.display().to_string());
    let fd = unsafe { libc::open(sysmon_tests::fs::c(&protected).as_ptr(), libc::O_RDONLY) };
    let m = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            4096,
            libc::PROT_READ,
            libc::MAP_PRIVATE | libc::MAP_32BIT,
            fd,
            0,
        )
    };
    assert_ne!(m, libc::MAP_FAILED);
    unsafe { libc::close(fd) };
    ok("mprotect", call(nr::MPROTECT, &[m as u32, 4096, rx]));
    expect(
        "mprotect",
        7,
        "ImageLoaded",
        protected.display().to_string(),
    );
    want
}

/// DNS answers from 127.0.0.1:53 received by recvfrom, recvmsg and socketcall(RECVFROM), in
/// a network namespace of their own; the names to expect.
fn dns_receives(low: &mut Low, token: &str) -> Vec<Want> {
    let me = std::process::id();
    let ways = ["recvfrom", "recvmsg", "socketcall"];
    in_netns(|| {
        let server = UdpSocket::bind("127.0.0.1:53").unwrap();
        let mut want = Vec::new();
        for way in ways {
            let name = format!("{token}-{way}.test");
            let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
            server
                .send_to(&response(&name), rx.local_addr().unwrap())
                .unwrap();
            let fd = rx.as_raw_fd() as u32;
            let buf = low.put(&[0; 512]);
            let addr = low.put(&[0; 16]);
            let addrlen = low.words(&[16]);
            let got = match way {
                "recvfrom" => call(nr::RECVFROM, &[fd, buf, 512, 0, addr, addrlen]),
                "recvmsg" => {
                    // struct iovec32, struct msghdr32 (name, namelen, iov, iovlen, ...).
                    let iov = low.words(&[buf, 512]);
                    let msg = low.words(&[addr, 16, iov, 1, 0, 0, 0]);
                    call(nr::RECVMSG, &[fd, msg, 0])
                }
                _ => {
                    let args = low.words(&[fd, buf, 512, 0, addr, addrlen]);
                    call(nr::SOCKETCALL, &[nr::SYS_RECVFROM, args])
                }
            };
            assert!(got > 12, "{way}: {got}");
            assert_eq!(low.read_u32(addr) & 0xffff, libc::AF_INET as u32, "{way}");
            want.push((way, 22, "QueryName", name, me));
        }
        want
    })
}

/// TCP connections accepted by accept4 and socketcall(ACCEPT4), in a network namespace of
/// their own: each gives an event 3 (not initiated) from the client's port.
fn tcp_accepts(low: &mut Low) -> Vec<Want> {
    let me = std::process::id();
    in_netns(|| {
        let mut want = Vec::new();
        for way in ["accept4", "socketcall accept4"] {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
            let fd = listener.as_raw_fd() as u32;
            let got = if way == "accept4" {
                call(nr::ACCEPT4, &[fd, 0, 0, 0])
            } else {
                let args = low.words(&[fd, 0, 0, 0]);
                call(nr::SOCKETCALL, &[nr::SYS_ACCEPT4, args])
            };
            assert!(got >= 0, "{way}: {got}");
            unsafe { libc::close(got) };
            let port = client.local_addr().unwrap().port().to_string();
            want.push((way, 3, "SourcePort", port, me));
        }
        want
    })
}

/// The events about `value` (for access events, "<target pid> <value>"; for network
/// events, the accepted side).
fn matching<'a>(events: &'a [Event], w: &Want) -> Vec<&'a Event> {
    let (_, id, field, value, pid) = w;
    events
        .iter()
        .filter(|e| {
            e.id == *id
                && e.get("ProcessId").or(e.get("SourceProcessId")) == Some(&pid.to_string())
                && (*id != 3 || e.get("Initiated") == Some("false"))
        })
        .filter(|e| match value.split_once(' ') {
            Some((target, v)) if matches!(*id, 8 | 10) => {
                e.get("TargetProcessId") == Some(target) && e.get(field) == Some(v)
            }
            _ => e.get(field) == Some(value.as_str()),
        })
        .collect()
}

#[test]
#[cfg_attr(no_kernel, ignore = "kernel test: needs root, BTF and rsyslogd")]
fn int_0x80_syscalls_give_the_events_of_their_64_bit_twins() {
    let Some(_serial) = kernel_test("compat") else {
        return;
    };
    let (_dir, root) = work_dir("compat");
    let token = format!("c{}", unique());
    let mut low = Low::new();
    // Forked after `low` exists: the children have it at the same addresses.
    let kids = [Child::spawn(), Child::spawn(), Child::spawn()];
    let config = config_logging(&[
        "ProcessAccess",
        "CreateRemoteThread",
        "FileExecutableDetected",
        "FileCreate",
        "FileDelete",
        "PipeEvent",
        "FileCreateTime",
        "ImageLoad",
        "DnsQuery",
        "NetworkConnect",
    ]);
    let mut want = Vec::new();
    let (events, _) = record_with("compat", Some(&config), |_| {
        want = file_and_process_calls(&mut low, &root, &kids);
        want.extend(dns_receives(&mut low, &token));
        want.extend(tcp_accepts(&mut low));
    });
    let mut missing = Vec::new();
    for w in &want {
        let got = matching(&events, w);
        match got.len() {
            0 => missing.push(format!("{} (event {} {})", w.0, w.1, w.3)),
            1 => {}
            _ => panic!("{}: {got:#?}", w.0),
        }
    }
    assert!(missing.is_empty(), "no event for: {missing:#?}");
    drop(kids);
}

/// What the compat programs cost every syscall of the machine: getppid() 10 million times,
/// ns per call, with no agent, with an agent whose configuration attaches syscall probes but
/// (test hook) not the compat programs, and with them. A benchmark, not a test:
/// `cargo xtask test -- --test compat bench --ignored --nocapture`.
#[test]
#[ignore]
fn bench_compat_cost_per_syscall() {
    let Some(_serial) = kernel_test("compat_cost") else {
        return;
    };
    const CALLS: u32 = 10_000_000;
    /// Best of 5: ns per getppid (64-bit), and per getppid through int $0x80.
    fn measure() -> (f64, f64) {
        let best = |f: &dyn Fn()| {
            (0..5)
                .map(|_| {
                    let t = Instant::now();
                    f();
                    t.elapsed().as_nanos() as f64 / f64::from(CALLS)
                })
                .fold(f64::MAX, f64::min)
        };
        let native = best(&|| {
            for _ in 0..CALLS {
                unsafe { libc::getppid() };
            }
        });
        let compat = best(&|| {
            for _ in 0..CALLS / 10 {
                call(nr::GETPPID, &[]);
            }
        }) * 10.0;
        (native, compat)
    }
    let chmod = config_logging(&["FileExecutableDetected"]);
    let create = config_logging(&["FileCreate"]);
    let off = [("SYSMON_TEST_MISSING_TRACEPOINTS", "sys_enter,sys_exit")];
    // (label, configuration, environment); no configuration: no agent.
    type Run<'a> = (&'a str, Option<Option<&'a str>>, &'a [(&'a str, &'a str)]);
    let runs: [Run; 6] = [
        ("no agent", None, &[]),
        ("default config (no syscall probe)", Some(None), &[]),
        ("FileCreate, compat off", Some(Some(&create)), &off),
        ("FileCreate, compat exit program", Some(Some(&create)), &[]),
        (
            "FileExecutableDetected, compat off",
            Some(Some(&chmod)),
            &off,
        ),
        (
            "FileExecutableDetected, compat both programs",
            Some(Some(&chmod)),
            &[],
        ),
    ];
    println!("{:<46} {:>10} {:>12}", "", "getppid", "int80 getppid");
    for (label, config, env) in runs {
        let session = config.map(|c| Session::start_with_env("compatcost", c, env));
        std::thread::sleep(Duration::from_millis(500));
        let (native, compat) = measure();
        println!("{label:<46} {native:>8.1} ns {compat:>10.1} ns");
        if let Some(s) = session {
            s.stop();
        }
    }
}
