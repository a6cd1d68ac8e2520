//! `cargo xtask package`: the .deb (cargo-deb) and the .rpm (cargo-generate-rpm) in
//! target/package/, from the release build.
//!
//! Both tools read their asset lists from sysmon-agent/Cargo.toml; what is generated goes to
//! target/package/stage first: the man pages and completions (`sysmon-docs`, from the clap
//! definitions), stripped binaries for the RPM (cargo-deb strips its own), and the
//! maintainer scripts, each packaging/maintainscript.sh plus the call for its hook.

use std::{
    fs,
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context, Result, bail};

use crate::build::{self, run};

pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Each script the packages run: (path under stage/, the call after the shared functions).
const HOOKS: &[(&str, &str)] = &[
    ("debian/postinst", "deb_postinst \"$@\""),
    ("debian/prerm", "deb_prerm \"$@\""),
    ("debian/postrm", "deb_postrm \"$@\""),
    ("rpm/post", "rpm_post \"$1\""),
    ("rpm/preun", "rpm_preun \"$1\""),
];

/// Where the packages go: target/package under the repository, whatever CARGO_TARGET_DIR
/// says, because sysmon-agent/Cargo.toml names the stage by that path.
pub fn dir() -> PathBuf {
    build::root().join("target/package")
}

pub fn deb() -> PathBuf {
    dir().join(format!("sysmon-ebpf_{VERSION}_amd64.deb"))
}

pub fn rpm() -> PathBuf {
    dir().join(format!("sysmon-ebpf-{VERSION}.x86_64.rpm"))
}

/// Builds everything, then both packages; returns the `sysmon` binary.
pub fn all() -> Result<PathBuf> {
    let bin = build::all()?;
    let release = bin.parent().unwrap();
    let stage = dir().join("stage");
    if stage.exists() {
        fs::remove_dir_all(&stage).with_context(|| format!("removing {}", stage.display()))?;
    }
    fs::create_dir_all(stage.join("bin"))?;

    run(Command::new(release.join("sysmon-docs")).arg(&stage))?;
    for page in ["man/sysmon.8", "man/sysmonLogView.1"] {
        // -n: no name or time in the header, so the same page gives the same bytes.
        run(Command::new("gzip").args(["-9nf"]).arg(stage.join(page)))?;
    }
    // Debian's changelog of a native package, gzipped as policy wants it (both packages).
    let changelog = build::root().join("packaging/changelog");
    let text = fs::read_to_string(&changelog)
        .with_context(|| format!("reading {}", changelog.display()))?;
    let head = format!("sysmon-ebpf ({VERSION})");
    if !text.starts_with(&head) {
        bail!(
            "{}:1: the newest entry must be for this version, \"{head} ...\"; add one",
            changelog.display()
        );
    }
    fs::copy(&changelog, stage.join("changelog")).context("copying the changelog")?;
    run(Command::new("gzip")
        .args(["-9nf"])
        .arg(stage.join("changelog")))?;
    for name in ["sysmon", "sysmonLogView"] {
        run(Command::new("strip")
            .arg("-o")
            .arg(stage.join("bin").join(name))
            .arg(release.join(name)))?;
    }
    let functions = fs::read_to_string(build::root().join("packaging/maintainscript.sh"))
        .context("reading packaging/maintainscript.sh")?;
    for (path, call) in HOOKS {
        let file = stage.join(path);
        fs::create_dir_all(file.parent().unwrap())?;
        fs::write(
            &file,
            format!("#!/bin/sh\nset -e\n\n{functions}\n{call}\n\nexit 0\n"),
        )?;
        fs::set_permissions(&file, fs::Permissions::from_mode(0o755))?;
    }

    let tools = |sub: &str| {
        let mut c = build::cargo();
        c.arg(sub).env("PATH", crate::setup::path_with_cargo_bin());
        c
    };
    run(tools("deb")
        // --fast: a few seconds instead of a minute of xz, for a package 30% larger.
        .args([
            "-p",
            "sysmon-agent",
            "--no-build",
            "--strip",
            "--fast",
            "-o",
        ])
        .arg(deb()))
    .context("cargo-deb (did `cargo xtask setup` run?)")?;
    run(tools("generate-rpm")
        .args(["-p", "sysmon-agent", "-o"])
        .arg(rpm()))
    .context("cargo-generate-rpm (did `cargo xtask setup` run?)")?;
    for p in [deb(), rpm()] {
        println!("{}", relative(&p).display());
    }
    Ok(bin)
}

fn relative(p: &Path) -> &Path {
    p.strip_prefix(build::root()).unwrap_or(p)
}
