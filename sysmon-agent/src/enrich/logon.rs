//! LogonGuid: machine id ‖ login time of the user's terminal (from utmp) ‖ uid | tty << 32.

use std::{
    collections::HashMap,
    ffi::CStr,
    time::{Duration, Instant},
};

use super::guid::Guid;

/// Login times from utmp, re-read at most every `REFRESH`.
pub struct Logons {
    machine: u32,
    /// pts number → (user, login time) of the sessions on it.
    times: HashMap<u32, Vec<(String, u32)>>,
    read_at: Option<Instant>,
}

const REFRESH: Duration = Duration::from_secs(5);

impl Logons {
    pub fn new(machine: u32) -> Self {
        Logons {
            machine,
            times: HashMap::new(),
            read_at: None,
        }
    }

    /// The LogonGuid for `uid` on terminal `pts/<tty>` (no tty looks up pts/0, as Sysmon).
    pub fn guid(&mut self, uid: u32, user: Option<&str>, tty: i32) -> Guid {
        let tty = tty.max(0) as u32;
        if self.read_at.is_none_or(|t| t.elapsed() > REFRESH) {
            self.times = read_utmp();
            self.read_at = Some(Instant::now());
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
fn read_utmp() -> HashMap<u32, Vec<(String, u32)>> {
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
