//! The `Hashes` field: digests of a file, computed once per file identity, always on a
//! hashing thread: the reader thread never opens, stats or reads the file.
//!
//! An event whose digest is not in the cache waits for it, in order with every event after
//! it (`agent::held`), at most `agent::held::WAIT`; a digest that takes longer gives `-` in
//! that event and lands in the cache for the next exec of the same file. Each device has a
//! hashing thread of its own (up to `LANES_MAX`), so a file system that hangs (a dead NFS
//! server, a FUSE server that stalls the agent's reads on purpose) holds up only the digests
//! of its own files. Jobs wait in a bounded queue per device; a job nobody waits for any
//! more when its turn comes is skipped (so a flood of new files, or of `touch`ed ones,
//! costs a thread no more than the events waiting).

use std::{
    collections::HashMap,
    fmt::Write as _,
    fs::File,
    io::Read,
    os::unix::fs::MetadataExt,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
        mpsc::{Receiver, Sender, SyncSender, TrySendError, channel, sync_channel},
    },
    time::Instant,
};

use md5::Md5;
use sha1::Sha1;
use sha2::{Digest, Sha256};

use crate::rules::HashAlgorithms;

/// What identifies one version of a file: device, inode, size and modification time, all
/// carried in the kernel's record, so a cache hit costs no syscall.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FileId {
    /// Kernel-internal `dev_t` (major << 20 | minor).
    pub dev: u32,
    pub ino: u64,
    pub size: i64,
    pub mtime_sec: i64,
    pub mtime_nsec: u32,
}

/// Jobs waiting for one device's hashing thread at most; more get no digest (their events
/// say `-`, and a later event of the same file asks again).
const JOBS_MAX: usize = 16;
/// Devices with a hashing thread at most. A device whose thread is idle gives its place to
/// a new one; with every thread busy, files of a new device get no digest.
const LANES_MAX: usize = 8;
/// Digests (and files known unreadable) kept; past this the cache starts over.
const LIMIT: usize = 16 * 1024;

/// A digest asked for.
#[derive(Debug, Clone)]
pub struct Ask {
    pub id: FileId,
    /// Opened through `/proc/<pid>/exe` when that is the file (an exec: right across mount
    /// namespaces), else by `path`.
    pub pid: u32,
    pub path: Box<str>,
    /// The content as the file holds it when read, the file checked by device and inode
    /// only (a file still being written); else the size must match too.
    pub as_found: bool,
}

enum Slot {
    /// `None` remembers a file that could not be read, so it is not retried per event.
    Done(Option<Box<str>>),
    /// Handed to the hashing thread.
    Pending,
}

struct Job {
    ask: Ask,
    algs: HashAlgorithms,
    generation: u64,
    /// Skipped if not begun by then: no event waits for it any more.
    until: Instant,
}

enum Outcome {
    Done(Option<String>),
    Skipped,
}

type Report = (FileId, u64, Outcome);

/// Called by the hashing thread after each job, to wake the event loop.
pub type Waker = Arc<dyn Fn() + Send + Sync>;

/// One device's hashing thread.
struct Lane {
    jobs: SyncSender<Job>,
    /// Jobs queued or in progress.
    load: Arc<AtomicUsize>,
    /// When it was last given a job (a count of jobs), to let the least used idle one go.
    used: u64,
}

/// Cached digests and the hashing threads.
pub struct Hasher {
    algs: HashAlgorithms,
    cache: HashMap<FileId, Slot>,
    /// Bumped when the algorithms change: digests still in flight with older ones are
    /// thrown away.
    generation: u64,
    /// By device (`FileId::dev`).
    lanes: HashMap<u32, Lane>,
    reports: (Sender<Report>, Receiver<Report>),
    waker: Option<Waker>,
    /// Digests asked of the hashing threads (tests, benches).
    pub queued: u64,
}

impl Hasher {
    pub fn new(algs: HashAlgorithms) -> Self {
        Hasher {
            algs,
            cache: HashMap::new(),
            generation: 0,
            lanes: HashMap::new(),
            reports: channel(),
            waker: None,
            queued: 0,
        }
    }

    /// What the hashing thread calls after each job.
    pub fn set_waker(&mut self, waker: Waker) {
        self.waker = Some(waker);
    }

