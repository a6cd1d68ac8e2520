//! The service end to end, without systemd: `sysmon -i` installs into a temporary root and
//! starts the daemon, a private rsyslogd splits its events into `var/log/sysmon.log`, `-c`
//! reloads, `-u` stops; and the systemd path with a recording `systemctl`. Real kernel, real
//! rsyslogd; each test picks out its own events by unique arguments.

use std::os::unix::fs::PermissionsExt;

use sysmon_tests::{
    alive, kernel_test,
    service::{BROKEN, CONFIG, Install, creates_with, exec_true, sha256_hex},
    unique,
};

#[test]
#[cfg_attr(no_kernel, ignore = "kernel test: needs root, BTF and rsyslogd")]
fn install_update_uninstall() {
    let Some(_serial) = kernel_test("install_update_uninstall") else {
        return;
    };
    let t = Install::new("svc");
    std::fs::write(t.path("cfg.xml"), CONFIG).unwrap();
    std::fs::write(t.path("new.xml"), CONFIG.replace("4.50", "4.60")).unwrap();
    std::fs::write(t.path("broken.xml"), BROKEN).unwrap();

    // -i: the daemon runs as soon as it returns; event 16 names the config as typed.
    let rsyslogd = t.syslog.pid();
    t.ok(&["-accepteula", "-i", "cfg.xml"]);
    // rsyslogd reads its config only at start: -i restarted it to load the split, our input
    // with it, without a complaint; the daemon writes to that input.
    assert_ne!(t.syslog.pid(), rsyslogd, "rsyslogd was not restarted");
    let pid = t.daemon().expect("a daemon in the pid file");
    assert_eq!(t.stream_connections(), 1, "the daemon is not on our input");
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap();
    assert_eq!(comm.trim(), "sysmon", "pgrep -x sysmon finds it");
    let started = t.wait_event("event 16 at start", |e| {
        e.id == 16 && e.agent_pid == pid as u32
    });
    assert_eq!(started.get("Configuration"), Some("cfg.xml"));
    let want_hash = format!("SHA256={}", sha256_hex(&t.path("cfg.xml")));
    assert_eq!(
        started.get("ConfigurationFileHash"),
        Some(want_hash.as_str())
    );

    // An exec shows up in sysmon.log and in no other rsyslog file.
    let token = format!("svc-{}", unique());
    exec_true(&token);
    t.wait_event("our ProcessCreate", |e| {
        e.id == 1 && e.get("CommandLine").is_some_and(|c| c.contains(&token))
    });
    t.sync();
    assert!(
        !t.syslog.lines().iter().any(|l| l.contains(&token)),
        "a sysmon event leaked into the catch-all file"
    );

    // A broken config: exit 87, the file and line named, nothing changed, old rules apply.
    let before = std::fs::read(t.path("opt/sysmon/config.xml")).unwrap();
    let out = t.sysmon(&["-c", "broken.xml"]);
    assert_eq!(out.status.code(), Some(87));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("broken.xml:3"), "error lacks file:line: {err}");
    assert_eq!(
        std::fs::read(t.path("opt/sysmon/config.xml")).unwrap(),
        before
    );
    assert_eq!(t.daemon(), Some(pid), "the daemon was disturbed");
    let token2 = format!("svc-{}", unique());
    exec_true(&token2);
    t.wait_event("ProcessCreate under the old rules", |e| {
        e.id == 1 && e.get("CommandLine").is_some_and(|c| c.contains(&token2))
    });

    // A good config: same daemon, event 16 with the new path and hash.
    let new = t.path("new.xml");
    t.ok(&["-c", new.to_str().unwrap()]);
    let want_hash = format!("SHA256={}", sha256_hex(&new));
    let changed = t.wait_event("event 16 after -c", |e| {
        e.id == 16 && e.get("Configuration") == new.to_str()
    });
    assert_eq!(
        changed.get("ConfigurationFileHash"),
        Some(want_hash.as_str())
    );
    assert_eq!(changed.agent_pid, pid as u32, "-c restarted the daemon");
    // new.xml has no rules: the engine says so (the placeholder prints a header instead).
    let shown = String::from_utf8_lossy(&t.ok(&["-c"]).stdout).into_owned();
    assert!(
        shown.contains("No rules installed") || shown.contains("Rule configuration (version 4."),
        "-c shows: {shown}"
    );

    // -u: event 4 Stopped, no daemon left; the state stays.
    let out = t.ok(&["-u"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("Sysmon stopped."));
    t.wait_event("event 4 Stopped", |e| {
        e.id == 4 && e.agent_pid == pid as u32 && e.get("State") == Some("Stopped")
    });
    assert!(!alive(pid), "the daemon still runs");
    assert!(t.daemon().is_none());
    assert!(t.path("opt/sysmon/eventId").exists());
    assert!(
        t.path("etc/rsyslog.d/30-sysmon.conf").exists(),
        "-u keeps the split"
    );
    assert_eq!(t.stream_connections(), 0, "the daemon's connection stays");
    // -u force removes every rsyslog file of ours; the rsyslogd it restarts has no input of
    // ours left and starts as cleanly as it did with it.
    let rsyslogd = t.syslog.pid();
    t.ok(&["-u", "force"]);
    assert_ne!(t.syslog.pid(), rsyslogd, "rsyslogd was not restarted");
    for file in [
        "etc/rsyslog.d/30-sysmon.conf",
        "etc/logrotate.d/sysmon",
        "run/sysmon-syslog.sock",
    ] {
        assert!(!t.path(file).exists(), "-u force left {file}");
    }
    t.sync();
    let complaints = t.rsyslogd_complaints();
    assert!(complaints.is_empty(), "rsyslogd: {complaints:#?}");
}

