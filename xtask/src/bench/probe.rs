//! What the bench reads about the running daemon: CPU, memory, wake-ups, the eBPF run time
//! of its programs, and the latency summary of its stop line.

use std::{
    collections::{BTreeMap, BTreeSet},
    io::BufRead,
    path::Path,
    time::{Duration, Instant},
};

use sysmon_tests::{cpu_secs, service::Install};

pub fn status_kib(pid: u32, key: &str) -> u64 {
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

/// Resets `pid`'s peak RSS (VmHWM) to its current RSS: start-up (parsing the kernel's BTF)
/// peaks higher than the daemon ever runs, and the peak of interest is the load's.
pub fn reset_peak(pid: u32) {
    if let Err(e) = std::fs::write(format!("/proc/{pid}/clear_refs"), "5") {
        eprintln!("bench: resetting the peak RSS of {pid}: {e}");
    }
}

pub fn rss_mib(pid: u32) -> f64 {
    status_kib(pid, "VmRSS:") as f64 / 1024.0
}

/// `kernel.bpf_stats_enabled` on for the bench, back to what it was after.
pub struct BpfStats(Option<String>);

const BPF_STATS: &str = "/proc/sys/kernel/bpf_stats_enabled";

impl BpfStats {
    pub fn on() -> Self {
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

/// Per program id: name, run time (ns), runs.
pub type Progs = BTreeMap<u32, (String, u64, u64)>;

/// The programs `pid` holds (by the prog_id lines of its fds).
pub fn prog_stats(pid: u32) -> Progs {
    let mut ids = BTreeSet::new();
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

/// Name, ns and runs per program between two readings, busiest first.
pub fn prog_delta(before: &Progs, after: &Progs) -> Vec<(String, u64, u64)> {
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

pub fn total_ns(progs: &[(String, u64, u64)]) -> u64 {
    progs.iter().map(|p| p.1).sum()
}

/// The busy programs, each as µs per unit of work (`per` units).
pub fn per_program(progs: &[(String, u64, u64)], per: u64) -> String {
    progs
        .iter()
        .filter(|p| p.2 > 0)
        .map(|p| {
            format!(
                "{} {:.2} µs ({} runs)",
                p.0,
                p.1 as f64 / per.max(1) as f64 / 1e3,
                p.2
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Context switches of every thread of `pid`: how often it woke up.
pub fn wakeups(pid: u32) -> u64 {
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

/// CPU seconds over a window of the whole path an event takes: the daemon, the syslog
/// daemon it writes to, and its eBPF programs.
#[derive(Clone, Copy, Default)]
pub struct Cpu {
    pub agent: f64,
    pub rsyslog: f64,
    pub ebpf: f64,
    pub wall: f64,
}

impl Cpu {
    pub fn total(&self) -> f64 {
        self.agent + self.rsyslog + self.ebpf
    }

    /// `secs` as a percentage of one core over the window.
    pub fn pct(&self, secs: f64) -> f64 {
        secs / self.wall.max(1e-9) * 100.0
    }
}

impl std::fmt::Display for Cpu {
    /// `total (agent + rsyslogd + eBPF)`, in % of one core.
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(
            f,
            "{:.2} ({:.2} + {:.2} + {:.2})",
            self.pct(self.total()),
            self.pct(self.agent),
            self.pct(self.rsyslog),
            self.pct(self.ebpf)
        )
    }
}

/// Measures [`Cpu`] from `start` to `stop`.
pub struct Meter {
    agent: u32,
    rsyslog: u32,
    cpu0: (f64, f64),
    progs0: Progs,
    start: Instant,
}

impl Meter {
    pub fn start(agent: u32, rsyslog: u32) -> Meter {
        Meter {
            agent,
            rsyslog,
            cpu0: (cpu_secs(agent), cpu_secs(rsyslog)),
            progs0: prog_stats(agent),
            start: Instant::now(),
        }
    }

    /// The CPU since `start`, and the run time of each program.
    pub fn stop(&self) -> (Cpu, Vec<(String, u64, u64)>) {
        let progs = prog_delta(&self.progs0, &prog_stats(self.agent));
        let cpu = Cpu {
            agent: cpu_secs(self.agent) - self.cpu0.0,
            rsyslog: cpu_secs(self.rsyslog) - self.cpu0.1,
            ebpf: total_ns(&progs) as f64 / 1e9,
            wall: self.start.elapsed().as_secs_f64(),
        };
        (cpu, progs)
    }
}

/// Record-to-sink latency from the daemon's stop line: (p50, p99, max), ms.
#[derive(Clone, Copy, Default)]
pub struct Latency {
    pub p50: f64,
    pub p99: f64,
    pub max: f64,
}

impl std::fmt::Display for Latency {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(f, "{:.2} / {:.2} / {:.1} ms", self.p50, self.p99, self.max)
    }
}

/// Stops the daemon (`-u`) and reads the latency its stop line reports (through syslog,
/// as `sysmon-daemon`).
pub fn uninstall(t: &Install) -> Latency {
    t.ok(&["-u"]);
    const KEY: &str = "latency record to sink ";
    let until = Instant::now() + Duration::from_secs(5);
    while Instant::now() < until {
        if let Some(l) = t.syslog.lines().iter().rev().find_map(|l| {
            let rest = &l[l.find(KEY)? + KEY.len()..];
            println!("         daemon: {}", &l[l.find("stopped;")?..]);
            let ms = |k: &str| -> Option<f64> {
                let at = rest.find(k)? + k.len();
                rest[at..].split(' ').next()?.parse().ok()
            };
            Some(Latency {
                p50: ms("p50 ")?,
                p99: ms("p99 ")?,
                max: ms("max ")?,
            })
        }) {
            return l;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    eprintln!("bench: no stop line with the latency in syslog");
    Latency::default()
}

/// Lines of a (large) log file that hold every one of `needles`.
pub fn count_lines(path: &Path, needles: &[&str]) -> u64 {
    let Ok(f) = std::fs::File::open(path) else {
        return 0;
    };
    std::io::BufReader::with_capacity(1 << 20, f)
        .split(b'\n')
        .map_while(Result::ok)
        .filter(|l| {
            needles
                .iter()
                .all(|n| l.windows(n.len()).any(|w| w == n.as_bytes()))
        })
        .count() as u64
}

/// Waits until `count` reaches `want` or stops moving for 3 s; its last value.
pub fn settle(want: u64, mut count: impl FnMut() -> u64, every: Duration) -> u64 {
    let (mut last, mut still) = (0, Instant::now());
    loop {
        let n = count();
        if n >= want || still.elapsed() > Duration::from_secs(3) {
            return n;
        }
        if n != last {
            (last, still) = (n, Instant::now());
        }
        std::thread::sleep(every);
    }
}

/// Kernel records lost, from the event-255 `KernelDrops` lines ("<why>: lost N <kind>
/// records, M <kind> records; <why>: lost ...").
pub fn kernel_drops<'a>(descriptions: impl Iterator<Item = &'a str>) -> u64 {
    descriptions
        .flat_map(|d| d.split("lost ").skip(1))
        .flat_map(|lost| {
            let clause = lost.split(';').next().unwrap_or("");
            clause
                .split(", ")
                .filter_map(|part| part.split(' ').next()?.parse::<u64>().ok())
        })
        .sum()
}
