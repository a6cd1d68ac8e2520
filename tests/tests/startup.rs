//! The agent refuses to start with a clear message and a non-zero exit when it cannot run.

use std::{os::unix::process::CommandExt, process::Command};

use sysmon_tests::{kernel_test, sysmon_bin};

#[test]
#[cfg_attr(no_kernel, ignore = "kernel test: needs root, BTF and rsyslogd")]
fn says_what_is_wrong_and_exits_non_zero() {
    let Some(_serial) = kernel_test("startup_errors") else {
        return;
    };
    // (arguments, run as uid, what stderr must say)
    let cases: &[(&[&str], u32, &str)] = &[
        (&["-t"], 65534, "You need to run Sysmon as root"),
        (
            &["-t", "-btf", "/nonexistent/vmlinux"],
            0,
            "no BTF at /nonexistent/vmlinux",
        ),
        (
            &["-t", "/nonexistent/config.xml"],
            0,
            "/nonexistent/config.xml",
        ),
        (&["-bogus"], 0, "unknown switch '-bogus'"),
    ];
    for (args, uid, want) in cases {
        let out = Command::new(sysmon_bin())
            .args(*args)
            .uid(*uid)
            .env("SYSMON_SYSLOG_SOCKET", "/nonexistent/socket")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} should fail");
        assert!(
            stderr.contains(want),
            "{args:?}: stderr {stderr:?} lacks {want:?}"
        );
    }
}
