//! The packages `cargo xtask package` builds (target/package/; `cargo xtask test` builds
//! them first): the distributions' checkers, the .deb installed into a temporary root with
//! `dpkg --root` (maintainer scripts run chrootless, with DPKG_ROOT), the .rpm read back
//! with `rpm`, and the maintainer scripts driving a recording `systemctl` and a real daemon.

use std::{
    collections::HashMap,
    os::unix::fs::{MetadataExt, PermissionsExt},
    path::{Path, PathBuf},
    process::{Command, Output},
};

use sysmon_tests::{
    TempDir, kernel_test,
    service::{Install, exec_true},
    unique,
};

const VERSION: &str = env!("CARGO_PKG_VERSION");

/// A package built by `cargo xtask package`, or None (skip) when it was not built; under
/// CI a missing package fails.
fn package(test: &str, file: &str) -> Option<PathBuf> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../target/package")
        .join(file);
    let why = if unsafe { libc::geteuid() } != 0 {
        Some("not root".to_string())
    } else if !path.exists() {
        Some(format!("no {} (run `cargo xtask package`)", path.display()))
    } else {
        None
    };
    if let Some(why) = why {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("{test}: cannot run under CI: {why}");
        }
        eprintln!("skipped {test}: {why}");
        return None;
    }
    Some(path)
}

fn deb(test: &str) -> Option<PathBuf> {
    package(test, &format!("sysmon-ebpf_{VERSION}_amd64.deb"))
}

fn rpm(test: &str) -> Option<PathBuf> {
    package(test, &format!("sysmon-ebpf-{VERSION}.x86_64.rpm"))
}

