//! How long one event takes to judge against the largest real-world config (0xAnalyst, ~390
//! filters), and proof that judging allocates nothing. `cargo bench -p sysmon-agent --bench rules`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use sysmon_agent::events::{Event, schema::by_id};
use sysmon_agent::rules::load_file;

/// Counts allocations so the bench can show `decide` makes none.
struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const CONFIG: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../configs/real-world/0xAnalyst_Sysmon__SysmonForLinux__config.xml"
);

fn event(id: u16, fields: &[(&str, &str)]) -> Event {
    let kind = by_id(id).unwrap();
    let mut e = Event::new(kind);
    for f in kind.fields {
        e.push(fields.iter().find(|(n, _)| n == f).map_or("", |(_, v)| v));
    }
    e
}

fn main() {
    let path = Path::new(CONFIG);
    assert!(path.exists(), "{CONFIG} is missing from the repository");
    let start = Instant::now();
    let loads = 50;
    for _ in 0..loads {
        black_box(load_file(path).unwrap());
    }
    println!(
        "load + compile: {:.0} µs per load",
        start.elapsed().as_secs_f64() * 1e6 / loads as f64
    );

    let config = load_file(path).unwrap();
    let guid = "{5f3c0a9e-2d03-6643-d5b4-23f6b9550000}";
    let cases = [
        (
            "ProcessCreate, no rule matches (worst case: every filter read)",
            event(
                1,
                &[
                    ("UtcTime", "2024-05-14 09:21:07.731"),
                    ("ProcessGuid", guid),
                    ("ProcessId", "4242"),
                    ("Image", "/usr/local/lib/acme/agent/bin/collector-worker"),
                    (
                        "CommandLine",
                        "/usr/local/lib/acme/agent/bin/collector-worker --config /etc/acme/agent.yaml --log-level info --metrics-port 9100",
                    ),
                    ("CurrentDirectory", "/var/lib/acme"),
                    ("User", "acme"),
                    ("LogonId", "1001"),
                    ("ParentProcessGuid", guid),
                    ("ParentProcessId", "1"),
                    ("ParentImage", "/usr/lib/systemd/systemd"),
                    ("ParentCommandLine", "/sbin/init splash"),
                    ("ParentUser", "root"),
                ],
            ),
        ),
        (
            "ProcessCreate, matched by a GTFOBins parent",
            event(
                1,
                &[
                    ("Image", "/usr/bin/id"),
                    ("CommandLine", "id"),
                    ("ParentImage", "/usr/bin/find"),
                    ("User", "alice"),
                ],
            ),
        ),
        (
            "NetworkConnect, no rule matches",
            event(
                3,
                &[
                    ("Image", "/usr/sbin/chronyd"),
                    ("User", "_chrony"),
                    ("Protocol", "udp"),
                    ("SourceIp", "10.0.0.5"),
                    ("SourcePort", "123"),
                    ("DestinationIp", "162.159.200.1"),
                    ("DestinationPort", "123"),
                ],
            ),
        ),
        (
            "FileCreate, no rule matches",
            event(
                11,
                &[
                    ("Image", "/usr/bin/vim"),
                    ("TargetFilename", "/home/alice/project/src/main.rs"),
                ],
            ),
        ),
    ];
    let iterations = 200_000;
    for (what, e) in &cases {
        let before = ALLOCATIONS.load(Ordering::Relaxed);
        let start = Instant::now();
        let mut included = 0;
        for _ in 0..iterations {
            included += black_box(config.rules.decide(black_box(e))).include as usize;
        }
        let per_event = start.elapsed().as_secs_f64() * 1e6 / iterations as f64;
        let allocations = ALLOCATIONS.load(Ordering::Relaxed) - before;
        println!(
            "{per_event:7.3} µs/event  {allocations} allocations  included={}  {what}",
            included > 0
        );
        assert_eq!(allocations, 0, "decide must not allocate");
    }
}
