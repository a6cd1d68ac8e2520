//! `cargo xtask image`: a container image of the agent, made offline from our own build: the
//! binary, the shared libraries it links (from `ldd`) and the default config, imported with
//! `docker import` (no registry, no base image). See docs/containers.md for how to run it.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context, Result, bail};

use crate::build::{root, run};

/// The image's name when none is given.
pub fn default_tag() -> String {
    format!("sysmon-ebpf:{}", env!("CARGO_PKG_VERSION"))
}

/// Builds the root filesystem of `bin` and imports it as `tag` with `$DOCKER` (default
/// `docker`; `DOCKER_HOST` picks the daemon).
pub fn build(bin: &Path, tag: &str) -> Result<PathBuf> {
    let dir = root().join("target/image");
    let rootfs = dir.join("rootfs");
    let _ = std::fs::remove_dir_all(&rootfs);
    for d in ["usr/bin", "etc/sysmon", "tmp", "opt/sysmon", "host"] {
        std::fs::create_dir_all(rootfs.join(d))?;
    }
    copy(bin, &rootfs.join("usr/bin/sysmon"))?;
    for lib in libraries(bin)? {
        copy(&lib, &rootfs.join(lib.strip_prefix("/")?))?;
    }
    copy(
        &root().join("configs/default.xml"),
        &rootfs.join("etc/sysmon/default.xml"),
    )?;
    let tar = dir.join("sysmon-image.tar");
    run(Command::new("tar")
        .arg("-C")
        .arg(&rootfs)
        .args(["--owner=0", "--group=0", "-cf"])
        .arg(&tar)
        .arg("."))?;
    let docker = std::env::var("DOCKER").unwrap_or_else(|_| "docker".into());
    run(Command::new(&docker)
        .args(["import", "--change", r#"ENTRYPOINT ["/usr/bin/sysmon"]"#])
        .args(["--change", "ENV SYSMON_HOST_ROOT=/host"])
        .arg(&tar)
        .arg(tag))
    .with_context(|| format!("importing the image with {docker}"))?;
    eprintln!("image: {tag} (from {})", tar.display());
    Ok(tar)
}

/// The shared libraries `bin` loads, as `ldd` resolves them.
fn libraries(bin: &Path) -> Result<Vec<PathBuf>> {
    let out = Command::new("ldd").arg(bin).output().context("ldd")?;
    if !out.status.success() {
        bail!(
            "ldd {}: {}",
            bin.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            // `libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x…)` or `/lib64/ld-… (0x…)`.
            let path = l.split("=>").last()?.split_whitespace().next()?;
            path.starts_with('/').then(|| PathBuf::from(path))
        })
        .collect())
}

fn copy(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to.parent().unwrap())?;
    std::fs::copy(from, to).with_context(|| format!("copying {}", from.display()))?;
    Ok(())
}
