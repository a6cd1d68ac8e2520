//! The process cache: what we know of every live process, for Parent* fields, events that
//! carry only a pid, and ProcessGuid correlation.
//!
//! Filled from /proc at start, then from fork and exec records; an exited process stays a
//! short while for records that arrive after its exit (e.g. a double-forked child's exec).

use std::{
    collections::VecDeque,
    rc::Rc,
    time::{Duration, Instant},
};

use sysmon_common::process::Cgroups;

use super::{clock::Clock, guid::Guid, id_map::IdMap, procfs};

#[derive(Debug, Clone)]
pub struct Proc {
    pub guid: Guid,
    pub ppid: u32,
    /// Nanoseconds since boot.
    pub start_ns: u64,
    pub uid: u32,
    /// Shared with forked children until they exec: a fork costs no copy.
    pub image: Rc<str>,
    pub cmdline: Rc<str>,
    /// Its cgroups at its last exec or fork: which container it runs in.
    pub cgroups: Cgroups,
}

pub struct ProcessCache {
    procs: IdMap<u32, Proc>,
    exited: VecDeque<(Instant, u32, u64)>,
    machine: u32,
    clock: Clock,
}

/// How long an exited process stays known.
const LINGER: Duration = Duration::from_secs(10);
/// /proc start times have clock-tick precision; the kernel's are exact.
const START_SLACK_NS: u64 = 20_000_000;

impl ProcessCache {
    pub fn new(machine: u32, clock: Clock) -> Self {
        ProcessCache {
            procs: IdMap::default(),
            exited: VecDeque::new(),
            machine,
            clock,
        }
    }

    pub fn len(&self) -> usize {
        self.procs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.procs.is_empty()
    }

    /// Learns every process /proc lists.
    pub fn seed(&mut self) {
        for pid in procfs::pids() {
            if let Some(e) = procfs::read(pid) {
                self.insert_proc(e);
            }
        }
    }

    /// The ProcessGuid of a process started at `start_ns` with process key `key`.
    pub fn guid(&self, start_ns: u64, key: u64) -> Guid {
        Guid {
            machine: self.machine,
            seconds: self.clock.epoch_secs(start_ns),
            key,
        }
    }

    /// Whether `pid` is a process the cache knows (no /proc fallback).
    pub fn contains(&self, pid: u32) -> bool {
        self.procs.contains_key(&pid)
    }

    pub fn insert(&mut self, pid: u32, proc: Proc) {
        self.procs.insert(pid, proc);
    }

    /// A new process: until it execs it runs its parent's image with a copy of its memory.
    pub fn insert_fork(&mut self, pid: u32, ppid: u32, uid: u32, start_ns: u64, cgroups: Cgroups) {
        let guid = self.guid(start_ns, 0);
        let Some(parent) = self.get(ppid, None) else {
            return;
        };
        let proc = Proc {
            guid: Guid {
                key: parent.guid.key,
                ..guid
            },
            ppid,
            start_ns,
            uid,
            image: parent.image.clone(),
            cmdline: parent.cmdline.clone(),
            cgroups,
        };
        self.procs.insert(pid, proc);
    }

    /// The process `pid`; with `start_ns`, only if it is that process (pid reuse). Falls
    /// back to /proc on a miss.
    pub fn get(&mut self, pid: u32, start_ns: Option<u64>) -> Option<&Proc> {
        let fresh = self
            .procs
            .get(&pid)
            .is_some_and(|p| start_ns.is_none_or(|s| close(p.start_ns, s)));
        if !fresh {
            let e = procfs::read(pid)?;
            if start_ns.is_some_and(|s| !close(e.start_ns, s)) {
                return None;
            }
            self.insert_proc(e);
        }
        self.procs.get(&pid)
    }

