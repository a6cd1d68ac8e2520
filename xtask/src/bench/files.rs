//! File-creation storms with FileCreate logged: loss, counted drops, cost and latency.

use std::{
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use sysmon_tests::{config_logging, service::Install, unique};

use super::probe::{self, Cpu, Latency};

/// The daemon installed with FileCreate logged (besides the defaults).
pub fn install(tag: &str) -> Install {
    let t = Install::new(tag);
    let config = t.path("files.xml");
    std::fs::write(&config, config_logging(&["FileCreate"])).expect("writing the config");
    t.ok(&["-accepteula", "-i", config.to_str().unwrap()]);
    t
}

/// Where the generated files go: tmpfs (`/dev/shm`) when there is one, so the disk (and
/// the log the storm writes to it) does not set the pace; else the install's root.
fn scratch(t: &Install, name: &str) -> PathBuf {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        shm.join(name)
    } else {
        t.path(name)
    }
}

pub struct Storm {
    pub target: u32,
    pub created: u64,
    pub secs: f64,
    pub events: u64,
    pub drops: u64,
    pub agent_us: f64,
    pub ebpf_us: f64,
    /// From the start of the storm until the last event was in the log.
    pub cpu: Cpu,
    pub latency: Latency,
}

impl Storm {
    pub fn lost(&self) -> u64 {
        self.created.saturating_sub(self.events)
    }
}

/// `rate` creations per second for `length`, by one paced generator per core.
pub fn storm(rate: u32, length: Duration) -> Storm {
    let t = install("bench-storm");
    let agent = t.daemon().expect("the daemon runs") as u32;
    let token = format!("storm-{}", unique());
    let dir = scratch(&t, &token);
    std::fs::create_dir(&dir).expect("the storm's directory");
    let meter = probe::Meter::start(agent, t.syslog.pid().unwrap_or(0) as u32);
    let start = Instant::now();
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get()) as u32;
    let created: u64 = std::thread::scope(|s| {
        let gens: Vec<_> = (0..threads)
            .map(|i| {
                let dir = &dir;
                s.spawn(move || paced(dir, i, rate as f64 / threads as f64, length, start))
            })
            .collect();
        gens.into_iter().map(|g| g.join().unwrap()).sum()
    });
    let secs = start.elapsed().as_secs_f64();
    let log = t.path("var/log/sysmon.log");
    let events = probe::settle(
        created,
        || probe::count_lines(&log, &["<EventID>11</EventID>", &token]),
        Duration::from_secs(1),
    );
    let (cpu, progs) = meter.stop();
    let latency = probe::uninstall(&t);
    let drops = probe::kernel_drops(
        sysmon_tests::service::lines(&log)
            .iter()
            .filter(|l| l.contains("KernelDrops"))
            .map(String::as_str),
    );
    println!(
        "         eBPF per creation: {}",
        probe::per_program(&progs, created)
    );
    let _ = std::fs::remove_dir_all(&dir);
    Storm {
        target: rate,
        created,
        secs,
        events,
        drops,
        agent_us: cpu.agent / created.max(1) as f64 * 1e6,
        ebpf_us: cpu.ebpf / created.max(1) as f64 * 1e6,
        cpu,
        latency,
    }
}

pub fn print(s: &Storm) {
    println!(
        "file storm {}/s: {} created in {:.1} s ({:.0}/s), {} events, {} lost, {} kernel drops \
         reported, agent {:.1} µs and eBPF {:.2} µs per creation, CPU % of a core {} (total \
         (agent + rsyslogd + eBPF)), latency p50/p99/max {}",
        s.target,
        s.created,
        s.secs,
        s.created as f64 / s.secs,
        s.events,
        s.lost(),
        s.drops,
        s.agent_us,
        s.ebpf_us,
        s.cpu,
        s.latency
    );
}

/// Creates files `<dir>/<gen>-<n>` at `rate` per second until `length` has passed since
/// `start` (in bursts each millisecond, as far as the machine keeps up).
fn paced(dir: &Path, gen_id: u32, rate: f64, length: Duration, start: Instant) -> u64 {
    let (mut n, mut ok) = (0u64, 0u64);
    let mut path = PathBuf::from(dir);
    while start.elapsed() < length {
        let due = (start.elapsed().as_secs_f64() * rate) as u64;
        while n < due {
            path.push(format!("{gen_id}-{n}"));
            ok += u64::from(std::fs::File::create(&path).is_ok());
            n += 1;
            path.pop();
        }
        std::thread::sleep(Duration::from_micros(500));
    }
    ok
}

/// `n` creations as fast as one generator per core goes (in steps of 100 000, each
/// step's files removed after it), printing RSS and CPU per 100 000.
pub fn soak(t: &Install, agent: u32, n: u64) {
    let token = format!("soak-{}", unique());
    let dir = scratch(t, &token);
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get()) as u64;
    super::soak::steps("creations", agent, n, |step| {
        std::fs::create_dir_all(&dir).expect("the soak's directory");
        std::thread::scope(|s| {
            for i in 0..threads {
                let share = step / threads + u64::from(i < step % threads);
                let dir = &dir;
                s.spawn(move || {
                    for k in 0..share {
                        let _ = std::fs::File::create(dir.join(format!("{i}-{k}")));
                    }
                });
            }
        });
        let _ = std::fs::remove_dir_all(&dir);
    });
}
