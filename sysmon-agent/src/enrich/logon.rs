//! LogonGuid: machine id ‖ login time of the user's terminal (from utmp) ‖ uid | tty << 32.

use std::{
    collections::HashMap,
    ffi::CStr,
    sync::{
        Arc, Mutex,
        mpsc::{RecvTimeoutError, Sender, channel},
    },
    time::Duration,
};

use super::guid::Guid;

type Times = HashMap<u32, Vec<(String, u32)>>;

/// Login times from utmp, read at start and then every `REFRESH` by a helper thread, so
/// that the reader thread never waits on the file (or its lock).
pub struct Logons {
    machine: u32,
    /// pts number → (user, login time) of the sessions on it.
    times: Times,
    /// The helper's latest reading, taken by the next lookup.
    fresh: Arc<Mutex<Option<Times>>>,
    /// Dropped with `Logons`: the helper stops.
    _stop: Sender<()>,
}

const REFRESH: Duration = Duration::from_secs(5);

impl Logons {
    pub fn new(machine: u32) -> Self {
        // Before the helper starts: getutxent is not thread-safe.
        let times = read_utmp();
        let fresh = Arc::new(Mutex::new(None));
        let (stop, stopped) = channel::<()>();
        let mailbox = fresh.clone();
        let spawned = std::thread::Builder::new()
            .name("sysmon-utmp".into())
            .spawn(move || {
                while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(REFRESH) {
                    let times = read_utmp();
                    if let Ok(mut m) = mailbox.lock() {
                        *m = Some(times);
                    }
                }
            });
        if let Err(e) = spawned {
            eprintln!("sysmon: cannot start the utmp reader: {e}");
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
