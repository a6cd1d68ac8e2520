//! The `Hashes` field: digests of the executable, computed once per file identity.
//!
//! The reader thread never hashes a big file: a file up to `inline_max` bytes (default
//! 64 MiB, `SYSMON_HASH_INLINE_MAX`) is hashed where it is asked for, a bigger one is handed,
//! already opened, to one hashing thread through a bounded queue, and its events say `-`
//! until the digest is in the cache (later execs of the same file carry it). Holding the
//! event until the digest is ready would stall or reorder every other event behind a 2 GiB
//! binary; Sysmon users expect events in order and on time more than a hash on the first
//! exec of a huge file.

use std::{
    collections::HashMap,
    fmt::Write as _,
    fs::File,
    io::Read,
    os::unix::fs::MetadataExt,
    sync::mpsc::{Receiver, SyncSender, TrySendError, channel, sync_channel},
};

use md5::Md5;
use sha1::Sha1;
use sha2::{Digest, Sha256};

use crate::rules::HashAlgorithms;

/// What identifies one version of a file: device, inode, size and modification time, all
/// carried in the exec record, so a cache hit costs no syscall.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FileId {
    /// Kernel-internal `dev_t` (major << 20 | minor).
    pub dev: u32,
    pub ino: u64,
    pub size: i64,
    pub mtime_sec: i64,
    pub mtime_nsec: u32,
}

/// Files bigger than this are hashed in the background (override: `SYSMON_HASH_INLINE_MAX`,
/// in bytes).
pub const INLINE_MAX: u64 = 64 << 20;
/// Big files waiting for the hashing thread at most; more are not queued (their events say
/// `-` and a later exec asks again).
const QUEUE: usize = 4;

enum Slot {
    /// `None` remembers a file that could not be read, so it is not retried per exec.
    Done(Option<Box<str>>),
    /// Handed to the hashing thread.
    Pending,
}

struct Job {
    id: FileId,
    file: File,
    algs: HashAlgorithms,
    generation: u64,
}

type Outcome = (FileId, u64, Option<String>);

/// Cached digests. Bounded: cleared when it grows past `LIMIT` distinct files.
pub struct Hasher {
    algs: HashAlgorithms,
    cache: HashMap<FileId, Slot>,
    inline_max: u64,
    /// Bumped when the algorithms change: digests still in flight with older ones are
    /// thrown away.
    generation: u64,
    worker: Option<(SyncSender<Job>, Receiver<Outcome>)>,
    /// Digests computed on this thread, and handed to the hashing thread (tests, benches).
    pub computed: u64,
    pub queued: u64,
}

const LIMIT: usize = 16 * 1024;

impl Hasher {
    pub fn new(algs: HashAlgorithms) -> Self {
        let inline_max = std::env::var("SYSMON_HASH_INLINE_MAX")
            .ok()
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(INLINE_MAX);
        Hasher::with_inline_max(algs, inline_max)
    }

