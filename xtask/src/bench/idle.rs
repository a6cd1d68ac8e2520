//! The daemon with nothing of ours to do, and its memory with many live processes.

use std::{
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use sysmon_tests::{cpu_secs, service::Install};

use super::probe;

pub struct Idle {
    pub secs: f64,
    pub cpu_pct: f64,
    pub wakeups_per_sec: f64,
    /// eBPF program runs in the window: other processes' activity (0: truly idle).
    pub ebpf_runs: u64,
    pub rss_mib: f64,
}

/// CPU and wake-ups per second of the installed daemon over `length`. Other processes on
/// the machine may still make events (counted in `ebpf_runs`), so this is an upper bound.
pub fn idle(length: Duration) -> Idle {
    let t = Install::new("bench-idle");
    t.ok(&["-accepteula", "-i"]);
    let agent = t.daemon().expect("the daemon runs") as u32;
    // Past start-up (seeding, the first drains) and asleep on the ring.
    std::thread::sleep(Duration::from_secs(2));
    let (cpu0, w0, progs0) = (
        cpu_secs(agent),
        probe::wakeups(agent),
        probe::prog_stats(agent),
    );
    std::thread::sleep(length);
    let secs = length.as_secs_f64();
    let progs = probe::prog_delta(&progs0, &probe::prog_stats(agent));
    let r = Idle {
        secs,
        cpu_pct: (cpu_secs(agent) - cpu0) / secs * 100.0,
        wakeups_per_sec: (probe::wakeups(agent) - w0) as f64 / secs,
        ebpf_runs: progs.iter().map(|p| p.2).sum(),
        rss_mib: probe::rss_mib(agent),
    };
    println!(
        "idle {:.0} s: agent CPU {:.3}% of a core, {:.1} wake-ups/s (all threads), \
         {} eBPF runs (other processes' activity), RSS {:.1} MiB",
        r.secs, r.cpu_pct, r.wakeups_per_sec, r.ebpf_runs, r.rss_mib
    );
    t.ok(&["-u"]);
    r
}

/// The daemon's RSS before and with `n` live processes (`sleep`, each started and seen
/// by the agent, so all are in its process cache).
pub fn live(n: u32) -> (f64, f64) {
    let t = Install::new("bench-live");
    t.ok(&["-accepteula", "-i"]);
    let agent = t.daemon().expect("the daemon runs") as u32;
    std::thread::sleep(Duration::from_secs(1));
    let before = probe::rss_mib(agent);
    probe::reset_peak(agent);
    let start = Instant::now();
    let mut kids: Vec<Child> = (0..n)
        .filter_map(|_| {
            Command::new("sleep")
                .arg("3600")
                .stdin(Stdio::null())
                .spawn()
                .ok()
        })
        .collect();
    // Let the agent read every exec (its cache holds them all once their events are out).
    std::thread::sleep(Duration::from_secs(3));
    let with = probe::rss_mib(agent);
    println!(
        "{} live processes (started in {:.0} s): daemon RSS {before:.1} MiB → {with:.1} MiB, \
         peak since {:.1} MiB",
        kids.len(),
        start.elapsed().as_secs_f64(),
        probe::status_kib(agent, "VmHWM:") as f64 / 1024.0
    );
    for k in &mut kids {
        let _ = k.kill();
    }
    for k in &mut kids {
        let _ = k.wait();
    }
    t.ok(&["-u"]);
    (before, with)
}
