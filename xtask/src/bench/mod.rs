//! `cargo xtask bench`: the installed daemon (real rsyslogd) measured idle, with many live
//! processes, under exec storms at fixed rates (once per sink) and under a file-creation
//! storm, ending with one summary table. `--soak N` instead runs N execs and N file
//! creations and prints RSS and CPU per 100 000.

mod execs;
mod files;
mod idle;
mod probe;
mod soak;

use std::{path::Path, time::Duration};

use anyhow::Result;

#[derive(clap::Args)]
pub struct Args {
    /// Exec rates to run, per second.
    #[arg(long, value_delimiter = ',', default_value = "100,400,1600")]
    rates: Vec<u32>,
    /// Seconds of load at each rate, and of the file storm.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// The exec storms' configuration (default: Sysmon's defaults, events 1 and 5). The
    /// "lost" column counts our execs without a ProcessCreate, so it means something only
    /// when the configuration logs them.
    #[arg(long)]
    config: Option<std::path::PathBuf>,
    /// Sinks to measure, each alone (`-o <sink>`).
    #[arg(long, value_delimiter = ',', default_value = "syslog,json,xml")]
    sinks: Vec<String>,
    /// Seconds to measure the daemon idle (no load of ours) first; 0: skip.
    #[arg(long, default_value_t = 10)]
    idle: u64,
    /// Live processes to start to measure the daemon's RSS with them cached; 0: skip.
    #[arg(long, default_value_t = 10_000)]
    live: u32,
    /// File creations per second in the storm (FileCreate logged); 0: skip.
    #[arg(long, default_value_t = 50_000)]
    storm: u32,
    /// Instead of the rest: N execs, then N file creations, as fast as one generator per
    /// core goes, printing RSS and CPU per 100 000.
    #[arg(long)]
    soak: Option<u64>,
}

pub fn run(bin: &Path, args: &Args) -> Result<()> {
    // SAFETY: set before any thread starts.
    unsafe { std::env::set_var("SYSMON_BIN", bin) };
    for sink in &args.sinks {
        if !matches!(sink.as_str(), "syslog" | "json" | "xml") {
            anyhow::bail!("--sinks: {sink}? (syslog, json, xml)");
        }
    }
    // eBPF run time per program is only counted while this is on; off again after.
    let _stats = probe::BpfStats::on();
    if let Some(n) = args.soak {
        soak::soak(n);
        return Ok(());
    }
    let mut table = Table::default();
    if args.idle > 0 {
        let i = idle::idle(Duration::from_secs(args.idle));
        table.row(
            "idle: agent CPU, wake-ups/s",
            format!("{:.3}% of a core, {:.1}/s", i.cpu_pct, i.wakeups_per_sec),
        );
        table.row(
            "idle: eBPF runs (other processes), RSS",
            format!("{}, {:.1} MiB", i.ebpf_runs, i.rss_mib),
        );
    }
    if args.live > 0 {
        let (before, with) = idle::live(args.live);
        table.row(
            &format!("RSS with {} live processes", args.live),
            format!("{with:.1} MiB ({before:.1} MiB before)"),
        );
    }
    let length = Duration::from_secs(args.seconds);
    for sink in &args.sinks {
        println!("\nsink: {sink}");
        execs::header();
        let mut runs = vec![];
        for &rate in &args.rates {
            let r = execs::one(rate, length, sink, args.config.as_deref());
            execs::print(&r);
            runs.push(r);
        }
        execs::slope(&runs, sink);
        for r in &runs {
            let at = format!("{} exec/s ({sink})", r.rate);
            table.row(
                &format!("{at}: CPU % of a core, total (agent + rsyslogd + eBPF)"),
                r.cpu.to_string(),
            );
            table.row(
                &format!("{at}: agent / eBPF µs per exec"),
                format!("{:.1} / {:.2}", r.agent_us(), r.ebpf_us()),
            );
            table.row(
                &format!("{at}: latency p50 / p99 / max"),
                r.latency.to_string(),
            );
            table.row(
                &format!("{at}: lost, kernel drops, peak RSS"),
                format!(
                    "{}, {}, {} MiB",
                    r.execs.saturating_sub(r.events),
                    r.kernel_drops,
                    r.peak_rss_kib / 1024
                ),
            );
        }
    }
    if args.storm > 0 {
        println!();
        let s = files::storm(args.storm, length);
        files::print(&s);
        let at = format!("file storm {}/s × {} s", args.storm, args.seconds);
        table.row(
            &format!("{at}: created, lost, drops"),
            format!(
                "{} ({:.0}/s), {}, {}",
                s.created,
                s.created as f64 / s.secs,
                s.lost(),
                s.drops
            ),
        );
        table.row(
            &format!("{at}: CPU % of a core, total (agent + rsyslogd + eBPF)"),
            s.cpu.to_string(),
        );
        table.row(
            &format!("{at}: agent / eBPF µs per file"),
            format!("{:.1} / {:.2}", s.agent_us, s.ebpf_us),
        );
        table.row(
            &format!("{at}: latency p50 / p99 / max"),
            s.latency.to_string(),
        );
    }
    table.print();
    Ok(())
}

/// The summary: one measure per row, as a Markdown table (ready for the README).
#[derive(Default)]
struct Table(Vec<(String, String)>);

impl Table {
    fn row(&mut self, what: &str, value: String) {
        self.0.push((what.to_string(), value));
    }

    fn print(&self) {
        println!("\n| measure | value |\n|---|---|");
        for (what, value) in &self.0 {
            println!("| {what} | {value} |");
        }
    }
}
