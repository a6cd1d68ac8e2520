//! Only the probes of event types the configuration can emit are attached (spec §1.0): with
//! FileCreate off, thousands of file creations send no kernel records at all.

use sysmon_tests::{TempDir, config_logging, kernel_test, record_with};

const FILES: usize = 5000;

/// Kernel records the agent read, from its `stopped; records N, ...` line.
fn records(stderr: &str) -> usize {
    stderr
        .split("records ")
        .nth(1)
        .and_then(|s| s.split(',').next())
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no record count in: {stderr}"))
}

#[test]
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
        // The machine's own execs, exits and forks are few next to FILES.
        let n = records(&stderr);
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
