//! Exec storms at fixed rates with the installed daemon running (default config, real
//! rsyslogd), once per sink (`-o syslog`, `-o json`, `-o xml`): the agent's CPU (user+sys
//! over the run), events per second, lost events, peak RSS, rsyslogd's CPU.

use std::{
    path::Path,
    process::Command,
    time::{Duration, Instant},
};

use anyhow::Result;
use sysmon_tests::{
    cpu_secs, events,
    service::{Install, lines},
    unique,
};

#[derive(clap::Args)]
pub struct Args {
    /// Exec rates to run, per second.
    #[arg(long, value_delimiter = ',', default_value = "100,400,1600")]
    rates: Vec<u32>,
    /// Seconds of load at each rate.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Sinks to measure, each alone (`-o <sink>`).
    #[arg(long, value_delimiter = ',', default_value = "syslog,json,xml")]
    sinks: Vec<String>,
    /// Seconds to measure the daemon idle (no load of ours) before the storms; 0: skip.
    #[arg(long, default_value_t = 10)]
    idle: u64,
    /// Instead of the storms: N execs as fast as one generator per core goes, printing
    /// RSS and CPU per 100 000.
    #[arg(long)]
    soak: Option<u64>,
}

pub fn run(bin: &Path, args: &Args) -> Result<()> {
    // SAFETY: set before any thread starts.
    unsafe { std::env::set_var("SYSMON_BIN", bin) };
    // eBPF run time per program is only counted while this is on; off again after.
    let _stats = BpfStats::on();
    if let Some(n) = args.soak {
        soak(n);
        return Ok(());
    }
    if args.idle > 0 {
        idle(Duration::from_secs(args.idle));
    }
    for sink in &args.sinks {
        if !matches!(sink.as_str(), "syslog" | "json" | "xml") {
            anyhow::bail!("--sinks: {sink}? (syslog, json, xml)");
        }
        println!("\nsink: {sink}");
        one_sink(sink, args);
    }
    Ok(())
}

fn one_sink(sink: &str, args: &Args) {
    println!(
        "{:>8} {:>10} {:>9} {:>10} {:>9} {:>9} {:>8} {:>8} {:>9} {:>10}",
        "target/s",
        "execs/s",
        "events/s",
        "agent CPU%",
        "µs/exec",
        "eBPF µs",
        "lost",
        "drops",
        "peak RSS",
        "rsyslog%"
    );
    let mut points = vec![];
    for &rate in &args.rates {
        let r = one(rate, Duration::from_secs(args.seconds), sink);
        points.push((r.execs as f64 / r.load_secs, r.agent_cpu_secs / r.wall_secs));
        let ebpf_ns: u64 = r.progs.iter().map(|p| p.1).sum();
        println!(
            "{:>8} {:>10.0} {:>9.0} {:>10.2} {:>9.1} {:>9.2} {:>8} {:>8} {:>6} MiB {:>10.2}",
            rate,
            r.execs as f64 / r.load_secs,
            r.events as f64 / r.load_secs,
            r.agent_cpu_secs / r.wall_secs * 100.0,
            r.agent_cpu_secs / r.execs.max(1) as f64 * 1e6,
            ebpf_ns as f64 / r.execs.max(1) as f64 / 1e3,
            r.execs.saturating_sub(r.events),
            r.kernel_drops,
            r.peak_rss_kib / 1024,
            r.rsyslog_cpu_secs / r.wall_secs * 100.0,
        );
        // Every exec also forks and exits: the busy programs, per exec of ours (other
        // processes' runs included, so a floor of noise at low rates).
        let busy: Vec<String> = r
            .progs
            .iter()
            .filter(|p| p.2 > 0)
            .map(|p| {
                format!(
                    "{} {:.2} µs ({} runs)",
                    p.0,
                    p.1 as f64 / r.execs.max(1) as f64 / 1e3,
                    p.2
                )
            })
            .collect();
        println!("         eBPF per exec: {}", busy.join(", "));
    }
    // Other processes on the machine make events too, so the agent is never idle: the
    // cost of one exec is the slope of CPU over exec rate, between the lowest and highest.
    if let (Some(lo), Some(hi)) = (points.first(), points.last())
        && hi.0 > lo.0
    {
        let us = (hi.1 - lo.1) / (hi.0 - lo.0) * 1e6;
        println!(
            "marginal agent CPU per exec with {sink} (slope {:.0}/s → {:.0}/s): {us:.1} µs",
            lo.0, hi.0
        );
    }
}

struct Run {
    execs: u64,
    events: u64,
    load_secs: f64,
    wall_secs: f64,
    agent_cpu_secs: f64,
    rsyslog_cpu_secs: f64,
    peak_rss_kib: u64,
    kernel_drops: u64,
    /// Per program: name, run time (ns) and runs during the load.
    progs: Vec<(String, u64, u64)>,
}