    pub fn with_inline_max(algs: HashAlgorithms, inline_max: u64) -> Self {
        Hasher {
            algs,
            cache: HashMap::new(),
            inline_max,
            generation: 0,
            worker: None,
            computed: 0,
            queued: 0,
        }
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

    /// `SHA1=…,MD5=…,SHA256=…` (only the chosen ones) for the file `id`, opened through
    /// `/proc/<pid>/exe` while the process lives (right even across mount namespaces), else
    /// by `path`. `None` when it cannot be read, is no longer that file, or is big and still
    /// being hashed in the background.
    pub fn hashes(&mut self, id: FileId, pid: u32, path: &str) -> Option<&str> {
        self.collect();
        if !self.cache.contains_key(&id) {
            let slot = match open(id, pid, path) {
                None => Slot::Done(None),
                Some(file) if id.size as u64 <= self.inline_max => {
                    self.computed += 1;
                    Slot::Done(digest(file, self.algs).map(String::into_boxed_str))
                }
                Some(file) => match self.queue(id, file) {
                    true => Slot::Pending,
                    // The queue is full: ask again on the next exec of this file.
                    false => return None,
                },
            };
            if self.cache.len() >= LIMIT {
                self.cache.clear();
            }
            self.cache.insert(id, slot);
        }
        match self.cache.get(&id)? {
            Slot::Done(text) => text.as_deref(),
            Slot::Pending => None,
        }
    }

    /// Takes in what the hashing thread finished.
    fn collect(&mut self) {
        let Some((_, done)) = &self.worker else {
            return;
        };
        while let Ok((id, generation, text)) = done.try_recv() {
            if generation == self.generation {
                self.cache
                    .insert(id, Slot::Done(text.map(String::into_boxed_str)));
            }
        }
    }

    fn queue(&mut self, id: FileId, file: File) -> bool {
        let (jobs, _) = self.worker.get_or_insert_with(spawn_worker);
        let job = Job {
            id,
            file,
            algs: self.algs,
            generation: self.generation,
        };
        match jobs.try_send(job) {
            Ok(()) => {
                self.queued += 1;
                true
            }
            Err(TrySendError::Full(_)) => false,
            Err(TrySendError::Disconnected(_)) => {
                // The thread died (it cannot, short of a panic): start another next time.
                self.worker = None;
                false
            }
        }
    }
}

/// The hashing thread: one file at a time, as long as the `Hasher` lives.
fn spawn_worker() -> (SyncSender<Job>, Receiver<Outcome>) {
    let (jobs, todo) = sync_channel::<Job>(QUEUE);
    let (report, done) = channel();
    let spawned = std::thread::Builder::new()
        .name("sysmon-hash".into())
        .spawn(move || {
            while let Ok(job) = todo.recv() {
                let text = digest(job.file, job.algs);
                if report.send((job.id, job.generation, text)).is_err() {
                    break;
                }
            }
        });
    if let Err(e) = spawned {
        eprintln!("sysmon: cannot start the hashing thread: {e}");
    }
    (jobs, done)
}

/// The file `id` itself, through the process or by path (`None`: gone or replaced); by
/// path under the host's root too when the agent runs in a container of its own
/// (`SYSMON_HOST_ROOT`).
fn open(id: FileId, pid: u32, path: &str) -> Option<File> {
    let host = std::env::var_os(super::HOST_ROOT)
        .map(|root| std::path::Path::new(&root).join(path.trim_start_matches('/')));
    [
        format!("/proc/{pid}/exe").into(),
        std::path::PathBuf::from(path),
    ]
    .into_iter()
    .chain(host)
    .filter_map(|p| File::open(p).ok())
    .find(|f| f.metadata().is_ok_and(|m| same_file(&m, &id)))
}

fn same_file(m: &std::fs::Metadata, id: &FileId) -> bool {
    let dev = libc::makedev(id.dev >> 20, id.dev & 0xfffff);
    m.ino() == id.ino && m.dev() == dev && m.size() as i64 == id.size
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

    fn file_id(path: &std::path::Path) -> FileId {
        let m = std::fs::metadata(path).unwrap();
        FileId {
            dev: ((libc::major(m.dev()) << 20) | libc::minor(m.dev())) as u32,
            ino: m.ino(),
            size: m.size() as i64,
            mtime_sec: m.mtime(),
            mtime_nsec: m.mtime_nsec() as u32,
        }
    }

    /// A file over the inline limit is not hashed on the caller's thread: the first ask
    /// says `-` (None) at once, and the digest lands in the cache in the background.
    #[test]
    fn big_files_are_hashed_in_the_background() {
        let path = std::env::temp_dir().join(format!("sysmon-bighash-{}", std::process::id()));
        std::fs::write(&path, b"abcd").unwrap();
        let id = file_id(&path);
        let mut h = Hasher::with_inline_max(HashAlgorithms::default(), 3);
        let me = std::process::id();
        assert_eq!(h.hashes(id, me, path.to_str().unwrap()), None);
        assert_eq!((h.computed, h.queued), (0, 1));
        // Asking again while it is pending queues nothing more.
        let mut got = None;
        for _ in 0..1000 {
            if let Some(t) = h.hashes(id, me, path.to_str().unwrap()) {
                got = Some(t.to_string());
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        std::fs::remove_file(&path).unwrap();
        assert_eq!(
            got.as_deref(),
            Some("SHA256=88d4266fd4e6338d13b845fcf289579d209c897823b9217da3e161936f031589")
        );
        assert_eq!((h.computed, h.queued), (0, 1));
        // Small files still go inline.
        let mut small = Hasher::with_inline_max(HashAlgorithms::default(), 4);
        let path2 = std::env::temp_dir().join(format!("sysmon-smallhash-{}", std::process::id()));
        std::fs::write(&path2, b"abcd").unwrap();
        assert!(
            small
                .hashes(file_id(&path2), me, path2.to_str().unwrap())
                .is_some()
        );
        std::fs::remove_file(&path2).unwrap();
        assert_eq!((small.computed, small.queued), (1, 0));
    }
}
