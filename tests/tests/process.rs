//! ProcessCreate and ProcessTerminate end to end: real execs, the real kernel, the agent
//! binary, a real rsyslogd, events read back with an XML parser.

use std::{
    collections::{HashMap, HashSet},
    ffi::OsStr,
    os::unix::ffi::OsStrExt,
    process::Command,
};

use sysmon_tests::{TempDir, agent::Agent, events, kernel_test, rsyslog::Rsyslog, unique};

/// Runs `actions` under a fresh rsyslogd and agent; returns every event the agent wrote.
fn record(tag: &str, actions: impl FnOnce(&std::path::Path)) -> Vec<events::Event> {
    record_with(tag, None, actions)
}

/// `record` with a config file's text.
fn record_with(
    tag: &str,
    config: Option<&str>,
    actions: impl FnOnce(&std::path::Path),
) -> Vec<events::Event> {
    let dir = TempDir::new(tag);
    let syslog = Rsyslog::start(&dir.0);
    let config = config.map(|text| {
        let path = dir.0.join("config.xml");
        std::fs::write(&path, text).unwrap();
        path
    });
    let agent = Agent::start(&syslog, &dir.0, config.as_deref());
    let pid = agent.pid;
    actions(&dir.0);
    agent.stop(&syslog);
    events::parse_lines(&syslog.lines())
        .into_iter()
        .filter(|e| e.agent_pid == pid)
        .collect()
}

fn canonical(p: &str) -> String {
    std::fs::canonicalize(p).unwrap().display().to_string()
}

#[test]
#[cfg_attr(no_kernel, ignore = "kernel test: needs root, BTF and rsyslogd")]
fn five_hundred_execs_give_exactly_five_hundred_creates_and_terminates() {
    let Some(_serial) = kernel_test("five_hundred_execs") else {
        return;
    };
    const N: usize = 500;
    let token = format!("e2e-{}", unique());
    let mut children = HashMap::new();
    let workdir = TempDir::new("cwd");
    let events = record("execs", |_| {
        for i in 0..N {
            let arg = format!("{token}-{i}");
            let mut child = Command::new("/bin/true")
                .arg(&arg)
                .current_dir(&workdir.0)
                .spawn()
                .unwrap();
            children.insert(child.id().to_string(), arg);
            assert!(child.wait().unwrap().success());
        }
    });

    let me = std::process::id().to_string();
    let test_image = std::env::current_exe().unwrap().display().to_string();
    let cwd = canonical(workdir.0.to_str().unwrap());
    let creates: Vec<_> = events
        .iter()
        .filter(|e| e.id == 1 && e.get("CommandLine").is_some_and(|c| c.contains(&token)))
        .collect();
    assert_eq!(creates.len(), N, "ProcessCreate events for our execs");
    let mut guids = HashSet::new();
    for e in &creates {
        let pid = e.get("ProcessId").unwrap();
        let arg = children
            .get(pid)
            .unwrap_or_else(|| panic!("unexpected ProcessId {pid}"));
        let want = [
            ("CommandLine", format!("/bin/true {arg}")),
            ("CurrentDirectory", cwd.clone()),
            ("Image", canonical("/bin/true")),
            ("ParentProcessId", me.clone()),
            ("ParentImage", test_image.clone()),
            ("User", "root".into()),
            ("ParentUser", "root".into()),
            ("IntegrityLevel", "no level".into()),
        ];
        for (field, value) in want {
            assert_eq!(e.get(field), Some(value.as_str()), "{field} of pid {pid}");
        }
        assert!(e.get("Hashes").unwrap().starts_with("SHA256="), "Hashes");
        assert_ne!(
            e.get("ParentProcessGuid"),
            Some("{00000000-0000-0000-0000-000000000000}")
        );
        assert!(
            guids.insert(e.get("ProcessGuid").unwrap().to_string()),
            "duplicate ProcessGuid"
        );
    }
    let terminates: Vec<_> = events
        .iter()
        .filter(|e| e.id == 5 && guids.contains(e.get("ProcessGuid").unwrap()))
        .collect();
    assert_eq!(terminates.len(), N, "one ProcessTerminate per process");
    let ended: HashSet<_> = terminates
        .iter()
        .map(|e| e.get("ProcessGuid").unwrap())
        .collect();
    assert_eq!(ended.len(), N, "no duplicate ProcessTerminate");
    for e in &terminates {
        assert!(children.contains_key(e.get("ProcessId").unwrap()));
        assert_eq!(e.get("Image"), Some(canonical("/bin/true").as_str()));
        assert_eq!(e.get("User"), Some("root"));
    }
}