fn run(c: &mut Command) -> Output {
    let out = c.output().unwrap_or_else(|e| panic!("{c:?}: {e}"));
    eprintln!(
        "{c:?}: {}\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn ok(c: &mut Command) -> String {
    let out = run(c);
    assert!(out.status.success(), "{c:?} failed");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A root for `dpkg --root`: its own package database.
fn dpkg_root(root: &Path) {
    std::fs::create_dir_all(root.join("var/lib/dpkg/info")).unwrap();
    std::fs::create_dir_all(root.join("var/lib/dpkg/updates")).unwrap();
    std::fs::write(root.join("var/lib/dpkg/status"), "").unwrap();
}

/// dpkg against `root`: maintainer scripts run here (not chrooted) with DPKG_ROOT=root.
/// libc6 and rsyslog are not in the root's database, hence --force-depends.
fn dpkg(root: &Path, args: &[&str], env: &[(&str, String)]) -> Output {
    run(Command::new("dpkg")
        .arg(format!("--root={}", root.display()))
        .arg(format!("--log={}", root.join("dpkg.log").display()))
        .args(["--force-script-chrootless", "--force-depends"])
        .args(args)
        .envs(env.iter().map(|(k, v)| (k, v))))
}

fn dpkg_ok(root: &Path, args: &[&str], env: &[(&str, String)]) {
    assert!(
        dpkg(root, args, env).status.success(),
        "dpkg {args:?} failed"
    );
}

/// What the package installs: (path, mode); every file owned by root:root.
const FILES: &[(&str, u32)] = &[
    ("usr/bin/sysmon", 0o755),
    ("usr/bin/sysmonLogView", 0o755),
    ("usr/share/man/man8/sysmon.8.gz", 0o644),
    ("usr/share/man/man1/sysmonLogView.1.gz", 0o644),
    ("usr/share/bash-completion/completions/sysmon", 0o644),
    ("usr/share/bash-completion/completions/sysmonLogView", 0o644),
    ("usr/share/fish/vendor_completions.d/sysmon.fish", 0o644),
    (
        "usr/share/fish/vendor_completions.d/sysmonLogView.fish",
        0o644,
    ),
    ("usr/share/doc/sysmon-ebpf/README.md", 0o644),
    ("usr/share/doc/sysmon-ebpf/copyright", 0o644),
    ("usr/share/doc/sysmon-ebpf/docs/config.md", 0o644),
    ("usr/share/doc/sysmon-ebpf/docs/events.md", 0o644),
    (
        "usr/share/doc/sysmon-ebpf/examples/sysmon-modular-style.xml",
        0o644,
    ),
    ("usr/share/doc/sysmon-ebpf/rsyslog/30-sysmon.conf", 0o644),
    (
        "usr/share/doc/sysmon-ebpf/logrotate/logrotate-sysmon",
        0o644,
    ),
    ("usr/share/sysmon-ebpf/default.xml", 0o644),
];

/// Zero errors from lintian and rpmlint; every warning they still give is listed, with its
/// reason, in docs/packages.md.
#[test]
fn lintian_and_rpmlint_report_no_errors() {
    let (Some(deb), Some(rpm)) = (deb("checkers"), rpm("checkers")) else {
        return;
    };
    let explained =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/packages.md"))
            .unwrap();
    let lintian = run(Command::new("lintian")
        .arg("--no-tag-display-limit")
        .arg(&deb));
    let text = String::from_utf8_lossy(&lintian.stdout).into_owned();
    assert!(
        !text.lines().any(|l| l.starts_with("E: ")),
        "lintian errors:\n{text}"
    );
    assert!(lintian.status.success(), "lintian failed: {text}");
    for tag in text
        .lines()
        .filter(|l| l.starts_with("W: "))
        .filter_map(|l| {
            // W: <package>: <tag> [details]
            l.split_whitespace().nth(2)
        })
    {
        assert!(
            explained.contains(&format!("`{tag}`")),
            "lintian warning {tag} is not explained in docs/packages.md"
        );
    }

    // Settings for the distributions the .rpm is for; the filters there are explained too.
    let settings = Path::new(env!("CARGO_MANIFEST_DIR")).join("../packaging/rpmlint.toml");
    let rpmlint = run(Command::new("rpmlint").arg("-c").arg(settings).arg(&rpm));
    let text = String::from_utf8_lossy(&rpmlint.stdout).into_owned();
    assert!(text.contains(" 0 errors"), "rpmlint errors:\n{text}");
    for tag in text
        .lines()
        .filter(|l| l.contains(": W: "))
        .filter_map(|l| l.split(": W: ").nth(1)?.split_whitespace().next())
    {
        assert!(
            explained.contains(&format!("`{tag}`")),
            "rpmlint warning {tag} is not explained in docs/packages.md"
        );
    }
}

/// The .deb installed with `dpkg --root`: files, modes and owners; both man pages render;
/// the installed `sysmon -?` prints the usage; the completions load in bash and offer
/// Sysmon's single-dash switches. Installing starts nothing.
#[test]
fn deb_installs_files_pages_and_completions() {
    let Some(deb) = deb("deb_install") else {
        return;
    };
    let root = TempDir::new("deb");
    let r = &root.0;
    dpkg_root(r);
    dpkg_ok(r, &["-i", deb.to_str().unwrap()], &[]);
    for (path, mode) in FILES {
        let meta = std::fs::metadata(r.join(path)).unwrap_or_else(|e| panic!("{path}: {e}"));
        assert_eq!(meta.permissions().mode() & 0o7777, *mode, "mode of {path}");
        assert_eq!((meta.uid(), meta.gid()), (0, 0), "owner of {path}");
    }
    // zsh's directory is Debian's own (the .rpm uses site-functions).
    for zsh in ["_sysmon", "_sysmonLogView"] {
        let path = r.join("usr/share/zsh/vendor-completions").join(zsh);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o7777, 0o644, "{}", path.display());
    }
    assert!(!r.join("opt/sysmon").exists(), "installing starts nothing");

    let control = |field: &str| ok(Command::new("dpkg-deb").args(["-f"]).arg(&deb).arg(field));
    assert_eq!(control("Recommends").trim(), "rsyslog");
    assert!(control("Depends").contains("libc6"), "libc as detected");

    let man = |page: &str| {
        let text = ok(Command::new("man")
            .arg("-l")
            .arg(r.join(page))
            .env("MANWIDTH", "100")
            .env("LC_ALL", "C"));
        // Bold and underline are overstrikes (`x\bx`, `_\bx`): keep the letters.
        let mut plain = String::new();
        for c in text.chars() {
            if c == '\u{8}' {
                plain.pop();
            } else {
                plain.push(c);
            }
        }
        plain
    };
    let sysmon = man("usr/share/man/man8/sysmon.8.gz");
    for want in [
        "SYNOPSIS",
        "-i [<configfile>]",
        "-accepteula",
        "-btf <file>",
        "rules; -c --",
        "/opt/sysmon",
    ] {
        assert!(sysmon.contains(want), "sysmon(8) lacks {want:?}:\n{sysmon}");
    }
    assert!(!sysmon.contains("--install") && !sysmon.contains("--accepteula"));
    let viewer = man("usr/share/man/man1/sysmonLogView.1.gz");
    for want in ["-e <ID[,ID", "--json", "--summary", "EXAMPLES"] {
        assert!(
            viewer.contains(want),
            "sysmonLogView(1) lacks {want:?}:\n{viewer}"
        );
    }

    let usage = run(Command::new(r.join("usr/bin/sysmon")).arg("-?"));
    assert!(usage.status.success());
    let text = String::from_utf8_lossy(&usage.stderr);
    assert!(text.contains("Usage:") && text.contains("sysmon -i [<configfile>]"));

    let completions = r.join("usr/share/bash-completion/completions");
    let script = format!(
        "set -e; source {0}/sysmon; source {0}/sysmonLogView; complete -p sysmon; \
         complete -p sysmonLogView; COMP_WORDS=(sysmon -acc); COMP_CWORD=1; \
         _sysmon sysmon -acc sysmon; echo \"offered: ${{COMPREPLY[*]}}\"",
        completions.display()
    );
    let out = ok(Command::new("bash").arg("-c").arg(script));
    assert!(out.contains(" -F _sysmon sysmon\n"), "{out}");
    assert!(out.contains(" -F _sysmonLogView sysmonLogView\n"), "{out}");
    assert!(out.contains("offered: -accepteula\n"), "{out}");
}

/// The .rpm holds the same files with the same modes, owned by root, recommends rsyslog,
/// and carries the same maintainer logic.
#[test]
fn rpm_holds_the_same_files() {
    let Some(rpm) = rpm("rpm_contents") else {
        return;
    };
    let listing = ok(Command::new("rpm")
        .args([
            "-qp",
            "--qf",
            "[%{FILEMODES:perms} %{FILEUSERNAME} %{FILEGROUPNAME} %{FILENAMES}\n]",
        ])
        .arg(&rpm));
    let files: HashMap<&str, (&str, &str, &str)> = listing
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            Some((*f.get(3)?, (f[0], f[1], f[2])))
        })
        .collect();
    for (path, mode) in FILES {
        let path = format!("/{path}");
        let Some((perms, user, group)) = files.get(path.as_str()) else {
            panic!("the rpm lacks {path}:\n{listing}");
        };
        let want = if *mode == 0o755 {
            "-rwxr-xr-x"
        } else {
            "-rw-r--r--"
        };
        assert_eq!((*perms, *user, *group), (want, "root", "root"), "{path}");
    }
    for zsh in ["_sysmon", "_sysmonLogView"] {
        let path = format!("/usr/share/zsh/site-functions/{zsh}");
        assert!(files.contains_key(path.as_str()), "the rpm lacks {path}");
    }
    let recommends = ok(Command::new("rpm").args(["-qp", "--recommends"]).arg(&rpm));
    assert!(recommends.contains("rsyslog"), "{recommends}");
    let requires = ok(Command::new("rpm").args(["-qp", "--requires"]).arg(&rpm));
    assert!(requires.contains("libc.so.6"), "{requires}");
    let scripts = ok(Command::new("rpm").args(["-qp", "--scripts"]).arg(&rpm));
    assert!(scripts.contains("rpm_post \"$1\"") && scripts.contains("rpm_preun \"$1\""));
}

