//! What DNS answers can do to the sensor: more threads blocked in a receive than the kernel's
//! table of calls in flight holds (made small by a test hook) lose no answer without its
//! exact count in event 255; a flood of answers to one process leaves other processes'
//! events intact (the kernel takes a process's answers up to a rate, counting the rest),
//! while that process's first answers are still reported.

use std::{
    net::UdpSocket,
    process::Command,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
        mpsc,
    },
    thread,
    time::{Duration, Instant},
};

use sysmon_tests::{
    Session, config_logging,
    dns::{in_netns, response},
    events::Event,
    kernel_test,
    rsyslog::wait_for,
    unique,
};

/// Records lost to `cause` in the event-255 `KernelDrops` lines: "<cause>: lost N <kind>
/// records, …".
fn lost(events: &[Event], cause: &str, kind: &str) -> u64 {
    events
        .iter()
        .filter(|e| e.id == 255 && e.get("ID") == Some("KernelDrops"))
        .flat_map(|e| e.get("Description").unwrap_or("").split("; "))
        .filter_map(|clause| clause.strip_prefix(cause)?.strip_prefix(": lost "))
        .flat_map(|parts| parts.split(", "))
        .filter_map(|part| {
            let (n, rest) = part.split_once(' ')?;
            (rest == format!("{kind} records")).then(|| n.parse::<u64>().unwrap())
        })
        .sum()
}

const TABLE_FULL: &str = "in-flight table full (more calls at once than it holds)";
const OVER_RATE: &str = "over the per-process rate";

fn queries<'a>(events: &'a [Event], name: &str) -> Vec<&'a Event> {
    events
        .iter()
        .filter(|e| e.id == 22 && e.get("QueryName") == Some(name))
        .collect()
}

/// Whether thread `tid` of this process sleeps in recvfrom (x86_64 45, arm64 207).
fn in_recvfrom(tid: i32) -> bool {
    let nr = if cfg!(target_arch = "x86_64") {
        "45 "
    } else {
        "207 "
    };
    std::fs::read_to_string(format!("/proc/self/task/{tid}/syscall"))
        .is_ok_and(|s| s.starts_with(nr))
}

#[test]
#[cfg_attr(no_kernel, ignore = "kernel test: needs root, BTF and rsyslogd")]
fn more_blocked_receives_than_the_table_holds_lose_nothing_uncounted() {
    let Some(_serial) = kernel_test("dns_in_flight") else {
        return;
    };
    const TABLE: usize = 8;
    const READERS: usize = 12;
    let token = format!("t{}", unique());
    let names: Vec<String> = (0..READERS).map(|i| format!("{token}-{i}.test")).collect();
    let config = config_logging(&["DnsQuery"]);
    let table = TABLE.to_string();
    let s = Session::start_with_env(
        "dns_in_flight",
        Some(&config),
        &[("SYSMON_TEST_IN_FLIGHT", &table)],
    );
    in_netns(|| {
        let server = UdpSocket::bind("127.0.0.1:53").unwrap();
        thread::scope(|scope| {
            let (tx, rx) = mpsc::channel();
            for _ in 0..READERS {
                let tx = tx.clone();
                scope.spawn(move || {
                    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
                    sock.set_read_timeout(Some(Duration::from_secs(20)))
                        .unwrap();
                    let tid = unsafe { libc::gettid() };
                    tx.send((tid, sock.local_addr().unwrap())).unwrap();
                    let mut buf = [0u8; 512];
                    sock.recv_from(&mut buf).expect("an answer");
                });
            }
            let readers: Vec<_> = (0..READERS).map(|_| rx.recv().unwrap()).collect();
            // Every reader inside recvfrom, holding its slot (or refused one) before any
            // answer comes.
            wait_for(
                || readers.iter().all(|(tid, _)| in_recvfrom(*tid)),
                "every reader blocked in recvfrom",
            );
            for ((_, at), name) in readers.iter().zip(&names) {
                server.send_to(&response(name), at).unwrap();
            }
        });
    });
    let (events, _) = s.stop();
    let reported = names
        .iter()
        .filter(|n| !queries(&events, n).is_empty())
        .count();
    let dropped = lost(&events, TABLE_FULL, "Dns");
    assert!(
        dropped as usize >= READERS - TABLE,
        "the table of {TABLE} was not full: {reported} answers reported, {dropped} counted lost"
    );
    assert_eq!(
        reported + dropped as usize,
        READERS,
        "{reported} answers reported, {dropped} counted lost"
    );
}