/// `-c` with an exclude rule: the next exec after `-c` returns is judged by it.
#[test]
#[cfg_attr(no_kernel, ignore = "kernel test: needs root, BTF and rsyslogd")]
fn new_rules_decide_the_next_exec() {
    let Some(_serial) = kernel_test("new_rules") else {
        return;
    };
    let t = Install::new("rules");
    t.ok(&["-accepteula", "-i"]);
    let pid = t.daemon().expect("daemon") as u32;
    let token = format!("rules-{}", unique());
    let config = format!(
        "<Sysmon schemaversion=\"4.50\">\n  <EventFiltering>\n    <RuleGroup name=\"\" groupRelation=\"or\">\n      <ProcessCreate onmatch=\"exclude\">\n        <CommandLine condition=\"contains\">{token}-hidden</CommandLine>\n      </ProcessCreate>\n    </RuleGroup>\n  </EventFiltering>\n</Sysmon>\n"
    );
    std::fs::write(t.path("rules.xml"), config).unwrap();
    // Once `-c` returns, the new rules are in force: exec straight away.
    t.ok(&["-c", "rules.xml"]);
    exec_true(&format!("{token}-hidden"));
    t.wait_event("event 16 for rules.xml", |e| {
        e.id == 16 && e.agent_pid == pid && e.get("Configuration") == Some("rules.xml")
    });
    exec_true(&format!("{token}-shown"));
    t.wait_event("the included exec", |e| {
        e.id == 1
            && e.get("CommandLine")
                .is_some_and(|c| c.contains(&format!("{token}-shown")))
    });
    let shown = String::from_utf8_lossy(&t.ok(&["-c"]).stdout).into_owned();
    assert!(
        shown.contains("ProcessCreate"),
        "-c shows the rules: {shown}"
    );
    assert_eq!(creates_with(&t.events(), &format!("{token}-hidden")), 0);
    // `-c --`: back to the defaults, said as such in event 16.
    t.ok(&["-c", "--"]);
    let reset = t.wait_event("event 16 for -c --", |e| {
        e.id == 16 && e.agent_pid == pid && e.get("Configuration") == Some("Defaults")
    });
    assert_eq!(reset.get("ConfigurationFileHash"), Some("-"));
    t.ok(&["-u"]);
}

/// `-h` on the `-i` command line is stored with it: the daemon hashes with those algorithms.
#[test]
#[cfg_attr(no_kernel, ignore = "kernel test: needs root, BTF and rsyslogd")]
fn hash_algorithms_from_the_command_line_reach_the_daemon() {
    let Some(_serial) = kernel_test("install_hash_algorithms") else {
        return;
    };
    let t = Install::new("hashes");
    t.ok(&["-accepteula", "-i", "-h", "md5,sha256"]);
    let token = format!("hashes-{}", unique());
    exec_true(&token);
    let e = t.wait_event("our ProcessCreate", |e| {
        e.id == 1 && e.get("CommandLine").is_some_and(|c| c.contains(&token))
    });
    let hashes = e.get("Hashes").unwrap();
    assert!(
        hashes.starts_with("MD5=") && hashes.contains(",SHA256="),
        "Hashes {hashes}"
    );
    // A -c without -h keeps the algorithms -i chose.
    t.ok(&["-c", "--"]);
    let token = format!("hashes-after-c-{}", unique());
    exec_true(&token);
    let e = t.wait_event("our ProcessCreate after -c", |e| {
        e.id == 1 && e.get("CommandLine").is_some_and(|c| c.contains(&token))
    });
    let hashes = e.get("Hashes").unwrap();
    assert!(
        hashes.starts_with("MD5=") && hashes.contains(",SHA256="),
        "Hashes after -c {hashes}"
    );
    t.ok(&["-u"]);
}

