//! The process cache: what we know of every live process, for Parent* fields, events that
//! carry only a pid, and ProcessGuid correlation.
//!
//! Filled from /proc at start, then from fork and exec records; an exited process stays a
//! short while for records that arrive after its exit (e.g. a double-forked child's exec).
//!
//! Bounded (`PROCS_MAX` processes, `TEXT_MAX` bytes of image and command-line text): when
//! full, exited processes are forgotten before their time, oldest first; with none left,
//! a new process is not kept, and its events read /proc again (one process at a time is
//! held aside for the event being built).

use std::{
    collections::VecDeque,
    rc::Rc,
    time::{Duration, Instant},
};

use sysmon_common::process::Cgroups;

use super::{
    clock::Clock,
    guid::{self, Guid},
    id_map::IdMap,
    procfs,
};

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
    /// Bytes of image and command-line text of the entries (a text shared with a forked
    /// child counted for each).
    text: usize,
    /// The last process the full cache could not keep, for the events being built.
    aside: Option<(u32, Proc)>,
    /// Processes not kept because the cache was full (tests).
    pub refused: u64,
    machine: u32,
    clock: Clock,
}

/// Processes kept at most (exited ones waiting out `LINGER` included).
pub const PROCS_MAX: usize = 65_536;
/// Bytes of image and command-line text kept at most.
pub const TEXT_MAX: usize = 64 << 20;

/// How long an exited process stays known.
const LINGER: Duration = Duration::from_secs(10);
/// /proc start times have clock-tick precision; the kernel's are exact.
const START_SLACK_NS: u64 = 20_000_000;

