//! ProcessGuid is unique per process: a child that forks without exec in its parent's
//! second gets a GUID of its own (Sysmon for Linux gives it the parent's), and each process
//! uses its own in all its events.

use std::process::Command;

use sysmon_tests::{config_logging, events::Event, fs::work_dir, kernel_test, record_with};

/// The seconds of a GUID (`{machine-ssss-SSSS-...}`: low then high half).
fn seconds(guid: &str) -> String {
    guid[10..19].to_string()
}

#[test]
#[cfg_attr(no_kernel, ignore = "kernel test: needs root, BTF and rsyslogd")]
fn a_fork_without_exec_in_the_parents_second_has_its_own_guid() {
    let Some(_serial) = kernel_test("fork_guid") else {
        return;
    };
    const TRIES: usize = 10;
    let (_dir, root) = work_dir("fork-guid");
    // The shell creates a file, then a subshell (a fork, no exec) creates another, then the
    // shell a third; each try in a directory of its own.
    let script = "echo > \"$1/parent\"; (echo > \"$1/child\"; exit 0); wait; echo > \"$1/after\"";
    let config = config_logging(&["FileCreate"]);
    let (events, _) = record_with("fork-guid", Some(&config), |_| {
        for i in 0..TRIES {
            let d = root.join(format!("try{i}"));
            std::fs::create_dir(&d).unwrap();
            let status = Command::new("/bin/sh")
                .args(["-c", script, "sh"])
                .arg(&d)
                .status()
                .unwrap();
            assert!(status.success());
        }
    });
    let created = |path: &std::path::Path| -> &Event {
        let p = path.to_str().unwrap();
        let mine: Vec<_> = events
            .iter()
            .filter(|e| e.id == 11 && e.get("TargetFilename") == Some(p))
            .collect();
        assert_eq!(mine.len(), 1, "FileCreate of {p}: {mine:#?}");
        mine[0]
    };
    let by_pid = |id: u16, pid: &str| -> Vec<&Event> {
        events
            .iter()
            .filter(|e| e.id == id && e.get("ProcessId") == Some(pid))
            .collect()
    };
    let mut same_second = 0;
    for i in 0..TRIES {
        let d = root.join(format!("try{i}"));
        let (parent, child, after) = (
            created(&d.join("parent")),
            created(&d.join("child")),
            created(&d.join("after")),
        );
        let (ppid, cpid) = (
            parent.get("ProcessId").unwrap(),
            child.get("ProcessId").unwrap(),
        );
        assert_ne!(ppid, cpid, "try {i}: the subshell is a process of its own");
        let (pg, cg) = (
            parent.get("ProcessGuid").unwrap(),
            child.get("ProcessGuid").unwrap(),
        );
        assert_ne!(
            pg, cg,
            "try {i}: parent {ppid} and child {cpid} share a ProcessGuid"
        );
        // Each process keeps its GUID in every later event: the shell's exec, its files, its
        // end; the child's file and its end.
        assert_eq!(
            after.get("ProcessGuid"),
            Some(pg),
            "try {i}: the shell's later file"
        );
        let shell_create = by_pid(1, ppid);
        assert_eq!(shell_create.len(), 1, "try {i}: the shell's ProcessCreate");
        assert_eq!(shell_create[0].get("ProcessGuid"), Some(pg), "try {i}");
        for (pid, guid, who) in [(ppid, pg, "shell"), (cpid, cg, "child")] {
            let ends = by_pid(5, pid);
            assert_eq!(ends.len(), 1, "try {i}: the {who}'s ProcessTerminate");
            assert_eq!(ends[0].get("ProcessGuid"), Some(guid), "try {i}: {who}");
        }
        assert!(by_pid(1, cpid).is_empty(), "try {i}: the child never execs");
        assert_eq!(child.get("Image"), parent.get("Image"));
        if seconds(pg) == seconds(cg) {
            same_second += 1;
        }
    }
    // The case Sysmon gets wrong is the child started in its parent's second: most tries
    // are (a fork takes well under a millisecond).
    assert!(same_second > 0, "no try forked within its parent's second");
}
