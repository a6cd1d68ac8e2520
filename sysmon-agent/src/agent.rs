//! The running agent: kernel records in, enriched, judged, rendered and sent out.

use std::{io::Write, path::PathBuf, time::Duration};

use anyhow::Result;
use sysmon_common::RecordKind;
use tokio::{
    io::unix::AsyncFd,
    signal::unix::{SignalKind, signal},
};

use crate::{
    enrich::{Enrich, clock},
    events::{
        Event, dns_query, file_create, file_delete, network_connect, process_create,
        process_terminate, raw_access_read, schema, service,
    },
    kernel::{
        load::{self, Loaded},
        record::{self, Record},
    },
    render::{self, xml::Host},
    rules::Config,
    service::{limit::ErrorLimit, record_id::RecordIds},
    sinks::syslog::{self, Syslog},
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
    pub done: Box<dyn FnMut(Result<(), String>)>,
}

/// Everything one event passes through, with buffers reused from event to event.
pub struct Pipeline {
    cx: Enrich,
    config: Config,
    event: Event,
    xml: String,
    text: String,
    host: Host,
    ids: RecordIds,
    syslog: Syslog,
    /// `-t` output, flushed after each batch of records.
    stdout: Option<std::io::BufWriter<std::io::Stdout>>,
    errors: ErrorLimit,
    dns: dns_query::DnsState,
    /// Events syslog could not take that no event 255 has reported yet.
    unreported_sink_drops: u64,
    pub stats: Stats,
}

#[derive(Debug, Default, Clone, Copy)]
pub struct Stats {
    pub records: u64,
    /// Records read, per record kind (index = kind value).
    pub by_kind: [u64; RecordKind::SLOTS as usize],
    pub bad_records: u64,
    pub emitted: u64,
    pub kernel_drops: u64,
    pub sink_drops: u64,
}

impl Pipeline {
    pub fn new(settings: &Settings) -> Self {
        let (ids, err) = RecordIds::open(&settings.state_dir);
        if let Some(e) = err {
            eprintln!(
                "sysmon: EventRecordID not persistent ({}): {e}",
                settings.state_dir.display()
            );
        }
        Pipeline {
            cx: Enrich::new(settings.config.hash_algorithms),
            config: settings.config.clone(),
            event: Event::new(schema::by_id(schema::PROCESS_CREATE).unwrap()),
            xml: String::with_capacity(4096),
            text: String::with_capacity(4096),
            host: Host::this(),
            ids,
            syslog: Syslog::new(&settings.syslog_path),
            stdout: settings
                .debug
                .then(|| std::io::BufWriter::with_capacity(64 * 1024, std::io::stdout())),
            errors: ErrorLimit::default(),
            dns: dns_query::DnsState::default(),
            unreported_sink_drops: 0,
            stats: Stats::default(),
        }
    }

    pub fn seed(&mut self) {
        self.cx.cache.seed();
    }

    /// One record from the ring buffer.
    pub fn record(&mut self, bytes: &[u8]) {
        self.stats.records += 1;
        if let Some(kind) = bytes
            .first_chunk::<4>()
            .map(|k| u32::from_ne_bytes(*k) as usize)
            && kind < self.stats.by_kind.len()
        {
            self.stats.by_kind[kind] += 1;
        }
        match record::decode(bytes) {
            Ok(Record::Exec(rec, tail)) => {
                process_create::build(&mut self.event, &rec, &tail, &mut self.cx);
                self.emit();
            }
            Ok(Record::Exit(rec)) => {
                process_terminate::build(&mut self.event, &rec, &mut self.cx);
                self.emit();
            }
            Ok(Record::Fork(rec)) => {
                let h = rec.header;
                self.cx
                    .cache
                    .insert_fork(h.tgid, rec.ppid, rec.uid, rec.start_ns);
            }
            Ok(Record::File(rec, tail)) => {
                match RecordKind::from_u32(rec.header.kind) {
                    Some(RecordKind::FileCreate) => {
                        file_create::build(&mut self.event, &rec, &tail, &mut self.cx)
                    }
                    Some(RecordKind::FileDelete) => {
                        file_delete::build(&mut self.event, &rec, &tail, &mut self.cx)
                    }
                    _ => raw_access_read::build(&mut self.event, &rec, &tail, &mut self.cx),
                }
                self.emit();
            }
            Ok(Record::Net(rec)) => {
                network_connect::build(&mut self.event, &rec, &mut self.cx);
                self.emit();
            }
            Ok(Record::Dns(rec)) => {
                if dns_query::build(&mut self.event, &rec, &mut self.dns, &mut self.cx) {
                    self.emit();
                }
            }
            Err(_) => self.stats.bad_records += 1,
        }
    }