#[test]
#[cfg_attr(no_kernel, ignore = "kernel test: needs root, BTF and rsyslogd")]
fn awkward_arguments_give_well_formed_xml_with_the_original_text() {
    let Some(_serial) = kernel_test("awkward_arguments") else {
        return;
    };
    let token = format!("esc-{}", unique());
    let big = "B".repeat(20 * 1024);
    let huge = "H".repeat(40 * 1024);
    // (argument bytes, how the CommandLine shows them)
    let cases: Vec<(Vec<u8>, String)> = vec![
        (
            b"<tag> & \"dq\" 'sq'".to_vec(),
            "<tag> & \"dq\" 'sq'".into(),
        ),
        (
            b"line1\nline2\r\ttab".to_vec(),
            "line1\nline2\r\ttab".into(),
        ),
        (
            b"bad\xff\xfeutf8 caf\xc3\xa9".to_vec(),
            "bad\\xff\\xfeutf8 café".into(),
        ),
        (b"bell\x07".to_vec(), "bell\\x07".into()),
        // Characters XML 1.0 forbids even as references: each byte as \xNN, never raw.
        (
            "nonchar\u{FFFE}\u{FFFF}".as_bytes().to_vec(),
            "nonchar\\xef\\xbf\\xbe\\xef\\xbf\\xbf".into(),
        ),
        (big.clone().into_bytes(), big),
    ];
    let events = record("escape", |_| {
        for (i, (arg, _)) in cases.iter().enumerate() {
            let status = Command::new("/bin/true")
                .arg(format!("{token}-{i}"))
                .arg(OsStr::from_bytes(arg))
                .status()
                .unwrap();
            assert!(status.success());
        }
        let status = Command::new("/bin/true")
            .arg(format!("{token}-huge"))
            .arg(&huge)
            .status()
            .unwrap();
        assert!(status.success());
    });
    for (i, (_, want)) in cases.iter().enumerate() {
        let marker = format!("{token}-{i} ");
        let e = events
            .iter()
            .find(|e| e.id == 1 && e.get("CommandLine").is_some_and(|c| c.contains(&marker)))
            .unwrap_or_else(|| panic!("no event for case {i}"));
        assert_eq!(
            e.get("CommandLine"),
            Some(format!("/bin/true {marker}{want}").as_str()),
            "case {i}"
        );
    }
    // Past the documented 32 KiB bound the command line is cut and marked with "...".
    let marker = format!("{token}-huge ");
    let e = events
        .iter()
        .find(|e| e.id == 1 && e.get("CommandLine").is_some_and(|c| c.contains(&marker)))
        .expect("event for the huge argument");
    let cmd = e.get("CommandLine").unwrap();
    assert!(cmd.ends_with("HHH..."), "truncation marked");
    assert_eq!(cmd.len(), 32 * 1024 + 3, "cut at the 32 KiB bound");
}

#[test]
#[cfg_attr(no_kernel, ignore = "kernel test: needs root, BTF and rsyslogd")]
fn events_reach_rsyslog_as_sysmon_user_info_with_rising_record_ids() {
    let Some(_serial) = kernel_test("rsyslog_path") else {
        return;
    };
    let token = format!("sys-{}", unique());
    let events = record("syslog", |_| {
        Command::new("/bin/true").arg(&token).status().unwrap();
    });
    let create = events
        .iter()
        .find(|e| e.id == 1 && e.get("CommandLine").is_some_and(|c| c.contains(&token)))
        .expect("our exec reached rsyslog");
    // Through our input's stream (imptcp), not /dev/log (imuxsock).
    assert_eq!(create.syslog, "sysmon imptcp user info");
    // Event 16 then event 4 Started come first; record ids only go up.
    assert_eq!(events[0].id, 16);
    assert_eq!(events[1].id, 4);
    assert_eq!(events[1].get("State"), Some("Started"));
    assert_eq!(events.last().unwrap().get("State"), Some("Stopped"));
    assert!(
        events.windows(2).all(|w| w[0].record_id < w[1].record_id),
        "EventRecordID rises"
    );
}