/// A recording `systemctl` first on PATH, and `run/systemd/system` in the root: the
/// systemd path of both sysmon and the maintainer scripts.
fn fake_systemd(root: &Path) -> (PathBuf, Vec<(&'static str, String)>) {
    std::fs::create_dir_all(root.join("run/systemd/system")).unwrap();
    let bin = root.join("fakebin");
    std::fs::create_dir_all(&bin).unwrap();
    let log = root.join("systemctl.log");
    let fake = bin.join("systemctl");
    std::fs::write(
        &fake,
        format!("#!/bin/sh\necho \"$@\" >> {}\n", log.display()),
    )
    .unwrap();
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    (log, vec![("PATH", path)])
}

/// Takes the calls recorded so far.
fn calls(log: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let _ = std::fs::remove_file(log);
    text.lines().map(str::to_owned).collect()
}

/// With systemd: an upgrade puts the new binary into /opt/sysmon and restarts the unit if
/// it runs, keeping config, command line and EventRecordID counter; removal runs `sysmon
/// -u` (stop, disable) and keeps /opt/sysmon; purge removes it and what `-i` wrote.
#[test]
fn with_systemd_upgrade_keeps_state_remove_stops_purge_cleans() {
    let Some(deb) = deb("deb_systemd") else {
        return;
    };
    let root = TempDir::new("deb-systemd");
    let r = &root.0;
    dpkg_root(r);
    let (log, env) = fake_systemd(r);
    let deb = deb.to_str().unwrap();
    dpkg_ok(r, &["-i", deb], &env);
    assert_eq!(
        calls(&log),
        Vec::<String>::new(),
        "installing starts nothing"
    );

    // The administrator installs the service (systemd starts it: nothing runs here).
    let config = r.join("my-config.xml");
    std::fs::write(&config, sysmon_tests::service::CONFIG).unwrap();
    let sysmon = |args: &[&str]| {
        ok(Command::new(r.join("usr/bin/sysmon"))
            .args(args)
            .env("SYSMON_ROOT", r)
            .envs(env.iter().map(|(k, v)| (k, v))))
    };
    sysmon(&["-accepteula", "-i", config.to_str().unwrap(), "-h", "md5"]);
    calls(&log);
    let state = r.join("opt/sysmon");
    // An older binary in place, and a counter that has counted.
    std::fs::write(state.join("sysmon"), "#!/bin/sh\necho old\n").unwrap();
    let mut counter = std::fs::read(state.join("eventId")).unwrap();
    counter[0] = 42;
    std::fs::write(state.join("eventId"), &counter).unwrap();
    let kept =
        ["config.xml", "argv", "eventId"].map(|f| (f, std::fs::read(state.join(f)).unwrap()));

    // Upgrade (the same version again runs the same scripts: prerm upgrade, postinst
    // configure <old version>).
    dpkg_ok(r, &["-i", deb], &env);
    assert_eq!(calls(&log), ["try-restart sysmon.service"]);
    assert_eq!(
        std::fs::read(state.join("sysmon")).unwrap(),
        std::fs::read(r.join("usr/bin/sysmon")).unwrap(),
        "the new binary is installed"
    );
    let mode = std::fs::metadata(state.join("sysmon"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o7777, 0o700);
    for (file, bytes) in &kept {
        assert_eq!(
            &std::fs::read(state.join(file)).unwrap(),
            bytes,
            "{file} kept"
        );
    }

    dpkg_ok(r, &["-r", "sysmon-ebpf"], &env);
    assert_eq!(
        calls(&log),
        ["stop sysmon.service", "disable sysmon.service"]
    );
    assert!(!r.join("usr/bin/sysmon").exists());
    for (file, bytes) in &kept {
        assert_eq!(
            &std::fs::read(state.join(file)).unwrap(),
            bytes,
            "{file} kept"
        );
    }

    dpkg_ok(r, &["-P", "sysmon-ebpf"], &env);
    assert!(!state.exists(), "purge removes /opt/sysmon");
    for gone in [
        "etc/systemd/system/sysmon.service",
        "etc/rsyslog.d/30-sysmon.conf",
        "etc/logrotate.d/sysmon",
    ] {
        assert!(!r.join(gone).exists(), "purge removes {gone}");
    }
    assert_eq!(
        calls(&log),
        ["daemon-reload", "try-restart rsyslog.service"]
    );
}

/// Without systemd, against the kernel: the upgrade stops the running daemon and starts the
/// new binary with the same config, and EventRecordID goes on from where it was; removal
/// stops the daemon; purge removes the state.
#[test]
#[cfg_attr(no_kernel, ignore = "kernel test: needs root, BTF and rsyslogd")]
fn upgrade_restarts_the_running_daemon_and_remove_stops_it() {
    let Some(deb) = deb("deb_daemon") else {
        return;
    };
    let Some(_serial) = kernel_test("deb_daemon") else {
        return;
    };
    let t = Install::new("deb-daemon");
    let r = t.root.0.clone();
    dpkg_root(&r);
    let env = vec![
        (
            "SYSMON_SYSLOG_SOCKET",
            t.syslog.socket.display().to_string(),
        ),
        (
            "SYSMON_RSYSLOG_PID_FILE",
            t.syslog.pid_file.display().to_string(),
        ),
    ];
    let deb = deb.to_str().unwrap();
    dpkg_ok(&r, &["-i", deb], &env);
    ok(Command::new(r.join("usr/bin/sysmon"))
        .args(["-accepteula", "-i"])
        .env("SYSMON_ROOT", &r)
        .env_remove("SYSMON_STATE_DIR")
        .envs(env.iter().map(|(k, v)| (k, v))));
    let first = t.daemon().expect("the daemon runs");
    let token = format!("deb-{}", unique());
    let record = |n: &str| {
        exec_true(&format!("{token}-{n}"));
        t.wait_event("the marker", |e| {
            e.id == 1
                && e.get("CommandLine")
                    .is_some_and(|c| c.ends_with(&format!("{token}-{n}")))
        })
        .record_id
    };
    let before = record("before");
    let config = std::fs::read(t.path("opt/sysmon/config.xml")).unwrap();

    dpkg_ok(&r, &["-i", deb], &env);
    let second = t.daemon().expect("the upgrade restarts the daemon");
    assert_ne!(first, second, "a new daemon");
    assert_eq!(
        std::fs::read(t.path("opt/sysmon/config.xml")).unwrap(),
        config
    );
    record("after");
    // The counter was kept, not started again: every event of the new daemon comes after.
    let first_new = t
        .events()
        .iter()
        .filter(|e| e.agent_pid == second as u32)
        .map(|e| e.record_id)
        .min()
        .expect("events from the new daemon");
    assert!(
        first_new > before,
        "EventRecordID goes on: {before} before the upgrade, {first_new} after"
    );

    dpkg_ok(&r, &["-r", "sysmon-ebpf"], &env);
    assert!(t.daemon().is_none(), "removal stops the daemon");
    assert!(
        t.path("opt/sysmon/eventId").exists(),
        "removal keeps the state"
    );
    dpkg_ok(&r, &["-P", "sysmon-ebpf"], &env);
    assert!(!t.path("opt/sysmon").exists(), "purge removes the state");
}

/// The .rpm's scriptlets are the same functions behind RPM's arguments (the number of
/// versions left installed): %post 1 (install) does nothing, %post 2 (upgrade) installs the
/// new binary and restarts the unit, %preun 1 (the old version going in an upgrade) does
/// nothing, %preun 0 (erase) runs `sysmon -u`. Run against a temporary root (DPKG_ROOT),
/// with the .rpm's own files unpacked there.
#[test]
fn rpm_scriptlets_upgrade_and_erase_with_systemd() {
    let Some(rpm) = rpm("rpm_scriptlets") else {
        return;
    };
    let root = TempDir::new("rpm-scriptlets");
    let r = &root.0;
    ok(Command::new("sh")
        .arg("-c")
        .arg("rpm2cpio \"$1\" | (cd \"$2\" && cpio -idm --quiet)")
        .arg("unpack")
        .arg(&rpm)
        .arg(r));
    let (log, mut env) = fake_systemd(r);
    env.push(("DPKG_ROOT", r.display().to_string()));
    ok(Command::new(r.join("usr/bin/sysmon"))
        .args(["-accepteula", "-i"])
        .env("SYSMON_ROOT", r)
        .envs(env.iter().map(|(k, v)| (k, v))));
    calls(&log);
    let state = r.join("opt/sysmon");
    let old = b"#!/bin/sh\necho old\n";
    std::fs::write(state.join("sysmon"), old).unwrap();

    let scriptlet = |tag: &str, arg: &str| {
        let script = ok(Command::new("rpm")
            .args(["-qp", "--qf", &format!("%{{{tag}}}")])
            .arg(&rpm));
        ok(Command::new("sh")
            .arg("-c")
            .arg(script)
            .arg(tag)
            .arg(arg)
            .envs(env.iter().map(|(k, v)| (k, v))));
        calls(&log)
    };
    assert_eq!(scriptlet("POSTIN", "1"), Vec::<String>::new());
    assert_eq!(std::fs::read(state.join("sysmon")).unwrap(), old);
    assert_eq!(scriptlet("POSTIN", "2"), ["try-restart sysmon.service"]);
    assert_eq!(
        std::fs::read(state.join("sysmon")).unwrap(),
        std::fs::read(r.join("usr/bin/sysmon")).unwrap()
    );
    assert_eq!(scriptlet("PREUN", "1"), Vec::<String>::new());
    assert_eq!(
        scriptlet("PREUN", "0"),
        ["stop sysmon.service", "disable sysmon.service"]
    );
    assert!(state.join("config.xml").exists() && state.join("eventId").exists());
}
