//! Which container (and pod) a process runs in: the kernel records each process's cgroups
//! at fork and exec; this maps a cgroup to its container, by the cgroup's path (`path`) and
//! the runtime's own files (`runtime`, `bolt`), on a thread of its own. The event path only
//! reads the cache here and never waits on a file.
//!
//! A new container's cgroup is announced by a `cgroup_mkdir` record before its first
//! process runs, so its names are usually known before that process's first record is
//! handled. Until an answer comes, records of processes in a cgroup not yet resolved wait
//! in the pipeline (see `HOLD_MAX`); past that bound they go out with what is known.
//!
//! Bounds: at most `MAX_CGROUPS` cgroups cached; a cgroup that is gone is forgotten
//! `LINGER` after a sweep finds it gone (the exits of its processes still carry its names).

pub mod bolt;
pub mod hierarchy;
pub mod path;
pub mod runtime;

use std::{
    collections::HashMap,
    os::fd::{AsRawFd, FromRawFd, OwnedFd},
    sync::{
        Arc,
        mpsc::{self, Receiver, Sender},
    },
    time::{Duration, Instant},
};

use sysmon_common::process::Cgroups;

pub use hierarchy::{Hier, Mounts};
use path::Runtime;

/// One container, as the events name it; an empty string prints as `-`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Container {
    pub id: String,
    pub name: String,
    pub image: String,
    pub runtime: &'static str,
    pub pod_name: String,
    pub pod_namespace: String,
}

impl Container {
    /// What the cgroup path alone tells: id and runtime.
    pub fn bare(rt: Runtime, id: &str) -> Container {
        Container {
            id: id.to_string(),
            name: String::new(),
            image: String::new(),
            runtime: rt.name(),
            pod_name: String::new(),
            pod_namespace: String::new(),
        }
    }
}

/// Cgroups cached at most; past it, host cgroups and gone ones are forgotten first.
pub const MAX_CGROUPS: usize = 16384;
/// How long a gone cgroup stays known.
pub const LINGER: Duration = Duration::from_secs(60);

type Key = (Hier, u64);

enum Ask {
    /// A new cgroup and its path (from a `cgroup_mkdir` record).
    Path(Key, String),
    /// A cgroup known only by its id.
    Id(Key),
    /// Which of these cgroups are gone.
    Sweep(Vec<Key>),
}

enum Answer {
    /// What is known of a cgroup's container so far (`None`: not a container); `done` once
    /// the runtime's files were read.
    Cgroup {
        key: Key,
        container: Option<Arc<Container>>,
        done: bool,
    },
    Gone(Vec<Key>),
}

struct Slot {
    container: Option<Arc<Container>>,
    done: bool,
    gone: Option<Instant>,
}

/// A cgroup's container as far as known.
#[derive(Debug, Clone)]
pub struct Status {
    pub container: Option<Arc<Container>>,
    /// False while the resolver is still at it.
    pub done: bool,
}

/// The cache the event path reads, and the line to the resolver's thread.
pub struct Containers {
    slots: HashMap<Key, Slot>,
    asks: Sender<Ask>,
    answers: Receiver<Answer>,
    /// Written by the resolver after each answer: the event loop waits on it.
    wake: Arc<OwnedFd>,
    mounts: &'static Mounts,
    /// Answers taken in (a test counter: an event of a cached cgroup costs none).
    pub answered: u64,
}

impl Containers {
    /// Starts the resolver thread, reading the runtimes' files under `roots`.
    pub fn new(roots: runtime::Roots) -> Containers {
        let (asks, asked) = mpsc::channel();
        let (answer, answers) = mpsc::channel();
        // SAFETY: eventfd returns a new descriptor that nothing else owns (or -1, checked).
        let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        assert!(fd >= 0, "eventfd: {}", std::io::Error::last_os_error());
        // SAFETY: as above: a fresh descriptor, owned from here on.
        let wake = Arc::new(unsafe { OwnedFd::from_raw_fd(fd) });
        let mounts = Mounts::get();
        let worker = Resolver {
            roots,
            mounts,
            paths: HashMap::new(),
            answer,
            wake: wake.clone(),
        };
        std::thread::Builder::new()
            .name("sysmon-containers".into())
            .spawn(move || worker.run(asked))
            .expect("starting the container resolver");
        Containers {
            slots: HashMap::new(),
            asks,
            answers,
            wake,
            mounts,
            answered: 0,
        }
    }

    /// The descriptor that becomes readable when answers wait (see [`Containers::poll`]).
    pub fn wake(&self) -> Arc<OwnedFd> {
        self.wake.clone()
    }

