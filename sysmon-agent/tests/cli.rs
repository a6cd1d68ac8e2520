//! The command lines of `sysmon` and `sysmonLogView` against arguments that are not UTF-8:
//! bad usage (exit 87) with a message naming the argument, never a panic. No root needed:
//! arguments are checked before anything else.

use std::{ffi::OsStr, os::unix::ffi::OsStrExt, process::Command};

#[test]
fn arguments_that_are_not_utf8_are_bad_usage() {
    let sysmon = env!("CARGO_BIN_EXE_sysmon");
    let logview = env!("CARGO_BIN_EXE_sysmonLogView");
    // (binary, arguments, what stderr must say)
    let cases: &[(&str, &[&[u8]], &str)] = &[
        (
            sysmon,
            &[b"\xff"],
            "sysmon: argument 1 is not valid UTF-8: '\\xff'",
        ),
        (
            sysmon,
            &[b"-accepteula", b"-i", b"conf\xfe.xml"],
            "argument 3 is not valid UTF-8: 'conf\\xfe.xml'",
        ),
        (
            sysmon,
            &[b"-c", b"caf\xc3"],
            "argument 2 is not valid UTF-8: 'caf\\xc3'",
        ),
        (
            logview,
            &[b"\xff"],
            "sysmonLogView: argument 1 is not valid UTF-8: '\\xff'",
        ),
        (
            logview,
            &[b"-e", b"1", b"log\x80"],
            "argument 3 is not valid UTF-8: 'log\\x80'",
        ),
    ];
    for (bin, args, want) in cases {
        let out = Command::new(bin)
            .args(args.iter().map(|a| OsStr::from_bytes(a)))
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(87), "{bin} {args:?}: {err}");
        assert!(err.contains(want), "{bin} {args:?}: {err:?} lacks {want:?}");
        assert!(!err.contains("panicked"), "{bin} {args:?}: {err}");
    }
}
