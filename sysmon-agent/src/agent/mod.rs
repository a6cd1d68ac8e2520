//! The running agent: kernel records in, enriched, judged, rendered and sent out.
//!
//! `pipeline` turns one record into events and hands them to the sinks; this file loads the
//! programs and runs the event loop around it (ring buffer, signals, ticks, reloads).

mod held;
mod latency;
mod pace;
mod pipeline;
mod tick;

pub use pipeline::{Pipeline, Stats};

use std::{
    path::PathBuf,
    time::{Duration, Instant},
};

use anyhow::Result;
use sysmon_common::{RecordKind, drops};
use tokio::{
    io::unix::AsyncFd,
    signal::unix::{SignalKind, signal},
};

use crate::{
    events::schema,
    kernel::load::{self, Loaded},
    rules::Config,
    sinks::outputs::Outputs,
};

/// How the agent runs.
pub struct Settings {
    pub config: Config,
    /// What event 16 reports as `Configuration`: the path as typed, or `Defaults`.
    pub config_label: String,
    /// `SHA256=<hex>` of the config file.
    pub config_hash: Option<String>,
    /// `-t`: also print every event to stdout in the sysmonLogView layout.
    pub debug: bool,
    pub syslog_path: PathBuf,
    /// Our rsyslog input's stream socket: used instead of `syslog_path` while it connects.
    pub rsyslog_socket: Option<PathBuf>,
    /// `-o`: syslog and/or the agent's own files.
    pub outputs: Outputs,
    pub state_dir: PathBuf,
    pub btf: Option<PathBuf>,
    /// SIGHUP: reads the installed configuration again (`None`: SIGHUP is ignored).
    pub reload: Option<Reload>,
    /// Called once the programs run and event 4 `Started` is out (the daemon's readiness).
    pub on_ready: Option<Box<dyn FnOnce()>>,
}

/// A configuration and what event 16 says about it.
pub struct NewConfig {
    pub config: Config,
    pub label: String,
    pub hash: Option<String>,
}

/// What SIGHUP does.
pub struct Reload {
    /// Reads the configuration again; `Err` says why it cannot be used (the old one stays).
    pub load: Box<dyn FnMut() -> Result<NewConfig, String>>,
    /// Called once the outcome is in force (the new rules judge the next record).
    pub done: Box<dyn FnMut(Reloaded)>,
}

/// How a reload ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reloaded {
    /// The new rules and their probes are in force.
    Ok,
    /// The new rules are in force, but probes they need could not be attached (why): their
    /// events are not recorded.
    ProbesFailed(String),
    /// The configuration could not be used (why); the old rules stay.
    Refused(String),
}

/// Records handled per drain at most, before signals, ticks and syslog get a turn: a drain
/// of a full ring buffer under a storm never ends otherwise.
pub(super) const DRAIN_MAX: usize = 4096;
/// At SIGTERM: how long to read what is still in the ring buffer (a storm may fill it as
/// fast as it is read), and until when (from SIGTERM) to hand syslog what waits.
const STOP_DRAIN: Duration = Duration::from_secs(1);
const STOP_FLUSH: Duration = Duration::from_secs(3);
/// ... and how long, after that, for the last events (255, 4 `Stopped`).
pub(super) const STOP_LAST: Duration = Duration::from_secs(2);
/// How often (in 1 s ticks) the process cache drops processes whose exit was lost.
const SWEEP_TICKS: u64 = 60;

/// Loads the programs and runs until SIGTERM or SIGINT.
pub fn run(settings: Settings) -> Result<()> {
    let active = active_ids(&settings.config);
    let loaded = load::load(&load::Options {
        btf: settings.btf.as_deref(),
        active: &active,
    })?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(serve(loaded, settings))
}

/// The event ids a configuration can emit, whose probes must be attached.
fn active_ids(config: &Config) -> Vec<u16> {
    schema::EVENTS
        .iter()
        .map(|k| k.id)
        .filter(|id| config.rules.is_active(*id))
        .collect()
}

