//! Golden tests: every sysmonLogView option run by the real binary over a recorded log
//! (`tests/data/logview/sample.log`: every event id, escaped and non-ASCII values, other
//! programs' lines, a truncated and a malformed event).
//!
//! Each golden file holds the exit code, stdout and stderr. Regenerate after an intended
//! change with `UPDATE_GOLDEN=1 cargo test -p sysmon-agent --test logview_golden` and review
//! the diff.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// (golden file name, arguments). `-` as the only argument feeds the log on stdin.
const CASES: &[(&str, &[&str])] = &[
    ("default", &["sample.log"]),
    ("stdin", &["-"]),
    ("e_one", &["-e", "1", "sample.log"]),
    (
        "e_list_repeated",
        &["-e", "5,23", "-e", "255", "sample.log"],
    ),
    ("e_glued", &["-e3", "sample.log"]),
    ("r_range", &["-r", "1042,1046", "sample.log"]),
    ("r_open_min", &["-r", ",1041", "sample.log"]),
    ("r_open_max", &["-r", "1060,", "sample.log"]),
    (
        "t_range",
        &["-t", "2024-05-14 09:21:07,2024-05-14 09:23", "sample.log"],
    ),
    ("t_open_end", &["-t", "2024-05-14 09:30,", "sample.log"]),
    (
        "t_millis",
        &["-t", ",2024-05-14 09:21:07.614", "-e", "1,3", "sample.log"],
    ),
    (
        "f_and_or",
        &[
            "-f",
            "User=alice",
            "-f",
            "Image=/usr/bin/curl,/usr/bin/sh",
            "sample.log",
        ],
    ),
    (
        "f_escaped_value",
        &["-f", "RuleName=shell&pipe", "sample.log"],
    ),
    (
        "f_non_ascii",
        &[
            "-f",
            "TargetFilename=/home/alice/Документы/日本語 résumé.txt",
            "-e",
            "11",
            "sample.log",
        ],
    ),
    (
        "E_select",
        &[
            "-e",
            "1,3",
            "-E",
            "1=Image,CommandLine",
            "-E",
            "3=DestinationIp,DestinationPort",
            "sample.log",
        ],
    ),
    ("X_blank", &["-X", "-e", "4,16", "sample.log"]),
    ("k_rulename", &["-k", "outbound-https", "sample.log"]),
    (
        "k_two",
        &[
            "-k",
            "shell&pipe",
            "--key",
            "outbound-https",
            "-E",
            "3=RuleName",
            "-E",
            "1=RuleName",
            "sample.log",
        ],
    ),
    ("json", &["--json", "sample.log"]),
    (
        "json_selected",
        &[
            "--json",
            "-e",
            "1",
            "-E",
            "1=CommandLine,CurrentDirectory",
            "sample.log",
        ],
    ),
    ("summary", &["--summary", "sample.log"]),
    (
        "summary_time",
        &[
            "--summary",
            "-t",
            "2024-05-14 09:25,2024-05-14 09:31",
            "sample.log",
        ],
    ),
    ("tree", &["--tree", "sample.log"]),
    (
        "tree_colour",
        &["--tree", "--color", "always", "sample.log"],
    ),
    (
        "colour_always",
        &["--color", "always", "-e", "3,255", "sample.log"],
    ),
    (
        "T_settings",
        &[
            "-T",
            "-e",
            "1,3",
            "-r",
            "5,",
            "-t",
            "2024-05-14 09:00,",
            "-f",
            "User=alice",
            "-E",
            "1=Image",
            "-k",
            "x",
            "-X",
            "sample.log",
        ],
    ),
    ("bad_time", &["-t", "yesterday,", "sample.log"]),
    ("bad_E", &["-E", "Image,SourceIp", "sample.log"]),
    ("missing_file", &["sample.log", "no-such.log"]),
];

fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/logview")
}

fn run(args: &[&str]) -> String {
    let dir = data_dir();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sysmonLogView"));
    cmd.current_dir(&dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let stdin_input = args == ["-"];
    if stdin_input {
        cmd.stdin(Stdio::piped());
    } else {
        cmd.args(args).stdin(Stdio::null());
    }
    let mut child = cmd.spawn().expect("spawn sysmonLogView");
    if stdin_input {
        let log = std::fs::read(dir.join("sample.log")).unwrap();
        let mut stdin = child.stdin.take().unwrap();
        std::thread::spawn(move || stdin.write_all(&log).unwrap());
    }
    let out = child.wait_with_output().unwrap();
    format!(
        "exit: {}\n--- stdout\n{}--- stderr\n{}",
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn golden() {
    let update = std::env::var_os("UPDATE_GOLDEN").is_some_and(|v| v == "1");
    let golden_dir = data_dir().join("golden");
    let mut failed = Vec::new();
    for (name, args) in CASES {
        let got = run(args);
        let path = golden_dir.join(format!("{name}.txt"));
        if update {
            std::fs::create_dir_all(&golden_dir).unwrap();
            std::fs::write(&path, &got).unwrap();
            continue;
        }
        let want = std::fs::read_to_string(&path).unwrap_or_default();
        if got != want {
            eprintln!("--- {name} {args:?}: want\n{want}\n--- got\n{got}");
            failed.push(*name);
        }
    }
    assert!(
        failed.is_empty(),
        "golden mismatch: {failed:?} (UPDATE_GOLDEN=1 to regenerate)"
    );
}

/// Every --json line is a JSON object with the header keys and the Data fields of its event.
#[test]
fn json_lines_parse() {
    let out = run(&["--json", "sample.log"]);
    let stdout = out
        .split("--- stdout\n")
        .nth(1)
        .unwrap()
        .split("--- stderr")
        .next()
        .unwrap();
    let mut ids = Vec::new();
    for line in stdout.lines() {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        for key in [
            "EventID",
            "EventRecordID",
            "SystemTime",
            "Computer",
            "UtcTime",
        ] {
            assert!(v.get(key).is_some(), "{key} missing in {line}");
        }
        ids.push(v["EventID"].as_u64().unwrap());
        if v["EventRecordID"] == 1048 {
            assert_eq!(
                v["CommandLine"],
                "python3 -c import os\nprint(1)\t# tab\\x07bell\\xff #012raw"
            );
        }
        if v["EventRecordID"] == 1045 {
            assert_eq!(
                v["CommandLine"],
                "sh -c \"grep -c 'a<b' rapport-été.txt > /tmp/n && echo ok\""
            );
        }
    }
    ids.sort();
    ids.dedup();
    assert_eq!(ids, [1, 3, 4, 5, 9, 10, 11, 16, 23, 77, 255]);
}
