//! User-space cost of one exec: a fork, an exec and an exit record through the whole
//! pipeline (decode, cache, enrichment, rules, rendering, the sink), without the kernel.
//! `cargo bench -p sysmon-agent --bench pipeline [-- NAME...]` (only the cases named, e.g.
//! `-- "syslog, included"`, to profile one case).
//!
//! Syslog (a real datagram send) in four cases: the exec included or excluded by a rule, and
//! its executable already hashed (the same file exec after exec) or new each time (a fresh
//! file identity: the digest must be computed, on the hashing thread, if the event is kept;
//! the events wait for it in order). An excluded exec must cost less than an included one.
//! Then the included exec with each file sink alone.

mod common;

use common::thread_cpu_ns;
use std::{
    os::unix::{fs::MetadataExt, net::UnixDatagram},
    path::Path,
    time::Instant,
};

use sysmon_agent::{
    agent::{Pipeline, Settings},
    rules::{self, Config},
    sinks::outputs::Outputs,
};
use sysmon_common::{
    Header, RecordKind,
    process::{ExecRecord, ExitRecord, ForkRecord},
};

const EXECS: u32 = 200_000;
/// Execs of a new file each time: each included one hashes /usr/bin/true.
const FRESH_EXECS: u32 = 20_000;

/// Excludes the bench's execs (and nothing else).
const EXCLUDE: &str = r#"<Sysmon schemaversion="4.90"><EventFiltering>
  <ProcessCreate onmatch="exclude"><CommandLine condition="contains">bench-argument</CommandLine></ProcessCreate>
</EventFiltering></Sysmon>"#;

/// Execs between two flushes: the agent flushes after each 10 ms drain of the ring buffer,
/// about 16 execs at 1600 exec/s.
const BATCH: u32 = 16;