#[test]
#[cfg_attr(no_kernel, ignore = "kernel test: needs root, BTF and rsyslogd")]
fn a_dns_flood_from_one_process_leaves_other_processes_events_intact() {
    let Some(_serial) = kernel_test("dns_flood") else {
        return;
    };
    const DISTINCT: usize = 50;
    const EXECS: usize = 200;
    const FLOOD: Duration = Duration::from_secs(2);
    let token = format!("t{}", unique());
    let names: Vec<String> = (0..DISTINCT).map(|i| format!("{token}-{i}.test")).collect();
    let config = config_logging(&["DnsQuery"]);
    let s = Session::start_with_env(
        "dns_flood",
        Some(&config),
        &[("SYSMON_RING_BYTES", "4194304")],
    );
    // The process's own distinct answers, first: within its burst.
    in_netns(|| {
        let server = UdpSocket::bind("127.0.0.1:53").unwrap();
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        let mut buf = [0u8; 512];
        for name in &names {
            server
                .send_to(&response(name), sock.local_addr().unwrap())
                .unwrap();
            sock.recv_from(&mut buf).unwrap();
        }
    });
    wait_for(
        || {
            let events = sysmon_tests::events::parse_lines(&s.syslog.lines());
            names.iter().all(|n| !queries(&events, n).is_empty())
        },
        "the distinct answers' events",
    );
    // The agent falls behind (here: stopped) while one process is flooded with answers
    // and others exec: what the ring holds is all the agent will get.
    unsafe { libc::kill(s.agent.pid as i32, libc::SIGSTOP) };
    let truebin = std::fs::canonicalize("/bin/true").unwrap();
    let received = in_netns(|| {
        let server = UdpSocket::bind("127.0.0.1:53").unwrap();
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let at = sock.local_addr().unwrap();
        let flooding = Arc::new(AtomicBool::new(true));
        thread::scope(|scope| {
            let on = flooding.clone();
            let flood = response(&format!("{token}-flood.test"));
            scope.spawn(move || {
                while on.load(Ordering::Relaxed) {
                    let _ = server.send_to(&flood, at);
                }
            });
            let on = flooding.clone();
            let receiver = scope.spawn(move || {
                let (mut n, mut buf) = (0u64, [0u8; 512]);
                while on.load(Ordering::Relaxed) {
                    if sock.recv_from(&mut buf).is_ok() {
                        n += 1;
                    }
                }
                n
            });
            let start = Instant::now();
            thread::sleep(Duration::from_millis(300));
            for i in 0..EXECS {
                let st = Command::new(&truebin)
                    .arg(format!("{token}-exec-{i}"))
                    .status()
                    .unwrap();
                assert!(st.success());
            }
            thread::sleep(FLOOD.saturating_sub(start.elapsed()));
            flooding.store(false, Ordering::Relaxed);
            receiver.join().unwrap()
        })
    });
    unsafe { libc::kill(s.agent.pid as i32, libc::SIGCONT) };
    let (events, _) = s.stop();
    let execs = (0..EXECS)
        .filter(|i| {
            let arg = format!("{token}-exec-{i}");
            events
                .iter()
                .any(|e| e.id == 1 && e.get("CommandLine").is_some_and(|c| c.ends_with(&arg)))
        })
        .count();
    let over = lost(&events, OVER_RATE, "Dns");
    println!("{received} answers received in the flood, {over} counted over the rate");
    assert_eq!(execs, EXECS, "ProcessCreate of the other processes");
    assert!(
        over > 0,
        "the flood of {received} answers was never held back"
    );
}