async fn serve(loaded: Loaded, settings: Settings) -> Result<()> {
    let Loaded {
        mut probes,
        ring,
        drops,
        reader,
        refused,
    } = loaded;
    let mut wake = Wake::new(reader)?;
    let mut pipeline = Pipeline::new(&settings);
    // The hashing thread wakes the loop when a digest an event waits for is in.
    let hashed = std::sync::Arc::new(tokio::sync::Notify::new());
    let waker = hashed.clone();
    pipeline.set_hash_waker(std::sync::Arc::new(move || waker.notify_one()));
    pipeline.seed();
    pipeline.config_changed(&settings.config_label, settings.config_hash.as_deref());
    pipeline.service_state("Started");
    for line in probes
        .missing()
        .iter()
        .chain(&refused)
        .chain(&probes.uncovered())
    {
        pipeline.error("KernelCheck", line);
    }
    pipeline.flush();

    // SAFETY: the ring buffer owns its fd and the AsyncFd owns the ring buffer, so the fd
    // stays open for as long as it is registered.
    let mut ring = unsafe { AsyncFd::register(ring) }.map_err(|e| e.into_parts().1)?;
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    // Registered before readiness: SIGHUP's default action would kill the daemon.
    let mut hup = signal(SignalKind::hangup())?;
    let mut reload = settings.reload;
    if let Some(ready) = settings.on_ready {
        ready();
    }
    let tick = tick::Tick::every(Duration::from_secs(1))?;
    // Readable when the container resolver has answered (records may wait for it).
    // SAFETY: the AsyncFd holds a reference to the eventfd, so it stays open while registered.
    let resolved = unsafe {
        AsyncFd::register_with_interest(pipeline.containers_fd(), tokio::io::Interest::READABLE)
    }
    .map_err(|e| e.into_parts().1)?;
    let mut room = SyslogRoom::default();
    let mut drop_watch = DropWatch::default();
    let mut ticks = 0u64;
    // A reload's outcome, told once the events before it and its own are out.
    let mut answer: Option<Reloaded> = None;
    loop {
        let held_until = pipeline.held_until();
        if held_until.is_none()
            && let Some(outcome) = answer.take()
            && let Some(reload) = reload.as_mut()
        {
            // Only now are the new rules and probes in force and the events of the reload
            // sent: `-c` may return.
            (reload.done)(outcome);
        }
        let retry_at = pipeline.syslog_retry_at();
        let hold_until = pipeline.waiting_deadline();
        let waits_for_room = room.watch(pipeline.syslog_busy_fd());
        // Biased: signals first, then the tick, then syslog, then records; a drain is
        // bounded, so none of them waits for a storm to end.
        tokio::select! {
            biased;
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = hup.recv() => {
                // Records already read were judged by the old rules; the next ones by the new.
                drain(ring.get_mut(), &mut pipeline);
                let Some(reload) = reload.as_mut() else { continue };
                if let Some(earlier) = answer.take() {
                    (reload.done)(earlier);
                }
                // Events waiting for a digest go out first (at most a second), then the
                // answer (top of the loop).
                answer = Some(apply_reload(reload, &mut probes, &mut pipeline));
                pipeline.flush();
            }
            _ = tick.tick() => {
                ticks += 1;
                if ticks.is_multiple_of(SWEEP_TICKS) {
                    pipeline.sweep();
                }
                // Counts not yet reported stay in the watch until a report can go out.
                if pipeline.can_report() {
                    let totals = load::drop_totals(&drops);
                    if let Some(msg) = drop_watch.check(&totals) {
                        eprintln!("sysmon: {msg}");
                        pipeline.error("KernelDrops", &msg);
                    }
                }
                pipeline.stats.kernel_drops = drop_watch.total;
                pipeline.tick();
                // Asleep, a record sent just as the agent fell asleep wakes no one (and
                // none after it while it waits): at most a second late.
                if wake.asleep && pipeline.can_drain() && drain_counted(ring.get_mut(), &mut pipeline).0 > 0 {
                    wake.busy();
                }
            }
            // Containers resolved: the records that waited for them go out.
            guard = resolved.readable() => {
                if let Ok(mut guard) = guard {
                    guard.clear_ready();
                }
                pipeline.containers_ready();
            }
            _ = tokio::time::sleep_until(hold_until.unwrap_or_else(Instant::now).into()),
                if hold_until.is_some() => {
                pipeline.containers_ready();
            }
            // Syslog's reader read: what waits goes out at once, not at the next retry.
            _ = room.writable(), if waits_for_room => {
                pipeline.retry_syslog();
            }
            _ = tokio::time::sleep_until(retry_at.unwrap_or_else(Instant::now).into()),
                if retry_at.is_some() => {
                pipeline.retry_syslog();
            }
            // Events waiting for a digest: it is in, or their wait is over.
            _ = hashed.notified(), if held_until.is_some() => pipeline.flush(),
            _ = tokio::time::sleep_until(held_until.unwrap_or_else(Instant::now).into()),
                if held_until.is_some() => pipeline.flush(),
            // While syslog cannot take more, records wait in the ring buffer (which counts
            // what it cannot hold) instead of in memory.
            // Busy: the ring is read every period, records do not wake the agent (one
            // wake-up per batch instead of one per record, and none of the kernel's IPIs).
            _ = wake.poll.tick(), if !wake.asleep && !wake.again && pipeline.can_drain() => {
                let (n, more) = drain_counted(ring.get_mut(), &mut pipeline);
                wake.polled(n, more, ring.get_mut(), &mut pipeline);
            }
            // The last read stopped at DRAIN_MAX: read on at once.
            _ = std::future::ready(()), if wake.again && pipeline.can_drain() => {
                let (n, more) = drain_counted(ring.get_mut(), &mut pipeline);
                wake.polled(n, more, ring.get_mut(), &mut pipeline);
            }
            // Asleep (no record for a while), or the ring passed its fill mark.
            guard = ring.readable_mut(), if pipeline.can_drain() => {
                let mut guard = guard?;
                let (n, more) = drain_counted(guard.get_inner_mut(), &mut pipeline);
                if !more {
                    guard.clear_ready();
                }
                if n > 0 {
                    wake.busy();
                }
            }
        }
    }
    // Whatever is already in the ring buffer was recorded: send it before stopping (for a
    // bounded time: a storm may refill it as fast), and report what was lost since the
    // last check.
    let stopping = Instant::now();
    while drain(ring.get_mut(), &mut pipeline) && stopping.elapsed() < STOP_DRAIN {}
    // What a storm left in the ring past that time is not handled, but counted: reading a
    // record without making it an event is cheap, so as much as was there is taken. One
    // event says it with the kernel's own drops (events 255 are rate-limited).
    let unread = unread_at_stop(ring.get_mut(), stopping + STOP_DRAIN);
    let lost: Vec<String> = [drop_watch.check(&load::drop_totals(&drops)), unread]
        .into_iter()
        .flatten()
        .collect();
    if !lost.is_empty() {
        let msg = lost.join("; ");
        eprintln!("sysmon: {msg}");
        pipeline.error("KernelDrops", &msg);
    }
    pipeline.stats.kernel_drops = drop_watch.total;
    let (unsent, resent) = pipeline.stop(stopping + STOP_FLUSH);
    let s = pipeline.stats;
    eprintln!(
        "sysmon: stopped; records {}, bad records {}, events {}; by kind:{}; syslog drops {}, \
         resent after syslog restarts {resent}, unsent at stop {unsent}; kernel drops {}; \
         file drops {}; latency record to sink {}",
        s.records,
        s.bad_records,
        s.emitted,
        RecordKind::ALL
            .iter()
            .map(|k| format!(" {k:?} {}", s.by_kind[*k as usize]))
            .collect::<String>(),
        s.sink_drops,
        s.kernel_drops,
        s.file_drops,
        pipeline.latency.summary()
    );
    Ok(())
}