fn main() {
    let dir = std::env::temp_dir().join(format!("sysmon-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let sock_path = dir.join("log.sock");
    let sink = UnixDatagram::bind(&sock_path).unwrap();
    // Drain the socket so that syslog keeps up.
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 70_000];
        while sink.recv(&mut buf).is_ok() {}
    });
    let only: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let repeat: usize = std::env::var("BENCH_REPEAT")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(1)
        .max(1);
    // `BENCH_EXECS`: fewer execs per case (e.g. under valgrind).
    let execs: u32 = std::env::var("BENCH_EXECS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(EXECS);
    let exclude = rules::parse_bytes(EXCLUDE.as_bytes(), "exclude.xml").unwrap();
    let mut base = 3_000_000;
    for (name, sink, config, fresh, n) in [
        (
            "syslog, included",
            "syslog",
            Config::default(),
            false,
            execs,
        ),
        ("syslog, excluded", "syslog", exclude.clone(), false, execs),
        (
            "syslog, included, new file",
            "syslog",
            Config::default(),
            true,
            FRESH_EXECS,
        ),
        (
            "syslog, excluded, new file",
            "syslog",
            exclude,
            true,
            FRESH_EXECS,
        ),
        (
            "json file, included",
            "json",
            Config::default(),
            false,
            execs,
        ),
        ("xml file, included", "xml", Config::default(), false, execs),
    ] {
        if !only.is_empty() && !only.iter().any(|o| name == o) {
            continue;
        }
        // Medians of `BENCH_REPEAT` runs (default 1): the machine is shared and noisy.
        let mut runs = Vec::new();
        for _ in 0..repeat {
            let outputs = Outputs::parse(sink, &dir).unwrap();
            runs.push(run(&dir, config.clone(), outputs, fresh, n, base));
            base += n;
        }
        let median = |f: fn(&Run) -> f64| {
            let mut v: Vec<f64> = runs.iter().map(f).collect();
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        println!(
            "pipeline ({name}): {:.2} µs CPU per exec (user {:.2}, sys {:.2}; {:.2} µs wall; \
             fork + exec + exit records), {} events{}",
            median(|r| r.cpu),
            median(|r| r.user),
            median(|r| r.sys),
            median(|r| r.wall),
            runs[0].emitted,
            if repeat > 1 {
                format!(", median of {repeat}")
            } else {
                String::new()
            }
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// µs per exec of one run, and the events it sent.
struct Run {
    cpu: f64,
    user: f64,
    sys: f64,
    wall: f64,
    emitted: u64,
}

/// `n` execs through a new pipeline.
fn run(dir: &Path, config: Config, outputs: Outputs, fresh: bool, n: u32, base: u32) -> Run {
    let settings = Settings {
        config,
        config_label: "Defaults".into(),
        config_hash: None,
        debug: false,
        syslog_path: dir.join("log.sock"),
        rsyslog_socket: None,
        outputs,
        state_dir: dir.join("state"),
        btf: None,
        reload: None,
        on_ready: None,
    };
    let mut p = Pipeline::new(&settings);
    let me = std::process::id();
    let exe = std::fs::metadata("/usr/bin/true").unwrap();
    let dev = (libc::major(exe.dev()) << 20) | libc::minor(exe.dev());
    let (exe_path, cwd, args) = (b"/usr/bin/true", b"/tmp", b"/bin/true\0bench-argument\0");

    // Records carry boot-relative times; start from now so the parent (this process)
    // started before its children, as in real life.
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut ts) };
    let now = ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64;
    let start = Instant::now();
    let cpu0 = thread_cpu_ns();
    let (user0, sys0) = thread_user_sys_ns();
    for i in 0..n {
        let pid = base + i;
        let t = now + i as u64 * 1_000;
        let header = |kind: RecordKind, len: usize| Header {
            kind: kind as u32,
            len: len as u32,
            time_ns: t,
            tgid: pid,
            tid: pid,
        };
        let fork = ForkRecord {
            header: header(RecordKind::Fork, 0),
            ppid: me,
            uid: 0,
            start_ns: t,
            cgroups: Default::default(),
        };
        p.record(bytes(&fork));
        let exec = ExecRecord {
            header: header(RecordKind::Exec, 0),
            ppid: me,
            start_ns: t,
            end_code: 0x5555_0000 + i as u64,
            tty: -1,
            loginuid: u32::MAX,
            sessionid: u32::MAX,
            exe_nlink: 1,
            exe_ino: exe.ino(),
            exe_dev: dev as u32,
            exe_size: exe.size() as i64,
            exe_mtime_sec: exe.mtime(),
            // A new modification time is a new file identity to the hash cache.
            exe_mtime_nsec: if fresh { i } else { exe.mtime_nsec() as u32 },
            exe_len: exe_path.len() as u32,
            cwd_len: cwd.len() as u32,
            args_len: args.len() as u32,
            ..Default::default()
        };
        let mut rec = bytes(&exec).to_vec();
        rec.extend_from_slice(exe_path);
        rec.extend_from_slice(cwd);
        rec.extend_from_slice(args);
        p.record(&rec);
        let exit = ExitRecord {
            header: header(RecordKind::Exit, 0),
            uid: 0,
            _pad: 0,
            start_ns: t,
        };
        p.record(bytes(&exit));
        if i % BATCH == BATCH - 1 {
            p.flush();
        }
    }
    p.flush();
    // Events still waiting for a digest (new files: computed on the hashing thread).
    while p.held_until().is_some() {
        std::thread::sleep(std::time::Duration::from_millis(1));
        p.flush();
    }
    // This thread's CPU time is the agent's cost; the wall time also holds the reader
    // thread competing for the same cores.
    let per_exec = |ns: u64| ns as f64 / n as f64 / 1e3;
    let cpu = per_exec(thread_cpu_ns() - cpu0);
    let (user, sys) = thread_user_sys_ns();
    Run {
        cpu,
        user: per_exec(user - user0),
        sys: per_exec(sys - sys0),
        wall: start.elapsed().as_secs_f64() / n as f64 * 1e6,
        emitted: p.stats.emitted,
    }
}

/// This thread's user and system time (the kernel's split of its CPU time, by ticks).
fn thread_user_sys_ns() -> (u64, u64) {
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut ru) };
    let ns = |t: libc::timeval| t.tv_sec as u64 * 1_000_000_000 + t.tv_usec as u64 * 1_000;
    (ns(ru.ru_utime), ns(ru.ru_stime))
}

fn bytes<T>(v: &T) -> &[u8] {
    unsafe { std::slice::from_raw_parts(v as *const T as *const u8, size_of::<T>()) }
}
