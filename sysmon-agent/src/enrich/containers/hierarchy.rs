//! The cgroup hierarchies that can name a container, and a cgroup's path from its id.
//!
//! A cgroup id is its directory's inode number in cgroupfs (on 64-bit kernels), so the path
//! of an id is found by walking the hierarchy once and again on a miss (on the resolver's
//! thread); new cgroups come with their path in a record and need no walk.

use std::{
    collections::HashMap,
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
    sync::OnceLock,
};

use sysmon_common::process::Cgroups;

/// Which hierarchy a cgroup id belongs to (ids are unique only within one).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Hier {
    /// The default (v2) hierarchy.
    V2,
    /// The memory controller's v1 hierarchy.
    V1,
}

/// Where the two hierarchies are mounted, if they are.
#[derive(Debug, Default)]
pub struct Mounts {
    pub v2: Option<PathBuf>,
    pub v1_memory: Option<PathBuf>,
    /// The memory hierarchy's id (`/proc/cgroups`), as `cgroup_mkdir` records name it.
    pub memory_hierarchy: Option<u32>,
}

impl Mounts {
    /// This host's, read once.
    pub fn get() -> &'static Mounts {
        static MOUNTS: OnceLock<Mounts> = OnceLock::new();
        MOUNTS.get_or_init(|| {
            let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
            let cgroups = std::fs::read_to_string("/proc/cgroups").unwrap_or_default();
            Mounts::parse(&info, &cgroups)
        })
    }

    /// From `/proc/self/mountinfo` and `/proc/cgroups`: mounts of a hierarchy's root only
    /// (a container's own cgroup namespace shows only its part).
    pub fn parse(mountinfo: &str, cgroups: &str) -> Mounts {
        let mut m = Mounts::default();
        for line in mountinfo.lines() {
            let Some((left, right)) = line.split_once(" - ") else {
                continue;
            };
            let left: Vec<&str> = left.split(' ').collect();
            let right: Vec<&str> = right.split(' ').collect();
            let (Some(root), Some(point), Some(fs)) = (left.get(3), left.get(4), right.first())
            else {
                continue;
            };
            if *root != "/" {
                continue;
            }
            let options = right.get(2).copied().unwrap_or("");
            match *fs {
                "cgroup2" if m.v2.is_none() => m.v2 = Some(PathBuf::from(point)),
                "cgroup" if m.v1_memory.is_none() && options.split(',').any(|o| o == "memory") => {
                    m.v1_memory = Some(PathBuf::from(point))
                }
                _ => {}
            }
        }
        if m.v1_memory.is_some() {
            m.memory_hierarchy = cgroups.lines().find_map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                (f.first() == Some(&"memory")).then(|| f.get(1)?.parse().ok())?
            });
        }
        m
    }

    pub fn mount(&self, h: Hier) -> Option<&Path> {
        match h {
            Hier::V2 => self.v2.as_deref(),
            Hier::V1 => self.v1_memory.as_deref(),
        }
    }

    /// The hierarchy a `cgroup_mkdir` record's `root` names, if it is one we use.
    pub fn hier_of_root(&self, root: u32) -> Option<Hier> {
        if root == 0 && self.v2.is_some() {
            Some(Hier::V2)
        } else if Some(root) == self.memory_hierarchy {
            Some(Hier::V1)
        } else {
            None
        }
    }

    /// The cgroups of process `pid`, from /proc (processes seen before their exec or fork
    /// record): each path's inode number is the id.
    pub fn of_pid(&self, pid: u32) -> Cgroups {
        let mut c = Cgroups::default();
        let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/cgroup")) else {
            return c;
        };
        for line in text.lines() {
            let mut f = line.splitn(3, ':');
            let (Some(id), Some(controllers), Some(path)) = (f.next(), f.next(), f.next()) else {
                continue;
            };
            let (slot, mount) = if id == "0" && controllers.is_empty() {
                (&mut c.v2, &self.v2)
            } else if controllers.split(',').any(|x| x == "memory") {
                (&mut c.v1, &self.v1_memory)
            } else {
                continue;
            };
            if let Some(mount) = mount
                && let Ok(meta) = std::fs::metadata(mount.join(path.trim_start_matches('/')))
            {
                *slot = meta.ino();
            }
        }
        c
    }
}

/// Every cgroup of hierarchy `mount`: id → path relative to the root (`/` for the root).
pub fn walk(mount: &Path) -> HashMap<u64, String> {
    let mut out = HashMap::new();
    let mut stack = vec![(mount.to_path_buf(), String::new())];
    while let Some((dir, rel)) = stack.pop() {
        let Ok(meta) = std::fs::metadata(&dir) else {
            continue;
        };
        out.insert(
            meta.ino(),
            if rel.is_empty() {
                "/".into()
            } else {
                rel.clone()
            },
        );
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                let name = e.file_name().to_string_lossy().into_owned();
                stack.push((e.path(), format!("{rel}/{name}")));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mounts_of_hybrid_and_unified_hosts() {
        let hybrid = "25 30 0:22 / /sys/fs/cgroup ro,nosuid - tmpfs tmpfs ro,mode=755\n\
            26 25 0:23 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw,nsdelegate\n\
            31 25 0:28 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n\
            32 25 0:29 / /sys/fs/cgroup/pids rw - cgroup cgroup rw,pids\n";
        let cgroups = "#subsys_name\thierarchy\tnum_cgroups\tenabled\n\
            cpu\t1\t6\t1\nmemory\t4\t31\t1\npids\t8\t6\t1\n";
        let m = Mounts::parse(hybrid, cgroups);
        assert_eq!(m.v2.as_deref(), Some(Path::new("/sys/fs/cgroup/unified")));
        assert_eq!(
            m.v1_memory.as_deref(),
            Some(Path::new("/sys/fs/cgroup/memory"))
        );
        assert_eq!(m.memory_hierarchy, Some(4));
        // (mkdir record's root, hierarchy)
        for (root, want) in [(0, Some(Hier::V2)), (4, Some(Hier::V1)), (8, None)] {
            assert_eq!(m.hier_of_root(root), want, "{root}");
        }
        // Unified: memory is a v2 controller (hierarchy 0), no v1 hierarchy to read.
        let unified = "26 25 0:23 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n";
        let m = Mounts::parse(unified, "memory\t0\t90\t1\n");
        assert_eq!(m.v2.as_deref(), Some(Path::new("/sys/fs/cgroup")));
        assert_eq!((m.v1_memory, m.memory_hierarchy), (None, None));
        // A mount of a part of the hierarchy (a container's cgroup namespace) is not used.
        let part = "26 25 0:23 /docker/abc /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n";
        assert_eq!(Mounts::parse(part, "").v2, None);
    }

    /// On this machine: our own process's cgroup ids lead back to the paths /proc shows.
    #[test]
    fn own_cgroups_walk_back_to_their_paths() {
        let m = Mounts::get();
        let own = m.of_pid(std::process::id());
        let text = std::fs::read_to_string("/proc/self/cgroup").unwrap();
        for (h, id) in [(Hier::V2, own.v2), (Hier::V1, own.v1)] {
            let Some(mount) = m.mount(h) else { continue };
            let want = text
                .lines()
                .find(|l| match h {
                    Hier::V2 => l.starts_with("0::"),
                    Hier::V1 => l.split(':').nth(1).is_some_and(|c| c.contains("memory")),
                })
                .and_then(|l| l.splitn(3, ':').nth(2))
                .unwrap();
            assert_eq!(
                walk(mount).get(&id).map(String::as_str),
                Some(want),
                "{h:?}"
            );
        }
    }
}