    /// A `cgroup_mkdir` record: the new cgroup's path, resolved at once.
    pub fn learn(&mut self, root: u32, id: u64, path: &[u8]) {
        let Some(h) = self.mounts.hier_of_root(root) else {
            return;
        };
        let path = String::from_utf8_lossy(path).into_owned();
        self.pending((h, id));
        let _ = self.asks.send(Ask::Path((h, id), path));
    }

    fn pending(&mut self, key: Key) {
        if self.slots.len() >= MAX_CGROUPS {
            self.shrink();
        }
        self.slots.insert(
            key,
            Slot {
                container: None,
                done: false,
                gone: None,
            },
        );
    }

    /// Room for new cgroups: gone ones first, then host ones (cheap to resolve again).
    fn shrink(&mut self) {
        self.slots.retain(|_, s| s.gone.is_none());
        if self.slots.len() >= MAX_CGROUPS {
            self.slots.retain(|_, s| s.container.is_some() || !s.done);
        }
    }

    /// The container of a process in `cgroups`: named by either cgroup, a fully resolved
    /// answer first (the v2 cgroup's, else the v1 memory cgroup's). A cgroup never seen is
    /// asked for (and not done).
    pub fn status(&mut self, cgroups: Cgroups) -> Status {
        let mut done = true;
        let mut partial = None;
        for (h, id) in [(Hier::V2, cgroups.v2), (Hier::V1, cgroups.v1)] {
            if id == 0 || self.mounts.mount(h).is_none() {
                continue;
            }
            if !self.slots.contains_key(&(h, id)) {
                self.pending((h, id));
                let _ = self.asks.send(Ask::Id((h, id)));
            }
            let slot = &self.slots[&(h, id)];
            match (&slot.container, slot.done) {
                (Some(c), true) => {
                    return Status {
                        container: Some(c.clone()),
                        done: true,
                    };
                }
                (Some(c), false) => {
                    partial.get_or_insert_with(|| c.clone());
                }
                (None, _) => {}
            }
            done &= slot.done;
        }
        Status {
            container: partial,
            done,
        }
    }

    /// Takes in what the resolver has answered; true if anything.
    pub fn poll(&mut self) -> bool {
        let mut count = [0u8; 8];
        // SAFETY: reads at most 8 bytes into `count` from our own eventfd.
        unsafe { libc::read(self.wake.as_raw_fd(), count.as_mut_ptr() as *mut _, 8) };
        let mut any = false;
        let now = Instant::now();
        while let Ok(a) = self.answers.try_recv() {
            any = true;
            self.answered += 1;
            match a {
                Answer::Cgroup {
                    key,
                    container,
                    done,
                } => {
                    if let Some(slot) = self.slots.get_mut(&key) {
                        slot.container = container;
                        slot.done = done;
                    }
                }
                Answer::Gone(keys) => {
                    for k in keys {
                        if let Some(slot) = self.slots.get_mut(&k) {
                            slot.gone.get_or_insert(now);
                        }
                    }
                }
            }
        }
        any
    }

    /// Now and then: forgets cgroups found gone `LINGER` ago, asks which others are gone.
    pub fn sweep(&mut self) {
        let now = Instant::now();
        self.slots
            .retain(|_, s| s.gone.is_none_or(|at| now.duration_since(at) < LINGER));
        let keys = self
            .slots
            .iter()
            .filter(|(_, s)| s.done && s.gone.is_none())
            .map(|(k, _)| *k)
            .collect();
        let _ = self.asks.send(Ask::Sweep(keys));
    }

    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }
}

/// The resolver's thread: cgroup → path → container, reading cgroupfs and the runtimes'
/// files; answers go back through a channel, and the eventfd wakes the event loop.
struct Resolver {
    roots: runtime::Roots,
    mounts: &'static Mounts,
    /// Every cgroup's path, per hierarchy, from the last walk and the records.
    paths: HashMap<Key, String>,
    answer: Sender<Answer>,
    wake: Arc<OwnedFd>,
}

