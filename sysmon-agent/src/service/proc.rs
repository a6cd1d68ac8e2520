//! Small process and file helpers shared by install, control and daemon.

use std::{
    fs, io,
    os::unix::fs::{OpenOptionsExt, PermissionsExt},
    path::Path,
    time::{Duration, Instant},
};

/// The pid in a pid file, if the file holds one.
pub fn read_pid(file: &Path) -> Option<i32> {
    fs::read_to_string(file).ok()?.trim().parse().ok()
}

/// True while `pid` runs. A zombie counts as gone: its parent (maybe a test) has not reaped
/// it yet, but it no longer does anything.
pub fn alive(pid: i32) -> bool {
    let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // The state follows the parenthesised comm, which may itself hold ") ".
    let state = stat.rsplit_once(") ").and_then(|(_, r)| r.chars().next());
    !matches!(state, None | Some('Z') | Some('X'))
}

/// The process name (`/proc/<pid>/comm`).
pub fn comm(pid: i32) -> Option<String> {
    Some(
        fs::read_to_string(format!("/proc/{pid}/comm"))
            .ok()?
            .trim()
            .to_string(),
    )
}

/// The live process recorded in `pid_file` if its name is `name` (a stale pid file may
/// name a pid that now belongs to someone else).
pub fn running(pid_file: &Path, name: &str) -> Option<i32> {
    let pid = read_pid(pid_file)?;
    (alive(pid) && comm(pid).as_deref() == Some(name)).then_some(pid)
}

pub fn signal(pid: i32, sig: i32) -> bool {
    unsafe { libc::kill(pid, sig) == 0 }
}

/// Waits until `pid` is gone; false if it still runs after `timeout`.
pub fn wait_gone(pid: i32, timeout: Duration) -> bool {
    let start = Instant::now();
    while alive(pid) {
        if start.elapsed() > timeout {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    true
}

/// Writes `bytes` to `path` through a temporary file and a rename, so that a reader (or the
/// running binary, for `sysmon` itself) never sees half a file. Returns whether the content
/// changed.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> io::Result<bool> {
    let changed = fs::read(path).map_or(true, |old| old != bytes);
    let tmp = path.with_extension("sysmon-tmp");
    let _ = fs::remove_file(&tmp);
    {
        use io::Write;
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    // The umask may have narrowed the mode; set it exactly.
    fs::set_permissions(&tmp, fs::Permissions::from_mode(mode))?;
    fs::rename(&tmp, path)?;
    Ok(changed)
}

/// Creates `dir` (and its parents) and sets its mode exactly.
pub fn make_dir(dir: &Path, mode: u32) -> io::Result<()> {
    fs::create_dir_all(dir)?;
    fs::set_permissions(dir, fs::Permissions::from_mode(mode))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn self_and_missing() {
        let me = std::process::id() as i32;
        assert!(alive(me));
        assert!(!alive(i32::MAX));
        let dir = std::env::temp_dir().join(format!("sysmon-proc-{me}"));
        make_dir(&dir, 0o700).unwrap();
        let f = dir.join("pid");
        assert!(write_atomic(&f, me.to_string().as_bytes(), 0o600).unwrap());
        assert!(!write_atomic(&f, me.to_string().as_bytes(), 0o600).unwrap());
        assert_eq!(read_pid(&f), Some(me));
        assert_eq!(
            fs::metadata(&f).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let name = comm(me).unwrap();
        assert_eq!(running(&f, &name), Some(me));
        assert_eq!(running(&f, "not-this"), None);
        fs::remove_dir_all(&dir).unwrap();
    }
}