impl ProcessCache {
    pub fn new(machine: u32, clock: Clock) -> Self {
        ProcessCache {
            procs: IdMap::default(),
            exited: VecDeque::new(),
            text: 0,
            aside: None,
            refused: 0,
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

    /// The ProcessGuid of process `pid` started at `start_ns` (since boot) running an
    /// executable whose text ends at `end_code` (see `guid::process_guid`).
    pub fn guid(&self, pid: u32, start_ns: u64, end_code: u64) -> Guid {
        let tick = start_ns - start_ns % guid::TICK_NS;
        let epoch_10ms = self.clock.epoch_ns(tick).max(0) as u64 / guid::TICK_NS;
        guid::process_guid(self.machine, pid, epoch_10ms, end_code)
    }

    /// Whether `pid` is a process the cache knows (no /proc fallback).
    pub fn contains(&self, pid: u32) -> bool {
        self.procs.contains_key(&pid)
    }

    pub fn insert(&mut self, pid: u32, proc: Proc) {
        self.put(pid, proc);
    }

    /// A new process: until it execs it runs its parent's image with a copy of its memory,
    /// under a GUID of its own.
    pub fn insert_fork(&mut self, pid: u32, ppid: u32, uid: u32, start_ns: u64, cgroups: Cgroups) {
        let Some(parent) = self.get(ppid, None) else {
            return;
        };
        let image = guid::image_bits(parent.guid.key);
        let (image_path, cmdline) = (parent.image.clone(), parent.cmdline.clone());
        let proc = Proc {
            guid: self.guid(pid, start_ns, image),
            ppid,
            start_ns,
            uid,
            image: image_path,
            cmdline,
            cgroups,
        };
        self.put(pid, proc);
    }

    /// The process `pid`; with `start_ns`, only if it is that process (pid reuse). Falls
    /// back to /proc on a miss.
    pub fn get(&mut self, pid: u32, start_ns: Option<u64>) -> Option<&Proc> {
        let fresh = self
            .known(pid)
            .is_some_and(|p| start_ns.is_none_or(|s| close(p.start_ns, s)));
        if !fresh {
            let e = procfs::read(pid)?;
            if start_ns.is_some_and(|s| !close(e.start_ns, s)) {
                return None;
            }
            self.insert_proc(e);
        }
        self.known(pid)
    }

    /// The entry of `pid`, kept or held aside.
    fn known(&self, pid: u32) -> Option<&Proc> {
        self.procs.get(&pid).or(match &self.aside {
            Some((p, proc)) if *p == pid => Some(proc),
            _ => None,
        })
    }

    /// Keeps `proc` as process `pid`, in the bounds: exited processes make room first,
    /// oldest first; without any, the entry is only held aside.
    fn put(&mut self, pid: u32, proc: Proc) {
        self.drop_entry(pid);
        let size = text_of(&proc);
        while self.procs.len() >= PROCS_MAX || self.text + size > TEXT_MAX {
            if !self.forget_oldest_exited() {
                self.refused += 1;
                self.aside = Some((pid, proc));
                return;
            }
        }
        if self.aside.as_ref().is_some_and(|(p, _)| *p == pid) {
            self.aside = None;
        }
        self.text += size;
        self.procs.insert(pid, proc);
    }

    fn drop_entry(&mut self, pid: u32) {
        if let Some(old) = self.procs.remove(&pid) {
            self.text -= text_of(&old);
        }
    }

    /// Forgets the process that exited first, if its entry is still that process; false
    /// when no exited process waits.
    fn forget_oldest_exited(&mut self) -> bool {
        let Some((_, pid, start)) = self.exited.pop_front() else {
            return false;
        };
        if self
            .procs
            .get(&pid)
            .is_some_and(|p| close(p.start_ns, start))
        {
            self.drop_entry(pid);
        }
        true
    }

    /// The parent of a process started at `child_start`: must have started before it.
    pub fn parent(&mut self, ppid: u32, child_start: u64) -> Option<&Proc> {
        let stale = self
            .procs
            .get(&ppid)
            .is_some_and(|p| p.start_ns > child_start + START_SLACK_NS);
        if stale {
            self.drop_entry(ppid);
        }
        self.get(ppid, None)
            .filter(|p| p.start_ns <= child_start + START_SLACK_NS)
    }

    /// The process has exited: forget it after `LINGER` (sooner when the cache is full).
    pub fn exited(&mut self, pid: u32, start_ns: u64) {
        let now = Instant::now();
        self.exited.push_back((now, pid, start_ns));
        while let Some(&(at, ..)) = self.exited.front() {
            if now.duration_since(at) < LINGER && self.exited.len() <= PROCS_MAX {
                break;
            }
            self.forget_oldest_exited();
        }
    }

    /// Forgets processes that are gone although no exit record said so (records lost to a
    /// full ring buffer). Run rarely: one stat per cached process.
    pub fn sweep(&mut self) {
        let mut text = self.text;
        self.procs.retain(|pid, p| {
            let live = std::path::Path::new(&format!("/proc/{pid}")).exists();
            if !live {
                text -= text_of(p);
            }
            live
        });
        self.text = text;
    }

    /// Bytes of text the entries hold (tests, and the memory bound).
    pub fn text_bytes(&self) -> usize {
        self.text
    }

    fn insert_proc(&mut self, e: procfs::ProcEntry) {
        let proc = Proc {
            guid: self.guid(e.pid, e.start_ns, e.end_code),
            ppid: e.ppid,
            start_ns: e.start_ns,
            uid: e.uid,
            image: e.image.into(),
            cmdline: e.cmdline.into(),
            cgroups: e.cgroups,
        };
        self.put(e.pid, proc);
    }
}

fn text_of(p: &Proc) -> usize {
    p.image.len() + p.cmdline.len()
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

    /// A child forked in its parent's hundredth of a second gets a GUID of its own, the
    /// one /proc would give it (same pid, start tick and executable).
    #[test]
    fn a_forked_child_has_a_guid_of_its_own() {
        let mut c = ProcessCache::new(7, Clock::at(1_700_000_000_000_000_000));
        let (parent, child, start) = (4_000_010, 4_000_011, 5_000_000_000);
        let code = 0x5555_1234_5678;
        let p = Proc {
            guid: c.guid(parent, start, code),
            ..proc(start, "/bin/bash")
        };
        c.insert(parent, p);
        c.insert_fork(child, parent, 0, start + 1_000, Default::default());
        let g = c.get(child, None).unwrap().guid;
        assert_ne!(g, c.get(parent, None).unwrap().guid);
        assert_eq!(g.seconds, c.get(parent, None).unwrap().guid.seconds);
        assert_eq!(g, c.guid(child, start + 9_999_999, code));
    }

    /// Many more short-lived processes than the bound: exited ones are forgotten early,
    /// oldest first, and every live one is kept.
    #[test]
    fn a_burst_of_processes_stays_within_the_bound() {
        let mut c = ProcessCache::new(7, Clock::at(0));
        let parent = 5_000_000;
        c.insert(parent, proc(1, "/bin/sh"));
        let n = 3 * PROCS_MAX as u32;
        for i in 1..=n {
            c.insert_fork(parent + i, parent, 0, 2 + i as u64, Default::default());
            assert!(c.contains(parent + i), "live child {i} kept");
            c.exited(parent + i, 2 + i as u64);
            assert!(c.len() <= PROCS_MAX);
        }
        assert_eq!(c.refused, 0);
        assert!(c.exited.len() <= PROCS_MAX);
        // Live processes past the bound: not kept, but the last one is at hand.
        let live = 5_500_000;
        for i in 0..PROCS_MAX as u32 + 10 {
            c.insert_fork(live + i, parent, 0, 10 * n as u64, Default::default());
            assert!(c.len() <= PROCS_MAX);
            assert!(c.get(live + i, None).is_some(), "{i}");
        }
        assert!(c.refused >= 10, "{}", c.refused);
        assert!(c.contains(parent), "the parent stays");
    }

    /// Huge command lines: the text stays within its bound.
    #[test]
    fn command_lines_stay_within_the_text_bound() {
        let mut c = ProcessCache::new(7, Clock::at(0));
        let big: Rc<str> = "x".repeat(1 << 20).into();
        for i in 0..(TEXT_MAX >> 20) as u32 + 20 {
            c.insert(
                6_000_000 + i,
                Proc {
                    cmdline: big.clone(),
                    ..proc(1, "/bin/big")
                },
            );
            assert!(c.text_bytes() <= TEXT_MAX);
            c.exited(6_000_000 + i, 1);
        }
        assert_eq!(c.refused, 0, "exited ones made room");
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
