//! The harness for end-to-end tests against the running kernel and a real rsyslogd (also
//! used by `cargo xtask bench`).
//!
//! Outside CI a test that cannot run here (not root, no BTF, no rsyslogd) skips with a
//! message; with `CI=true` it fails instead.

pub mod agent;
pub mod events;
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

/// Holds the serial lock while a kernel test runs; `None` means skip (never under CI).
pub fn kernel_test(name: &str) -> Option<MutexGuard<'static, ()>> {
    if let Some(why) = unavailable() {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("{name}: cannot run under CI: {why}");
        }
        eprintln!("skipped {name}: {why}");
        return None;
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

/// True while `pid` runs; a zombie (dead, not yet reaped) counts as gone.
pub fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit_once(") ").and_then(|(_, r)| r.chars().next()))
        .is_some_and(|state| !matches!(state, 'Z' | 'X'))
}
