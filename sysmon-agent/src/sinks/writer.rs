//! A bounded queue of messages and a thread of its own that writes them out, so that the
//! thread reading the kernel's ring buffer never waits on a write: a full disk, a hung NFS
//! mount or a stalled FUSE file system stalls this thread only.
//!
//! The reader side appends messages to a batch of its own (no lock) and, at the end of a
//! batch, hands it over under a lock held only for a swap or a copy. What does not fit the
//! bound is counted as dropped. The writer takes all that waits at once and writes it
//! through its [`Target`]; while the target fails it keeps what it holds, lets the target
//! look after itself (`Target::idle`, e.g. let go of a deleted file) and tries again every
//! `RETRY`, while new messages wait in the queue up to its bound. [`Writer::stop`] gives
//! the writer until a deadline; what is still unwritten then is counted as lost, and a
//! thread stuck in a call that never returns is left behind (the process ends anyway).
//!
//! Not tied to files: a message is any run of bytes, and a target takes whole messages.

use std::{
    io,
    sync::{Arc, Condvar, Mutex, MutexGuard},
    thread::JoinHandle,
    time::{Duration, Instant},
};

/// Where a writer's messages go; runs on the writer's thread only.
pub trait Target: Send + 'static {
    /// Writes whole messages of `buf`, in order: the first from `start` to `ends[0]`, the
    /// next to `ends[1]`, and so on. Returns how many went out (at least one), or the error
    /// when none could.
    fn write(&mut self, buf: &[u8], start: usize, ends: &[usize]) -> io::Result<usize>;

    /// Called about every `RETRY` while the writer waits, idle or after a failure.
    fn idle(&mut self) {}
}

/// How often a failing target is tried again, and an idle one looked after.
pub const RETRY: Duration = if cfg!(test) {
    Duration::from_millis(20)
} else {
    Duration::from_secs(1)
};
/// A batch on the reader side this large is handed over at once.
const BATCH_MAX: usize = 1 << 20;
/// While messages come, the writer looks for them this often instead of being woken for
/// each batch (a wake-up costs this VM 45-80 µs of CPU; the reader hands over a batch every
/// 4 ms under load): a file is at most this much behind.
const PACE: Duration = Duration::from_millis(50);
/// ... unless this much waits: then it is woken at once.
const WAKE_BYTES: usize = 256 << 10;

/// Messages back to back.
#[derive(Default)]
struct Batch {
    buf: Vec<u8>,
    ends: Vec<usize>,
}

impl Batch {
    fn clear(&mut self) {
        self.buf.clear();
        self.ends.clear();
    }

    fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// Appends messages `from..to` of `other`.
    fn extend(&mut self, other: &Batch, from: usize, to: usize) {
        let start = if from == 0 { 0 } else { other.ends[from - 1] };
        let end = if to == 0 { 0 } else { other.ends[to - 1] };
        let base = self.buf.len() as isize - start as isize;
        self.buf.extend_from_slice(&other.buf[start..end]);
        self.ends.extend(
            other.ends[from..to]
                .iter()
                .map(|e| (*e as isize + base) as usize),
        );
    }
}

/// What the two threads share, under the lock.
#[derive(Default)]
struct Queue {
    waiting: Batch,
    /// Messages the writer took and has not written yet.
    held: usize,
    /// The last write failed (and nothing was written since).
    failing: bool,
    /// Messages dropped (no room, or unwritten at stop) and not yet taken by the reader.
    dropped: u64,
    /// `stop` was called: write what waits until then, then end.
    stop_at: Option<Instant>,
    /// The writer thread has ended (or was given up on).
    ended: bool,
    /// Messages the writer could not write before the stop deadline.
    lost_at_stop: u64,
    /// The writer thread let go of its target.
    closed: bool,
    /// The writer sleeps until woken (nothing came for a while): a new batch wakes it.
    napping: bool,
}

