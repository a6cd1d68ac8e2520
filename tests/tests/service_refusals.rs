//! What the service refuses, and that a refusal changes nothing: modes of the installed
//! files, root checks, bad usage, bad configs at -i, -c and reload.

use std::os::unix::fs::PermissionsExt;

use sysmon_tests::{
    config_logging, kernel_test,
    rsyslog::wait_for,
    service::{BROKEN, CONFIG, Install, exec_true},
    unique,
};

#[test]
#[cfg_attr(no_kernel, ignore = "kernel test: needs root, BTF and rsyslogd")]
fn installed_modes_and_root_checks() {
    let Some(_serial) = kernel_test("installed_modes") else {
        return;
    };
    let t = Install::new("modes");
    std::fs::write(t.path("cfg.xml"), CONFIG).unwrap();
    t.ok(&["-accepteula", "-i", "cfg.xml"]);
    // (path under the root, mode) as spec 4.3; the rsyslog and logrotate files are 0644.
    let modes: &[(&str, u32)] = &[
        ("opt/sysmon", 0o700),
        ("opt/sysmon/sysmon", 0o700),
        ("opt/sysmon/sysmonLogView", 0o700),
        ("opt/sysmon/config.xml", 0o600),
        ("opt/sysmon/argv", 0o600),
        ("opt/sysmon/eventId", 0o600),
        ("etc/rsyslog.d/30-sysmon.conf", 0o644),
        ("etc/logrotate.d/sysmon", 0o644),
    ];
    for (path, mode) in modes {
        let meta = std::fs::metadata(t.path(path)).unwrap_or_else(|e| panic!("{path}: {e}"));
        assert_eq!(meta.permissions().mode() & 0o7777, *mode, "mode of {path}");
    }
    let pid = t.daemon();
    let config = std::fs::read(t.path("opt/sysmon/config.xml")).unwrap();
    // Commands that need root, run as nobody: refused (740, seen as 228), nothing changed.
    for args in [&["-c", "cfg.xml"][..], &["-c"], &["-u"], &["-i"]] {
        let out = t.sysmon_as(65534, args);
        assert_eq!(out.status.code(), Some(740 & 0xff), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("You need to run Sysmon as root."),
            "{args:?}: {err}"
        );
    }
    assert_eq!(t.daemon(), pid);
    assert_eq!(
        std::fs::read(t.path("opt/sysmon/config.xml")).unwrap(),
        config
    );
    t.ok(&["-u"]);
}

/// Bad usage and bad configs are refused before anything is touched: exit 87, a message
/// saying what is wrong, no install dir, no daemon.
#[test]
#[cfg_attr(no_kernel, ignore = "kernel test: needs root, BTF and rsyslogd")]
fn bad_usage_and_bad_configs_touch_nothing() {
    let Some(_serial) = kernel_test("bad_usage") else {
        return;
    };
    let t = Install::new("usage");
    std::fs::write(t.path("broken.xml"), BROKEN).unwrap();
    // Sysmon for Linux's words lead, then ours: scripts written for SfL still match.
    for (file, version) in [
        ("nover.xml", None),
        ("emptyver.xml", Some("")),
        ("textver.xml", Some("latest")),
        ("oldver.xml", Some("3.40")),
    ] {
        let attr = version.map_or(String::new(), |v| format!(" schemaversion=\"{v}\""));
        std::fs::write(t.path(file), format!("<Sysmon{attr}>\n</Sysmon>\n")).unwrap();
    }
    // (arguments, what stderr must say)
    let cases: &[(&[&str], &str)] = &[
        (&["-accepteula", "-i", "broken.xml"], "broken.xml:3"),
        (
            &["-accepteula", "-i", "broken.xml"],
            "Failed to load xml configuration: broken.xml:3:",
        ),
        (
            &["-c", "broken.xml"],
            "Failed to load xml configuration: broken.xml:3:",
        ),
        (
            &["-i", "nover.xml"],
            "Invalid schema version number: nover.xml:1:1:",
        ),
        (
            &["-c", "emptyver.xml"],
            "Invalid schema version number: emptyver.xml:1:1:",
        ),
        (
            &["-i", "textver.xml"],
            "Invalid schema version number: textver.xml:1:1:",
        ),
        (
            &["-c", "oldver.xml"],
            "Incorrect or unsupported schema version: oldver.xml:1:1:",
        ),
        (
            &["-i", "oldver.xml"],
            "Incorrect or unsupported schema version: oldver.xml:1:1:",
        ),
        (&["-i", "missing.xml"], "missing.xml"),
        (&["-u", "now"], "Invalid option for -u."),
        (&["-i", "-u"], "cannot be used with"),
        (&["-i", "--"], "must be used with -c"),
        (&["-bogus"], "unknown switch '-bogus'"),
        (&["stray"], "stray"),
    ];
    for (args, want) in cases {
        let out = t.sysmon(args);
        assert_eq!(out.status.code(), Some(87), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(want), "{args:?}: {err:?} lacks {want:?}");
    }
    assert!(
        !t.path("opt/sysmon").exists(),
        "a refused command installed something"
    );
    assert!(!t.path("etc/rsyslog.d/30-sysmon.conf").exists());
    assert!(t.daemon().is_none());
}