/// SIGHUP: the configuration read again and, if it can be used, its rules and the probes
/// they need put in force. A probe that does not attach leaves the new rules in force and
/// says so (event 255, and `-c` fails).
fn apply_reload(
    reload: &mut Reload,
    probes: &mut load::Probes,
    pipeline: &mut Pipeline,
) -> Reloaded {
    match (reload.load)() {
        Ok(new) => {
            // Probes follow the rules: kinds the new config turns on are attached, those it
            // turns off detached (spec §1.0).
            let attached = probes.set_active(&active_ids(&new.config));
            pipeline.set_config(new);
            match attached {
                Ok(()) => Reloaded::Ok,
                Err(e) => {
                    let why = format!("probes not attached: {e:#}");
                    pipeline.error("ConfigReload", &why);
                    Reloaded::ProbesFailed(why)
                }
            }
        }
        Err(e) => {
            pipeline.error("ConfigReload", &e);
            Reloaded::Refused(e)
        }
    }
}

/// Handles up to `DRAIN_MAX` records; true when more may wait.
fn drain(ring: &mut aya::maps::RingBuf<aya::maps::MapData>, pipeline: &mut Pipeline) -> bool {
    drain_counted(ring, pipeline).1
}

/// Counts, by kind, the records still in the ring, for at most a second past `from`;
/// `None` when there are none.
fn unread_at_stop(
    ring: &mut aya::maps::RingBuf<aya::maps::MapData>,
    from: Instant,
) -> Option<String> {
    let mut by_kind = [0u64; RecordKind::SLOTS as usize];
    let mut total = 0u64;
    let until = from.max(Instant::now()) + Duration::from_secs(1);
    while Instant::now() < until
        && let Some(item) = ring.next()
    {
        let kind = item
            .first_chunk::<4>()
            .map(|k| u32::from_ne_bytes(*k) as usize);
        if let Some(n) = kind.and_then(|k| by_kind.get_mut(k)) {
            *n += 1;
        }
        total += 1;
    }
    (total > 0).then(|| {
        let kinds: Vec<String> = RecordKind::ALL
            .iter()
            .filter(|k| by_kind[**k as usize] > 0)
            .map(|k| format!("{} {k:?} records", by_kind[*k as usize]))
            .collect();
        format!("left in the ring at stop: lost {}", kinds.join(", "))
    })
}