    /// Switching algorithms (config reload) forgets every cached digest.
    pub fn set_algorithms(&mut self, algs: HashAlgorithms) {
        if (algs.sha1, algs.md5, algs.sha256) != (self.algs.sha1, self.algs.md5, self.algs.sha256) {
            self.algs = algs;
            self.cache.clear();
            self.generation += 1;
        }
    }

    /// Files whose digest is known (or known to be unreadable), not counting those pending.
    pub fn cached(&self) -> usize {
        self.cache
            .values()
            .filter(|s| matches!(s, Slot::Done(_)))
            .count()
    }

    /// `SHA1=…,MD5=…,SHA256=…` (only the chosen ones) of `id`, if known: `Some(None)` for
    /// a file that could not be read (or is no longer that file), `None` while unknown.
    pub fn get(&self, id: &FileId) -> Option<Option<&str>> {
        match self.cache.get(id)? {
            Slot::Done(text) => Some(text.as_deref()),
            Slot::Pending => None,
        }
    }

    /// Asks the hashing thread for the digest of `ask.id` (unless it is known or asked
    /// already), to be begun before `until`. False when it cannot be asked (the queue is
    /// full): the event goes without.
    pub fn ask(&mut self, ask: &Ask, until: Instant) -> bool {
        self.collect();
        match self.cache.get(&ask.id) {
            Some(_) => return true,
            None if self.cache.len() >= LIMIT => self.cache.clear(),
            None => {}
        }
        let generation = self.generation;
        let algs = self.algs;
        self.queued += 1;
        let used = self.queued;
        let Some(lane) = self.lane(ask.id.dev) else {
            return false;
        };
        lane.used = used;
        lane.load.fetch_add(1, Ordering::Relaxed);
        let job = Job {
            ask: ask.clone(),
            algs,
            generation,
            until,
        };
        match lane.jobs.try_send(job) {
            Ok(()) => {
                self.cache.insert(ask.id, Slot::Pending);
                true
            }
            Err(e) => {
                lane.load.fetch_sub(1, Ordering::Relaxed);
                self.queued -= 1;
                if let TrySendError::Disconnected(_) = e {
                    // The thread died (it cannot, short of a panic): another next time.
                    self.lanes.remove(&ask.id.dev);
                }
                false
            }
        }
    }

    /// The hashing thread of device `dev`, started if need be (`None`: every thread is
    /// busy, so files of a new device wait for none).
    fn lane(&mut self, dev: u32) -> Option<&mut Lane> {
        if !self.lanes.contains_key(&dev) {
            if self.lanes.len() >= LANES_MAX {
                let idle = self
                    .lanes
                    .iter()
                    .filter(|(_, l)| l.load.load(Ordering::Relaxed) == 0)
                    .min_by_key(|(_, l)| l.used)
                    .map(|(d, _)| *d)?;
                // Its queue is empty: dropping the sender ends the thread.
                self.lanes.remove(&idle);
            }
            let lane = spawn_lane(self.reports.0.clone(), self.waker.clone())?;
            self.lanes.insert(dev, lane);
        }
        self.lanes.get_mut(&dev)
    }

    /// Takes in what the hashing thread finished.
    pub fn collect(&mut self) {
        while let Ok((id, generation, outcome)) = self.reports.1.try_recv() {
            if generation != self.generation {
                continue;
            }
            match outcome {
                Outcome::Done(text) => {
                    self.cache
                        .insert(id, Slot::Done(text.map(String::into_boxed_str)));
                }
                // Asked again by the next event of that file.
                Outcome::Skipped => {
                    if matches!(self.cache.get(&id), Some(Slot::Pending)) {
                        self.cache.remove(&id);
                    }
                }
            }
        }
    }
}

