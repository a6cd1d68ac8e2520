//! User-space cost of one exec: a fork, an exec and an exit record through the whole
//! pipeline (decode, cache, enrichment, rules, rendering, the sink), without the kernel,
//! once per sink: syslog (a real datagram send), the JSON file, the XML file.
//! `cargo bench -p sysmon-agent --bench pipeline`.

use std::{
    os::unix::{fs::MetadataExt, net::UnixDatagram},
    time::Instant,
};

use sysmon_agent::{
    agent::{Pipeline, Settings},
    rules::Config,
    sinks::outputs::Outputs,
};
use sysmon_common::{
    Header, RecordKind,
    process::{ExecRecord, ExitRecord, ForkRecord},
};

const EXECS: u32 = 200_000;

/// Execs between two flushes: the agent flushes after each 10 ms drain of the ring buffer,
/// about 16 execs at 1600 exec/s.
const BATCH: u32 = 16;

fn main() {
    for sink in ["syslog", "json", "xml"] {
        one(sink);
    }
}

fn one(sink_name: &str) {
    let dir = std::env::temp_dir().join(format!("sysmon-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let sock_path = dir.join("log.sock");
    let sink = UnixDatagram::bind(&sock_path).unwrap();
    // Drain the socket so sends never block.
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 70_000];
        while sink.recv(&mut buf).is_ok() {}
    });
    let settings = Settings {
        config: Config::default(),
        config_label: "Defaults".into(),
        config_hash: None,
        debug: false,
        syslog_path: sock_path,
        outputs: Outputs::parse(sink_name, &dir).unwrap(),
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
    for i in 0..EXECS {
        let pid = 3_000_000 + i;
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
            exe_ino: exe.ino(),
            exe_dev: dev as u32,
            exe_size: exe.size() as i64,
            exe_mtime_sec: exe.mtime(),
            exe_mtime_nsec: exe.mtime_nsec() as u32,
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
    // This thread's CPU time is the agent's cost; the wall time also holds the reader
    // thread competing for the same cores.
    let cpu = (thread_cpu_ns() - cpu0) as f64 / EXECS as f64 / 1e3;
    let wall = start.elapsed().as_secs_f64() / EXECS as f64 * 1e6;
    println!(
        "pipeline, {sink_name:>6}: {cpu:.2} µs CPU per exec ({wall:.2} µs wall; fork + exec + exit \
         records, 2 events), {} events",
        p.stats.emitted
    );
    drop(p);
    let _ = std::fs::remove_dir_all(&dir);
}

fn thread_cpu_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

fn bytes<T>(v: &T) -> &[u8] {
    unsafe { std::slice::from_raw_parts(v as *const T as *const u8, size_of::<T>()) }
}
