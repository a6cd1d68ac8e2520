//! The agent refuses to start with a clear message and a non-zero exit when it cannot run.

use std::{os::unix::process::CommandExt, process::Command};

use sysmon_tests::{Session, config_logging, kernel_test, sysmon_bin, unique};

#[test]
#[cfg_attr(no_kernel, ignore = "kernel test: needs root, BTF and rsyslogd")]
fn says_what_is_wrong_and_exits_non_zero() {
    let Some(_serial) = kernel_test("startup_errors") else {
        return;
    };
    // (arguments, run as uid, what stderr must say)
    let cases: &[(&[&str], u32, &str)] = &[
        (&["-t"], 65534, "You need to run Sysmon as root"),
        (
            &["-t", "-btf", "/nonexistent/vmlinux"],
            0,
            "no BTF at /nonexistent/vmlinux",
        ),
        (
            &["-t", "/nonexistent/config.xml"],
            0,
            "/nonexistent/config.xml",
        ),
        (&["-bogus"], 0, "unknown switch '-bogus'"),
    ];
    for (args, uid, want) in cases {
        let out = Command::new(sysmon_bin())
            .args(*args)
            .uid(*uid)
            .env("SYSMON_SYSLOG_SOCKET", "/nonexistent/socket")
            .env("SYSMON_RSYSLOG_SOCKET", "/nonexistent/stream")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} should fail");
        assert!(
            stderr.contains(want),
            "{args:?}: stderr {stderr:?} lacks {want:?}"
        );
    }
}

