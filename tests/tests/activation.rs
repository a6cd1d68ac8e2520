//! Only the probes of event types the configuration can emit are attached (spec §1.0): with
//! FileCreate off, thousands of file creations send no FileCreate record at all.

use sysmon_tests::{TempDir, config_logging, kernel_test, record_with};

const FILES: usize = 5000;

/// FileCreate records the agent read, from its `stopped; ... by kind: ... FileCreate N ...`
/// line.
fn file_create_records(stderr: &str) -> usize {
    stderr
        .split(" FileCreate ")
        .nth(1)
        .and_then(|s| s.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no FileCreate record count in: {stderr}"))
}

#[test]
#[cfg_attr(no_kernel, ignore = "kernel test: needs root, BTF and rsyslogd")]
fn probes_of_inactive_event_types_are_not_attached() {
    let Some(_serial) = kernel_test("activation") else {
        return;
    };
    // (config tags, FileCreate probe attached)
    let cases: &[(&[&str], bool)] = &[
        (&[], false),
        (&["FileDelete", "NetworkConnect", "RawAccessRead"], false),
        (&["FileCreate"], true),
    ];
    for (tags, attached) in cases {
        let dir = TempDir::new("activation");
        let config = config_logging(tags);
        let (events, stderr) = record_with("activation", Some(&config), |_| {
            for i in 0..FILES {
                std::fs::write(dir.0.join(format!("f{i}")), b"").unwrap();
            }
        });
        let creates = events.iter().filter(|e| e.id == 11).count();
        // Other processes create files too: only their number is unknown, not their absence.
        let n = file_create_records(&stderr);
        if *attached {
            assert!(creates >= FILES, "{tags:?}: {creates} FileCreate events");
            assert!(n >= FILES, "{tags:?}: {n} records");
        } else {
            assert_eq!(creates, 0, "{tags:?}: FileCreate events");
            assert!(
                n < FILES / 2,
                "{tags:?}: {n} kernel records, probe attached?"
            );
        }
    }
}