#[test]
#[cfg_attr(no_kernel, ignore = "kernel test: needs root, BTF and rsyslogd")]
fn parent_fields_correlate_with_the_parents_own_event() {
    let Some(_serial) = kernel_test("parent_correlation") else {
        return;
    };
    let token = format!("par-{}", unique());
    // The trailing builtin keeps the shell from exec'ing the last command in its own place.
    let script = format!("/bin/true {token}-a; /bin/true {token}-b; :");
    let events = record("parent", |_| {
        assert!(
            Command::new("/bin/sh")
                .arg("-c")
                .arg(&script)
                .status()
                .unwrap()
                .success()
        );
    });
    let find = |needle: &str| {
        events
            .iter()
            .find(|e| e.id == 1 && e.get("CommandLine").is_some_and(|c| c.ends_with(needle)))
            .unwrap_or_else(|| panic!("no ProcessCreate ending with {needle}"))
    };
    let shell = find(&script);
    for child in [find(&format!("{token}-a")), find(&format!("{token}-b"))] {
        assert_eq!(child.get("ParentProcessGuid"), shell.get("ProcessGuid"));
        assert_eq!(child.get("ParentProcessId"), shell.get("ProcessId"));
        assert_eq!(child.get("ParentImage"), shell.get("Image"));
        assert_eq!(
            child.get("ParentCommandLine"),
            shell.get("CommandLine"),
            "full parent command line"
        );
    }
}

#[test]
#[cfg_attr(no_kernel, ignore = "kernel test: needs root, BTF and rsyslogd")]
fn a_multithreaded_process_ends_with_one_terminate() {
    let Some(_serial) = kernel_test("one_terminate_per_process") else {
        return;
    };
    let token = format!("thr-{}", unique());
    // Four threads that end before the main thread, and one main thread.
    let code = "import threading,time,sys\n\
                ts=[threading.Thread(target=time.sleep,args=(0.05,)) for _ in range(4)]\n\
                [t.start() for t in ts]\n[t.join() for t in ts]";
    let mut pid = 0;
    let events = record("threads", |_| {
        let mut child = Command::new("python3")
            .args(["-c", code, &token])
            .spawn()
            .unwrap();
        pid = child.id();
        assert!(child.wait().unwrap().success());
    });
    let pid = pid.to_string();
    // `python3` may be a wrapper that execs the interpreter: the process's last image counts.
    let create = events
        .iter()
        .rfind(|e| e.id == 1 && e.get("ProcessId") == Some(&pid))
        .expect("ProcessCreate of the python process");
    let ends: Vec<_> = events
        .iter()
        .filter(|e| e.id == 5 && e.get("ProcessId") == Some(&pid))
        .collect();
    assert_eq!(
        ends.len(),
        1,
        "one ProcessTerminate for a process with five threads"
    );
    assert_eq!(ends[0].get("ProcessGuid"), create.get("ProcessGuid"));
}