impl Resolver {
    fn run(mut self, asked: Receiver<Ask>) {
        while let Ok(first) = asked.recv() {
            // Everything asked meanwhile in one go: one walk serves every unknown id.
            let batch: Vec<Ask> = std::iter::once(first).chain(asked.try_iter()).collect();
            let mut walked = false;
            for ask in batch {
                match ask {
                    Ask::Path(key, path) => {
                        self.paths.insert(key, path.clone());
                        self.resolve(key, &path);
                    }
                    Ask::Id(key) => {
                        if !self.paths.contains_key(&key) && !walked {
                            self.walk();
                            walked = true;
                        }
                        match self.paths.get(&key).cloned() {
                            Some(path) => self.resolve(key, &path),
                            // Gone before we looked: nothing names it.
                            None => self.send(Answer::Cgroup {
                                key,
                                container: None,
                                done: true,
                            }),
                        }
                    }
                    Ask::Sweep(keys) => {
                        let gone = keys
                            .into_iter()
                            .filter(|k| !self.exists(*k))
                            .collect::<Vec<_>>();
                        for k in &gone {
                            self.paths.remove(k);
                        }
                        self.send(Answer::Gone(gone));
                    }
                }
            }
        }
    }

    fn walk(&mut self) {
        for h in [Hier::V2, Hier::V1] {
            if let Some(mount) = self.mounts.mount(h) {
                for (id, path) in hierarchy::walk(mount) {
                    self.paths.insert((h, id), path);
                }
            }
        }
    }

    fn exists(&self, key: Key) -> bool {
        match (self.mounts.mount(key.0), self.paths.get(&key)) {
            (Some(mount), Some(path)) => mount.join(path.trim_start_matches('/')).exists(),
            _ => false,
        }
    }

    /// The id and runtime from the path at once, then the names from the files.
    fn resolve(&self, key: Key, path: &str) {
        let Some(found) = path::parse(path) else {
            return self.send(Answer::Cgroup {
                key,
                container: None,
                done: true,
            });
        };
        if let path::Found::Container(rt, id) = &found {
            self.send(Answer::Cgroup {
                key,
                container: Some(Arc::new(Container::bare(*rt, id))),
                done: false,
            });
        }
        self.send(Answer::Cgroup {
            key,
            container: self.roots.describe(&found).map(Arc::new),
            done: true,
        });
    }

    fn send(&self, a: Answer) {
        let _ = self.answer.send(a);
        let one = 1u64.to_ne_bytes();
        // SAFETY: writes 8 bytes from `one` to our own eventfd.
        unsafe { libc::write(self.wake.as_raw_fd(), one.as_ptr() as *const _, 8) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wait(c: &mut Containers, cg: Cgroups) -> Status {
        let until = Instant::now() + Duration::from_secs(10);
        loop {
            c.poll();
            let s = c.status(cg);
            if s.done || Instant::now() > until {
                return s;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// Our own cgroup (a host one) resolves by id to "no container"; a record's path naming
    /// a container resolves to it at once, names from the files as they come; asking again
    /// costs no answer.
    #[test]
    fn ids_and_paths_resolve_off_the_caller() {
        let m = Mounts::get();
        if m.v2.is_none() && m.v1_memory.is_none() {
            eprintln!("skipped: no cgroup hierarchy mounted");
            return;
        }
        let root = std::env::temp_dir().join(format!("sysmon-cgroups-{}", std::process::id()));
        let mut c = Containers::new(runtime::Roots {
            prefix: root.clone(),
        });
        let own = m.of_pid(std::process::id());
        let s = wait(&mut c, own);
        assert!(s.done && s.container.is_none(), "{s:?}");
        let answered = c.answered;
        for _ in 0..100 {
            assert!(c.status(own).done);
        }
        c.poll();
        assert_eq!(c.answered, answered, "a cached cgroup costs no answer");

        let id = "4a3b2c1d0e9f8a7b6c5d4e3f2a1b0c9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b";
        let dir = root.join(format!("var/lib/docker/containers/{id}"));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("config.v2.json"),
            r#"{"Name":"/web","Config":{"Image":"nginx"}}"#,
        )
        .unwrap();
        let h = if m.v2.is_some() {
            0
        } else {
            m.memory_hierarchy.unwrap()
        };
        let fake = Cgroups {
            v2: if h == 0 { u64::MAX - 7 } else { 0 },
            v1: if h == 0 { 0 } else { u64::MAX - 7 },
        };
        c.learn(h, u64::MAX - 7, format!("/docker/{id}").as_bytes());
        assert!(!c.status(fake).done, "pending until the resolver answers");
        let s = wait(&mut c, fake);
        let got = s.container.unwrap();
        assert_eq!(
            (
                got.id.as_str(),
                got.name.as_str(),
                got.image.as_str(),
                got.runtime
            ),
            (id, "web", "nginx", "docker")
        );
        std::fs::remove_dir_all(&root).unwrap();
    }
}
