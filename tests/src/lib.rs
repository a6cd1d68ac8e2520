//! The harness for end-to-end tests against the running kernel and a real rsyslogd (also
//! used by `cargo xtask bench`).
//!
//! Every kernel test carries
//! `#[cfg_attr(no_kernel, ignore = "kernel test: needs root, BTF and rsyslogd …")]`: outside
//! CI, where it cannot run (not root, no BTF, no rsyslogd; decided by `build.rs`), `cargo
//! test` shows it as ignored with that reason and counts it in the summary. It then calls
//! [`kernel_test`], which fails it if it cannot run after all (under `CI=true`, or a test
//! binary built elsewhere).

pub mod agent;
pub mod containers;
pub mod dns;
pub mod docs;
pub mod events;
pub mod fs;
pub mod guest;
pub mod guid;
pub mod libtest;
pub mod mount;
pub mod net;
pub mod rsyslog;
pub mod service;

use std::{
    path::{Path, PathBuf},
    sync::{Mutex, MutexGuard},
};

/// Agents are started one at a time: each one loads its own programs and sees every event
/// on the machine, and two cores are few.
static SERIAL: Mutex<()> = Mutex::new(());

/// Why this machine cannot run kernel tests, if it cannot.
pub fn unavailable() -> Option<String> {
    if unsafe { libc::geteuid() } != 0 {
        return Some("not root".into());
    }
    if !Path::new("/sys/kernel/btf/vmlinux").exists() {
        return Some("no BTF at /sys/kernel/btf/vmlinux".into());
    }
    if rsyslog::binary().is_none() {
        return Some("rsyslogd is not installed (cargo xtask setup installs it)".into());
    }
    if !sysmon_bin().exists() {
        return Some(format!(
            "no sysmon binary at {} (run `cargo xtask test`)",
            sysmon_bin().display()
        ));
    }
    None
}

/// Holds the serial lock while a kernel test runs. A kernel test that cannot run here fails
/// (the build-time gate, `cfg(no_kernel)`, is what ignores it where it cannot run), so it
/// never passes without having run. Always `Some`.
pub fn kernel_test(name: &str) -> Option<MutexGuard<'static, ()>> {
    if let Some(why) = unavailable() {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("{name}: cannot run under CI: {why}");
        }
        panic!(
            "{name}: cannot run here: {why}. Built here without CI=true, `cargo test` ignores \
             the kernel tests that cannot run (tests/build.rs)"
        );
    }
    Some(SERIAL.lock().unwrap_or_else(|e| e.into_inner()))
}

/// The agent binary: `$SYSMON_BIN` (set by `cargo xtask test`), else the release build.
pub fn sysmon_bin() -> PathBuf {
    std::env::var_os("SYSMON_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/release/sysmon"))
}

