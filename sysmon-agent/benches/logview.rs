//! Throughput of sysmonLogView on a large generated log.
//!
//! `cargo bench -p sysmon-agent --bench logview` generates a log of `LOGVIEW_BENCH_MB`
//! megabytes (default 1024) in a temp dir from the recorded sample (every event id, other
//! programs' lines, a truncated and a malformed line; EventRecordIDs renumbered), runs the
//! viewer over it in several modes writing to /dev/null, prints MB/s, and deletes the log.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;
use sysmon_agent::logview::{colour::Palette, options::Options, run};

/// Deletes the temp dir however the bench ends.
struct TempDir(PathBuf);
impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn generate(path: &Path, target: u64) -> u64 {
    let sample = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/logview/sample.log"),
    )
    .unwrap();
    let lines: Vec<&str> = sample.lines().collect();
    let mut out = BufWriter::with_capacity(1 << 20, File::create(path).unwrap());
    let mut written = 0u64;
    let mut record = 0u64;
    let mut buf = String::new();
    while written < target {
        for line in &lines {
            buf.clear();
            // Distinct record ids so the data is not one block repeated verbatim.
            match line.find("<EventRecordID>") {
                Some(at) => {
                    let start = at + "<EventRecordID>".len();
                    let end = start + line[start..].find('<').unwrap_or(0);
                    buf.push_str(&line[..start]);
                    buf.push_str(&record.to_string());
                    buf.push_str(&line[end..]);
                    record += 1;
                }
                None => buf.push_str(line),
            }
            buf.push('\n');
            out.write_all(buf.as_bytes()).unwrap();
            written += buf.len() as u64;
        }
    }
    out.flush().unwrap();
    written
}

fn main() {
    // `cargo test --benches` runs this with --bench too; only `cargo bench` passes it, so
    // a plain test run does not write a gigabyte.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let mb: u64 = std::env::var("LOGVIEW_BENCH_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1024);
    let dir =
        TempDir(std::env::temp_dir().join(format!("sysmon-logview-bench-{}", std::process::id())));
    std::fs::create_dir_all(&dir.0).unwrap();
    let log = dir.0.join("sysmon.log");
    let t = Instant::now();
    let bytes = generate(&log, mb << 20);
    println!(
        "generated {:.0} MB in {:.1}s",
        bytes as f64 / 1e6,
        t.elapsed().as_secs_f64()
    );

    let log = log.to_str().unwrap();
    let modes: &[(&str, &[&str])] = &[
        ("default layout", &[]),
        ("--json", &["--json"]),
        ("-e 3 (filter, little output)", &["-e", "3"]),
        ("--summary", &["--summary"]),
    ];
    for (name, args) in modes {
        let argv = ["sysmonLogView"]
            .iter()
            .chain(args.iter())
            .chain([&log])
            .map(|s| s.to_string());
        let opts = Options::parse(argv).unwrap();
        let mut out = BufWriter::with_capacity(256 << 10, File::create("/dev/null").unwrap());
        let t = Instant::now();
        let code = run(&opts, Palette::new(false), &mut out, &mut std::io::sink()).unwrap();
        let secs = t.elapsed().as_secs_f64();
        assert_eq!(code, 0);
        println!(
            "{name:32} {:7.0} MB/s  ({:.2}s)",
            bytes as f64 / 1e6 / secs,
            secs
        );
    }
}