/// With systemd (here: `<root>/run/systemd/system` and a `systemctl` that only records its
/// arguments), `-i` writes the unit and hands the daemon to systemd; `-u` stops and
/// disables it.
#[test]
#[cfg_attr(no_kernel, ignore = "kernel test: needs root, BTF and rsyslogd")]
fn with_systemd_the_unit_is_written_and_systemctl_drives_it() {
    let Some(_serial) = kernel_test("systemd_path") else {
        return;
    };
    let t = Install::new("systemd");
    std::fs::create_dir_all(t.path("run/systemd/system")).unwrap();
    std::fs::create_dir_all(t.path("bin")).unwrap();
    let log = t.path("systemctl.log");
    let fake = t.path("bin/systemctl");
    std::fs::write(
        &fake,
        format!("#!/bin/sh\necho \"$@\" >> {}\n", log.display()),
    )
    .unwrap();
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!(
        "{}:{}",
        t.path("bin").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let env = [("PATH", path)];
    assert!(
        t.sysmon_env(0, &["-accepteula", "-i"], &env)
            .status
            .success()
    );
    assert!(
        t.daemon().is_none(),
        "systemd, not sysmon, starts the daemon"
    );
    let unit = std::fs::read_to_string(t.path("etc/systemd/system/sysmon.service")).unwrap();
    let exec = format!(
        "ExecStart={} -service",
        t.path("opt/sysmon/sysmon").display()
    );
    assert!(unit.lines().any(|l| l == exec), "unit: {unit}");
    assert!(unit.lines().any(|l| l == "Type=forking"));
    assert!(t.sysmon_env(0, &["-u"], &env).status.success());
    let calls = std::fs::read_to_string(&log).unwrap();
    assert_eq!(
        calls.lines().collect::<Vec<_>>(),
        [
            "stop sysmon.service",
            "try-restart rsyslog.service",
            "daemon-reload",
            "enable sysmon.service",
            "restart sysmon.service",
            "stop sysmon.service",
            "disable sysmon.service",
        ]
    );
}

/// A reload attaches the probes of event kinds the new config turns on and detaches those it
/// turns off: FileCreate events appear after `-c` names FileCreate, and stop after `-c --`.
#[test]
#[cfg_attr(no_kernel, ignore = "kernel test: needs root, BTF and rsyslogd")]
fn reload_attaches_and_detaches_probes() {
    let Some(_serial) = kernel_test("reload_probes") else {
        return;
    };
    let t = Install::new("probes");
    t.ok(&["-accepteula", "-i"]);
    let token = format!("probe-{}", unique());
    // Creates a file, then execs a marker: the marker's ProcessCreate comes after any
    // FileCreate of that file, so once it is in the log the file's fate is known.
    let create = |n: &str| {
        let file = t.path(&format!("{token}-{n}"));
        std::fs::File::create(&file).unwrap();
        exec_true(&format!("{token}-marker-{n}"));
        t.wait_event("the marker", |e| {
            e.id == 1
                && e.get("CommandLine")
                    .is_some_and(|c| c.ends_with(&format!("marker-{n}")))
        });
        let name = file.display().to_string();
        t.events()
            .iter()
            .filter(|e| e.id == 11 && e.get("TargetFilename") == Some(&name))
            .count()
    };
    assert_eq!(create("before"), 0, "FileCreate is off by default");
    std::fs::write(
        t.path("files.xml"),
        "<Sysmon schemaversion=\"4.50\">\n  <EventFiltering>\n    <FileCreate onmatch=\"exclude\"/>\n  </EventFiltering>\n</Sysmon>\n",
    )
    .unwrap();
    t.ok(&["-c", "files.xml"]);
    assert_eq!(create("on"), 1, "the reload attached the FileCreate probe");
    t.ok(&["-c", "--"]);
    assert_eq!(create("off"), 0, "the reload detached it again");
    t.ok(&["-u"]);
}