/// A hashing thread: one file at a time, until its lane is let go.
fn spawn_lane(report: Sender<Report>, waker: Option<Waker>) -> Option<Lane> {
    let (jobs, todo) = sync_channel::<Job>(JOBS_MAX);
    let load = Arc::new(AtomicUsize::new(0));
    let theirs = load.clone();
    let spawned = std::thread::Builder::new()
        .name("sysmon-hash".into())
        .spawn(move || {
            while let Ok(job) = todo.recv() {
                let outcome = if Instant::now() > job.until {
                    Outcome::Skipped
                } else {
                    Outcome::Done(open(&job.ask).and_then(|f| digest(f, job.algs)))
                };
                theirs.fetch_sub(1, Ordering::Relaxed);
                if report.send((job.ask.id, job.generation, outcome)).is_err() {
                    break;
                }
                if let Some(wake) = &waker {
                    wake();
                }
            }
        });
    match spawned {
        Ok(_) => Some(Lane {
            jobs,
            load,
            used: 0,
        }),
        Err(e) => {
            eprintln!("sysmon: cannot start a hashing thread: {e}");
            None
        }
    }
}

/// The file asked for itself, through the process or by path (`None`: gone or replaced); by
/// path under the host's root too when the agent runs in a container of its own
/// (`SYSMON_HOST_ROOT`).
fn open(ask: &Ask) -> Option<File> {
    let host = std::env::var_os(super::HOST_ROOT)
        .map(|root| std::path::Path::new(&root).join(ask.path.trim_start_matches('/')));
    [
        format!("/proc/{}/exe", ask.pid).into(),
        std::path::PathBuf::from(&*ask.path),
    ]
    .into_iter()
    .chain(host)
    .filter_map(|p| File::open(p).ok())
    .find(|f| f.metadata().is_ok_and(|m| same_file(&m, ask)))
}

fn same_file(m: &std::fs::Metadata, ask: &Ask) -> bool {
    let id = &ask.id;
    let dev = libc::makedev(id.dev >> 20, id.dev & 0xfffff);
    m.ino() == id.ino && m.dev() == dev && (ask.as_found || m.size() as i64 == id.size)
}

