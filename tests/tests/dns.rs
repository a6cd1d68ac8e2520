//! DnsQuery (22) end to end, and the real sender of UDP datagrams in NetworkConnect (3).
//!
//! The DNS tests run in a network namespace of their own (port 53 of the host's loopback
//! may be taken, and nothing may leave the machine) with a mount namespace in which
//! /etc/resolv.conf is ours: a responder of the test answers on 127.0.0.1:53 and ::1:53, and
//! glibc (`getent ahosts`) or the test itself asks it. The programs are global, so the
//! agent, started outside, sees it all.

use std::{
    net::{IpAddr, SocketAddr, UdpSocket},
    path::Path,
    process::Command,
    thread,
};

use sysmon_tests::{
    config_logging,
    events::Event,
    kernel_test,
    net::{Recv, receive},
    record_with, unique,
};

const A: [[u8; 4]; 2] = [[192, 0, 2, 1], [192, 0, 2, 2]];
const AAAA: [u8; 16] = [0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
const CHAIN_A: [u8; 4] = [192, 0, 2, 3];

/// Runs `f` in a new network and mount namespace (on a thread of its own: namespaces are
/// per thread), with loopback up and `resolv` over /etc/resolv.conf.
fn in_netns<T: Send>(resolv: &Path, f: impl FnOnce() -> T + Send) -> T {
    thread::scope(|s| {
        s.spawn(|| {
            let rc = unsafe { libc::unshare(libc::CLONE_NEWNET | libc::CLONE_NEWNS) };
            assert_eq!(rc, 0, "unshare: {}", std::io::Error::last_os_error());
            let c = |s: &str| std::ffi::CString::new(s).unwrap();
            // Private first, so that the bind mount stays in this namespace.
            let rc = unsafe {
                libc::mount(
                    std::ptr::null(),
                    c("/").as_ptr(),
                    std::ptr::null(),
                    libc::MS_REC | libc::MS_PRIVATE,
                    std::ptr::null(),
                )
            };
            assert_eq!(rc, 0, "making / private");
            let from = c(resolv.to_str().unwrap());
            let rc = unsafe {
                libc::mount(
                    from.as_ptr(),
                    c("/etc/resolv.conf").as_ptr(),
                    std::ptr::null(),
                    libc::MS_BIND,
                    std::ptr::null(),
                )
            };
            assert_eq!(rc, 0, "bind-mounting resolv.conf");
            let up = Command::new("ip")
                .args(["link", "set", "lo", "up"])
                .status()
                .unwrap();
            assert!(up.success(), "ip link set lo up");
            f()
        })
        .join()
        .unwrap()
    })
}

/// The responder: answers every query on `socket` until it reads one for `stop`.
fn respond(socket: UdpSocket, stop: &str) {
    let mut buf = [0u8; 512];
    loop {
        let (n, from) = socket.recv_from(&mut buf).unwrap();
        let Some((name, qtype, question_end)) = question(&buf[..n]) else {
            continue;
        };
        if name == stop {
            return;
        }
        let reply = answer(&buf[..question_end], &name, qtype);
        socket.send_to(&reply, from).unwrap();
    }
}

/// (name, type, end of the question) of a query.
fn question(q: &[u8]) -> Option<(String, u16, usize)> {
    let mut at = 12;
    let mut name = Vec::new();
    loop {
        let len = *q.get(at)? as usize;
        at += 1;
        if len == 0 {
            break;
        }
        if !name.is_empty() {
            name.push(b'.');
        }
        name.extend_from_slice(q.get(at..at + len)?);
        at += len;
    }
    let qtype = u16::from_be_bytes([*q.get(at)?, *q.get(at + 1)?]);
    Some((String::from_utf8(name).ok()?, qtype, at + 4))
}

fn wire(name: &str) -> Vec<u8> {
    let mut v = Vec::new();
    for l in name.split('.') {
        v.push(l.len() as u8);
        v.extend_from_slice(l.as_bytes());
    }
    v.push(0);
    v
}

/// The response to the query whose header and question are `q`: by the name's first
/// label after the unique token, `a`, `a6`, `msg`, `mmsg` (two A, one AAAA), `chain` (two CNAMEs, then the
/// address), `nx` (NXDOMAIN), `bad` (an answer whose name points at itself).
fn answer(q: &[u8], name: &str, qtype: u16) -> Vec<u8> {
    let kind = name.split('.').nth(1).unwrap_or("");
    let (token, _) = name.split_once('.').unwrap();
    let mut rcode = 0u8;
    // (owner in wire form, type, data)
    let mut records: Vec<(Vec<u8>, u16, Vec<u8>)> = Vec::new();
    let own = vec![0xc0, 12];
    let address = |owner: Vec<u8>, records: &mut Vec<_>, a: &[[u8; 4]], aaaa: [u8; 16]| match qtype
    {
        1 => a
            .iter()
            .for_each(|a| records.push((owner.clone(), 1, a.to_vec()))),
        28 => records.push((owner, 28, aaaa.to_vec())),
        _ => {}
    };
    match kind {
        "a" | "a6" | "msg" | "mmsg" => address(own, &mut records, &A, AAAA),
        "chain" => {
            let (mid, end) = (format!("{token}.mid.test"), format!("{token}.end.test"));
            records.push((own, 5, wire(&mid)));
            records.push((wire(&mid), 5, wire(&end)));
            let mut aaaa = AAAA;
            aaaa[15] = 3;
            address(wire(&end), &mut records, &[CHAIN_A], aaaa);
        }
        "nx" => rcode = 3,
        _ => {}
    }
    let mut m = q.to_vec();
    m[2] = 0x81;
    m[3] = 0x80 | rcode;
    m[6..8].copy_from_slice(&(records.len() as u16).to_be_bytes());
    m[8..12].fill(0);
    if kind == "bad" {
        m[7] = 1;
        let at = m.len();
        m.extend_from_slice(&[0xc0, at as u8, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 1, 2, 3, 4]);
    }
    for (owner, t, data) in records {
        m.extend_from_slice(&owner);
        m.extend_from_slice(&t.to_be_bytes());
        m.extend_from_slice(&[0, 1, 0, 0, 0, 60]);
        m.extend_from_slice(&(data.len() as u16).to_be_bytes());
        m.extend_from_slice(&data);
    }
    m
}

/// A query for `name`/`qtype` with id 0x4242.
fn query(name: &str, qtype: u16) -> Vec<u8> {
    let mut m = vec![0x42, 0x42, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0];
    m.extend_from_slice(&wire(name));
    m.extend_from_slice(&qtype.to_be_bytes());
    m.extend_from_slice(&[0, 1]);
    m
}

/// Asks `server` for `name`/`qtype` from a new socket (connected for `MsgNoName`),
/// receiving as `how` says; returns the socket's port.
fn ask(server: SocketAddr, name: &str, qtype: u16, how: Recv) -> u16 {
    let bind = if server.is_ipv4() {
        "127.0.0.1:0"
    } else {
        "[::1]:0"
    };
    let s = UdpSocket::bind(bind).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .unwrap();
    if how == Recv::MsgNoName {
        s.connect(server).unwrap();
    }
    s.send_to(&query(name, qtype), server).unwrap();
    let mut buf = [0u8; 512];
    let (got, _) = receive(&s, &mut buf, how);
    assert!(got > 12, "{name}: no response ({how:?})");
    s.local_addr().unwrap().port()
}

/// The events 22 for `name`.
fn queries<'a>(events: &'a [Event], name: &str) -> Vec<&'a Event> {
    events
        .iter()
        .filter(|e| e.id == 22 && e.get("QueryName") == Some(name))
        .collect()
}

