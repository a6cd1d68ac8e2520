//! Installs what the build and the tests need, once: each step checks before it acts.

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context, Result, bail};

use crate::build::run;

pub fn all() -> Result<()> {
    rust_src()?;
    bpf_linker()?;
    apt()?;
    rsyslog_relp()?;
    packagers()?;
    guest()
}

/// What the guest tests need: qemu and its virtiofsd, a static busybox for the initramfs,
/// and Debian 12's 6.1 kernel.
pub fn guest() -> Result<()> {
    use sysmon_tests::guest::{QEMU, VIRTIOFSD};
    let busybox_static = Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", "busybox-static"])
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("install ok installed"));
    if !Path::new(QEMU).exists() || !Path::new(VIRTIOFSD).exists() || !busybox_static {
        eprintln!("setup: installing qemu-system-x86 busybox-static");
        apt_install(&["qemu-system-x86", "busybox-static"])?;
    }
    kernel("6.1", r"^linux-image-6\.1\.0-[0-9]+-cloud-amd64$")
}

/// The newest cloud kernel of `series` that apt offers (`pattern`: its package names),
/// unpacked into `guest::CACHE/<release>/` unless it is there; `CACHE/<series>` names it.
fn kernel(series: &str, pattern: &str) -> Result<()> {
    let offered = || -> Result<Vec<String>> {
        let out = Command::new("apt-cache")
            .args(["search", "--names-only", pattern])
            .output()
            .context("apt-cache")?;
        Ok(String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.split_whitespace().next().map(str::to_string))
            .collect())
    };
    let mut packages = offered()?;
    if packages.is_empty() {
        quiet(Command::new("apt-get").args(["update", "-qq"]))?;
        packages = offered()?;
    }
    // linux-image-6.1.0-57-cloud-amd64: the newest is the highest ABI number (57).
    let abi = |p: &String| -> u32 {
        p.split('-')
            .nth(3)
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    };
    let Some(package) = packages.iter().max_by_key(|p| abi(p)) else {
        bail!("apt offers no {pattern} (is Debian's archive in the apt sources?)");
    };
    let release = package.trim_start_matches("linux-image-").to_string();
    let cache = Path::new(sysmon_tests::guest::CACHE);
    let dir = cache.join(&release);
    eprintln!(
        "setup: guest kernel {release} (the newest {series} cloud kernel apt offers), in {}",
        dir.display()
    );
    if !dir.exists() {
        fs::create_dir_all(cache)?;
        // Unpacked aside, then renamed: a half-unpacked kernel is never used.
        let part = cache.join(format!(".{release}.{}", std::process::id()));
        let _ = fs::remove_dir_all(&part);
        fs::create_dir_all(&part)?;
        let ok = quiet(
            Command::new("apt-get")
                .args(["download", "-qq", "-o", "APT::Sandbox::User=root", package])
                .current_dir(&part),
        )?;
        let deb = fs::read_dir(&part)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .find(|p| p.extension().is_some_and(|x| x == "deb"));
        let Some(deb) = deb.filter(|_| ok) else {
            bail!("apt-get download {package} failed");
        };
        run(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&part))?;
        fs::remove_file(&deb)?;
        // Another setup may have finished first: its copy is as good.
        if fs::rename(&part, &dir).is_err() && dir.exists() {
            fs::remove_dir_all(&part)?;
        }
    }
    let pointer = cache.join(series);
    if fs::read_to_string(&pointer).ok().as_deref() != Some(release.as_str()) {
        fs::write(&pointer, &release)?;
    }
    Ok(())
}

fn quiet(c: &mut Command) -> Result<bool> {
    Ok(c.env("DEBIAN_FRONTEND", "noninteractive")
        .status()?
        .success())
}

fn apt_install(packages: &[&str]) -> Result<()> {
    quiet(Command::new("apt-get").args(["update", "-qq"]))?;
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
            .args(packages),
    );
    if placed {
        let _ = std::fs::remove_file(policy);
    }
    if !installed? {
        bail!("apt-get install {} failed", packages.join(" "));
    }
    Ok(())
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
    let mut missing = missing;
    missing.dedup();
    apt_install(&missing)
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
