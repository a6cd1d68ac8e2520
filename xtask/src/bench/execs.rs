//! Exec storms at fixed rates against the installed daemon (default config: every
//! ProcessCreate and ProcessTerminate logged), once per sink.

use std::{
    path::Path,
    process::Command,
    time::{Duration, Instant},
};

use sysmon_tests::{
    events,
    service::{Install, lines},
    unique,
};

use super::probe::{self, Cpu, Latency};

pub struct Run {
    pub rate: u32,
    pub execs: u64,
    pub events: u64,
    pub load_secs: f64,
    /// From the start of the load until the last event was in the sink.
    pub cpu: Cpu,
    pub peak_rss_kib: u64,
    pub kernel_drops: u64,
    /// Per program: name, run time (ns) and runs during the load.
    pub progs: Vec<(String, u64, u64)>,
    pub latency: Latency,
}

impl Run {
    pub fn exec_rate(&self) -> f64 {
        self.execs as f64 / self.load_secs
    }

    pub fn agent_us(&self) -> f64 {
        self.cpu.agent / self.execs.max(1) as f64 * 1e6
    }

    pub fn ebpf_us(&self) -> f64 {
        probe::total_ns(&self.progs) as f64 / self.execs.max(1) as f64 / 1e3
    }
}

pub fn header() {
    println!(
        "{:>8} {:>8} {:>8} {:>7} {:>7} {:>7} {:>7} {:>8} {:>8} {:>6} {:>6} {:>9}  latency p50/p99/max",
        "target/s",
        "execs/s",
        "events/s",
        "total%",
        "agent%",
        "rsysl%",
        "eBPF%",
        "µs/exec",
        "eBPF µs",
        "lost",
        "drops",
        "peak RSS",
    );
}

pub fn print(r: &Run) {
    let c = &r.cpu;
    println!(
        "{:>8} {:>8.0} {:>8.0} {:>7.2} {:>7.2} {:>7.2} {:>7.2} {:>8.1} {:>8.2} {:>6} {:>6} {:>5} MiB  {}",
        r.rate,
        r.exec_rate(),
        r.events as f64 / r.load_secs,
        c.pct(c.total()),
        c.pct(c.agent),
        c.pct(c.rsyslog),
        c.pct(c.ebpf),
        r.agent_us(),
        r.ebpf_us(),
        r.execs.saturating_sub(r.events),
        r.kernel_drops,
        r.peak_rss_kib / 1024,
        r.latency,
    );
    // Every exec also forks and exits: the busy programs, per exec of ours (other
    // processes' runs included, so a floor of noise at low rates).
    println!(
        "         eBPF per exec: {}",
        probe::per_program(&r.progs, r.execs)
    );
}

/// Other processes on the machine make events too, so the agent is never idle: the cost of
/// one exec is the slope of CPU over exec rate, between the lowest and highest rate.
pub fn slope(runs: &[Run], sink: &str) {
    let point = |r: &Run| (r.exec_rate(), r.cpu.agent / r.cpu.wall);
    if let (Some(lo), Some(hi)) = (runs.first().map(point), runs.last().map(point))
        && hi.0 > lo.0
    {
        let us = (hi.1 - lo.1) / (hi.0 - lo.0) * 1e6;
        println!(
            "marginal agent CPU per exec with {sink} (slope {:.0}/s → {:.0}/s): {us:.1} µs",
            lo.0, hi.0
        );
    }
}

/// One rate against the installed daemon (`sysmon -i` into a temporary root, events split
/// into its sysmon.log by a private rsyslogd): the service as users run it.
pub fn one(rate: u32, length: Duration, sink: &str, config: Option<&Path>) -> Run {
    let t = Install::new("bench");
    let config = config.map(|c| c.to_string_lossy().into_owned());
    let mut install = vec!["-accepteula", "-i"];
    install.extend(config.as_deref());
    t.ok(&[&install[..], &["-o", sink]].concat());
    let token = format!("bench-{}", unique());
    // The events the sink got: ProcessCreate of our execs, and the KernelDrops texts.
    let read = || -> (u64, Vec<String>) {
        let ours = |id: u16, cmd: &str| id == 1 && cmd.contains(&token);
        let from_xml = |evs: Vec<events::Event>| {
            let n = evs
                .iter()
                .filter(|e| ours(e.id, e.get("CommandLine").unwrap_or("")))
                .count() as u64;
            let drops = evs
                .iter()
                .filter(|e| e.id == 255 && e.get("ID") == Some("KernelDrops"))
                .map(|e| e.get("Description").unwrap_or("").to_string())
                .collect();
            (n, drops)
        };
        match sink {
            "json" => {
                let l = lines(&t.path("var/log/sysmon/sysmon.json"));
                let n = l
                    .iter()
                    .filter(|l| l.contains("\"EventID\":1,") && l.contains(&token))
                    .count() as u64;
                let drops = l
                    .iter()
                    .filter(|l| l.contains("KernelDrops"))
                    .cloned()
                    .collect();
                (n, drops)
            }
            "xml" => from_xml(events::parse_lines(&lines(
                &t.path("var/log/sysmon/sysmon.xml"),
            ))),
            _ => from_xml(t.events()),
        }
    };
    let agent = t.daemon().expect("the daemon runs") as u32;
    let rsyslog = t.syslog.pid().unwrap_or(0) as u32;
    probe::reset_peak(agent);
    let meter = probe::Meter::start(agent, rsyslog);
    let start = Instant::now();

    // One fork+exec+wait takes about a millisecond here, so high rates need several
    // generators, each paced to its share.
    let threads = rate.div_ceil(300).max(1);
    let execs: u64 = std::thread::scope(|s| {
        let gens: Vec<_> = (0..threads)
            .map(|_| s.spawn(|| generate(rate as f64 / threads as f64, length, &token, start)))
            .collect();
        gens.into_iter().map(|g| g.join().unwrap()).sum()
    });
    let load_secs = start.elapsed().as_secs_f64();
    let events = probe::settle(execs, || read().0, Duration::from_millis(200));
    let (cpu, progs) = meter.stop();
    let peak_rss_kib = probe::status_kib(agent, "VmHWM:");
    let latency = probe::uninstall(&t);
    let kernel_drops = probe::kernel_drops(read().1.iter().map(String::as_str));
    Run {
        rate,
        execs,
        events,
        load_secs,
        cpu,
        peak_rss_kib,
        kernel_drops,
        progs,
        latency,
    }
}

/// Execs `/bin/true <token>` at `rate` per second until `length` has passed since `start`.
fn generate(rate: f64, length: Duration, token: &str, start: Instant) -> u64 {
    let period = Duration::from_secs_f64(1.0 / rate);
    let mut execs = 0u64;
    while start.elapsed() < length {
        if Command::new("/bin/true")
            .arg(token)
            .status()
            .is_ok_and(|s| s.success())
        {
            execs += 1;
        }
        if let Some(wait) = (period * execs as u32).checked_sub(start.elapsed()) {
            std::thread::sleep(wait);
        }
    }
    execs
}