#[test]
#[cfg_attr(no_kernel, ignore = "kernel test: needs root, BTF and rsyslogd")]
fn dns_queries_through_glibc_and_raw_sockets_over_ipv4_and_ipv6() {
    let Some(_serial) = kernel_test("dns") else {
        return;
    };
    let token = format!("t{}", unique());
    let name = |kind: &str| format!("{token}.{kind}.test");
    let config = config_logging(&["DnsQuery", "NetworkConnect"]);
    let me = std::process::id();
    // (resolver, name kind) looked up through glibc, which asks for A and AAAA.
    let glibc = [
        ("127.0.0.1", "a"),
        ("::1", "a6"),
        ("127.0.0.1", "chain"),
        ("127.0.0.1", "nx"),
    ];
    // (server, name kind, type, how the test receives the response)
    let raw = [
        ("127.0.0.1", "msg", 1, Recv::MsgNoName),
        ("::1", "mmsg", 28, Recv::Mmsg),
        ("127.0.0.1", "bad", 1, Recv::From),
    ];
    let mut bad_port = 0;
    let (events, _) = record_with("dns", Some(&config), |dir| {
        for (resolver, kind) in glibc {
            let resolv = dir.join(format!("resolv-{kind}.conf"));
            std::fs::write(
                &resolv,
                format!("nameserver {resolver}\noptions timeout:2 attempts:1\n"),
            )
            .unwrap();
            let (status, out) = in_netns(&resolv, || {
                let stop = format!("{token}.stop");
                let servers = serve(&stop);
                let child = Command::new("getent")
                    .args(["ahosts", &name(kind)])
                    .output()
                    .unwrap();
                stop_servers(servers, &stop);
                (
                    child.status,
                    String::from_utf8_lossy(&child.stdout).into_owned(),
                )
            });
            // getent's exit status: 0 found, 2 not found.
            let want_found = kind != "nx";
            assert_eq!(status.success(), want_found, "{kind}: getent: {out}");
        }
        let resolv = dir.join("resolv-raw.conf");
        std::fs::write(&resolv, "nameserver 127.0.0.1\n").unwrap();
        in_netns(&resolv, || {
            let stop = format!("{token}.stop");
            let servers = serve(&stop);
            for (server, kind, qtype, how) in raw {
                let at = SocketAddr::new(server.parse::<IpAddr>().unwrap(), 53);
                let port = ask(at, &name(kind), qtype, how);
                if kind == "bad" {
                    bad_port = port;
                }
            }
            stop_servers(servers, &stop);
        });
    });
    let getent = Path::new("/usr/bin/getent").canonicalize().unwrap();
    let getent = getent.to_str().unwrap();
    let image = std::env::current_exe().unwrap().display().to_string();
    let aaaa = |last: u8| {
        let mut a = AAAA;
        a[15] = last;
        format!("{};", std::net::Ipv6Addr::from(a))
    };
    let a_results = "::ffff:192.0.2.1;::ffff:192.0.2.2;";
    let (mid, end) = (name("mid"), name("end"));
    let chain = format!("type:  5 {mid};type:  5 {end};");
    // (name kind, Image, [(QueryStatus, QueryResults)] in any order)
    type Answers<'a> = Vec<(&'a str, String)>;
    let want: Vec<(&str, &str, Answers)> = vec![
        ("a", getent, vec![("0", a_results.into()), ("0", aaaa(1))]),
        ("a6", getent, vec![("0", a_results.into()), ("0", aaaa(1))]),
        (
            "chain",
            getent,
            vec![
                ("0", format!("{chain}::ffff:192.0.2.3;")),
                ("0", format!("{chain}{}", aaaa(3))),
            ],
        ),
        (
            "nx",
            getent,
            vec![("9003", "-".into()), ("9003", "-".into())],
        ),
        ("msg", &image, vec![("0", a_results.into())]),
        ("mmsg", &image, vec![("0", aaaa(1))]),
        ("bad", &image, vec![]),
    ];
    for (kind, image, mut answers) in want {
        let got = queries(&events, &name(kind));
        let mut seen: Vec<(&str, String)> = got
            .iter()
            .map(|e| {
                assert_eq!(e.get("Image"), Some(image), "{kind}: Image");
                assert_eq!(e.get("User"), Some("root"), "{kind}: User");
                assert!(e.get("ProcessGuid").is_some_and(|g| g.starts_with('{')));
                if image.ends_with("getent") {
                    assert_ne!(e.get("ProcessId"), Some(me.to_string().as_str()));
                } else {
                    assert_eq!(e.get("ProcessId"), Some(me.to_string().as_str()));
                }
                (
                    e.get("QueryStatus").unwrap(),
                    e.get("QueryResults").unwrap().to_string(),
                )
            })
            .collect();
        // glibc may stop at the first NXDOMAIN: what is compared is which answers came.
        seen.sort();
        seen.dedup();
        answers.sort();
        answers.dedup();
        assert_eq!(seen, answers, "{kind}: {got:#?}");
    }
    // The malformed answer still is a datagram from port 53: event 3 has its real sender.
    let bad_from_53 = events.iter().any(|e| {
        e.id == 3
            && e.get("Initiated") == Some("false")
            && e.get("ProcessId") == Some(me.to_string().as_str())
            && e.get("SourceIp") == Some("127.0.0.1")
            && e.get("SourcePort") == Some("53")
            && e.get("DestinationPort") == Some(bad_port.to_string().as_str())
    });
    assert!(bad_from_53, "no event 3 for the datagram from 127.0.0.1:53");
}

