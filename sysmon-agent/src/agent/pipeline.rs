//! One record in, its events out: built, judged, rendered and handed to the sinks, with the
//! buffers reused from event to event.

use std::{
    collections::VecDeque,
    io::Write,
    time::{Duration, Instant},
};

use sysmon_common::RecordKind;

use super::{
    DRAIN_MAX, NewConfig, STOP_LAST, Settings,
    held::{self, Held},
    latency::Latency,
};
use crate::{
    enrich::{Enrich, clock},
    events::{
        Event, create_remote_thread, dns_query, file_create, file_create_time, file_delete,
        file_executable, image_load, network_connect, pipe, process_access, process_create,
        process_tampering, process_terminate, raw_access_read, schema, service,
    },
    kernel::record::{self, Record},
    render::{self, xml::Host},
    rules::Config,
    service::{limit::ErrorLimit, record_id::RecordIds},
    sinks::{
        file::{self, FileSink},
        outputs::Outputs,
        syslog::{self, Syslog},
    },
};

/// Everything one event passes through, with buffers reused from event to event.
pub struct Pipeline {
    cx: Enrich,
    config: Config,
    event: Event,
    xml: String,
    text: String,
    host: Host,
    ids: RecordIds,
    /// `None` when `-o` leaves syslog out.
    syslog: Option<Syslog>,
    files: Files,
    /// `-t` output, flushed after each batch of records.
    stdout: Option<std::io::BufWriter<std::io::Stdout>>,
    errors: ErrorLimit,
    dns: dns_query::DnsState,
    /// Events syslog could not take that no event 255 has reported yet.
    unreported_sink_drops: u64,
    pub stats: Stats,
    /// Kernel record to sink, for events made from a record.
    pub latency: Latency,
    /// The time of the record being handled (`None` for the agent's own events).
    record_ns: Option<u64>,
    /// `stop` has begun.
    stopping: bool,
    /// Events waiting, in order, for a digest.
    held: Held,
    /// The process the record being handled is about, and for an exec its parent: whose
    /// container the event names.
    actor: Option<u32>,
    parent: Option<u32>,
    /// `-o containers=off`: no container fields, no records waiting.
    containers: bool,
    /// Records waiting for their cgroup's container (see [`HOLD_MAX`]), in arrival order:
    /// before they are events (`held` waits after).
    waiting: VecDeque<(Instant, Vec<u8>)>,
    waiting_bytes: usize,
}

/// How long a record of a process in a cgroup not yet resolved waits for its container's
/// names (the resolver reads one small file; usually done before the record is read), and
/// how much may wait: past either bound records go out with what is known (the
/// ContainerId once the path is read, `-` before). Every record behind a waiting one waits
/// too, so events keep their order.
pub const HOLD_MAX: Duration = Duration::from_millis(100);
pub const HOLD_BYTES: usize = 4 << 20;

#[derive(Debug, Default, Clone, Copy)]
pub struct Stats {
    pub records: u64,
    /// Records read, per record kind (index = kind value).
    pub by_kind: [u64; RecordKind::SLOTS as usize],
    pub bad_records: u64,
    pub emitted: u64,
    pub kernel_drops: u64,
    pub sink_drops: u64,
    pub file_drops: u64,
}

/// The agent's own log files (`-o json`, `-o xml`) and their reused buffers.
#[derive(Default)]
struct Files {
    json: Option<FileSink>,
    xml: Option<FileSink>,
    line: Vec<u8>,
    system_time: String,
    /// Lines the json and xml files could not take that no event 255 has reported yet.
    unreported_drops: [u64; 2],
}

impl Files {
    fn new(o: &Outputs) -> Self {
        // Once, at start: NSS may take seconds.
        let gid = if o.json.is_some() || o.xml.is_some() {
            file::adm_gid()
        } else {
            0
        };
        Files {
            json: o.json.as_ref().map(|p| FileSink::new(p, o.rotation, gid)),
            xml: o.xml.as_ref().map(|p| FileSink::new(p, o.rotation, gid)),
            line: Vec::with_capacity(4096),
            ..Files::default()
        }
    }