    pub fn sweep(&mut self) {
        self.cx.cache.sweep();
    }

    pub fn service_state(&mut self, state: &str) {
        service::state(&mut self.event, state);
        self.emit();
    }

    pub fn config_changed(&mut self, label: &str, hash: Option<&str>) {
        service::config(&mut self.event, label, hash);
        self.emit();
    }

    /// Event 255, rate-limited: what is held back is counted in the next one.
    pub fn error(&mut self, id: &str, description: &str) {
        eprintln!("sysmon: {id}: {description}");
        let Some(held_back) = self.errors.admit(std::time::Instant::now()) else {
            return;
        };
        let text;
        let description = if held_back > 0 {
            text = format!("{description} ({held_back} earlier error events held back)");
            &text
        } else {
            description
        };
        service::error(&mut self.event, id, description);
        self.emit();
    }

    /// A new configuration, between two records: nothing in flight is lost or judged twice.
    pub fn set_config(&mut self, new: NewConfig) {
        self.cx.hasher.set_algorithms(new.config.hash_algorithms);
        self.config = new.config;
        self.config_changed(&new.label, new.hash.as_deref());
    }

    /// Whether an event 255 would go out now (see `ErrorLimit::would_admit`).
    pub fn can_report(&self) -> bool {
        self.errors.would_admit(std::time::Instant::now())
    }

    /// Once a second: resend what waits for syslog; report what had to be dropped, once
    /// syslog has caught up (so that the report itself is not dropped) and the rate limit
    /// lets it through (else the count grows until it does).
    pub fn tick(&mut self) {
        self.syslog.flush();
        self.syslog.retry();
        let dropped = self.syslog.take_dropped();
        self.stats.sink_drops += dropped;
        self.unreported_sink_drops += dropped;
        let n = self.unreported_sink_drops;
        if n > 0 && self.syslog.pending() == 0 && self.can_report() {
            self.unreported_sink_drops = 0;
            let msg = format!(
                "syslog could not take {n} events (unreachable or too large); they are lost"
            );
            self.error("SyslogDrops", &msg);
        }
        self.flush();
    }

    /// At stop: a last try to hand syslog what still waits; returns how many are lost.
    pub fn finish(&mut self) -> (usize, u64) {
        self.flush();
        self.syslog.retry();
        (self.syslog.pending(), self.syslog.resent())
    }

    /// Ends a batch: what is buffered for syslog and stdout goes out.
    pub fn flush(&mut self) {
        self.syslog.flush();
        if let Some(out) = &mut self.stdout {
            let _ = out.flush();
        }
    }

    /// Judges the current event and, if included, renders and sends it.
    fn emit(&mut self) {
        let decision = self.config.rules.decide(&self.event);
        if !decision.include {
            return;
        }
        if self.event.kind().tag.is_some() {
            self.event.set(0, decision.rule_name.unwrap_or(""));
        }
        self.config.field_sizes.apply(&mut self.event);
        self.xml.clear();
        let id = self.ids.take();
        render::xml::render(&mut self.xml, &self.event, &self.host, id, clock::wall_ns());
        let severity = if self.event.id() == schema::ERROR {
            syslog::ERR
        } else {
            syslog::INFO
        };
        self.syslog.send(severity, &self.xml);
        if let Some(out) = &mut self.stdout {
            self.text.clear();
            render::layout::render(&mut self.text, &self.event);
            let _ = out.write_all(self.text.as_bytes());
        }
        self.stats.emitted += 1;
    }
}