/// Responders on 127.0.0.1:53 and [::1]:53 of the current network namespace.
fn serve(stop: &str) -> Vec<thread::JoinHandle<()>> {
    ["127.0.0.1:53", "[::1]:53"]
        .into_iter()
        .map(|at| {
            let s = UdpSocket::bind(at).unwrap_or_else(|e| panic!("bind {at}: {e}"));
            let stop = stop.to_string();
            thread::spawn(move || respond(s, &stop))
        })
        .collect()
}

fn stop_servers(servers: Vec<thread::JoinHandle<()>>, stop: &str) {
    for at in ["127.0.0.1:53", "[::1]:53"] {
        let s = UdpSocket::bind(if at.starts_with('[') {
            "[::1]:0"
        } else {
            "127.0.0.1:0"
        })
        .unwrap();
        s.send_to(&query(stop, 1), at).unwrap();
    }
    for t in servers {
        t.join().unwrap();
    }
}

/// The cost of the receive probes per datagram: the receiving thread's CPU time (user and
/// kernel, where the programs run) per recvfrom of a 32-byte datagram on loopback, without
/// an agent and with agents whose configs attach more and more. A benchmark, not a test:
/// `cargo xtask test -- --test dns udp_receive_cost --ignored --nocapture`.
#[test]
#[ignore]
fn udp_receive_cost() {
    let Some(_serial) = kernel_test("udp_receive_cost") else {
        return;
    };
    const ROUNDS: usize = 1000;
    const BATCH: usize = 64;
    /// Nanoseconds of this thread's CPU per received datagram, best of 7 runs; datagrams
    /// from `from` (a socket of the same network namespace) to a socket on `to`.
    fn measure(from: &str, to: &str) -> f64 {
        let rx = UdpSocket::bind(to).unwrap();
        let tx = UdpSocket::bind(from).unwrap();
        let at = rx.local_addr().unwrap();
        let mut buf = [0u8; 64];
        let mut best = f64::MAX;
        for _ in 0..7 {
            let mut spent = 0u64;
            for _ in 0..ROUNDS {
                for _ in 0..BATCH {
                    tx.send_to(&[7u8; 32], at).unwrap();
                }
                let t0 = thread_cpu_ns();
                for _ in 0..BATCH {
                    receive(&rx, &mut buf, Recv::From);
                }
                spent += thread_cpu_ns() - t0;
            }
            best = best.min(spent as f64 / (ROUNDS * BATCH) as f64);
        }
        best
    }
    let run = |label: &str, config: Option<&str>| {
        let session = config.map(|c| sysmon_tests::Session::start("udpcost", Some(c)));
        let plain = measure("127.0.0.1:0", "127.0.0.1:0");
        // From port 53 (a DNS record per datagram when DnsQuery is on): in a namespace of
        // its own, port 53 of the host may be taken.
        let dir = sysmon_tests::TempDir::new("udpcost");
        let resolv = dir.0.join("resolv.conf");
        std::fs::write(&resolv, "nameserver 127.0.0.1\n").unwrap();
        let dns = in_netns(&resolv, || measure("127.0.0.1:53", "127.0.0.1:0"));
        if let Some(s) = session {
            s.stop();
        }
        println!("{label:<34} {plain:>8.0} ns {dns:>8.0} ns");
        (plain, dns)
    };
    println!("{:<34} {:>11} {:>11}", "probes", "datagram", "from :53");
    let off = run("none (no agent)", None);
    let default = run("agent, default config", Some(&config_logging(&[])));
    let dns = run("DnsQuery", Some(&config_logging(&["DnsQuery"])));
    let net = run(
        "NetworkConnect + DnsQuery",
        Some(&config_logging(&["NetworkConnect", "DnsQuery"])),
    );
    for (label, (a, b)) in [
        ("DnsQuery", dns),
        ("NetworkConnect + DnsQuery", net),
        ("default", default),
    ] {
        println!(
            "{label}: +{:.0} ns per datagram, +{:.0} ns per datagram from :53",
            a - off.0,
            b - off.1
        );
    }
}