    fn all(&mut self) -> impl Iterator<Item = &mut FileSink> {
        self.json.iter_mut().chain(self.xml.iter_mut())
    }
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
            syslog: settings
                .outputs
                .syslog
                .then(|| Syslog::new(&settings.syslog_path, settings.rsyslog_socket.as_deref())),
            files: Files::new(&settings.outputs),
            stdout: settings
                .debug
                .then(|| std::io::BufWriter::with_capacity(64 * 1024, std::io::stdout())),
            errors: ErrorLimit::default(),
            dns: dns_query::DnsState::default(),
            unreported_sink_drops: 0,
            stats: Stats::default(),
            latency: Latency::default(),
            record_ns: None,
            stopping: false,
            held: Held::default(),
            actor: None,
            parent: None,
            containers: settings.outputs.containers,
            waiting: VecDeque::new(),
            waiting_bytes: 0,
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
        if self.containers && (!self.waiting.is_empty() || self.waits(bytes)) {
            self.wait_for_container(bytes);
            return;
        }
        self.handle(bytes);
    }

    fn handle(&mut self, bytes: &[u8]) {
        self.record_ns = bytes
            .get(TIME..TIME + 8)
            .map(|t| u64::from_ne_bytes(t.try_into().expect("8 bytes")));
        self.actor = bytes
            .get(TGID..TGID + 4)
            .map(|t| u32::from_ne_bytes(t.try_into().expect("4 bytes")));
        self.decode(bytes);
        self.record_ns = None;
        self.actor = None;
        self.parent = None;
    }

    /// Whether the record starts a process in a cgroup whose container is not known yet.
    /// A new cgroup's record itself never waits: it is what the others wait for.
    fn waits(&mut self, bytes: &[u8]) -> bool {
        let cgroups = match record::decode(bytes) {
            Ok(Record::Exec(rec, _)) => rec.cgroups,
            Ok(Record::Fork(rec)) => rec.cgroups,
            _ => return false,
        };
        !self.cx.containers.status(cgroups).done
    }

    fn wait_for_container(&mut self, bytes: &[u8]) {
        if matches!(record::decode(bytes), Ok(Record::Cgroup(..))) {
            self.handle(bytes);
            return;
        }
        self.waiting
            .push_back((Instant::now() + HOLD_MAX, bytes.to_vec()));
        self.waiting_bytes += bytes.len();
        while self.waiting_bytes > HOLD_BYTES
            && let Some((_, bytes)) = self.waiting.pop_front()
        {
            self.waiting_bytes -= bytes.len();
            self.handle(&bytes);
        }
    }

    /// Hands on the waiting records whose container is known now or whose time is up, in
    /// order; all of them with `all`.
    fn release_records(&mut self, all: bool) {
        if self.waiting.is_empty() {
            return;
        }
        self.cx.containers.poll();
        let now = Instant::now();
        while let Some((at, bytes)) = self.waiting.front() {
            if !all && *at > now && self.waits(&bytes.clone()) {
                break;
            }
            let (_, bytes) = self.waiting.pop_front().expect("front");
            self.waiting_bytes -= bytes.len();
            self.handle(&bytes);
        }
    }

    /// The resolver answered: waiting records whose container is now known go out.
    pub fn containers_ready(&mut self) {
        self.cx.containers.poll();
        if !self.waiting.is_empty() {
            self.release_records(false);
            self.flush();
        }
    }

    /// When the first waiting record's time is up, if one waits.
    pub fn waiting_deadline(&self) -> Option<Instant> {
        self.waiting.front().map(|(at, _)| *at)
    }

    /// The descriptor that wakes the event loop when the container resolver answers.
    pub fn containers_fd(&self) -> std::sync::Arc<std::os::fd::OwnedFd> {
        self.cx.containers.wake()
    }

    fn decode(&mut self, bytes: &[u8]) {
        match record::decode(bytes) {
            Ok(Record::Exec(rec, tail)) => {
                self.parent = Some(rec.ppid);
                process_create::build(&mut self.event, &rec, &tail, &mut self.cx);
                self.emit();
                if process_tampering::applies(&rec) {
                    self.tampering(&rec);
                }
            }
            Ok(Record::Exit(rec)) => {
                process_terminate::build(&mut self.event, &rec, &mut self.cx);
                self.emit();
            }
            Ok(Record::Fork(rec)) => {
                let h = rec.header;
                self.cx
                    .cache
                    .insert_fork(h.tgid, rec.ppid, rec.uid, rec.start_ns, rec.cgroups);
            }
            Ok(Record::File(rec, tail)) => {
                match RecordKind::from_u32(rec.header.kind) {
                    Some(RecordKind::FileCreate) => {
                        file_create::build(&mut self.event, &rec, &tail, &mut self.cx)
                    }
                    Some(RecordKind::FileDelete) => {
                        file_delete::build(&mut self.event, &rec, &tail, &mut self.cx)
                    }
                    Some(RecordKind::PipeConnect) => pipe::build(
                        &mut self.event,
                        schema::PIPE_CONNECTED,
                        &rec,
                        &tail,
                        &mut self.cx,
                    ),
                    _ => raw_access_read::build(&mut self.event, &rec, &tail, &mut self.cx),
                }
                self.emit();
            }
            Ok(Record::Net(rec)) => {
                network_connect::build(&mut self.event, &rec, &mut self.cx);
                self.emit();
            }
            Ok(Record::FileInfo(rec, tail)) => {
                match RecordKind::from_u32(rec.file.header.kind) {
                    Some(RecordKind::FileCreateTime) => {
                        file_create_time::build(&mut self.event, &rec, &tail, &mut self.cx)
                    }
                    Some(RecordKind::ImageLoad) => {
                        image_load::build(&mut self.event, &rec, &tail, &mut self.cx)
                    }
                    Some(RecordKind::PipeCreate) => pipe::build(
                        &mut self.event,
                        schema::PIPE_CREATED,
                        &rec.file,
                        &tail,
                        &mut self.cx,
                    ),
                    _ => {
                        if !file_executable::build(&mut self.event, &rec, &tail, &mut self.cx) {
                            return;
                        }
                    }
                }
                self.emit();
            }
            Ok(Record::Access(rec)) => {
                let Some(target) = process_access::target(&rec, &mut self.cx) else {
                    return;
                };
                if process_access::build(&mut self.event, &rec, &target, &mut self.cx) {
                    self.emit();
                }
                if create_remote_thread::build(&mut self.event, &rec, &target, &mut self.cx) {
                    self.emit();
                }
            }
            Ok(Record::Dns(rec)) => {
                if dns_query::build(&mut self.event, &rec, &mut self.dns, &mut self.cx) {
                    self.emit();
                }
            }
            Ok(Record::Cgroup(rec, path)) => {
                self.cx.containers.learn(rec.root, rec.id, path);
            }
            Err(_) => self.stats.bad_records += 1,
        }
    }

    /// Event 25 after the event 1 of an exec of code with no file on disk.
    fn tampering(&mut self, rec: &sysmon_common::process::ExecRecord) {
        if !self.config.rules.is_active(schema::PROCESS_TAMPERING) {
            return;
        }
        // Event 1 just taught the cache this image (before any FieldSizes cut).
        let pid = rec.header.tgid;
        let image = self.cx.cache.get(pid, None).map(|p| p.image.clone());
        let image = image.unwrap_or_else(|| "".into());
        process_tampering::build(&mut self.event, rec, &image, &mut self.cx);
        self.emit();
    }

    pub fn sweep(&mut self) {
        self.cx.cache.sweep();
        self.cx.containers.sweep();
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
        // Events still to be judged by the old rules (which read their digest) go now.
        if self.held.any_unjudged() {
            self.release(true);
        }
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
        self.file_tick();
        let Some(syslog) = &mut self.syslog else {
            self.flush();
            return;
        };
        syslog.tick();
        let dropped = syslog.take_dropped();
        let caught_up = syslog.pending() == 0;
        self.stats.sink_drops += dropped;
        self.unreported_sink_drops += dropped;
        let n = self.unreported_sink_drops;
        if n > 0 && caught_up && self.can_report() {
            self.unreported_sink_drops = 0;
            let msg = format!(
                "syslog could not take {n} events (unreachable or too large); they are lost"
            );
            self.error("SyslogDrops", &msg);
        }
        self.flush();
    }

    /// Hands syslog and the files what still waits (events waiting for a digest first),
    /// trying until `until`; returns how many wait still for syslog.
    pub fn finish(&mut self, until: Instant) -> usize {
        loop {
            self.flush();
            let held = self.held.is_empty();
            let files = self.files.all().all(|f| f.written());
            let syslog = self.syslog.as_mut().is_none_or(|s| s.retry());
            if (held && files && syslog) || Instant::now() >= until {
                break;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        if !self.held.is_empty() {
            self.release(true);
            self.flush();
        }
        self.syslog.as_ref().map_or(0, |s| s.pending())
    }

    /// At stop: what waits for syslog gets until `until`; what it cannot take by then is
    /// given up and reported (event 255 `SyslogDrops`), and event 4 `Stopped` goes out last,
    /// with `STOP_LAST` more to be taken. Returns how many events were lost, and how many
    /// were resent after a syslog restart.
    pub fn stop(&mut self, until: Instant) -> (usize, u64) {
        // Records waiting for their container go on now; events waiting for a digest get
        // their wait (`finish`).
        self.release_records(true);
        let unsent = self.finish(until);
        // What the files lost is reported now, even if they are stuck.
        self.stopping = true;
        if unsent > 0
            && let Some(syslog) = &mut self.syslog
        {
            syslog.discard();
        }
        // Reports what was dropped, the discarded events included.
        self.tick();
        self.service_state("Stopped");
        let last = Instant::now() + STOP_LAST;
        let left = self.finish(last);
        // A file stuck in a call (a hung mount) is left behind with what it holds.
        for f in self.files.all() {
            self.stats.file_drops += f.stop(last);
        }
        let resent = self.syslog.as_ref().map_or(0, |s| s.resent());
        (unsent + left, resent)
    }

    /// When to try syslog again, if events wait for it (busy or away).
    pub fn syslog_retry_at(&self) -> Option<Instant> {
        self.syslog.as_ref().and_then(|s| s.retry_at())
    }

    /// The syslog socket while events wait for its reader to read (see
    /// `Delivery::busy_fd`).
    pub fn syslog_busy_fd(&self) -> Option<(u64, std::os::fd::BorrowedFd<'_>)> {
        self.syslog.as_ref().and_then(|s| s.busy_fd())
    }

    /// Whether the events of one more drain fit in what may wait for syslog.
    pub fn can_drain(&self) -> bool {
        self.syslog.as_ref().is_none_or(|s| s.room_for(DRAIN_MAX))
    }

    pub fn retry_syslog(&mut self) {
        if let Some(syslog) = &mut self.syslog {
            syslog.retry();
        }
    }

    /// The files' share of the tick: retry after a failure, and once every file has caught
    /// up, event 255 `FileSinkDrops` with what they could not keep.
    fn file_tick(&mut self) {
        let mut caught_up = true;
        let Files {
            json,
            xml,
            unreported_drops,
            ..
        } = &mut self.files;
        for (f, n) in [json, xml].into_iter().zip(unreported_drops.iter_mut()) {
            let Some(f) = f else { continue };
            let dropped = f.take_dropped();
            *n += dropped;
            self.stats.file_drops += dropped;
            caught_up &= f.caught_up();
        }
        // Both files usually lose the same events: the count is per file, not summed.
        let n = self
            .files
            .unreported_drops
            .iter()
            .copied()
            .max()
            .unwrap_or(0);
        if n > 0 && (caught_up || self.stopping) && self.can_report() {
            let f = &mut self.files;
            let each: Vec<String> = [&f.json, &f.xml]
                .into_iter()
                .zip(f.unreported_drops)
                .filter_map(|(sink, n)| Some(format!("{} {n}", sink.as_ref()?.path().display())))
                .collect();
            f.unreported_drops = [0; 2];
            let msg = format!(
                "the log files could not take {n} events (disk full or not writable; {}); \
                 they are lost",
                each.join(", ")
            );
            self.error("FileSinkDrops", &msg);
        }
    }

    /// Ends a batch: the events whose digests are in, then what is buffered for syslog, the
    /// files and stdout, go out.
    pub fn flush(&mut self) {
        self.release_records(false);
        self.release(false);
        if let Some(syslog) = &mut self.syslog {
            syslog.flush();
        }
        for f in self.files.all() {
            f.flush();
        }
        if let Some(out) = &mut self.stdout {
            let _ = out.flush();
        }
    }

    /// Judges the current event and, if included, sends it: at once, or, when its digest
    /// is not known yet or events before it wait for theirs, in order behind them (`held`).
    fn emit(&mut self) {
        if self.containers
            && self.event.kind().has_containers()
            && self.event.len() == self.event.kind().own
            && let Some(pid) = self.actor
        {
            self.push_containers(pid);
        }
        let deferred = self.event.take_deferred();
        // Costly fields are filled before judging only when a rule reads them.
        let reads = deferred.is_some_and(|d| self.config.rules.reads(self.event.id(), d.field()));
        if !reads && !self.judge() {
            return;
        }
        let waits = deferred.is_some_and(|d| !d.ready(&self.cx));
        if !waits && self.held.is_empty() {
            if let Some(d) = deferred {
                d.fill(&mut self.event, &mut self.cx);
            }
            if reads && !self.judge() {
                return;
            }
            self.send(self.record_ns);
            return;
        }
        let now = Instant::now();
        // A digest the hashing thread cannot take now is not waited for (`-`).
        let asked =
            waits && deferred.is_some_and(|d| d.ask(&self.event, &mut self.cx, now + held::WAIT));
        let until = if asked { now + held::WAIT } else { now };
        self.held
            .push(&self.event, deferred, !reads, self.record_ns, until);
        self.release(false);
    }

    /// Sends the events waiting in `held` that may go: in order, each once its digest is
    /// in or its wait is over; with `all`, every one (`-` for a digest not in yet).
    fn release(&mut self, all: bool) {
        if self.held.is_empty() {
            return;
        }
        self.cx.hasher.collect();
        let now = Instant::now();
        loop {
            let cx = &self.cx;
            let Some(w) = self.held.pop(now, all, |d| d.ready(cx)) else {
                break;
            };
            let mut event = w.event;
            // Sent from `self.event`, whose buffers come back after.
            std::mem::swap(&mut self.event, &mut event);
            if let Some(d) = w.deferred {
                d.fill(&mut self.event, &mut self.cx);
            }
            if w.judged || self.judge() {
                self.send(w.record_ns);
            }
            std::mem::swap(&mut self.event, &mut event);
            self.held.recycle(event);
        }
    }

    /// When the first event waiting for a digest stops waiting, if one waits.
    pub fn held_until(&self) -> Option<Instant> {
        self.held.next_until()
    }

    /// What the hashing thread calls when a digest is in (wakes the event loop).
    pub fn set_hash_waker(&mut self, waker: crate::enrich::hashes::Waker) {
        self.cx.hasher.set_waker(waker);
    }

    /// Judges the current event by the rules; if included, sets its RuleName.
    fn judge(&mut self) -> bool {
        let decision = self.config.rules.decide(&self.event);
        if !decision.include {
            return false;
        }
        // The builders leave RuleName empty: only a name needs setting.
        if self.event.kind().tag.is_some()
            && let Some(name) = decision.rule_name.filter(|n| !n.is_empty())
        {
            self.event.set(0, name);
        }
        true
    }

    /// Renders the current event, judged and complete, and hands it to every sink.
    /// `record_ns`: the kernel record's time, for the latency.
    fn send(&mut self, record_ns: Option<u64>) {
        self.config.field_sizes.apply(&mut self.event);
        let id = self.ids.take();
        let now = clock::wall_ns();
        // The event is cut to the budget once, so every sink carries the same values.
        // With syslog it is rendered straight into the datagram batch.
        if let Some(syslog) = &mut self.syslog {
            let severity = if self.event.id() == schema::ERROR {
                syslog::ERR
            } else {
                syslog::INFO
            };
            render_xml(
                syslog.begin(severity, now),
                &mut self.event,
                &self.host,
                id,
                now,
            );
            if let Some(xml) = &mut self.files.xml {
                xml.push(syslog.body().as_bytes());
            }
            syslog.end();
        } else {
            self.xml.clear();
            render_xml(&mut self.xml, &mut self.event, &self.host, id, now);
            if let Some(xml) = &mut self.files.xml {
                xml.push(self.xml.as_bytes());
            }
        }
        let Files {
            json,
            line,
            system_time,
            ..
        } = &mut self.files;
        if let Some(json) = json {
            system_time.clear();
            clock::write_system_time(system_time, now);
            line.clear();
            render::json::render(line, &self.event, &self.host, id, system_time);
            json.push(line);
        }
        if let Some(out) = &mut self.stdout {
            self.text.clear();
            render::layout::render(&mut self.text, &self.event);
            let _ = out.write_all(self.text.as_bytes());
        }
        self.stats.emitted += 1;
        if let Some(at) = record_ns {
            self.latency
                .add(at, clock::now(libc::CLOCK_BOOTTIME) as u64);
        }
    }
}

impl Pipeline {
    /// The container fields of the event about process `pid` (and ParentContainerId of an
    /// exec): from the process cache's cgroups and the container cache, no I/O.
    fn push_containers(&mut self, pid: u32) {
        let cgroups = self.cx.cache.get(pid, None).map(|p| p.cgroups);
        let c = cgroups.and_then(|cg| self.cx.containers.status(cg).container);
        crate::events::push_container(&mut self.event, c.as_deref());
        if self.event.len() < self.event.kind().fields.len() {
            let parent = self
                .parent
                .and_then(|pp| self.cx.cache.get(pp, None))
                .map(|p| p.cgroups);
            let c = parent.and_then(|cg| self.cx.containers.status(cg).container);
            self.event.push(c.as_ref().map_or("", |c| &c.id));
        }
    }
}

/// The event as Sysmon's XML, cut to the budget once, so every sink carries the same values.
fn render_xml(out: &mut String, event: &mut Event, host: &Host, id: u64, now: i128) {
    render::xml::render_within(out, event, host, id, now, render::fit::BUDGET);
}

/// Where a record's header keeps its time and its process.
const TIME: usize = std::mem::offset_of!(sysmon_common::Header, time_ns);
const TGID: usize = std::mem::offset_of!(sysmon_common::Header, tgid);

#[cfg(test)]
mod tests {
    use super::*;
    use sysmon_common::RecordKind::Exec;

    /// An exec record of /usr/bin/true with `args`, as the kernel sends it.
    fn exec_record(pid: u32, args: &[u8]) -> Vec<u8> {
        exec_record_in(pid, args, Default::default())
    }

    fn exec_record_in(pid: u32, args: &[u8], cgroups: sysmon_common::process::Cgroups) -> Vec<u8> {
        use std::os::unix::fs::MetadataExt;
        use sysmon_common::{Header, process::ExecRecord};
        let exe = std::fs::metadata("/usr/bin/true").unwrap();
        let (path, cwd) = (b"/usr/bin/true", b"/tmp");
        let rec = ExecRecord {
            header: Header {
                kind: Exec as u32,
                len: 0,
                time_ns: 1,
                tgid: pid,
                tid: pid,
            },
            ppid: 1,
            start_ns: 1,
            tty: -1,
            exe_nlink: 1,
            exe_ino: exe.ino(),
            exe_dev: ((libc::major(exe.dev()) << 20) | libc::minor(exe.dev())) as u32,
            exe_size: exe.size() as i64,
            exe_mtime_sec: exe.mtime(),
            exe_mtime_nsec: exe.mtime_nsec() as u32,
            exe_len: path.len() as u32,
            cwd_len: cwd.len() as u32,
            args_len: args.len() as u32,
            cgroups,
            ..Default::default()
        };
        // SAFETY: a plain-old-data record, read as its bytes.
        let mut out = unsafe {
            std::slice::from_raw_parts(
                &rec as *const ExecRecord as *const u8,
                size_of::<ExecRecord>(),
            )
        }
        .to_vec();
        out.extend_from_slice(path);
        out.extend_from_slice(cwd);
        out.extend_from_slice(args);
        out
    }

    fn settings(dir: &std::path::Path) -> Settings {
        Settings {
            config: crate::rules::Config::default(),
            config_label: "test".into(),
            config_hash: None,
            debug: false,
            syslog_path: dir.join("no-such.sock"),
            rsyslog_socket: None,
            outputs: Default::default(),
            state_dir: dir.join("state"),
            btf: None,
            reload: None,
            on_ready: None,
        }
    }

    /// An exec in a cgroup never seen waits (the call returns at once: the resolver works on
    /// its own thread), and so does every record after it; once the resolver answers they
    /// go out in order. A second exec in the same cgroup does not wait.
    #[test]
    fn records_of_an_unresolved_cgroup_wait_in_order() {
        let dir = std::env::temp_dir().join(format!("sysmon-hold-{}", std::process::id()));
        let mut p = Pipeline::new(&settings(&dir));
        if crate::enrich::containers::Mounts::get().v2.is_none() {
            eprintln!("skipped: no cgroup2 mounted");
            return;
        }
        // An id no cgroup has: the resolver's walk finds nothing, "no container".
        let unknown = sysmon_common::process::Cgroups {
            v2: u64::MAX - 3,
            v1: 0,
        };
        let me = std::process::id();
        p.record(&exec_record_in(me, b"true\0first\0", unknown));
        p.record(&exec_record(me, b"true\0second\0"));
        assert_eq!((p.stats.emitted, p.waiting.len()), (0, 2));
        let until = Instant::now() + Duration::from_secs(10);
        // Then, as events, they may wait for their digest (hashed on its own thread).
        while (!p.waiting.is_empty() || !p.held.is_empty()) && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(1));
            p.containers_ready();
            p.flush();
        }
        assert_eq!(p.stats.emitted, 2);
        assert_eq!(
            p.event.field("CommandLine"),
            Some("true second"),
            "in order"
        );
        assert_eq!(p.event.field("ContainerId"), Some("-"));
        p.record(&exec_record_in(me, b"true\0third\0", unknown));
        assert_eq!((p.stats.emitted, p.waiting.len()), (3, 0));
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Hashes are computed for an included exec, or to judge one by a rule on Hashes; never
    /// for an exec the rules exclude without reading them.
    #[test]
    fn excluded_events_are_not_hashed() {
        let dir = std::env::temp_dir().join(format!("sysmon-judge-{}", std::process::id()));
        // (rules, command line, emitted, digests computed)
        let cases: &[(&str, &[u8], u64, u64)] = &[
            (
                r#"<ProcessCreate onmatch="exclude"><CommandLine condition="contains">drop-me</CommandLine></ProcessCreate>"#,
                b"true\0drop-me\0",
                0,
                0,
            ),
            (
                r#"<ProcessCreate onmatch="exclude"><CommandLine condition="contains">drop-me</CommandLine></ProcessCreate>"#,
                b"true\0keep-me\0",
                1,
                1,
            ),
            (
                r#"<ProcessCreate onmatch="include"><Image condition="is">/nothing</Image></ProcessCreate>"#,
                b"true\0",
                0,
                0,
            ),
            (
                r#"<ProcessCreate onmatch="exclude"><Hashes condition="contains">SHA256=</Hashes></ProcessCreate>"#,
                b"true\0",
                0,
                1,
            ),
        ];
        for (rules, args, emitted, computed) in cases {
            let xml = format!(
                r#"<Sysmon schemaversion="4.90"><EventFiltering>{rules}</EventFiltering></Sysmon>"#
            );
            let settings = Settings {
                config: crate::rules::parse_bytes(xml.as_bytes(), "test.xml").unwrap(),
                config_label: "test".into(),
                config_hash: None,
                debug: false,
                syslog_path: dir.join("no-such.sock"),
                rsyslog_socket: None,
                outputs: Default::default(),
                state_dir: dir.join("state"),
                btf: None,
                reload: None,
                on_ready: None,
            };
            let mut p = Pipeline::new(&settings);
            p.record(&exec_record(std::process::id(), args));
            // An event waiting for its digest goes out once the hashing thread has it.
            let until = Instant::now() + Duration::from_secs(10);
            while !p.held.is_empty() && Instant::now() < until {
                std::thread::sleep(Duration::from_millis(2));
                p.flush();
            }
            let got = (p.stats.emitted, p.cx.hasher.queued, p.cx.hasher.cached());
            assert_eq!(
                got,
                (*emitted, *computed, *computed as usize),
                "{rules} {args:?}"
            );
            assert!(p.held.is_empty());
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