    /// The parent of a process started at `child_start`: must have started before it.
    pub fn parent(&mut self, ppid: u32, child_start: u64) -> Option<&Proc> {
        let stale = self
            .procs
            .get(&ppid)
            .is_some_and(|p| p.start_ns > child_start + START_SLACK_NS);
        if stale {
            self.procs.remove(&ppid);
        }
        self.get(ppid, None)
            .filter(|p| p.start_ns <= child_start + START_SLACK_NS)
    }

    /// The process has exited: forget it after `LINGER`.
    pub fn exited(&mut self, pid: u32, start_ns: u64) {
        let now = Instant::now();
        self.exited.push_back((now, pid, start_ns));
        while let Some(&(at, pid, start)) = self.exited.front() {
            if now.duration_since(at) < LINGER {
                break;
            }
            self.exited.pop_front();
            if self
                .procs
                .get(&pid)
                .is_some_and(|p| close(p.start_ns, start))
            {
                self.procs.remove(&pid);
            }
        }
    }

    /// Forgets processes that are gone although no exit record said so (records lost to a
    /// full ring buffer), so the cache cannot grow without bound. Run rarely: one stat per
    /// cached process.
    pub fn sweep(&mut self) {
        self.procs
            .retain(|pid, _| std::path::Path::new(&format!("/proc/{pid}")).exists());
    }

    fn insert_proc(&mut self, e: procfs::ProcEntry) {
        let proc = Proc {
            guid: self.guid(e.start_ns, e.end_code),
            ppid: e.ppid,
            start_ns: e.start_ns,
            uid: e.uid,
            image: e.image.into(),
            cmdline: e.cmdline.into(),
            cgroups: e.cgroups,
        };
        self.procs.insert(e.pid, proc);
    }
}

fn close(a: u64, b: u64) -> bool {
    a.abs_diff(b) <= START_SLACK_NS
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proc(start_ns: u64, image: &str) -> Proc {
        Proc {
            guid: Guid::ZERO,
            ppid: 1,
            start_ns,
            uid: 0,
            image: image.into(),
            cmdline: image.into(),
            cgroups: Cgroups::default(),
        }
    }

    #[test]
    fn fork_copies_parent_and_exit_lingers() {
        let mut c = ProcessCache::new(7, Clock::at(0));
        c.insert(4_000_001, proc(1_000_000_000, "/bin/bash"));
        c.insert_fork(
            4_000_002,
            4_000_001,
            1000,
            2_000_000_000,
            Cgroups::default(),
        );
        let child = c.get(4_000_002, Some(2_000_000_000)).unwrap();
        assert_eq!(&*child.image, "/bin/bash");
        assert_eq!(child.guid.seconds, 2);
        assert_eq!(child.ppid, 4_000_001);
        c.exited(4_000_002, 2_000_000_000);
        assert!(
            c.get(4_000_002, None).is_some(),
            "still known right after exit"
        );
    }

    #[test]
    fn sweep_forgets_only_the_gone() {
        let mut c = ProcessCache::new(7, Clock::at(0));
        c.insert(std::process::id(), proc(1, "/me"));
        c.insert(4_000_004, proc(1, "/gone"));
        c.sweep();
        assert_eq!(c.len(), 1);
        assert!(c.procs.contains_key(&std::process::id()));
    }

    #[test]
    fn parent_started_after_child_is_not_its_parent() {
        let mut c = ProcessCache::new(7, Clock::at(0));
        c.insert(4_000_003, proc(5_000_000_000, "/usr/bin/reused"));
        // No such pid in /proc either, so the lookup fails rather than lying.
        assert!(c.parent(4_000_003, 1_000_000_000).is_none());
    }

    #[test]
    fn seeds_this_process() {
        let mut c = ProcessCache::new(7, Clock::new());
        c.seed();
        let me = c.get(std::process::id(), None).unwrap();
        assert!(
            me.image.ends_with(
                &*std::env::current_exe()
                    .unwrap()
                    .file_name()
                    .unwrap()
                    .to_string_lossy()
            )
        );
    }
}