struct Shared {
    queue: Mutex<Queue>,
    /// Wakes the writer: messages wait, or stop.
    work: Condvar,
    /// Wakes the reader side: the writer wrote something, or ended.
    progress: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        // A panic on the other side leaves the queue as it was: still usable.
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The reader side: queues messages for the writer thread.
pub struct Writer {
    shared: Arc<Shared>,
    batch: Batch,
    max_bytes: usize,
    thread: Option<JoinHandle<()>>,
}

impl Writer {
    /// Starts a thread called `name` writing to `target`; at most `max_bytes` of messages
    /// wait for it (and as much again may be in its hands).
    pub fn spawn(name: &str, mut target: impl Target, max_bytes: usize) -> Writer {
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue::default()),
            work: Condvar::new(),
            progress: Condvar::new(),
        });
        let theirs = shared.clone();
        let thread = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                write_loop(&theirs, &mut target);
                // Closing may take a while (a file gives back its reserved blocks): the
                // reader side waits for it only until its deadline.
                drop(target);
                theirs.lock().closed = true;
                theirs.progress.notify_all();
            });
        let thread = match thread {
            Ok(t) => Some(t),
            Err(e) => {
                eprintln!("sysmon: cannot start the {name} thread: {e}; its messages are lost");
                let mut q = shared.lock();
                (q.ended, q.closed) = (true, true);
                drop(q);
                None
            }
        };
        Writer {
            shared,
            batch: Batch::default(),
            max_bytes,
            thread,
        }
    }

    /// Appends one message made of `parts`; handed over at the next [`Writer::flush`].
    pub fn push(&mut self, parts: &[&[u8]]) {
        for p in parts {
            self.batch.buf.extend_from_slice(p);
        }
        self.batch.ends.push(self.batch.buf.len());
        if self.batch.buf.len() >= BATCH_MAX {
            self.flush();
        }
    }

    /// Hands the batch to the writer: what fits the bound, whole messages, oldest first;
    /// the rest is counted as dropped.
    pub fn flush(&mut self) {
        if self.batch.is_empty() {
            return;
        }
        let mut q = self.shared.lock();
        if q.ended || q.stop_at.is_some() {
            q.dropped += self.batch.ends.len() as u64;
        } else if q.waiting.is_empty() && self.batch.buf.len() <= self.max_bytes {
            std::mem::swap(&mut q.waiting, &mut self.batch);
        } else {
            let room = self.max_bytes.saturating_sub(q.waiting.buf.len());
            let fit = self.batch.ends.partition_point(|e| *e <= room);
            q.waiting.extend(&self.batch, 0, fit);
            q.dropped += (self.batch.ends.len() - fit) as u64;
        }
        let wake = q.napping || q.waiting.buf.len() >= WAKE_BYTES;
        drop(q);
        self.batch.clear();
        if wake {
            self.shared.work.notify_one();
        }
    }

    /// Messages dropped since the last call.
    pub fn take_dropped(&mut self) -> u64 {
        std::mem::take(&mut self.shared.lock().dropped)
    }

    /// Whether everything handed over is written and the last write succeeded.
    pub fn caught_up(&self) -> bool {
        let q = self.shared.lock();
        q.waiting.is_empty() && q.held == 0 && !q.failing
    }

    /// Whether everything handed over is written (or was given up at stop). Wakes the
    /// writer if something waits (a caller waiting for it should not wait for its pace).
    pub fn written(&self) -> bool {
        let q = self.shared.lock();
        if !q.waiting.is_empty() {
            self.shared.work.notify_one();
        }
        q.waiting.is_empty() && q.held == 0
    }

    /// Hands over the batch and waits until it is written, or until `until`; true if it
    /// was.
    pub fn wait_written(&mut self, until: Instant) -> bool {
        self.flush();
        self.shared.work.notify_one();
        let mut q = self.shared.lock();
        loop {
            if q.waiting.is_empty() && q.held == 0 {
                return true;
            }
            let now = Instant::now();
            if q.ended || now >= until {
                return false;
            }
            q = self
                .shared
                .progress
                .wait_timeout(q, until - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// Stops the writer: it writes what waits until `until`, then ends. Returns how many
    /// messages were not written (also counted as dropped).
    pub fn stop(&mut self, until: Instant) -> u64 {
        self.flush();
        let mut q = self.shared.lock();
        q.stop_at = Some(until);
        self.shared.work.notify_one();
        while !q.closed {
            let now = Instant::now();
            if now >= until {
                break;
            }
            q = self
                .shared
                .progress
                .wait_timeout(q, until - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        let lost = if q.ended {
            q.lost_at_stop
        } else {
            // Stuck in a call that does not return: what waits is lost with it.
            let lost = (q.waiting.ends.len() + q.held) as u64;
            q.waiting.clear();
            q.held = 0;
            q.dropped += lost;
            q.ended = true;
            lost
        };
        let closed = q.closed;
        drop(q);
        // Joined only once it let go of its target; else left behind (joining would wait
        // for the call).
        if let Some(t) = self.thread.take()
            && closed
        {
            let _ = t.join();
        }
        lost
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        if self.thread.is_some() {
            self.stop(Instant::now() + RETRY);
        }
    }
}

/// The writer thread: takes all that waits, writes it, tries again after a failure.
fn write_loop(shared: &Shared, target: &mut impl Target) {
    let mut hand = Batch::default();
    // Messages of `hand` already written.
    let mut done = 0;
    // Messages came at the last look: look again after `PACE`, unwoken.
    let mut flowing = false;
    loop {
        let mut q = shared.lock();
        if q.ended {
            // Given up on by `stop` while in a call.
            return;
        }
        if done == hand.ends.len() {
            hand.clear();
            done = 0;
            std::mem::swap(&mut hand, &mut q.waiting);
            q.held = hand.ends.len();
        }
        if hand.is_empty() {
            if q.stop_at.is_some() {
                return finish(shared, q, 0);
            }
            q.napping = !flowing;
            let (mut q, _) = shared
                .work
                .wait_timeout(q, if flowing { PACE } else { RETRY })
                .unwrap_or_else(|e| e.into_inner());
            q.napping = false;
            let idle = q.waiting.is_empty() && q.stop_at.is_none();
            flowing = !idle;
            drop(q);
            if idle {
                target.idle();
            }
            continue;
        }
        drop(q);
        let start = if done == 0 { 0 } else { hand.ends[done - 1] };
        let result = target.write(&hand.buf, start, &hand.ends[done..]);
        let mut q = shared.lock();
        if q.ended {
            return;
        }
        match result {
            Ok(n) => {
                done += n.clamp(1, hand.ends.len() - done);
                q.held = hand.ends.len() - done;
                q.failing = false;
                shared.progress.notify_all();
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => {
                q.failing = true;
                let now = Instant::now();
                if q.stop_at.is_some_and(|at| now >= at) {
                    let lost = hand.ends.len() - done + q.waiting.ends.len();
                    q.waiting.clear();
                    return finish(shared, q, lost);
                }
                // Not at every batch: new messages only wait in the queue meanwhile.
                let retry_at = q.stop_at.map_or(now + RETRY, |at| at.min(now + RETRY));
                loop {
                    let now = Instant::now();
                    if now >= retry_at || q.ended {
                        break;
                    }
                    q = shared
                        .work
                        .wait_timeout(q, retry_at - now)
                        .unwrap_or_else(|e| e.into_inner())
                        .0;
                }
                drop(q);
                target.idle();
            }
        }
    }
}

/// The writer ends, `lost` messages unwritten; the target is dropped after the reader
/// side is told (closing a file may take a while).
fn finish(shared: &Shared, mut q: MutexGuard<'_, Queue>, lost: usize) {
    q.held = 0;
    q.dropped += lost as u64;
    q.lost_at_stop = lost as u64;
    q.ended = true;
    drop(q);
    shared.progress.notify_all();
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    /// Records what it is given; fails its first `fails` writes; each write first waits
    /// for the gate (closed: never returns until the test drops its end).
    struct Fake {
        got: Arc<Mutex<Vec<Vec<u8>>>>,
        fails: usize,
        idles: Arc<Mutex<usize>>,
        gate: Option<mpsc::Receiver<()>>,
    }

    impl Target for Fake {
        fn write(&mut self, buf: &[u8], start: usize, ends: &[usize]) -> io::Result<usize> {
            if let Some(gate) = &self.gate {
                let _ = gate.recv();
            }
            if self.fails > 0 {
                self.fails -= 1;
                return Err(io::Error::from_raw_os_error(libc::ENOSPC));
            }
            // One message per call, as a short write would.
            self.got.lock().unwrap().push(buf[start..ends[0]].to_vec());
            Ok(1)
        }

        fn idle(&mut self) {
            *self.idles.lock().unwrap() += 1;
        }
    }

    fn fake(fails: usize, gate: Option<mpsc::Receiver<()>>) -> (Fake, Arc<Mutex<Vec<Vec<u8>>>>) {
        let got = Arc::new(Mutex::new(Vec::new()));
        let f = Fake {
            got: got.clone(),
            fails,
            idles: Arc::new(Mutex::new(0)),
            gate,
        };
        (f, got)
    }

    fn soon() -> Instant {
        Instant::now() + Duration::from_secs(10)
    }

    /// A target that fails, then works: every message arrives, in order, once; the target
    /// is looked after between tries.
    #[test]
    fn a_failing_target_gets_everything_in_order() {
        let (f, got) = fake(3, None);
        let idles = f.idles.clone();
        let mut w = Writer::spawn("test-writer", f, 1 << 20);
        let msgs: Vec<String> = (0..100).map(|i| format!("m{i}")).collect();
        for (i, m) in msgs.iter().enumerate() {
            w.push(&[m.as_bytes()]);
            if i % 10 == 0 {
                w.flush();
            }
        }
        assert!(w.wait_written(soon()));
        assert!(w.caught_up());
        let got: Vec<String> = got
            .lock()
            .unwrap()
            .iter()
            .map(|m| String::from_utf8(m.clone()).unwrap())
            .collect();
        assert_eq!(got, msgs);
        assert!(
            *idles.lock().unwrap() >= 3,
            "looked after after each failure"
        );
        assert_eq!(w.take_dropped(), 0);
        assert_eq!(w.stop(soon()), 0);
    }

    /// A target that never returns (a hung mount): handing messages over never waits, the
    /// queue stays within its bound and counts the rest, and `stop` returns at its deadline
    /// with what was not written counted.
    #[test]
    fn a_stuck_target_never_holds_the_reader() {
        let (gate_tx, gate_rx) = mpsc::channel::<()>();
        let (f, got) = fake(0, Some(gate_rx));
        const MAX: usize = 64 * 1024;
        let mut w = Writer::spawn("test-writer", f, MAX);
        let msg = [b'x'; 1000];
        let n = 10 * MAX / msg.len();
        for _ in 0..n {
            w.push(&[&msg]);
            w.flush();
        }
        let dropped = w.take_dropped() as usize;
        // What waits fits the bound; the writer holds at most as much again.
        let kept = n - dropped;
        assert!(kept * msg.len() <= 2 * MAX, "{kept} kept");
        assert!(kept >= MAX / msg.len(), "{kept} kept");
        assert!(!w.caught_up() && !w.written());
        let lost = w.stop(Instant::now() + Duration::from_millis(50));
        assert_eq!(lost as usize, kept, "every message not written is counted");
        assert!(got.lock().unwrap().is_empty());
        // After stop, nothing more is taken.
        w.push(&[b"late"]);
        w.flush();
        assert_eq!(w.take_dropped() as usize, kept + 1);
        drop(gate_tx);
    }
}