const BATCH: Duration = Duration::from_millis(10);
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
    } = loaded;
    let mut pipeline = Pipeline::new(&settings);
    pipeline.seed();
    pipeline.config_changed(&settings.config_label, settings.config_hash.as_deref());
    pipeline.service_state("Started");
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
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut drop_watch = DropWatch::default();
    let mut ticks = 0u64;
    loop {
        tokio::select! {
            guard = ring.readable_mut() => {
                let mut guard = guard?;
                drain(guard.get_inner_mut(), &mut pipeline);
                guard.clear_ready();
                // Let records gather instead of waking up for each one: at high rates this
                // turns thousands of wake-ups a second into a hundred. The ring buffer holds
                // far more than BATCH worth of records.
                tokio::time::sleep(BATCH).await;
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
            }
            _ = hup.recv() => {
                // Records already read were judged by the old rules; the next ones by the new.
                drain(ring.get_mut(), &mut pipeline);
                let Some(reload) = reload.as_mut() else { continue };
                let outcome = match (reload.load)() {
                    Ok(new) => {
                        // Probes follow the rules: kinds the new config turns on are
                        // attached, those it turns off detached (spec §1.0).
                        if let Err(e) = probes.set_active(&active_ids(&new.config)) {
                            pipeline.error("ConfigReload", &format!("attaching probes: {e:#}"));
                        }
                        pipeline.set_config(new);
                        Ok(())
                    }
                    Err(e) => {
                        pipeline.error("ConfigReload", &e);
                        Err(e)
                    }
                };
                pipeline.flush();
                // Only now are the new rules and probes in force: `-c` may return.
                (reload.done)(outcome);
            }
            _ = term.recv() => break,
            _ = int.recv() => break,
        }
    }
    // Whatever is already in the ring buffer was recorded: send it before stopping, and
    // report what was lost since the last check.
    drain(ring.get_mut(), &mut pipeline);
    if let Some(msg) = drop_watch.check(&load::drop_totals(&drops)) {
        eprintln!("sysmon: {msg}");
        pipeline.error("KernelDrops", &msg);
    }
    pipeline.stats.kernel_drops = drop_watch.total;
    pipeline.service_state("Stopped");
    pipeline.tick();
    let (unsent, resent) = pipeline.finish();
    let s = pipeline.stats;
    eprintln!(
        "sysmon: stopped; records {}, bad records {}, events {}; by kind:{}; syslog drops {}, \
         resent after syslog restarts {resent}, unsent at stop {unsent}; kernel drops {}",
        s.records,
        s.bad_records,
        s.emitted,
        RecordKind::ALL
            .iter()
            .map(|k| format!(" {k:?} {}", s.by_kind[*k as usize]))
            .collect::<String>(),
        s.sink_drops,
        s.kernel_drops
    );
    Ok(())
}

fn drain(ring: &mut aya::maps::RingBuf<aya::maps::MapData>, pipeline: &mut Pipeline) {
    while let Some(item) = ring.next() {
        pipeline.record(&item);
    }
    pipeline.flush();
}

/// Turns growing kernel drop counters into one message per check.
#[derive(Default)]
struct DropWatch {
    seen: Vec<u64>,
    total: u64,
}

impl DropWatch {
    fn check(&mut self, totals: &[(sysmon_common::RecordKind, u64)]) -> Option<String> {
        self.seen.resize(totals.len(), 0);
        let mut parts = Vec::new();
        for (i, (kind, n)) in totals.iter().enumerate() {
            if *n > self.seen[i] {
                parts.push(format!("{} {:?} records", n - self.seen[i], kind));
                self.total += n - self.seen[i];
                self.seen[i] = *n;
            }
        }
        (!parts.is_empty())
            .then(|| format!("the kernel ring buffer was full: lost {}", parts.join(", ")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sysmon_common::RecordKind::{Exec, Exit, Fork};

    #[test]
    fn drop_watch_reports_only_growth() {
        let mut w = DropWatch::default();
        assert_eq!(w.check(&[(Exec, 0), (Exit, 0), (Fork, 0)]), None);
        let msg = w.check(&[(Exec, 5), (Exit, 0), (Fork, 2)]).unwrap();
        assert!(
            msg.contains("5 Exec records") && msg.contains("2 Fork records"),
            "{msg}"
        );
        assert_eq!(w.check(&[(Exec, 5), (Exit, 0), (Fork, 2)]), None);
        assert!(
            w.check(&[(Exec, 6), (Exit, 0), (Fork, 2)])
                .unwrap()
                .contains("1 Exec")
        );
        assert_eq!(w.total, 8);
    }
}