fn thread_cpu_ns() -> u64 {
    let mut t: libc::timespec = unsafe { std::mem::zeroed() };
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut t) };
    t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64
}

/// Dns records the agent read, from its `stopped; ... by kind: ... Dns N ...` line.
fn dns_records(stderr: &str) -> usize {
    stderr
        .split(" Dns ")
        .nth(1)
        .and_then(|s| s.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no Dns record count in: {stderr}"))
}

#[test]
#[cfg_attr(no_kernel, ignore = "kernel test: needs root, BTF and rsyslogd")]
fn dns_records_only_when_the_config_has_dns_query() {
    let Some(_serial) = kernel_test("dns_activation") else {
        return;
    };
    const ASKS: usize = 20;
    // (config tags, DNS records sent, event 3 for the answers)
    let cases: &[(&[&str], bool, bool)] = &[
        (&[], false, false),
        (&["NetworkConnect"], false, true),
        (&["DnsQuery"], true, false),
    ];
    let me = std::process::id().to_string();
    for (tags, dns, net) in cases {
        let token = format!("t{}", unique());
        let name = format!("{token}.a.test");
        let config = config_logging(tags);
        let (events, stderr) = record_with("dns_activation", Some(&config), |dir| {
            let resolv = dir.join("resolv.conf");
            std::fs::write(&resolv, "nameserver 127.0.0.1\n").unwrap();
            in_netns(&resolv, || {
                let stop = format!("{token}.stop");
                let servers = serve(&stop);
                for _ in 0..ASKS {
                    ask("127.0.0.1:53".parse().unwrap(), &name, 1, Recv::From);
                }
                stop_servers(servers, &stop);
            });
        });
        let n = dns_records(&stderr);
        // Others may receive DNS answers too: only their number is unknown.
        if *dns {
            assert!(n >= ASKS, "{tags:?}: {n} Dns records");
            // Twenty answers within a second or so: one event per second at most.
            let events22 = queries(&events, &name).len();
            assert!(
                (1..ASKS).contains(&events22),
                "{tags:?}: {events22} events 22"
            );
        } else {
            assert!(n < ASKS / 2, "{tags:?}: {n} Dns records, probe attached?");
            assert!(queries(&events, &name).is_empty(), "{tags:?}: events 22");
        }
        let from_53 = events.iter().any(|e| {
            e.id == 3
                && e.get("ProcessId") == Some(me.as_str())
                && e.get("SourcePort") == Some("53")
        });
        assert_eq!(
            from_53, *net,
            "{tags:?}: event 3 for the answers from port 53"
        );
    }
}

/// A label `x;::ffff:10.0.0.1` in a CNAME or PTR answer: QueryResults, split on `;` as a
/// parser does, gives exactly the answered entries, none of them the forged address.
#[test]
#[cfg_attr(no_kernel, ignore = "kernel test: needs root, BTF and rsyslogd")]
fn a_semicolon_in_a_label_adds_no_entry_to_query_results() {
    let Some(_serial) = kernel_test("dns_forged_label") else {
        return;
    };
    let token = format!("t{}", unique());
    // A name in wire form from raw labels (which may hold `;` and `.`).
    let labels = |items: &[&[u8]]| {
        let mut v = Vec::new();
        for l in items {
            v.push(l.len() as u8);
            v.extend_from_slice(l);
        }
        v.push(0);
        v
    };
    let forged: &[u8] = b"x;::ffff:10.0.0.1";
    let target = labels(&[token.as_bytes(), b"fend", forged]);
    let escaped = format!("{token}.fend.x\\x3b::ffff:10\\x2e0\\x2e0\\x2e1");
    // (query kind and type, answers as (owner, type, data), entries QueryResults must split into)
    type Answer = (Vec<u8>, u16, Vec<u8>);
    let cases: Vec<(&str, u16, Vec<Answer>, Vec<String>)> = vec![
        (
            "cname",
            1,
            vec![
                (vec![0xc0, 12], 5, target.clone()),
                (target.clone(), 1, vec![192, 0, 2, 4]),
            ],
            vec![format!("type:  5 {escaped}"), "::ffff:192.0.2.4".into()],
        ),
        (
            "ptr",
            12,
            vec![(vec![0xc0, 12], 12, target.clone())],
            vec![format!("type:  12 {escaped}")],
        ),
    ];
    let name = |kind: &str| format!("{token}.{kind}.test");
    let config = config_logging(&["DnsQuery"]);
    let (events, _) = record_with("dns_forged", Some(&config), |dir| {
        let resolv = dir.join("resolv.conf");
        std::fs::write(&resolv, "nameserver 127.0.0.1\n").unwrap();
        in_netns(&resolv, || {
            let server = UdpSocket::bind("127.0.0.1:53").unwrap();
            for (kind, qtype, answers, _) in &cases {
                let client = UdpSocket::bind("127.0.0.1:0").unwrap();
                client
                    .send_to(&query(&name(kind), *qtype), "127.0.0.1:53")
                    .unwrap();
                let mut buf = [0u8; 512];
                let (n, from) = server.recv_from(&mut buf).unwrap();
                let mut reply = buf[..n].to_vec();
                reply[2] = 0x81;
                reply[3] = 0x80;
                reply[6..8].copy_from_slice(&(answers.len() as u16).to_be_bytes());
                for (owner, t, data) in answers {
                    reply.extend_from_slice(owner);
                    reply.extend_from_slice(&t.to_be_bytes());
                    reply.extend_from_slice(&[0, 1, 0, 0, 0, 60]);
                    reply.extend_from_slice(&(data.len() as u16).to_be_bytes());
                    reply.extend_from_slice(data);
                }
                server.send_to(&reply, from).unwrap();
                let (got, _) = receive(&client, &mut buf, Recv::From);
                assert_eq!(got, reply.len(), "{kind}: the reply");
            }
        });
    });
    for (kind, _, answers, want) in &cases {
        let got = queries(&events, &name(kind));
        assert_eq!(got.len(), 1, "{kind}: events 22: {got:#?}");
        let results = got[0].get("QueryResults").unwrap();
        let entries: Vec<&str> = results
            .strip_suffix(';')
            .unwrap_or(results)
            .split(';')
            .collect();
        assert_eq!(entries.len(), answers.len(), "{kind}: {results}");
        assert_eq!(entries, *want, "{kind}: {results}");
        assert!(
            !entries.contains(&"::ffff:10.0.0.1"),
            "{kind}: a forged entry: {results}"
        );
    }
}