/// Like `drain`, with the number of records handled.
fn drain_counted(
    ring: &mut aya::maps::RingBuf<aya::maps::MapData>,
    pipeline: &mut Pipeline,
) -> (usize, bool) {
    let mut n = 0;
    while n < DRAIN_MAX
        && let Some(item) = ring.next()
    {
        pipeline.record(&item);
        n += 1;
    }
    if n > 0 {
        pipeline.flush();
    }
    (n, n == DRAIN_MAX)
}

/// How the agent learns of records: polling while busy (at the period `pace` sets),
/// woken by the kernel while asleep. The kernel reads the mode from the READER map
/// (`wake_flags`).
struct Wake {
    reader: aya::maps::Array<aya::maps::MapData, u32>,
    /// Every `pace::PERIOD` while busy, stopped while asleep.
    poll: tick::Tick,
    pace: pace::Pace,
    asleep: bool,
    /// The last read stopped at DRAIN_MAX: read again at once.
    again: bool,
}

impl Wake {
    fn new(reader: aya::maps::Array<aya::maps::MapData, u32>) -> Result<Self> {
        let mut w = Wake {
            reader,
            poll: tick::Tick::stopped()?,
            pace: pace::Pace::default(),
            asleep: true,
            again: false,
        };
        w.set(false);
        Ok(w)
    }

    fn set(&mut self, asleep: bool) {
        if self.asleep == asleep {
            return;
        }
        self.asleep = asleep;
        if let Err(e) = self.reader.set(0, u32::from(asleep), 0) {
            eprintln!("sysmon: setting the reader's mode: {e}");
        }
        self.pace = pace::Pace::default();
        self.set_timer();
    }

    fn set_timer(&self) {
        if let Err(e) = self.poll.set((!self.asleep).then_some(pace::PERIOD)) {
            eprintln!("sysmon: setting the read timer: {e}");
        }
    }

    /// After a poll that handled `n` records.
    fn polled(
        &mut self,
        n: usize,
        more: bool,
        ring: &mut aya::maps::RingBuf<aya::maps::MapData>,
        pipeline: &mut Pipeline,
    ) {
        self.again = more;
        match self.pace.read(n) {
            pace::Next::Same => {}
            pace::Next::Sleep => {
                self.set(true);
                // Records sent between the last poll and the switch did not wake anyone.
                let (n, _) = drain_counted(ring, pipeline);
                if n > 0 {
                    self.busy();
                }
            }
        }
    }

    /// Records came: poll from now on.
    fn busy(&mut self) {
        self.set(false);
    }
}