/// A fresh directory under the system temp dir, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        let p =
            std::env::temp_dir().join(format!("sysmon-{tag}-{}-{}", std::process::id(), unique()));
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A token no other process on the machine will have in its arguments.
pub fn unique() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    format!(
        "{:x}{:x}{}",
        t.as_nanos() as u64,
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// A private rsyslogd and an agent started with configuration `config` (XML text, `None` for
/// the defaults).
pub struct Session {
    pub dir: TempDir,
    pub syslog: rsyslog::Rsyslog,
    pub agent: agent::Agent,
}

impl Session {
    pub fn start(tag: &str, config: Option<&str>) -> Session {
        Self::start_with_env(tag, config, &[])
    }

    /// [`Session::start`] with extra environment for the agent.
    pub fn start_with_env(tag: &str, config: Option<&str>, env: &[(&str, &str)]) -> Session {
        let dir = TempDir::new(tag);
        let syslog = rsyslog::Rsyslog::start(&dir.0);
        let config_path = config.map(|xml| {
            let p = dir.0.join("config.xml");
            std::fs::write(&p, xml).unwrap();
            p
        });
        let agent = agent::Agent::start_with_env(&syslog, &dir.0, config_path.as_deref(), env);
        Session { dir, syslog, agent }
    }

    /// Stops the agent; returns every event it wrote and its stderr.
    pub fn stop(self) -> (Vec<events::Event>, String) {
        let pid = self.agent.pid;
        self.agent.stop(&self.syslog);
        let events = events::parse_lines(&self.syslog.lines())
            .into_iter()
            .filter(|e| e.agent_pid == pid)
            .collect();
        let stderr = std::fs::read_to_string(self.dir.0.join("agent.stderr")).unwrap_or_default();
        (events, stderr)
    }
}

/// Runs `actions` in a [`Session`]; returns every event the agent wrote and its stderr.
pub fn record_with(
    tag: &str,
    config: Option<&str>,
    actions: impl FnOnce(&Path),
) -> (Vec<events::Event>, String) {
    record_with_env(tag, config, &[], actions)
}

/// [`record_with`] with extra environment for the agent (test hooks).
pub fn record_with_env(
    tag: &str,
    config: Option<&str>,
    env: &[(&str, &str)],
    actions: impl FnOnce(&Path),
) -> (Vec<events::Event>, String) {
    let s = Session::start_with_env(tag, config, env);
    actions(&s.dir.0);
    s.stop()
}

/// Whether the running kernel has the trace event `name` (any category). The agent mounts
/// tracefs; a test asks once its agent has started.
pub fn has_tracepoint(name: &str) -> bool {
    std::fs::read_dir("/sys/kernel/tracing/events")
        .map(|dirs| dirs.flatten().any(|d| d.path().join(name).is_dir()))
        .unwrap_or(false)
}

/// The timestamp tracepoints (6.13+) through which the kernel side sees the inode of a
/// call that names its file by path, and the test hook that pretends a kernel without them.
pub const CTIME_TRACEPOINTS: &str = "ctime_ns_xchg,ctime_xchg_skip,inode_set_ctime_to_ts";

/// user + system CPU seconds of a process so far.
pub fn cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let Some(after) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
        return 0.0;
    };
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks: u64 = f.get(11).and_then(|v| v.parse().ok()).unwrap_or(0)
        + f.get(12).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    ticks as f64 / unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64
}

/// A configuration that logs every event of the given types (by config tag), besides the
/// defaults.
pub fn config_logging(tags: &[&str]) -> String {
    let rules: String = tags
        .iter()
        .map(|t| format!("    <{t} onmatch=\"exclude\"/>\n"))
        .collect();
    format!(
        "<Sysmon schemaversion=\"4.22\">\n  <EventFiltering>\n{rules}  </EventFiltering>\n</Sysmon>\n"
    )
}

/// The ProcessGuids a live process can have (see [`guid::candidates`]).
pub fn guids_of(pid: i32) -> Vec<String> {
    guid::candidates(pid)
}

/// True while `pid` runs; a zombie (dead, not yet reaped) counts as gone.
pub fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit_once(") ").and_then(|(_, r)| r.chars().next()))
        .is_some_and(|state| !matches!(state, 'Z' | 'X'))
}

#[cfg(test)]
mod gate {
    /// Every test that calls `kernel_test` is ignored by the build-time gate where it
    /// cannot run; one without the attribute would fail there instead of showing as ignored.
    #[test]
    fn every_kernel_test_carries_the_gate() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests");
        let mut kernel_tests = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let text = std::fs::read_to_string(&path).unwrap();
            for test in text.split("#[test]").skip(1) {
                if test.contains("kernel_test(") {
                    kernel_tests += 1;
                    // A bench run by hand (`#[ignore]`) never passes silently either.
                    // rustfmt may break a long attribute over lines: compared without them.
                    let t: String = test.split_whitespace().collect();
                    assert!(
                        t.starts_with("#[cfg_attr(no_kernel,ignore") || t.starts_with("#[ignore"),
                        "{}: a kernel test without #[cfg_attr(no_kernel, ignore = …)]:{}",
                        path.display(),
                        test.lines().take(4).collect::<Vec<_>>().join("\n")
                    );
                }
            }
        }
        assert!(
            kernel_tests > 20,
            "only {kernel_tests} kernel tests found in {}",
            dir.display()
        );
    }
}
