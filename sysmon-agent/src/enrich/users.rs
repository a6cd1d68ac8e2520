//! uid → user name, cached. NSS (`getpwuid_r`) can block for seconds (LDAP, sssd), so it
//! never runs on the reader thread: a uid not yet cached is answered from `/etc/passwd`
//! (read again when it changes) and asked of NSS on a helper thread; NSS's answer replaces
//! the file's once it arrives. A user known only to a directory service is `-` in the
//! events that come before that answer.

use std::{
    collections::HashMap,
    ffi::CStr,
    path::PathBuf,
    sync::mpsc::{Receiver, SyncSender, TrySendError, channel, sync_channel},
    time::{Duration, Instant, SystemTime},
};

use super::id_map::IdMap;

/// uids waiting for NSS at most; more are asked again on their next miss.
const QUEUE: usize = 256;
/// How often the passwd file's modification time is looked at, at most.
const RESTAT: Duration = Duration::from_secs(1);

/// Questions to the NSS thread (uids) and its answers.
type Nss = (SyncSender<u32>, Receiver<(u32, Option<Box<str>>)>);

enum Name {
    /// From NSS: final.
    Known(Option<Box<str>>),
    /// From the passwd file while NSS is asked.
    Provisional(Option<Box<str>>),
}

pub struct Users {
    names: IdMap<u32, Name>,
    passwd: Passwd,
    nss: Option<Nss>,
    /// Whether misses are asked of NSS (off: the passwd file only, for tests).
    use_nss: bool,
}

impl Default for Users {
    fn default() -> Self {
        Users::new(PathBuf::from("/etc/passwd"), true)
    }
}

/// Uids whose names are kept.
const NAMES_MAX: usize = 16 * 1024;

impl Users {
    pub fn new(passwd: PathBuf, use_nss: bool) -> Self {
        Users {
            names: IdMap::default(),
            passwd: Passwd::new(passwd),
            nss: None,
            use_nss,
        }
    }

    /// The user name, or `None` when none is known (printed as `-`).
    pub fn name(&mut self, uid: u32) -> Option<&str> {
        self.collect();
        if !self.names.contains_key(&uid) {
            let from_file = self.passwd.name(uid).map(Box::from);
            let name = if self.ask_nss(uid) {
                Name::Provisional(from_file)
            } else {
                // NSS cannot be asked now: the file's answer stands until the next miss.
                return self.passwd.name(uid);
            };
            // Bounded: user namespaces can show many uids; forgotten names are asked again.
            if self.names.len() >= NAMES_MAX {
                self.names.clear();
            }
            self.names.insert(uid, name);
        }
        match self.names.get(&uid)? {
            Name::Known(n) | Name::Provisional(n) => n.as_deref(),
        }
    }

    /// Takes in NSS's answers.
    fn collect(&mut self) {
        let Some((_, answers)) = &self.nss else {
            return;
        };
        while let Ok((uid, name)) = answers.try_recv() {
            self.names.insert(uid, Name::Known(name));
        }
    }

    fn ask_nss(&mut self, uid: u32) -> bool {
        if !self.use_nss {
            return true;
        }
        let (questions, _) = self.nss.get_or_insert_with(spawn_nss);
        match questions.try_send(uid) {
            Ok(()) => true,
            Err(TrySendError::Full(_)) => false,
            Err(TrySendError::Disconnected(_)) => {
                self.nss = None;
                false
            }
        }
    }

    /// Whether every name asked so far has NSS's final answer (tests).
    pub fn settled(&mut self) -> bool {
        self.collect();
        self.names.values().all(|n| matches!(n, Name::Known(_)))
    }
}

fn spawn_nss() -> Nss {
    let (ask, questions) = sync_channel::<u32>(QUEUE);
    let (answer, answers) = channel();
    let spawned = std::thread::Builder::new()
        .name("sysmon-nss".into())
        .spawn(move || {
            while let Ok(uid) = questions.recv() {
                if answer.send((uid, lookup(uid))).is_err() {
                    break;
                }
            }
        });
    if let Err(e) = spawned {
        eprintln!("sysmon: cannot start the user lookup thread: {e}");
    }
    (ask, answers)
}

fn lookup(uid: u32) -> Option<Box<str>> {
    let mut pw: libc::passwd = unsafe { std::mem::zeroed() };
    let mut buf = vec![0 as libc::c_char; 4096];
    let mut out: *mut libc::passwd = std::ptr::null_mut();
    let rc = unsafe { libc::getpwuid_r(uid, &mut pw, buf.as_mut_ptr(), buf.len(), &mut out) };
    if rc != 0 || out.is_null() || pw.pw_name.is_null() {
        return None;
    }
    let name = unsafe { CStr::from_ptr(pw.pw_name) };
    Some(name.to_string_lossy().into())
}

/// The local passwd file, parsed again when its modification time changes.
struct Passwd {
    path: PathBuf,
    names: HashMap<u32, Box<str>>,
    mtime: Option<SystemTime>,
    checked: Option<Instant>,
}

impl Passwd {
    fn new(path: PathBuf) -> Self {
        Passwd {
            path,
            names: HashMap::new(),
            mtime: None,
            checked: None,
        }
    }

    fn name(&mut self, uid: u32) -> Option<&str> {
        if self.checked.is_none_or(|t| t.elapsed() >= RESTAT) {
            self.checked = Some(Instant::now());
            let mtime = std::fs::metadata(&self.path)
                .and_then(|m| m.modified())
                .ok();
            if mtime != self.mtime {
                self.mtime = mtime;
                self.names = std::fs::read(&self.path)
                    .map(|b| parse_passwd(&b))
                    .unwrap_or_default();
            }
        }
        self.names.get(&uid).map(|n| &**n)
    }
}

/// `name:x:uid:…` lines; the first entry of a uid wins, as in NSS's files module.
fn parse_passwd(bytes: &[u8]) -> HashMap<u32, Box<str>> {
    let mut out = HashMap::new();
    for line in String::from_utf8_lossy(bytes).lines() {
        let mut cols = line.split(':');
        let (Some(name), Some(_), Some(uid)) = (cols.next(), cols.next(), cols.next()) else {
            continue;
        };
        if name.is_empty() || name.starts_with(['#', '+', '-']) {
            continue;
        }
        if let Ok(uid) = uid.parse() {
            out.entry(uid).or_insert_with(|| name.into());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_and_unknown() {
        let mut u = Users::default();
        assert_eq!(u.name(0), Some("root"));
        assert_eq!(u.name(3_999_999_999), None);
        // NSS answers arrive in the background and agree.
        for _ in 0..1000 {
            if u.settled() {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(u.settled());
        assert_eq!(u.name(0), Some("root"));
        assert_eq!(u.name(3_999_999_999), None);
    }

    /// A miss is answered from the passwd file on the spot, without NSS.
    #[test]
    fn first_answer_comes_from_the_passwd_file() {
        let path = std::env::temp_dir().join(format!("sysmon-passwd-{}", std::process::id()));
        std::fs::write(
            &path,
            "# comment\nroot:x:0:0::/root:/bin/sh\nalice:x:1000:1000::/h:/bin/sh\n\
             dup:x:1000:1000::/h:/bin/sh\n+nis\nbad:x:notanumber\n",
        )
        .unwrap();
        let mut u = Users::new(path.clone(), false);
        let got: Vec<_> = [0, 1000, 2000]
            .map(|uid| u.name(uid).map(str::to_string))
            .into();
        std::fs::remove_file(&path).unwrap();
        assert_eq!(got, [Some("root".into()), Some("alice".into()), None]);
    }
}