fn digest(mut file: File, algs: HashAlgorithms) -> Option<String> {
    let (mut s1, mut m5, mut s256) = (Sha1::new(), Md5::new(), Sha256::new());
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = file.read(&mut buf).ok()?;
        if n == 0 {
            break;
        }
        let chunk = &buf[..n];
        if algs.sha1 {
            s1.update(chunk);
        }
        if algs.md5 {
            m5.update(chunk);
        }
        if algs.sha256 {
            s256.update(chunk);
        }
    }
    let mut out = String::new();
    let mut put = |name: &str, bytes: &[u8]| {
        if !out.is_empty() {
            out.push(',');
        }
        out.push_str(name);
        out.push('=');
        for b in bytes {
            let _ = write!(out, "{b:02x}");
        }
    };
    if algs.sha1 {
        put("SHA1", &s1.finalize());
    }
    if algs.md5 {
        put("MD5", &m5.finalize());
    }
    if algs.sha256 {
        put("SHA256", &s256.finalize());
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn digests_in_sysmon_order() {
        let dir = std::env::temp_dir().join(format!("sysmon-hash-{}", std::process::id()));
        std::fs::write(&dir, b"abc").unwrap();
        let all = HashAlgorithms {
            sha1: true,
            md5: true,
            sha256: true,
            imphash: false,
        };
        let got = digest(File::open(&dir).unwrap(), all).unwrap();
        std::fs::remove_file(&dir).unwrap();
        assert_eq!(
            got,
            "SHA1=a9993e364706816aba3e25717850c26c9cd0d89d,\
             MD5=900150983cd24fb0d6963f7d28e17f72,\
             SHA256=ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    fn ask_for(path: &std::path::Path) -> Ask {
        let m = std::fs::metadata(path).unwrap();
        Ask {
            id: FileId {
                dev: ((libc::major(m.dev()) << 20) | libc::minor(m.dev())) as u32,
                ino: m.ino(),
                size: m.size() as i64,
                mtime_sec: m.mtime(),
                mtime_nsec: m.mtime_nsec() as u32,
            },
            pid: std::process::id(),
            path: path.to_str().unwrap().into(),
            as_found: false,
        }
    }

    /// Waits (for the test) until the digest of `id` is known.
    fn wait(h: &mut Hasher, id: &FileId) -> Option<String> {
        for _ in 0..1000 {
            h.collect();
            if let Some(d) = h.get(id) {
                return d.map(str::to_string);
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        panic!("no digest");
    }

    /// Digests are made on the hashing thread only: asking returns at once, the digest
    /// lands in the cache, the waker is called; asking again for a known or pending file
    /// queues nothing more; a file replaced since is `-`.
    #[test]
    fn digests_come_from_the_hashing_thread() {
        let path = std::env::temp_dir().join(format!("sysmon-bghash-{}", std::process::id()));
        std::fs::write(&path, b"abcd").unwrap();
        let ask = ask_for(&path);
        let woken = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let mut h = Hasher::new(HashAlgorithms::default());
        let w = woken.clone();
        h.set_waker(Arc::new(move || {
            w.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }));
        let later = Instant::now() + Duration::from_secs(60);
        assert!(h.ask(&ask, later));
        assert!(h.ask(&ask, later));
        assert_eq!(
            wait(&mut h, &ask.id).as_deref(),
            Some("SHA256=88d4266fd4e6338d13b845fcf289579d209c897823b9217da3e161936f031589")
        );
        assert!(h.ask(&ask, later));
        assert_eq!(h.queued, 1);
        assert!(woken.load(std::sync::atomic::Ordering::Relaxed) >= 1);
        // Another version of the file (size changed): not the file the record saw.
        let mut stale = ask.clone();
        stale.id.size += 1;
        stale.id.mtime_nsec += 1;
        assert!(h.ask(&stale, later));
        assert_eq!(wait(&mut h, &stale.id), None);
        // ... unless the content as found is what is asked for.
        let mut found = stale.clone();
        found.id.mtime_nsec += 1;
        found.as_found = true;
        assert!(h.ask(&found, later));
        assert!(wait(&mut h, &found.id).is_some());
        std::fs::remove_file(&path).unwrap();
    }

    /// A file whose open hangs (a FIFO without writer stands for a hung mount) holds up
    /// the digests of its own device only.
    #[test]
    fn a_hung_device_holds_up_only_its_own_files() {
        let shm = std::path::Path::new("/dev/shm");
        let dir = std::env::temp_dir();
        let fifo = shm.join(format!("sysmon-hung-{}", std::process::id()));
        let file = dir.join(format!("sysmon-lane-{}", std::process::id()));
        let c = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: a path that outlives the call.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        std::fs::write(&file, b"abcd").unwrap();
        let (hung, other) = (ask_for(&fifo), ask_for(&file));
        if hung.id.dev == other.id.dev {
            eprintln!("/dev/shm and the temp dir are one device here: nothing to show");
            std::fs::remove_file(&fifo).unwrap();
            std::fs::remove_file(&file).unwrap();
            return;
        }
        let mut h = Hasher::new(HashAlgorithms::default());
        let later = Instant::now() + Duration::from_secs(60);
        assert!(h.ask(&hung, later));
        std::thread::sleep(Duration::from_millis(50));
        assert!(h.ask(&other, later));
        assert!(
            wait(&mut h, &other.id).is_some(),
            "the other device's digest"
        );
        assert!(h.get(&hung.id).is_none(), "still hung");
        // A writer comes: the hung open returns, the (empty) content is hashed.
        drop(std::fs::OpenOptions::new().write(true).open(&fifo).unwrap());
        assert!(wait(&mut h, &hung.id).is_some());
        std::fs::remove_file(&fifo).unwrap();
        std::fs::remove_file(&file).unwrap();
    }

    /// A job whose time is over when its turn comes is skipped, and asked again later.
    #[test]
    fn a_job_nobody_waits_for_is_skipped() {
        let path = std::env::temp_dir().join(format!("sysmon-skiphash-{}", std::process::id()));
        std::fs::write(&path, b"abcd").unwrap();
        let ask = ask_for(&path);
        let mut h = Hasher::new(HashAlgorithms::default());
        let past = Instant::now() - Duration::from_secs(1);
        assert!(h.ask(&ask, past));
        for _ in 0..1000 {
            h.collect();
            if h.cache.is_empty() {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(h.get(&ask.id).is_none(), "skipped, not cached");
        assert!(h.cache.is_empty(), "no slot left pending");
        assert!(h.ask(&ask, Instant::now() + Duration::from_secs(60)));
        assert!(wait(&mut h, &ask.id).is_some());
        std::fs::remove_file(&path).unwrap();
    }
}
