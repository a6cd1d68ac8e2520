//! Long runs: RSS and CPU per 100 000 execs, then per 100 000 file creations, in one
//! daemon (FileCreate logged), to show both stay flat.

use std::{process::Command, time::Instant};

use sysmon_tests::{cpu_secs, unique};

use super::{files, probe};

const STEP: u64 = 100_000;

pub fn soak(n: u64) {
    let t = files::install("bench-soak");
    let agent = t.daemon().expect("the daemon runs") as u32;
    let token = format!("soak-{}", unique());
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get()) as u64;
    steps("execs", agent, n, |step| {
        std::thread::scope(|s| {
            for i in 0..threads {
                let token = &token;
                let share = step / threads + u64::from(i < step % threads);
                s.spawn(move || {
                    for _ in 0..share {
                        let _ = Command::new("/bin/true").arg(token).status();
                    }
                });
            }
        });
    });
    files::soak(&t, agent, n);
    let latency = probe::uninstall(&t);
    println!("latency record to sink over the soak, p50/p99/max: {latency}");
}

/// Runs `work` on steps of up to 100 000 until `n`, printing after each: rate, RSS, and the
/// agent's CPU and its programs' eBPF time per 100 000.
pub fn steps(what: &str, agent: u32, n: u64, mut work: impl FnMut(u64)) {
    println!(
        "{:>10} {:>8} {:>10} {:>9} {:>10} {:>11}",
        what, "secs", "per s", "RSS MiB", "CPU s/100k", "eBPF s/100k"
    );
    let mut done = 0;
    let (mut cpu0, mut progs0) = (cpu_secs(agent), probe::prog_stats(agent));
    while done < n {
        let step = STEP.min(n - done);
        let start = Instant::now();
        work(step);
        done += step;
        let secs = start.elapsed().as_secs_f64();
        let (cpu, progs) = (cpu_secs(agent), probe::prog_stats(agent));
        let ebpf = probe::total_ns(&probe::prog_delta(&progs0, &progs));
        let per = STEP as f64 / step as f64;
        println!(
            "{:>10} {:>8.0} {:>10.0} {:>9.1} {:>10.2} {:>11.2}",
            done,
            secs,
            step as f64 / secs,
            probe::rss_mib(agent),
            (cpu - cpu0) * per,
            ebpf as f64 / 1e9 * per
        );
        (cpu0, progs0) = (cpu, progs);
    }
}
