//! Installs what the build and the tests need, once: each step checks before it acts.

use std::{path::PathBuf, process::Command};

use anyhow::{Context, Result};

use crate::build::run;

pub fn all() -> Result<()> {
    rust_src()?;
    bpf_linker()?;
    apt()?;
    rsyslog_relp()?;
    packagers()
}

fn cargo_bin() -> PathBuf {
    let home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cargo")
        });
    home.join("bin")
}

/// PATH with cargo's bin directory (where bpf-linker goes) in front.
pub fn path_with_cargo_bin() -> std::ffi::OsString {
    let mut paths = vec![cargo_bin()];
    paths.extend(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    ));
    std::env::join_paths(paths).unwrap()
}

/// rust-src for the nightly, which `-Z build-std=core` needs.
fn rust_src() -> Result<()> {
    let sysroot = Command::new("rustc")
        .args(["+nightly", "--print", "sysroot"])
        .output()
        .context("the nightly toolchain is needed for the eBPF programs")?;
    let sysroot = String::from_utf8_lossy(&sysroot.stdout).trim().to_string();
    if PathBuf::from(&sysroot)
        .join("lib/rustlib/src/rust/library/core")
        .exists()
    {
        return Ok(());
    }
    eprintln!("setup: adding rust-src to the nightly toolchain");
    run(Command::new("rustup").args(["component", "add", "rust-src", "--toolchain", "nightly"]))
}

/// The bpf-linker every machine builds with: one exact version, so that a machine with an
/// older one installed does not produce different code (stack frames, inlining) from a
/// fresh one. 0.10 loads the nightly's own libLLVM: no system LLVM needed.
const BPF_LINKER: &str = "0.10.4";

fn bpf_linker() -> Result<()> {
    let have = Command::new(cargo_bin().join("bpf-linker"))
        .arg("--version")
        .output();
    let version = |o: &std::process::Output| {
        String::from_utf8_lossy(&o.stdout)
            .split_whitespace()
            .nth(1)
            .map(str::to_string)
    };
    if have
        .as_ref()
        .is_ok_and(|o| o.status.success() && version(o).as_deref() == Some(BPF_LINKER))
    {
        return Ok(());
    }
    eprintln!("setup: installing bpf-linker {BPF_LINKER} (about a minute)");
    run(Command::new("cargo")
        .args([
            "+stable",
            "install",
            "bpf-linker",
            "--version",
            &format!("={BPF_LINKER}"),
            "--locked",
            "--force",
        ])
        .env_remove("RUSTUP_TOOLCHAIN"))
}

/// Debian packages: (a program it provides, the package) for each.
const APT: &[(&str, &str)] = &[
    // The tests send events through a real syslog daemon.
    ("rsyslogd", "rsyslog"),
    // `cargo xtask package` and its tests: the distributions' checkers, `strip` for the RPM's
    // binaries, `man -l` on the generated pages, `rpm`, `rpm2cpio` and `cpio` to read the RPM back.
    ("lintian", "lintian"),
    ("rpmlint", "rpmlint"),
    ("rpm", "rpm"),
    ("rpm2cpio", "rpm2cpio"),
    ("cpio", "cpio"),
    ("strip", "binutils"),
    ("man", "man-db"),
    ("groff", "groff-base"),
    // The container tests: runtimes whose daemons the tests start by hand, runc (crun
    // refuses a hybrid cgroup host), and a static busybox to make the test image from.
    ("dockerd", "docker.io"),
    ("containerd", "containerd"),
    ("ctr", "containerd"),
    ("podman", "podman"),
    ("runc", "runc"),
    ("busybox", "busybox-static"),
];

/// Installs the Debian packages whose program is missing (one apt-get for all of them).
fn apt() -> Result<()> {
    let missing: Vec<&str> = APT
        .iter()
        .filter(|(program, _)| !which(program))
        .map(|(_, package)| *package)
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    eprintln!("setup: installing {}", missing.join(" "));
    let quiet = |c: &mut Command| {
        c.env("DEBIAN_FRONTEND", "noninteractive")
            .status()
            .map(|s| s.success())
    };
    quiet(Command::new("apt-get").args(["update", "-qq"]))?;
    let mut missing = missing;
    missing.dedup();
    // Package scripts must not start daemons (docker, containerd): the tests start their
    // own. A policy-rc.d that refuses (101) does it where none is in place.
    let policy = std::path::Path::new("/usr/sbin/policy-rc.d");
    let placed = !policy.exists() && std::fs::write(policy, "#!/bin/sh\nexit 101\n").is_ok();
    if placed {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(policy, std::fs::Permissions::from_mode(0o755))?;
    }
    let installed = quiet(
        Command::new("apt-get")
            .args(["install", "-y", "-qq", "--no-install-recommends"])
            .args(&missing),
    );
    if placed {
        let _ = std::fs::remove_file(policy);
    }
    if !installed? {
        anyhow::bail!("apt-get install {} failed", missing.join(" "));
    }
    Ok(())
}

/// omrelp and imrelp, for the forwarding test with the shipped RELP configs.
fn rsyslog_relp() -> Result<()> {
    let have = [
        "/usr/lib/x86_64-linux-gnu",
        "/usr/lib/aarch64-linux-gnu",
        "/usr/lib",
    ]
    .iter()
    .any(|d| std::path::Path::new(d).join("rsyslog/omrelp.so").exists());
    if have {
        return Ok(());
    }
    eprintln!("setup: installing rsyslog-relp");
    let ok = Command::new("apt-get")
        .args(["install", "-y", "-qq", "rsyslog-relp"])
        .env("DEBIAN_FRONTEND", "noninteractive")
        .status()
        .map(|s| s.success())?;
    if !ok {
        anyhow::bail!("apt-get install rsyslog-relp failed");
    }
    Ok(())
}

/// cargo-deb and cargo-generate-rpm, for `cargo xtask package` (a few minutes to build).
fn packagers() -> Result<()> {
    let missing: Vec<&str> = ["cargo-deb", "cargo-generate-rpm"]
        .into_iter()
        .filter(|tool| !cargo_bin().join(tool).exists())
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    eprintln!("setup: installing {} (a few minutes)", missing.join(" "));
    run(Command::new("cargo")
        .args(["+stable", "install", "--locked"])
        .args(&missing)
        .env_remove("RUSTUP_TOOLCHAIN"))
}

fn which(name: &str) -> bool {
    std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .chain(["/usr/sbin".into(), "/sbin".into()])
        .any(|d| d.join(name).exists())
}