#[test]
#[cfg_attr(no_kernel, ignore = "kernel test: needs root, BTF and rsyslogd")]
fn the_config_decides_which_execs_are_logged_and_names_the_rule() {
    let Some(_serial) = kernel_test("config_filtering") else {
        return;
    };
    let token = format!("cfg-{}", unique());
    let config = format!(
        r#"<Sysmon schemaversion="4.81">
  <EventFiltering>
    <RuleGroup name="" groupRelation="or">
      <ProcessCreate onmatch="include">
        <CommandLine name="technique_id=T0000,technique_name=Test" condition="contains">{token}-wanted</CommandLine>
      </ProcessCreate>
    </RuleGroup>
    <ProcessTerminate onmatch="include"/>
  </EventFiltering>
</Sysmon>"#
    );
    let events = record_with("config", Some(&config), |_| {
        for arg in ["wanted", "unwanted"] {
            Command::new("/bin/true")
                .arg(format!("{token}-{arg}"))
                .status()
                .unwrap();
        }
    });
    let ours: Vec<_> = events
        .iter()
        .filter(|e| e.get("CommandLine").is_some_and(|c| c.contains(&token)))
        .collect();
    assert_eq!(ours.len(), 1, "only the included exec: {ours:?}");
    assert_eq!(
        ours[0].get("CommandLine"),
        Some(format!("/bin/true {token}-wanted").as_str())
    );
    assert_eq!(
        ours[0].get("RuleName"),
        Some("technique_id=T0000,technique_name=Test")
    );
    assert!(
        events.iter().all(|e| e.id != 5),
        "an empty include logs no ProcessTerminate"
    );
    let config_event = events.iter().find(|e| e.id == 16).unwrap();
    let hash = config_event.get("ConfigurationFileHash").unwrap();
    assert!(
        hash.starts_with("SHA256=") && hash.len() == 7 + 64,
        "hash {hash}"
    );
}

/// The kernel side reads struct fields with direct loads checked against the running
/// kernel's BTF, or, when the offsets come from a BTF file given with `-btf` (a kernel
/// without its own), with a helper call each: both give the same events, across mounts.
#[test]
#[cfg_attr(no_kernel, ignore = "kernel test: needs root, BTF and rsyslogd")]
fn direct_and_helper_reads_of_kernel_structs_give_the_same_events() {
    let Some(_serial) = kernel_test("direct_and_helper_reads") else {
        return;
    };
    // A copy of this kernel's BTF is the same data under another name: helper reads.
    let btf_copy = TempDir::new("btf");
    let btf_file = btf_copy.0.join("vmlinux");
    std::fs::copy("/sys/kernel/btf/vmlinux", &btf_file).unwrap();
    // On a mount of its own where there is one (tmpfs), so the path walk crosses mounts.
    let base = if std::path::Path::new("/dev/shm").is_dir() {
        "/dev/shm"
    } else {
        "/tmp"
    };
    for (mode, options) in [
        ("direct", vec![]),
        ("helper", vec![OsStr::new("-btf"), btf_file.as_os_str()]),
    ] {
        let token = format!("reads-{mode}-{}", unique());
        let work = std::path::PathBuf::from(base).join(&token);
        std::fs::create_dir(&work).unwrap();
        let exe = work.join("true");
        std::fs::copy("/bin/true", &exe).unwrap();
        let dir = TempDir::new("reads");
        let syslog = Rsyslog::start(&dir.0);
        let agent = Agent::start_with(&syslog, &dir.0, None, &[], &options);
        let agent_pid = agent.pid;
        let mut child = Command::new(&exe)
            .arg(&token)
            .current_dir(&work)
            .spawn()
            .unwrap();
        let pid = child.id().to_string();
        assert!(child.wait().unwrap().success());
        agent.stop(&syslog);
        std::fs::remove_dir_all(&work).unwrap();
        let events: Vec<_> = events::parse_lines(&syslog.lines())
            .into_iter()
            .filter(|e| e.agent_pid == agent_pid && e.get("ProcessId") == Some(pid.as_str()))
            .collect();
        let create = events
            .iter()
            .find(|e| e.id == 1)
            .unwrap_or_else(|| panic!("{mode}: no ProcessCreate"));
        let want = [
            ("Image", exe.display().to_string()),
            ("CommandLine", format!("{} {token}", exe.display())),
            ("CurrentDirectory", work.display().to_string()),
            ("ParentProcessId", std::process::id().to_string()),
            ("User", "root".into()),
        ];
        for (field, value) in want {
            assert_eq!(create.get(field), Some(value.as_str()), "{mode}: {field}");
        }
        let ends: Vec<_> = events.iter().filter(|e| e.id == 5).collect();
        assert_eq!(ends.len(), 1, "{mode}: one ProcessTerminate");
        assert_eq!(
            ends[0].get("ProcessGuid"),
            create.get("ProcessGuid"),
            "{mode}"
        );
    }
}
