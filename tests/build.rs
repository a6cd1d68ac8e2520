//! Decides, where the tests are built, whether the kernel tests can run there: they need root,
//! BTF and rsyslogd. When they cannot and CI is not set, `cfg(no_kernel)` marks every kernel
//! test `#[ignore]`d, so `cargo test` lists them as ignored (with the reason) and counts them
//! in its summary instead of showing a silent `ok`. Under `CI=true` they are never ignored:
//! a kernel test that cannot run there fails.
//!
//! The guest tests (tests/tests/guest.rs: the kernel tests inside another kernel under qemu)
//! have their own gate, `cfg(no_guest)`: they also need qemu, virtiofsd, busybox and the
//! cached kernel, not this machine's BTF.

use std::path::Path;

const BTF: &str = "/sys/kernel/btf/vmlinux";
/// Where the harness looks for rsyslogd (tests/src/rsyslog.rs).
const RSYSLOGD: &[&str] = &["/usr/sbin/rsyslogd", "/sbin/rsyslogd"];

fn main() {
    println!("cargo::rustc-check-cfg=cfg(no_kernel)");
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-env-changed=CI");
    let ci = std::env::var("CI").is_ok_and(|v| v == "true");
    let why = if unsafe { libc::geteuid() } != 0 {
        Some("not root")
    } else if !Path::new(BTF).exists() {
        Some("no BTF at /sys/kernel/btf/vmlinux")
    } else if !RSYSLOGD.iter().any(|p| Path::new(p).exists()) {
        Some("rsyslogd is not installed (cargo xtask setup installs it)")
    } else {
        None
    };
    if let Some(why) = why.filter(|_| !ci) {
        println!("cargo::rustc-cfg=no_kernel");
        println!(
            "cargo::warning=kernel tests are ignored here: {why} (with CI=true they fail instead)"
        );
    }
    guest(ci, why);
    // Decide again when what was checked may have changed: another user (su, sudo), BTF,
    // rsyslogd installed or removed (a path that does not exist counts as changed, so while
    // rsyslogd is missing this runs on every build).
    for var in ["USER", "HOME", "SUDO_UID"] {
        println!("cargo::rerun-if-env-changed={var}");
    }
    println!("cargo::rerun-if-changed={BTF}");
    let installed: Vec<&str> = RSYSLOGD
        .iter()
        .copied()
        .filter(|p| Path::new(p).exists())
        .collect();
    let watched = if installed.is_empty() {
        &RSYSLOGD[..1]
    } else {
        &installed[..]
    };
    for p in watched {
        println!("cargo::rerun-if-changed={p}");
    }
}

/// Where tests/src/guest.rs looks (`guest::{QEMU, VIRTIOFSD, BUSYBOX, CACHE}`).
const GUEST_NEEDS: &[(&str, &str)] = &[
    ("/usr/bin/qemu-system-x86_64", "qemu-system-x86"),
    ("/usr/lib/qemu/virtiofsd", "qemu-system-x86"),
    ("/bin/busybox", "busybox-static"),
    ("/var/cache/sysmon-ebpf/kernels/6.1", "the 6.1 kernel"),
];

/// `cfg(no_guest)` with the reason in `SYSMON_NO_GUEST`, unless under CI.
fn guest(ci: bool, kernel_why: Option<&str>) {
    println!("cargo::rustc-check-cfg=cfg(no_guest)");
    let missing = GUEST_NEEDS.iter().find(|(p, _)| !Path::new(p).exists());
    let why = match (kernel_why, missing) {
        // The guest kernel has its own BTF: this machine's is not needed.
        (Some(w), _) if !w.starts_with("no BTF") => Some(w.to_string()),
        (_, Some((path, what))) => Some(format!("no {path} (cargo xtask setup installs {what})")),
        _ => None,
    };
    if let Some(why) = why.filter(|_| !ci) {
        println!("cargo::rustc-cfg=no_guest");
        println!("cargo::rustc-env=SYSMON_NO_GUEST=guest test: {why}");
        println!(
            "cargo::warning=guest tests are ignored here: {why} (with CI=true they fail instead)"
        );
    }
    for (p, _) in GUEST_NEEDS {
        println!("cargo::rerun-if-changed={p}");
    }
}
