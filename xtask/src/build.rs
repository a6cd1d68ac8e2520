//! Building the eBPF object with the nightly toolchain, then the agent that embeds it.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context, Result, bail};

pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// The eBPF object's path after `ebpf()`.
pub fn ebpf_object() -> PathBuf {
    root().join("sysmon-ebpf/target/bpfel-unknown-none/release/sysmon")
}

/// A `cargo` for the workspace, on the stable toolchain.
pub fn cargo() -> Command {
    let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    c.current_dir(root());
    c
}

/// Builds sysmon-ebpf for bpfel-unknown-none with the nightly (its rust-toolchain.toml).
pub fn ebpf() -> Result<()> {
    let mut c = Command::new("cargo");
    c.current_dir(root().join("sysmon-ebpf"))
        .args(["+nightly", "build", "--release"]);
    // Variables set by the outer (stable) cargo must not leak into the nightly build.
    for var in [
        "RUSTC",
        "RUSTC_WRAPPER",
        "RUSTUP_TOOLCHAIN",
        "CARGO",
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
    ] {
        c.env_remove(var);
    }
    c.env("PATH", crate::setup::path_with_cargo_bin());
    run(&mut c).context("building the eBPF programs (did `cargo xtask setup` run?)")
}

/// Builds everything; returns the `sysmon` binary.
pub fn all() -> Result<PathBuf> {
    ebpf()?;
    run(cargo()
        .args(["build", "--release", "-p", "sysmon-agent"])
        .env("SYSMON_EBPF_OBJ", ebpf_object()))?;
    Ok(target_dir().join("release/sysmon"))
}

/// Builds every test binary of the workspace (release) without running them; writes
/// `name path` for each integration test, a line each, from cargo's build messages, to a
/// file it returns (for the guest tests: `SYSMON_GUEST_TESTS`).
pub fn test_binaries() -> Result<PathBuf> {
    let out = cargo()
        .args(["test", "--workspace", "--release", "--no-run"])
        .args(["--message-format", "json-render-diagnostics"])
        .stderr(std::process::Stdio::inherit())
        .output()
        .context("cargo test --no-run")?;
    if !out.status.success() {
        bail!("building the tests failed");
    }
    let mut list = Vec::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Ok(msg) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        let target = &msg["target"];
        if let (Some(exe), Some(name)) = (msg["executable"].as_str(), target["name"].as_str())
            && target["kind"][0] == "test"
        {
            list.push(format!("{name} {exe}\n"));
        }
    }
    let file = target_dir().join("test-binaries");
    std::fs::write(&file, list.concat())?;
    Ok(file)
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target"))
}

pub fn run(c: &mut Command) -> Result<()> {
    let status = c.status().with_context(|| format!("starting {c:?}"))?;
    if !status.success() {
        bail!("{c:?} failed: {status}");
    }
    Ok(())
}

/// Runs a command in the foreground, passing its exit code through.
pub fn exec(c: &mut Command) -> Result<()> {
    let status = c.status().with_context(|| format!("starting {c:?}"))?;
    std::process::exit(status.code().unwrap_or(1));
}