/// The installed config turns bad behind sysmon's back (`-c` would refuse it): on SIGHUP the
/// daemon keeps its rules and says why in an event 255.
#[test]
#[cfg_attr(no_kernel, ignore = "kernel test: needs root, BTF and rsyslogd")]
fn a_bad_reload_is_an_error_event_and_changes_nothing() {
    let Some(_serial) = kernel_test("bad_reload") else {
        return;
    };
    let t = Install::new("reload");
    t.ok(&["-accepteula", "-i"]);
    let pid = t.daemon().expect("daemon");
    std::fs::write(t.path("opt/sysmon/config.xml"), BROKEN).unwrap();
    unsafe { libc::kill(pid, libc::SIGHUP) };
    let err = t.wait_event("event 255 ConfigReload", |e| {
        e.id == 255 && e.agent_pid == pid as u32 && e.get("ID") == Some("ConfigReload")
    });
    assert!(err.get("Description").unwrap().contains("config.xml:3"));
    // The daemon's stderr goes to syslog under its own ident, so not into sysmon.log.
    wait_for(
        || {
            t.syslog.lines().iter().any(|l| {
                l.starts_with("sysmon-daemon imuxsock user err") && l.contains("ConfigReload")
            })
        },
        "the daemon's diagnostic in the system log",
    );
    let token = format!("reload-{}", unique());
    exec_true(&token);
    t.wait_event("a ProcessCreate after the bad reload", |e| {
        e.id == 1 && e.get("CommandLine").is_some_and(|c| c.contains(&token))
    });
    assert_eq!(t.daemon(), Some(pid));
    t.ok(&["-u"]);
}

/// A reload whose probe the kernel refuses (the test hook `SYSMON_TEST_FAIL_ATTACH` makes
/// the attach to `net_dev_queue` go to a tracepoint no kernel has, so the refusal is the
/// kernel's): `-c` exits non-zero naming the probe, the daemon says so in an event 255, and
/// the new rules are in force with the probes that did attach (TCP connects are recorded).
/// A second `-c` tries the refused probe again and fails again.
#[test]
#[cfg_attr(no_kernel, ignore = "kernel test: needs root, BTF and rsyslogd")]
fn a_reload_whose_probe_cannot_attach_fails_c() {
    let Some(_serial) = kernel_test("reload_attach") else {
        return;
    };
    let t = Install::new("attach");
    let env = [("SYSMON_TEST_FAIL_ATTACH", "net_dev_queue".to_string())];
    // The defaults have no NetworkConnect: nothing to refuse yet.
    let out = t.sysmon_env(0, &["-accepteula", "-i"], &env);
    assert!(out.status.success());
    let pid = t.daemon().expect("daemon");
    std::fs::write(t.path("net.xml"), config_logging(&["NetworkConnect"])).unwrap();
    for attempt in 1..=2 {
        let out = t.sysmon(&["-c", "net.xml"]);
        assert_eq!(out.status.code(), Some(1), "attempt {attempt}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("Configuration updated, but its events are not all recorded")
                && err.contains("attaching udp_send to net_dev_queue"),
            "attempt {attempt}: {err}"
        );
        assert!(!String::from_utf8_lossy(&out.stdout).contains("Configuration updated."));
    }
    let failures = t
        .events()
        .into_iter()
        .filter(|e| {
            e.id == 255
                && e.agent_pid == pid as u32
                && e.get("ID") == Some("ConfigReload")
                && e.get("Description").is_some_and(|d| {
                    d.starts_with(
                        "probes not attached: NetworkConnect (event 3) from udp_send: \
                         attaching udp_send to net_dev_queue",
                    )
                })
        })
        .count();
    assert_eq!(failures, 2, "one event 255 per failed reload");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port().to_string();
    let _client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let _server = listener.accept().unwrap();
    let me = std::process::id().to_string();
    t.wait_event("the TCP connect under the new rules", |e| {
        e.id == 3
            && e.get("ProcessId") == Some(&me)
            && e.get("DestinationPort") == Some(&port)
            && e.get("Initiated") == Some("true")
    });
    assert_eq!(t.daemon(), Some(pid));
    t.ok(&["-u"]);
}