/// One rate against the installed daemon (`sysmon -i` into a temporary root, events split
/// into its sysmon.log by a private rsyslogd): the service as users run it.
fn one(rate: u32, length: Duration, sink: &str) -> Run {
    let t = Install::new("bench");
    t.ok(&["-accepteula", "-i", "-o", sink]);
    // The events the sink got, as (EventID, ID, Description, CommandLine).
    let read = || -> Vec<(u16, String, String, String)> {
        let get = |e: &events::Event, k: &str| e.get(k).unwrap_or("").to_string();
        let from_xml = |evs: Vec<events::Event>| {
            evs.iter()
                .map(|e| {
                    (
                        e.id,
                        get(e, "ID"),
                        get(e, "Description"),
                        get(e, "CommandLine"),
                    )
                })
                .collect()
        };
        match sink {
            "json" => lines(&t.path("var/log/sysmon/sysmon.json"))
                .iter()
                .map(|l| {
                    let id = json_str(l, "\"EventID\":", ",").parse().unwrap_or(0);
                    let s = |k: &str| json_str(l, &format!("\"{k}\":\""), "\"").to_string();
                    (id, s("ID"), s("Description"), s("CommandLine"))
                })
                .collect(),
            "xml" => from_xml(events::parse_lines(&lines(
                &t.path("var/log/sysmon/sysmon.xml"),
            ))),
            _ => from_xml(t.events()),
        }
    };
    let agent = t.daemon().expect("the daemon runs") as u32;
    let rsyslog_pid = t.syslog.pid().unwrap_or(0) as u32;
    let token = format!("bench-{}", unique());
    let (cpu0, rs0) = (cpu_secs(agent), cpu_secs(rsyslog_pid));
    let progs0 = prog_stats(agent);
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
    let progs = prog_delta(&progs0, &prog_stats(agent));
    // Let the agent catch up: wait until every exec is logged or nothing moves for 3 s.
    let count = || {
        read()
            .iter()
            .filter(|e| e.0 == 1 && e.3.contains(&token))
            .count() as u64
    };
    let (mut last, mut still) = (0, Instant::now());
    loop {
        let n = count();
        if n >= execs || still.elapsed() > Duration::from_secs(3) {
            break;
        }
        if n != last {
            (last, still) = (n, Instant::now());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let wall_secs = start.elapsed().as_secs_f64();
    let agent_cpu_secs = cpu_secs(agent) - cpu0;
    let rsyslog_cpu_secs = cpu_secs(rsyslog_pid) - rs0;
    let peak_rss_kib = status_kib(agent, "VmHWM:");
    let events = count();
    t.ok(&["-u"]);
    // Lost kernel records are reported as event 255 KernelDrops ("lost N <kind> records").
    let kernel_drops = read()
        .iter()
        .filter(|e| e.0 == 255 && e.1 == "KernelDrops")
        .filter_map(|e| Some(e.2.split("lost ").nth(1)?.to_owned()))
        .flat_map(|lost| {
            lost.split(", ")
                .filter_map(|part| part.split(' ').next()?.parse::<u64>().ok())
                .collect::<Vec<_>>()
        })
        .sum();
    Run {
        execs,
        events,
        load_secs,
        wall_secs,
        agent_cpu_secs,
        rsyslog_cpu_secs,
        peak_rss_kib,
        kernel_drops,
        progs,
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

/// The text between `key` and the next `end` in a JSON line (enough for our own lines,
/// whose values here hold no escaped quotes).
fn json_str<'a>(line: &'a str, key: &str, end: &str) -> &'a str {
    let Some(at) = line.find(key).map(|i| i + key.len()) else {
        return "";
    };
    line[at..].find(end).map_or("", |e| &line[at..at + e])
}

fn status_kib(pid: u32, key: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix(key)?
                .trim()
                .strip_suffix("kB")?
                .trim()
                .parse()
                .ok()
        })
        .unwrap_or(0)
}

/// `kernel.bpf_stats_enabled` on for the bench, back to what it was after.
struct BpfStats(Option<String>);

const BPF_STATS: &str = "/proc/sys/kernel/bpf_stats_enabled";

impl BpfStats {
    fn on() -> Self {
        let was = std::fs::read_to_string(BPF_STATS).ok();
        if let Err(e) = std::fs::write(BPF_STATS, "1") {
            eprintln!("bench: {BPF_STATS}: {e} (eBPF times will read 0)");
        }
        BpfStats(was)
    }
}

impl Drop for BpfStats {
    fn drop(&mut self) {
        if let Some(was) = &self.0 {
            let _ = std::fs::write(BPF_STATS, was.trim());
        }
    }
}

