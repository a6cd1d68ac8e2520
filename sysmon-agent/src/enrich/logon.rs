//! LogonGuid: machine id ‖ login time of the user's terminal (from utmp) ‖ uid | tty << 32.

use std::{
    collections::HashMap,
    ffi::{CStr, CString},
    io::Read,
    os::{
        fd::{AsRawFd, FromRawFd, OwnedFd},
        unix::net::UnixStream,
    },
    sync::{Arc, Mutex},
};

use super::guid::Guid;

type Times = HashMap<u32, Vec<(String, u32)>>;

/// Login times from utmp, read at start and then by a helper thread whenever utmp changes
/// (inotify: no timer, so an idle daemon does not wake for it), so that the reader thread
/// never waits on the file (or its lock).
pub struct Logons {
    machine: u32,
    /// pts number → (user, login time) of the sessions on it.
    times: Times,
    /// The helper's latest reading, taken by the next lookup.
    fresh: Arc<Mutex<Option<Times>>>,
    /// Dropped with `Logons`: the helper sees its end close and stops.
    _stop: UnixStream,
}

/// Where glibc keeps utmp (`_PATH_UTMP`), by directory and name: the directory is watched,
/// as utmp may not exist yet or be replaced.
const UTMP_DIR: &str = "/var/run";
const UTMP_NAME: &str = "utmp";

impl Logons {
    pub fn new(machine: u32) -> Self {
        // Before the helper starts: getutxent is not thread-safe.
        let times = read_utmp();
        let fresh = Arc::new(Mutex::new(None));
        let (stop, stopped) = UnixStream::pair().expect("a socket pair");
        let mailbox = fresh.clone();
        let spawned = watch(UTMP_DIR).and_then(|changes| {
            std::thread::Builder::new()
                .name("sysmon-utmp".into())
                .spawn(move || {
                    while wait(&changes, &stopped, UTMP_NAME) {
                        let times = read_utmp();
                        if let Ok(mut m) = mailbox.lock() {
                            *m = Some(times);
                        }
                    }
                })
        });
        if let Err(e) = spawned {
            eprintln!("sysmon: cannot watch utmp (logon times stay as at start): {e}");
        }
        Logons {
            machine,
            times,
            fresh,
            _stop: stop,
        }
    }

    /// The LogonGuid for `uid` on terminal `pts/<tty>` (no tty looks up pts/0, as Sysmon).
    pub fn guid(&mut self, uid: u32, user: Option<&str>, tty: i32) -> Guid {
        let tty = tty.max(0) as u32;
        // try_lock: the helper holds the lock only to swap a pointer; never wait for it.
        if let Ok(mut m) = self.fresh.try_lock()
            && let Some(times) = m.take()
        {
            self.times = times;
        }
        let seconds = user
            .and_then(|u| self.times.get(&tty)?.iter().find(|(name, _)| name == u))
            .map_or(0, |(_, t)| *t);
        Guid {
            machine: self.machine,
            seconds,
            key: uid as u64 | (tty as u64) << 32,
        }
    }
}

/// An inotify descriptor watching `dir` for writes, creations and renames.
fn watch(dir: &str) -> std::io::Result<OwnedFd> {
    // SAFETY: plain syscalls; the fd is owned at once.
    let fd = unsafe { libc::inotify_init1(libc::IN_CLOEXEC) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let dir = CString::new(dir).expect("no NUL");
    let mask = libc::IN_CLOSE_WRITE | libc::IN_MODIFY | libc::IN_CREATE | libc::IN_MOVED_TO;
    if unsafe { libc::inotify_add_watch(fd.as_raw_fd(), dir.as_ptr(), mask) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(fd)
}

/// Blocks until the file `name` changed (true) or `stop`'s other end is closed (false).
/// Changes to other files of the directory are read and ignored.
fn wait(changes: &OwnedFd, mut stop: &UnixStream, name: &str) -> bool {
    let mut buf = [0u8; 4096];
    loop {
        let mut fds = [
            libc::pollfd {
                fd: changes.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: stop.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        // SAFETY: two valid pollfds.
        if unsafe { libc::poll(fds.as_mut_ptr(), 2, -1) } < 0 {
            if std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return false;
        }
        if fds[1].revents != 0 {
            // Closed (or, never, a byte): stop either way.
            let _ = stop.read(&mut [0u8; 1]);
            return false;
        }
        // SAFETY: reads into a buffer of its length.
        let n = unsafe { libc::read(changes.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        if n <= 0 {
            return false;
        }
        if names(&buf[..n as usize]).any(|n| n == name.as_bytes()) {
            return true;
        }
    }
}

/// The names in a buffer of inotify events.
fn names(mut buf: &[u8]) -> impl Iterator<Item = &[u8]> {
    const HEAD: usize = std::mem::size_of::<libc::inotify_event>();
    std::iter::from_fn(move || {
        if buf.len() < HEAD {
            return None;
        }
        // The name's length is the last field of the header (u32, native endian).
        let len = u32::from_ne_bytes(buf[HEAD - 4..HEAD].try_into().ok()?) as usize;
        let name = buf.get(HEAD..HEAD + len)?;
        buf = &buf[(HEAD + len).min(buf.len())..];
        Some(name.split(|b| *b == 0).next().unwrap_or(&[]))
    })
}

/// (user, pts number) → login time, from the user-process records of utmp.
fn read_utmp() -> Times {
    let mut out = HashMap::new();
    unsafe {
        libc::setutxent();
        loop {
            let e = libc::getutxent();
            if e.is_null() {
                break;
            }
            let e = &*e;
            if e.ut_type != libc::USER_PROCESS {
                continue;
            }
            let line = CStr::from_ptr(e.ut_line.as_ptr()).to_string_lossy();
            let user = CStr::from_ptr(e.ut_user.as_ptr())
                .to_string_lossy()
                .into_owned();
            if let Some(n) = line.strip_prefix("pts/").and_then(|n| n.parse().ok()) {
                let sessions: &mut Vec<(String, u32)> = out.entry(n).or_default();
                if !sessions.iter().any(|(u, _)| *u == user) {
                    sessions.push((user, e.ut_tv.tv_sec as u32));
                }
            }
        }
        libc::endutxent();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_to_the_watched_name_wakes_the_helper_and_others_do_not() {
        let dir = std::env::temp_dir().join(format!("sysmon-utmp-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let changes = watch(dir.to_str().unwrap()).unwrap();
        let (stop, stopped) = UnixStream::pair().unwrap();
        // Changes to other names first: they are read and skipped, the utmp write wakes.
        std::fs::write(dir.join("other"), b"x").unwrap();
        std::fs::write(dir.join("utmpx"), b"x").unwrap();
        std::fs::write(dir.join("utmp"), b"x").unwrap();
        assert!(wait(&changes, &stopped, "utmp"));
        // Nothing more for utmp: only closing the other end ends the wait.
        std::fs::write(dir.join("other"), b"y").unwrap();
        drop(stop);
        assert!(!wait(&changes, &stopped, "utmp"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