/// The syslog socket watched for room while events wait for a reader whose queue is full:
/// a unix datagram socket becomes writable when its peer reads.
#[derive(Default)]
struct SyslogRoom {
    /// The connection it watches (`Delivery`'s count) and a duplicate of its socket, so
    /// that the registration lives exactly as long as this watch.
    fd: Option<(u64, AsyncFd<std::os::fd::OwnedFd>)>,
}

impl SyslogRoom {
    /// Watches `busy` (None: nothing waits for room); true while something does.
    fn watch(&mut self, busy: Option<(u64, std::os::fd::BorrowedFd<'_>)>) -> bool {
        let Some((generation, fd)) = busy else {
            return false;
        };
        if self.fd.as_ref().is_none_or(|(g, _)| *g != generation) {
            self.fd = fd
                .try_clone_to_owned()
                .and_then(|fd| {
                    // SAFETY: the AsyncFd owns the duplicate, so it stays open while
                    // registered.
                    unsafe { AsyncFd::register_with_interest(fd, tokio::io::Interest::WRITABLE) }
                        .map_err(|e| e.into_parts().1)
                })
                .ok()
                .map(|fd| (generation, fd));
        }
        self.fd.is_some()
    }

    /// Once the socket is writable. Readiness is cleared before the retry that follows, so
    /// a reader's next read wakes the loop again if that retry finds the queue full.
    async fn writable(&self) {
        match &self.fd {
            Some((_, fd)) => {
                if let Ok(mut ready) = fd.writable().await {
                    ready.clear_ready();
                }
            }
            None => std::future::pending().await,
        }
    }
}

/// Turns growing kernel drop counters into one message per check.
#[derive(Default)]
struct DropWatch {
    seen: Vec<u64>,
    total: u64,
}

impl DropWatch {
    /// One clause per cause (`drops::*`) whose counts grew: `<why>: lost N <Kind> records, …`.
    fn check(&mut self, totals: &[(u32, RecordKind, u64)]) -> Option<String> {
        self.seen.resize(totals.len(), 0);
        let mut clauses: Vec<(u32, Vec<String>)> = Vec::new();
        for (i, (cause, kind, n)) in totals.iter().enumerate() {
            if *n > self.seen[i] {
                let part = format!("{} {:?} records", n - self.seen[i], kind);
                match clauses.iter_mut().find(|(c, _)| c == cause) {
                    Some((_, parts)) => parts.push(part),
                    None => clauses.push((*cause, vec![part])),
                }
                self.total += n - self.seen[i];
                self.seen[i] = *n;
            }
        }
        let why = |cause: u32| match cause {
            drops::TABLE => "in-flight table full (more calls at once than it holds)",
            drops::RATE => "over the per-process rate",
            _ => "the kernel could not send (ring buffer full or record unreadable)",
        };
        (!clauses.is_empty()).then(|| {
            clauses
                .iter()
                .map(|(cause, parts)| format!("{}: lost {}", why(*cause), parts.join(", ")))
                .collect::<Vec<_>>()
                .join("; ")
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sysmon_common::RecordKind::{Access, Dns, Exec, Exit, Fork};

    #[test]
    fn drop_watch_reports_only_growth_by_cause() {
        use drops::{RATE, RING, TABLE};
        let mut w = DropWatch::default();
        let at = |e, x, f, d| {
            [
                (RING, Exec, e),
                (RING, Exit, x),
                (RING, Fork, f),
                (RATE, Dns, d),
            ]
        };
        assert_eq!(w.check(&at(0, 0, 0, 0)), None);
        assert_eq!(
            w.check(&at(5, 0, 2, 0)).unwrap(),
            "the kernel could not send (ring buffer full or record unreadable): lost 5 Exec \
             records, 2 Fork records"
        );
        assert_eq!(w.check(&at(5, 0, 2, 0)), None);
        assert_eq!(
            w.check(&at(6, 0, 2, 900)).unwrap(),
            "the kernel could not send (ring buffer full or record unreadable): lost 1 Exec \
             records; over the per-process rate: lost 900 Dns records"
        );
        assert_eq!(w.total, 908);
        let msg = DropWatch::default().check(&[(TABLE, Access, 3)]).unwrap();
        assert_eq!(
            msg,
            "in-flight table full (more calls at once than it holds): lost 3 Access records"
        );
    }
}