/// An older kernel without one optional tracepoint (pretended with the test hook
/// `SYSMON_TEST_MISSING_TRACEPOINTS`; 6.1 really lacks it): the agent starts, says in one line
/// and in an event 255 what is missing and what it costs, and only that program is off: a
/// UDP datagram taken by read() is not recorded; one taken by recv() without an address
/// buffer is, by the receive exits instead; UDP sends, TCP connects and accepts, and execs are.
#[test]
#[cfg_attr(no_kernel, ignore = "kernel test: needs root, BTF and rsyslogd")]
fn a_missing_optional_tracepoint_turns_off_only_its_program() {
    let Some(_serial) = kernel_test("missing_tracepoint") else {
        return;
    };
    let config = config_logging(&["NetworkConnect"]);
    let s = Session::start_with_env(
        "missing_tp",
        Some(&config),
        &[("SYSMON_TEST_MISSING_TRACEPOINTS", "sock_recv_length")],
    );
    let token = format!("missing-tp-{}", unique());
    assert!(
        Command::new("/bin/true")
            .arg(&token)
            .status()
            .unwrap()
            .success()
    );
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let udp_port = udp.local_addr().unwrap().port().to_string();
    let by_read = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let read_port = by_read.local_addr().unwrap().port().to_string();
    let sender = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    sender.send_to(b"x", udp.local_addr().unwrap()).unwrap();
    sender.send_to(b"x", by_read.local_addr().unwrap()).unwrap();
    // Without an address buffer (recvfrom with NULL): where sock_recv_length exists, it
    // reports it; without it, the receive exit does.
    udp.recv(&mut [0u8; 8]).unwrap();
    let mut buf = [0u8; 8];
    // SAFETY: reads into a buffer of its length from a descriptor this function owns.
    let n = unsafe {
        libc::read(
            std::os::fd::AsRawFd::as_raw_fd(&by_read),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    assert_eq!(n, 1);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let tcp_port = listener.local_addr().unwrap().port().to_string();
    let _client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let _server = listener.accept().unwrap();
    // The connect is reported once established, from softirq: give it its moment.
    std::thread::sleep(std::time::Duration::from_millis(300));
    let (events, stderr) = s.stop();

    // One line names every tracepoint the kernel lacks (an older kernel lacks more than the
    // pretended one) and what each costs.
    let want = "NetworkConnect (event 3) for UDP datagrams taken by read() or readv() (udp_recv)";
    let said = |l: &str| {
        l.contains("this kernel lacks tracepoint ")
            && l.contains("sock_recv_length")
            && l.contains(want)
    };
    assert_eq!(
        stderr.lines().filter(|l| said(l)).count(),
        2,
        "the line at the kernel check and the event's echo: {stderr}"
    );
    let check = events
        .iter()
        .find(|e| e.id == 255 && e.get("ID") == Some("KernelCheck"))
        .expect("event 255 KernelCheck");
    assert!(said(check.get("Description").unwrap()), "{check:?}");
    assert!(
        events
            .iter()
            .any(|e| e.id == 1 && e.get("CommandLine").is_some_and(|c| c.contains(&token))),
        "execs are still recorded"
    );
    let me = std::process::id().to_string();
    // (DestinationPort, Protocol, Initiated, recorded)
    let cases = [
        (&udp_port, "udp", "true", true),
        (&udp_port, "udp", "false", true),
        (&read_port, "udp", "false", false),
        (&tcp_port, "tcp", "true", true),
        (&tcp_port, "tcp", "false", true),
    ];
    for (port, proto, initiated, recorded) in cases {
        let found = events.iter().any(|e| {
            e.id == 3
                && e.get("ProcessId") == Some(&me)
                && e.get("DestinationPort") == Some(port)
                && e.get("Protocol") == Some(proto)
                && e.get("Initiated") == Some(initiated)
        });
        assert_eq!(found, recorded, "{proto} Initiated={initiated}");
    }
}

/// What no event can do without is refused before anything loads, in one line: a
/// required tracepoint, or a BPF feature of a kernel older than the minimum (pretended with
/// the test hooks; the guest kernels test the real older verifiers).
#[test]
#[cfg_attr(no_kernel, ignore = "kernel test: needs root, BTF and rsyslogd")]
fn a_missing_requirement_is_refused_in_one_line() {
    let Some(_serial) = kernel_test("missing_required") else {
        return;
    };
    // (test hook, what it pretends is missing, what the one line says)
    let cases = [
        (
            "SYSMON_TEST_MISSING_TRACEPOINTS",
            "sched_process_fork",
            "this kernel lacks tracepoint sched/sched_process_fork: sysmon cannot run",
        ),
        (
            "SYSMON_TEST_MISSING_FEATURES",
            "BPF_FUNC_loop",
            "this kernel lacks the bpf_loop helper (Linux 5.17): sysmon cannot run (every \
             event needs them; it needs Linux 5.17 or later with BTF)",
        ),
        (
            "SYSMON_TEST_MISSING_FEATURES",
            "BPF_MAP_TYPE_RINGBUF,BPF_FUNC_loop",
            "this kernel lacks the BPF ring buffer (Linux 5.8), the bpf_loop helper (Linux \
             5.17): sysmon cannot run",
        ),
    ];
    for (hook, missing, want) in cases {
        let out = Command::new(sysmon_bin())
            .args(["-accepteula", "-t"])
            .env(hook, missing)
            .env("SYSMON_SYSLOG_SOCKET", "/nonexistent/socket")
            .env("SYSMON_RSYSLOG_SOCKET", "/nonexistent/stream")
            .output()
            .unwrap();
        assert!(!out.status.success(), "{missing}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            stderr.lines().filter(|l| l.contains(want)).count(),
            1,
            "{missing}: {stderr}"
        );
    }
}

/// A probe this kernel refuses at start (the test hook makes the kernel refuse the attach of
/// the UDP send probe) turns off only its events: the agent starts, says which in one line
/// and in an event 255 KernelCheck, and records everything else.
#[test]
#[cfg_attr(no_kernel, ignore = "kernel test: needs root, BTF and rsyslogd")]
fn a_probe_refused_at_start_turns_off_only_its_events() {
    let Some(_serial) = kernel_test("refused_at_start") else {
        return;
    };
    let config = config_logging(&["NetworkConnect"]);
    let s = Session::start_with_env(
        "refused_tp",
        Some(&config),
        &[("SYSMON_TEST_FAIL_ATTACH", "net_dev_queue")],
    );
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let tcp_port = listener.local_addr().unwrap().port().to_string();
    let _client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let _server = listener.accept().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    let (events, stderr) = s.stop();
    let want = "this kernel refused probes: not recorded: NetworkConnect (event 3) from udp_send:";
    assert_eq!(
        stderr.lines().filter(|l| l.contains(want)).count(),
        2,
        "the line at start and the event's echo: {stderr}"
    );
    // An older kernel also says, in a KernelCheck of its own, which tracepoints it lacks.
    assert!(
        events.iter().any(|e| e.id == 255
            && e.get("ID") == Some("KernelCheck")
            && e.get("Description").is_some_and(|d| d.starts_with(want))),
        "event 255 KernelCheck: {events:#?}"
    );
    let me = std::process::id().to_string();
    assert!(
        events.iter().any(|e| e.id == 3
            && e.get("ProcessId") == Some(&me)
            && e.get("DestinationPort") == Some(&tcp_port)),
        "TCP is still recorded"
    );
}