/// The programs `pid` holds (by the prog_id lines of its fds), as id -> (name, ns, runs).
fn prog_stats(pid: u32) -> std::collections::BTreeMap<u32, (String, u64, u64)> {
    let mut ids = std::collections::BTreeSet::new();
    if let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/fdinfo")) {
        for e in dir.flatten() {
            let info = std::fs::read_to_string(e.path()).unwrap_or_default();
            if let Some(id) = info.lines().find_map(|l| l.strip_prefix("prog_id:")) {
                ids.extend(id.trim().parse::<u32>().ok());
            }
        }
    }
    aya::programs::loaded_programs()
        .flatten()
        .filter(|p| ids.contains(&p.id()))
        .map(|p| {
            let name = p.name_as_str().unwrap_or("?").to_string();
            (
                p.id(),
                (name, p.run_time().as_nanos() as u64, p.run_count()),
            )
        })
        .collect()
}

fn prog_delta(
    before: &std::collections::BTreeMap<u32, (String, u64, u64)>,
    after: &std::collections::BTreeMap<u32, (String, u64, u64)>,
) -> Vec<(String, u64, u64)> {
    let mut v: Vec<_> = after
        .iter()
        .map(|(id, (name, ns, n))| {
            let (ns0, n0) = before.get(id).map_or((0, 0), |b| (b.1, b.2));
            (name.clone(), ns - ns0, n - n0)
        })
        .collect();
    v.sort_by_key(|p| std::cmp::Reverse(p.1));
    v
}

/// Context switches of every thread of `pid`: how often it woke up.
fn wakeups(pid: u32) -> u64 {
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    dir.flatten()
        .map(|t| {
            std::fs::read_to_string(t.path().join("status"))
                .unwrap_or_default()
                .lines()
                .filter_map(|l| {
                    l.strip_prefix("voluntary_ctxt_switches:")
                        .or_else(|| l.strip_prefix("nonvoluntary_ctxt_switches:"))
                })
                .filter_map(|v| v.trim().parse::<u64>().ok())
                .sum::<u64>()
        })
        .sum()
}

/// The installed daemon with nothing of ours to do: CPU and wake-ups per second. Other
/// processes on the machine still make events, so this is an upper bound.
fn idle(length: Duration) {
    let t = Install::new("bench-idle");
    t.ok(&["-accepteula", "-i"]);
    let agent = t.daemon().expect("the daemon runs") as u32;
    // Past start-up (seeding, the first sweep).
    std::thread::sleep(Duration::from_secs(2));
    let (cpu0, w0, progs0) = (cpu_secs(agent), wakeups(agent), prog_stats(agent));
    std::thread::sleep(length);
    let secs = length.as_secs_f64();
    let cpu = cpu_secs(agent) - cpu0;
    let w = wakeups(agent) - w0;
    let ebpf: u64 = prog_delta(&progs0, &prog_stats(agent))
        .iter()
        .map(|p| p.1)
        .sum();
    println!(
        "idle {secs:.0} s: agent CPU {:.3}% of a core, {:.1} wake-ups/s (all threads), \
         eBPF {:.3}% (other processes' events), RSS {} MiB",
        cpu / secs * 100.0,
        w as f64 / secs,
        ebpf as f64 / 1e9 / secs * 100.0,
        status_kib(agent, "VmRSS:") / 1024
    );
    t.ok(&["-u"]);
}

/// `n` execs, as fast as one generator per core goes, with RSS and CPU per 100 000.
fn soak(n: u64) {
    let t = Install::new("bench-soak");
    t.ok(&["-accepteula", "-i"]);
    let agent = t.daemon().expect("the daemon runs") as u32;
    let token = format!("soak-{}", unique());
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    println!(
        "{:>9} {:>8} {:>10} {:>9} {:>10} {:>9}",
        "execs", "secs", "execs/s", "RSS MiB", "CPU s/100k", "eBPF s/100k"
    );
    const STEP: u64 = 100_000;
    let mut done = 0;
    let (mut cpu0, mut progs0) = (cpu_secs(agent), prog_stats(agent));
    while done < n {
        let step = STEP.min(n - done);
        let start = Instant::now();
        std::thread::scope(|s| {
            for i in 0..threads as u64 {
                let token = &token;
                let share = step / threads as u64 + u64::from(i < step % threads as u64);
                s.spawn(move || {
                    for _ in 0..share {
                        let _ = Command::new("/bin/true").arg(token).status();
                    }
                });
            }
        });
        done += step;
        let secs = start.elapsed().as_secs_f64();
        let (cpu, progs) = (cpu_secs(agent), prog_stats(agent));
        let ebpf: u64 = prog_delta(&progs0, &progs).iter().map(|p| p.1).sum();
        let per = STEP as f64 / step as f64;
        println!(
            "{:>9} {:>8.0} {:>10.0} {:>9.1} {:>10.2} {:>9.2}",
            done,
            secs,
            step as f64 / secs,
            status_kib(agent, "VmRSS:") as f64 / 1024.0,
            (cpu - cpu0) * per,
            ebpf as f64 / 1e9 * per
        );
        (cpu0, progs0) = (cpu, progs);
    }
    t.ok(&["-u"]);
}
