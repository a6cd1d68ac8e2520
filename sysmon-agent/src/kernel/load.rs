//! Loading and attaching the programs, with clear errors for what stops us.

use std::{fs, path::Path};

use anyhow::{Context, Result, bail};
use aya::{
    Ebpf, EbpfLoader,
    maps::{Array, MapData, PerCpuArray, RingBuf},
    programs::{
        RawTracePoint, TracePoint, raw_trace_point::RawTracePointLinkId,
        trace_point::TracePointLinkId,
    },
};
use sysmon_common::{RecordKind, access, offsets::ABSENT};

use super::{btf, kallsyms};
use crate::events::schema;

/// The object built by `cargo xtask build-ebpf`, embedded by build.rs.
static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/sysmon.bpf.o"));

/// Ring buffer size. Exec records are compact (a few hundred bytes typically), so 16 MiB
/// holds tens of thousands of them while user space catches up. User space maps it (twice,
/// for wrap-around), which shows in the agent's RSS.
const RING_BYTES: u32 = 16 * 1024 * 1024;

/// Unlink calls that can be in progress at once (threads inside unlink/unlinkat); beyond
/// that a delete is counted as dropped.
const DELETES_IN_FLIGHT: u32 = 1024;

/// Size of the network maps: TCP connects between SYN_SENT and ESTABLISHED, UDP flows
/// reported in the last 30 minutes. Both are LRU: the oldest entries make room.
const FLOWS: u32 = 16384;

const TRACEFS: &str = "/sys/kernel/tracing";
const BPFFS: &str = "/sys/fs/bpf";

/// Loaded and attached programs, with the maps user space reads.
pub struct Loaded {
    pub probes: Probes,
    pub ring: RingBuf<MapData>,
    pub drops: PerCpuArray<MapData, u64>,
    /// Slot 0: 1 while the agent sleeps until a record wakes it (see `wake_flags` in the
    /// programs).
    pub reader: Array<MapData, u32>,
}

/// Where the programs come from and what to attach.
pub struct Options<'a> {
    /// BTF to read struct offsets from (`-btf <file>`), else the running kernel's.
    pub btf: Option<&'a Path>,
    /// Event ids the configuration can emit (`RuleSet::is_active`): only their probes are
    /// attached. The process probes always are, as every event needs the process cache.
    pub active: &'a [u16],
}

/// Where an optional program attaches.
#[derive(PartialEq)]
enum Point {
    /// Syscall tracepoints; one this architecture lacks (no `open` on arm64) is skipped.
    Syscalls(&'static [&'static str]),
    /// A raw tracepoint.
    Raw(&'static str),
}

/// The optional probes: (event id, program, where it attaches).
const SENSORS: &[(u16, &str, Point)] = &[
    (
        schema::FILE_CREATE,
        "file_create",
        Point::Syscalls(&[
            "sys_exit_creat",
            "sys_exit_open",
            "sys_exit_openat",
            "sys_exit_openat2",
        ]),
    ),
    (
        schema::RAW_ACCESS_READ,
        "raw_access",
        Point::Syscalls(&["sys_exit_open", "sys_exit_openat", "sys_exit_openat2"]),
    ),
    (
        schema::FILE_DELETE,
        "unlink_enter",
        Point::Syscalls(&["sys_enter_unlink"]),
    ),
    (
        schema::FILE_DELETE,
        "unlinkat_enter",
        Point::Syscalls(&["sys_enter_unlinkat"]),
    ),
    (
        schema::FILE_DELETE,
        "unlink_exit",
        Point::Syscalls(&["sys_exit_unlink", "sys_exit_unlinkat"]),
    ),
    (
        schema::NETWORK_CONNECT,
        "tcp_accept",
        Point::Syscalls(&["sys_exit_accept", "sys_exit_accept4"]),
    ),
    (
        schema::NETWORK_CONNECT,
        "inet_sock_set_state",
        Point::Raw("inet_sock_set_state"),
    ),
    (
        schema::NETWORK_CONNECT,
        "udp_send",
        Point::Raw("net_dev_queue"),
    ),
    (
        schema::NETWORK_CONNECT,
        "udp_recv",
        Point::Raw("sock_recv_length"),
    ),
    (
        schema::FILE_CREATE_TIME,
        "utimensat_enter",
        Point::Syscalls(&["sys_enter_utimensat"]),
    ),
    (
        schema::FILE_CREATE_TIME,
        "futimesat_enter",
        Point::Syscalls(&["sys_enter_futimesat"]),
    ),
    (
        schema::FILE_CREATE_TIME,
        "utimes_enter",
        Point::Syscalls(&["sys_enter_utimes"]),
    ),
    (
        schema::FILE_CREATE_TIME,
        "utime_enter",
        Point::Syscalls(&["sys_enter_utime"]),
    ),
    (
        schema::FILE_CREATE_TIME,
        "attr_exit",
        Point::Syscalls(&[
            "sys_exit_utimensat",
            "sys_exit_futimesat",
            "sys_exit_utimes",
            "sys_exit_utime",
        ]),
    ),
    (
        schema::FILE_EXECUTABLE_DETECTED,
        "chmod_enter",
        Point::Syscalls(&["sys_enter_chmod"]),
    ),
    (
        schema::FILE_EXECUTABLE_DETECTED,
        "fchmodat_enter",
        Point::Syscalls(&["sys_enter_fchmodat", "sys_enter_fchmodat2"]),
    ),
    (
        schema::FILE_EXECUTABLE_DETECTED,
        "fchmod_enter",
        Point::Syscalls(&["sys_enter_fchmod"]),
    ),
    (
        schema::FILE_EXECUTABLE_DETECTED,
        "attr_exit",
        Point::Syscalls(&[
            "sys_exit_chmod",
            "sys_exit_fchmodat",
            "sys_exit_fchmodat2",
            "sys_exit_fchmod",
        ]),
    ),
    (
        schema::FILE_EXECUTABLE_DETECTED,
        "exec_created",
        Point::Syscalls(&[
            "sys_exit_creat",
            "sys_exit_open",
            "sys_exit_openat",
            "sys_exit_openat2",
        ]),
    ),
    (
        schema::FILE_CREATE_TIME,
        "attr_changed",
        Point::Raw("ctime_ns_xchg"),
    ),
    (
        schema::FILE_CREATE_TIME,
        "attr_changed",
        Point::Raw("ctime_xchg_skip"),
    ),
    (
        schema::FILE_CREATE_TIME,
        "attr_changed",
        Point::Raw("inode_set_ctime_to_ts"),
    ),
    (
        schema::FILE_EXECUTABLE_DETECTED,
        "attr_changed",
        Point::Raw("ctime_ns_xchg"),
    ),
    (
        schema::FILE_EXECUTABLE_DETECTED,
        "attr_changed",
        Point::Raw("ctime_xchg_skip"),
    ),
    (
        schema::FILE_EXECUTABLE_DETECTED,
        "attr_changed",
        Point::Raw("inode_set_ctime_to_ts"),
    ),
    (
        schema::PIPE_CREATED,
        "mknod_enter",
        Point::Syscalls(&["sys_enter_mknod"]),
    ),
    (
        schema::PIPE_CREATED,
        "mknodat_enter",
        Point::Syscalls(&["sys_enter_mknodat"]),
    ),
    (
        schema::PIPE_CREATED,
        "attr_exit",
        Point::Syscalls(&["sys_exit_mknod", "sys_exit_mknodat"]),
    ),
    (
        schema::PIPE_CONNECTED,
        "pipe_connect",
        Point::Syscalls(&["sys_exit_open", "sys_exit_openat", "sys_exit_openat2"]),
    ),
    (
        schema::IMAGE_LOAD,
        "mmap_enter",
        Point::Syscalls(&["sys_enter_mmap"]),
    ),
    (
        schema::IMAGE_LOAD,
        "mprotect_enter",
        Point::Syscalls(&["sys_enter_mprotect", "sys_enter_pkey_mprotect"]),
    ),
    (
        schema::IMAGE_LOAD,
        "attr_exit",
        Point::Syscalls(&[
            "sys_exit_mmap",
            "sys_exit_mprotect",
            "sys_exit_pkey_mprotect",
        ]),
    ),
    (
        schema::IMAGE_LOAD,
        "image_exec",
        Point::Raw("sched_process_exec"),
    ),
    // Events 10 and 8 share programs (a program listed for several events is attached once,
    // when any of them is on; ACCESS_ON tells it which to produce).
    (schema::PROCESS_ACCESS, "ptrace_enter", PTRACE_ENTER),
    (schema::PROCESS_ACCESS, "ptrace_exit", PTRACE_EXIT),
    (
        schema::PROCESS_ACCESS,
        "vm_readv_enter",
        Point::Syscalls(&["sys_enter_process_vm_readv"]),
    ),
    (schema::PROCESS_ACCESS, "vm_writev_enter", VM_WRITEV_ENTER),
    (schema::PROCESS_ACCESS, "vm_rw_exit", VM_RW_EXIT),
    (
        schema::PROCESS_ACCESS,
        "proc_mem_exit",
        Point::Syscalls(&["sys_exit_open", "sys_exit_openat", "sys_exit_openat2"]),
    ),
    (schema::CREATE_REMOTE_THREAD, "ptrace_enter", PTRACE_ENTER),
    (schema::CREATE_REMOTE_THREAD, "ptrace_exit", PTRACE_EXIT),
    (
        schema::CREATE_REMOTE_THREAD,
        "vm_writev_enter",
        VM_WRITEV_ENTER,
    ),
    (schema::CREATE_REMOTE_THREAD, "vm_rw_exit", VM_RW_EXIT),
    // The receive path serves both 3 and 22 (an entry per id, attached once).
    (
        schema::NETWORK_CONNECT,
        "recvfrom_enter",
        Point::Syscalls(&["sys_enter_recvfrom"]),
    ),
    (
        schema::DNS_QUERY,
        "recvfrom_enter",
        Point::Syscalls(&["sys_enter_recvfrom"]),
    ),
    (
        schema::NETWORK_CONNECT,
        "recvmsg_enter",
        Point::Syscalls(&["sys_enter_recvmsg"]),
    ),
    (
        schema::DNS_QUERY,
        "recvmsg_enter",
        Point::Syscalls(&["sys_enter_recvmsg"]),
    ),
    (
        schema::NETWORK_CONNECT,
        "recvmmsg_enter",
        Point::Syscalls(&["sys_enter_recvmmsg"]),
    ),
    (
        schema::DNS_QUERY,
        "recvmmsg_enter",
        Point::Syscalls(&["sys_enter_recvmmsg"]),
    ),
    (
        schema::NETWORK_CONNECT,
        "recv_exit",
        Point::Syscalls(&["sys_exit_recvfrom", "sys_exit_recvmsg", "sys_exit_recvmmsg"]),
    ),
    (
        schema::DNS_QUERY,
        "recv_exit",
        Point::Syscalls(&["sys_exit_recvfrom", "sys_exit_recvmsg", "sys_exit_recvmmsg"]),
    ),
];

const PTRACE_ENTER: Point = Point::Syscalls(&["sys_enter_ptrace"]);
const PTRACE_EXIT: Point = Point::Syscalls(&["sys_exit_ptrace"]);
const VM_WRITEV_ENTER: Point = Point::Syscalls(&["sys_enter_process_vm_writev"]);
const VM_RW_EXIT: Point =
    Point::Syscalls(&["sys_exit_process_vm_readv", "sys_exit_process_vm_writev"]);

/// In-flight receives (threads inside recvfrom/recvmsg/recvmmsg on a UDP socket).
const RECVS_IN_FLIGHT: u32 = 4096;

/// One attachment of an optional program, so it can be detached again.
enum Link {
    Tp(TracePointLinkId),
    Raw(RawTracePointLinkId),
}

/// The programs, and which optional ones are attached: a config reload attaches the probes
/// of event kinds it turns on and detaches those it turns off.
pub struct Probes {
    ebpf: Ebpf,
    /// (index in SENSORS, its links) for every attached optional program.
    attached: Vec<(usize, Vec<Link>)>,
    /// What this kernel lacks, found before loading.
    gaps: Vec<Gap>,
}

impl Probes {
    /// Attaches the probes of `active` event kinds, detaches the others. A probe that fails
    /// does not stop the others; the error names every one that failed (and stays off, so
    /// the next call tries it again).
    pub fn set_active(&mut self, active: &[u16]) -> Result<()> {
        let mut failed = Vec::new();
        for (i, (_, name, point)) in SENSORS.iter().enumerate() {
            let Some(wanted) = sensor_on(i, active) else {
                continue;
            };
            let on = wanted && !self.gaps.iter().any(|g| g.sensor == i && g.off);
            if let Err(e) = recv_wants(&mut self.ebpf, active) {
                failed.push(format!("{e:#}"));
            }
            let at = self.attached.iter().position(|(j, _)| *j == i);
            match (on, at) {
                (true, None) => match attach(&mut self.ebpf, name, point) {
                    Ok(links) => self.attached.push((i, links)),
                    Err(e) => failed.push(format!("{e:#}")),
                },
                (false, Some(at)) => {
                    let (_, links) = self.attached.swap_remove(at);
                    if let Err(e) = detach(&mut self.ebpf, name, links) {
                        failed.push(format!("detaching {name}: {e:#}"));
                    }
                }
                _ => {}
            }
        }
        let mut access_on = 0;
        if active.contains(&schema::PROCESS_ACCESS) {
            access_on |= access::on::ACCESS;
        }
        if active.contains(&schema::CREATE_REMOTE_THREAD) {
            access_on |= access::on::REMOTE;
        }
        match self
            .ebpf
            .map_mut("ACCESS_ON")
            .map(Array::<_, u32>::try_from)
        {
            Some(Ok(mut map)) => {
                if let Err(e) = map.set(0, access_on, 0) {
                    failed.push(format!("setting ACCESS_ON: {e}"));
                }
            }
            _ => failed.push("no map ACCESS_ON".into()),
        }
        if failed.is_empty() {
            Ok(())
        } else {
            bail!("{}", failed.join("; "))
        }
    }

    /// One line on the tracepoints this kernel lacks and the events they cost, if any.
    pub fn missing(&self) -> Option<String> {
        describe(&self.gaps)
    }
}

/// Whether the program of `SENSORS[i]` must be attached for `active`; `None` for an entry an
/// earlier one owns: a program listed at the same point for several event ids is attached
/// once, by its first entry, while any of those ids is active.
fn sensor_on(i: usize, active: &[u16]) -> Option<bool> {
    let (_, name, point) = &SENSORS[i];
    let same = |(_, n, p): &&(u16, &str, Point)| n == name && p == point;
    if SENSORS[..i].iter().any(|e| same(&e)) {
        return None;
    }
    Some(
        SENSORS
            .iter()
            .filter(same)
            .any(|(id, _, _)| active.contains(id)),
    )
}

/// Tracepoints an optional program needs that this kernel lacks.
#[derive(Debug)]
struct Gap {
    /// Index in SENSORS.
    sensor: usize,
    points: Vec<&'static str>,
    /// None of its points exist: the program stays off. Otherwise it attaches where it can.
    off: bool,
}

/// Syscalls this architecture never had (their tracepoints are not missing, just absent).
#[cfg(target_arch = "aarch64")]
const NOT_ON_THIS_ARCH: &[&str] = &[
    "sys_exit_creat",
    "sys_exit_open",
    "sys_enter_unlink",
    "sys_exit_unlink",
];
#[cfg(not(target_arch = "aarch64"))]
const NOT_ON_THIS_ARCH: &[&str] = &[];

/// The gaps of every SENSORS entry, given what `exists` says of each attach point.
fn gaps(exists: impl Fn(&Point, &str) -> bool) -> Vec<Gap> {
    let mut out = Vec::new();
    for (i, (_, _, point)) in SENSORS.iter().enumerate() {
        let points: &[&'static str] = match point {
            Point::Syscalls(p) => p,
            Point::Raw(p) => std::slice::from_ref(p),
        };
        let present = points.iter().filter(|p| exists(point, p)).count();
        let missing: Vec<_> = points
            .iter()
            .copied()
            .filter(|p| !exists(point, p) && !NOT_ON_THIS_ARCH.contains(p))
            .collect();
        if !missing.is_empty() {
            out.push(Gap {
                sensor: i,
                points: missing,
                off: present == 0,
            });
        }
    }
    out
}

/// `kernel lacks tracepoint a, b: not recorded: <event> (event N) from <program>; ...`
fn describe(gaps: &[Gap]) -> Option<String> {
    if gaps.is_empty() {
        return None;
    }
    let mut names: Vec<&str> = Vec::new();
    for p in gaps.iter().flat_map(|g| g.points.iter().copied()) {
        if !names.contains(&p) {
            names.push(p);
        }
    }
    let effects: Vec<String> = gaps
        .iter()
        .map(|g| {
            let (id, program, _) = &SENSORS[g.sensor];
            let event = schema::by_id(*id).map_or("?", |k| k.tag.unwrap_or(k.name));
            if g.off {
                format!("{event} (event {id}) from {program}")
            } else {
                format!("{event} (event {id}) through {}", g.points.join(", "))
            }
        })
        .collect();
    Some(format!(
        "this kernel lacks tracepoint {}: not recorded: {}",
        names.join(", "),
        effects.join("; ")
    ))
}

/// Test hook: tracepoints to treat as missing, as on an older kernel
/// (`SYSMON_TEST_MISSING_TRACEPOINTS=sock_recv_length,sys_exit_openat2`).
const MISSING_HOOK: &str = "SYSMON_TEST_MISSING_TRACEPOINTS";
/// Test hook: tracepoints that exist but whose attach the kernel refuses (the attach is
/// made to a tracepoint that does not exist, so the refusal is the kernel's own).
const FAIL_ATTACH_HOOK: &str = "SYSMON_TEST_FAIL_ATTACH";

fn hooked(var: &str, point: &str) -> bool {
    std::env::var(var).is_ok_and(|v| v.split(',').any(|p| p.trim() == point))
}

/// Whether the tracepoint `point` exists: `events/syscalls/<point>` for a syscall, any
/// `events/<category>/<point>` for a raw tracepoint (tracefs lists every trace event).
fn exists(kind: &Point, point: &str) -> bool {
    if hooked(MISSING_HOOK, point) {
        return false;
    }
    match kind {
        Point::Syscalls(_) => Path::new(&format!("{TRACEFS}/events/syscalls/{point}")).exists(),
        Point::Raw(_) => fs::read_dir(format!("{TRACEFS}/events"))
            .map(|dirs| dirs.flatten().any(|d| d.path().join(point).is_dir()))
            .unwrap_or(false),
    }
}

/// What no event can do without; one line naming all that is missing.
fn check_required(kernel: &btf::Kernel) -> Result<()> {
    let mut lacks = Vec::new();
    if !kernel.bpf_loop {
        lacks.push("the bpf_loop helper (Linux 5.17+)".to_string());
    }
    for name in [
        "sched_process_exec",
        "sched_process_exit",
        "sched_process_fork",
    ] {
        if hooked(MISSING_HOOK, name)
            || !Path::new(&format!("{TRACEFS}/events/sched/{name}")).exists()
        {
            lacks.push(format!("tracepoint sched/{name}"));
        }
    }
    if !lacks.is_empty() {
        bail!(
            "this kernel lacks {}: sysmon cannot run (every event needs them)",
            lacks.join(", ")
        );
    }
    Ok(())
}

/// Tells the receive exit what to report (bits of `RECV_WANTS`, see probes/recv.rs).
fn recv_wants(ebpf: &mut Ebpf, active: &[u16]) -> Result<()> {
    let bits = u32::from(active.contains(&schema::NETWORK_CONNECT))
        | u32::from(active.contains(&schema::DNS_QUERY)) << 1;
    let map = ebpf.map_mut("RECV_WANTS").context("map RECV_WANTS")?;
    aya::maps::Array::<_, u32>::try_from(map)?
        .set(0, bits, 0)
        .context("setting RECV_WANTS")
}

pub fn load(opts: &Options) -> Result<Loaded> {
    preflight(opts)?;
    mount_if_missing("tracefs", TRACEFS, &format!("{TRACEFS}/events"))?;
    mount_if_missing("bpf", BPFFS, "")?;
    let btf_path = opts.btf.unwrap_or(Path::new(btf::VMLINUX));
    let kernel = btf::inspect(btf_path)?;
    check_required(&kernel)?;
    let gaps = gaps(exists);
    if let Some(line) = describe(&gaps) {
        eprintln!("sysmon: {line}");
    }
    let offsets = kernel.offsets;
    let group_dead = exit_group_dead_offset().unwrap_or(ABSENT);
    let cpus = aya::util::nr_cpus()
        .map_err(|(_, e)| e)
        .context("counting CPUs")? as u32;

    // Without it opens of /proc/<pid>/mem are not recognised (ptrace and process_vm are).
    let mem_open = kallsyms::function("mem_open").unwrap_or_else(|| {
        eprintln!("sysmon: no address for mem_open in /proc/kallsyms: opens of /proc/<pid>/mem are not reported");
        0
    });
    let regs_ip = kallsyms::user_regs_ip().unwrap_or(ABSENT);

    // Maps are sized for every kind, so that a reload can turn any of them on.
    let mut ebpf = EbpfLoader::new()
        .override_global("OFFSETS", &offsets, true)
        .override_global("EXIT_GROUP_DEAD", &group_dead, true)
        .override_global("PROC_MEM_OPEN", &mem_open, true)
        .override_global("USER_REGS_IP", &regs_ip, true)
        .map_max_entries("EXEC_SCRATCH", cpus)
        .map_max_entries("EVENTS", ring_bytes()?)
        .map_max_entries("DELETES", DELETES_IN_FLIGHT)
        .map_max_entries("CONNECTS", FLOWS)
        .map_max_entries("UDP_SEEN", FLOWS)
        .map_max_entries("RECVS", RECVS_IN_FLIGHT)
        .load(OBJECT)
        .context("loading the eBPF object into the kernel (is BPF enabled and are we root?)")?;

    attach_tracepoint(&mut ebpf, "sched", "sched_process_exec")?;
    attach_tracepoint(&mut ebpf, "sched", "sched_process_exit")?;
    let fork: &mut RawTracePoint = program(&mut ebpf, "sched_process_fork")?;
    fork.load().context("verifying sched_process_fork")?;
    fork.attach("sched_process_fork")
        .context("attaching sched_process_fork")?;

    // Parsing BTF took tens of MiB that the process no longer needs.
    unsafe { libc::malloc_trim(0) };
    let ring = RingBuf::try_from(ebpf.take_map("EVENTS").context("map EVENTS")?)?;
    let drops = PerCpuArray::try_from(ebpf.take_map("DROPS").context("map DROPS")?)?;
    let reader = Array::try_from(ebpf.take_map("READER").context("map READER")?)?;
    let mut probes = Probes {
        ebpf,
        attached: Vec::new(),
        gaps,
    };
    probes.set_active(opts.active)?;
    Ok(Loaded {
        probes,
        ring,
        drops,
        reader,
    })
}

/// Verifies `name` on its first use, then attaches it wherever `point` says. All or
/// nothing: on an error, what was attached is detached again.
fn attach(ebpf: &mut Ebpf, name: &str, point: &Point) -> Result<Vec<Link>> {
    let mut links = Vec::new();
    let result = attach_each(ebpf, name, point, &mut links);
    if result.is_err() {
        let _ = detach(ebpf, name, links);
        return result.map(|_| Vec::new());
    }
    Ok(links)
}

fn attach_each(ebpf: &mut Ebpf, name: &str, point: &Point, links: &mut Vec<Link>) -> Result<()> {
    // The test hook's stand-in: no kernel has it, so the kernel (or tracefs) refuses.
    let target = |p: &'static str| {
        if hooked(FAIL_ATTACH_HOOK, p) {
            "sysmon_test_refused"
        } else {
            p
        }
    };
    match point {
        Point::Syscalls(points) => {
            let tp: &mut TracePoint = program(ebpf, name)?;
            if tp.fd().is_err() {
                tp.load().with_context(|| format!("verifying {name}"))?;
            }
            for &p in *points {
                if exists(point, p) {
                    let link = tp
                        .attach("syscalls", target(p))
                        .with_context(|| format!("attaching {name} to syscalls/{p}"))?;
                    links.push(Link::Tp(link));
                }
            }
        }
        &Point::Raw(p) => {
            let tp: &mut RawTracePoint = program(ebpf, name)?;
            if tp.fd().is_err() {
                tp.load().with_context(|| format!("verifying {name}"))?;
            }
            let link = tp
                .attach(target(p))
                .with_context(|| format!("attaching {name} to {p}"))?;
            links.push(Link::Raw(link));
        }
    }
    Ok(())
}

fn detach(ebpf: &mut Ebpf, name: &str, links: Vec<Link>) -> Result<()> {
    for link in links {
        match link {
            Link::Tp(id) => program::<TracePoint>(ebpf, name)?.detach(id)?,
            Link::Raw(id) => program::<RawTracePoint>(ebpf, name)?.detach(id)?,
        }
    }
    Ok(())
}

/// Records dropped in the kernel so far, per kind, summed over CPUs.
pub fn drop_totals(drops: &PerCpuArray<MapData, u64>) -> Vec<(RecordKind, u64)> {
    RecordKind::ALL
        .iter()
        .map(|k| {
            let n = drops
                .get(&(*k as u32), 0)
                .map(|v| v.iter().sum())
                .unwrap_or(0);
            (*k, n)
        })
        .collect()
}

fn preflight(opts: &Options) -> Result<()> {
    if unsafe { libc::geteuid() } != 0 {
        bail!("You need to run Sysmon as root (it loads eBPF programs into the kernel).");
    }
    if OBJECT.is_empty() {
        bail!("this sysmon was built without its eBPF programs: build it with `cargo xtask build`");
    }
    let btf = opts.btf.unwrap_or(Path::new(btf::VMLINUX));
    if !btf.exists() {
        bail!(
            "no BTF at {}: this kernel was built without CONFIG_DEBUG_INFO_BTF; \
             pass a BTF file for it with -btf <file>",
            btf.display()
        );
    }
    Ok(())
}

fn attach_tracepoint(ebpf: &mut Ebpf, category: &str, name: &str) -> Result<()> {
    let tp: &mut TracePoint = program(ebpf, name)?;
    tp.load().with_context(|| format!("verifying {name}"))?;
    tp.attach(category, name)
        .with_context(|| format!("attaching {category}/{name}"))?;
    Ok(())
}

/// `RING_BYTES`, or `$SYSMON_RING_BYTES` (tests use a small ring to force drops).
fn ring_bytes() -> Result<u32> {
    let Ok(v) = std::env::var("SYSMON_RING_BYTES") else {
        return Ok(RING_BYTES);
    };
    match v.parse::<u32>() {
        Ok(n) if n.is_power_of_two() && n >= 4096 => Ok(n),
        _ => bail!("SYSMON_RING_BYTES={v}: must be a power of two, at least 4096"),
    }
}

fn program<'a, T>(ebpf: &'a mut Ebpf, name: &str) -> Result<&'a mut T>
where
    &'a mut T: TryFrom<&'a mut aya::programs::Program, Error = aya::programs::ProgramError>,
{
    let prog = ebpf
        .program_mut(name)
        .with_context(|| format!("program {name} missing"))?;
    Ok(prog.try_into()?)
}

/// Offset of `group_dead` in the exit tracepoint's record, from its format file.
fn exit_group_dead_offset() -> Option<u32> {
    let format =
        fs::read_to_string(format!("{TRACEFS}/events/sched/sched_process_exit/format")).ok()?;
    let line = format.lines().find(|l| l.contains(" group_dead;"))?;
    let at = line.split("offset:").nth(1)?;
    at.split(';').next()?.trim().parse().ok()
}

/// Mounts `fstype` at `target` unless `probe` (or `target` itself) shows it is there.
fn mount_if_missing(fstype: &str, target: &str, probe: &str) -> Result<()> {
    let mounts = fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    if mounts.lines().any(|l| l.split(' ').nth(1) == Some(target))
        || (!probe.is_empty() && Path::new(probe).exists())
    {
        return Ok(());
    }
    let c = |s: &str| std::ffi::CString::new(s).unwrap();
    let (src, dst, ty) = (c(fstype), c(target), c(fstype));
    let rc = unsafe { libc::mount(src.as_ptr(), dst.as_ptr(), ty.as_ptr(), 0, std::ptr::null()) };
    if rc != 0 {
        bail!(
            "mounting {fstype} at {target}: {}",
            std::io::Error::last_os_error()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the line says for kernels that lack some tracepoints (checked for every
    /// SENSORS entry, so probes added later get the same check).
    #[test]
    fn missing_tracepoints_name_the_events_they_cost() {
        // (tracepoints missing, what the line must say, what it must not)
        let cases: &[(&[&str], &[&str], &[&str])] = &[
            (&[], &[], &[]),
            (
                &["sock_recv_length"],
                &[
                    "this kernel lacks tracepoint sock_recv_length:",
                    "NetworkConnect (event 3) from udp_recv",
                ],
                &["udp_send", "FileCreate"],
            ),
            (
                // openat2 is 5.6+: creates and raw reads through the others still count.
                &["sys_exit_openat2"],
                &[
                    "FileCreate (event 11) through sys_exit_openat2",
                    "RawAccessRead (event 9) through sys_exit_openat2",
                ],
                &["from file_create"],
            ),
            (
                &["sys_exit_accept", "sys_exit_accept4", "net_dev_queue"],
                &[
                    "lacks tracepoint sys_exit_accept, sys_exit_accept4, net_dev_queue:",
                    "NetworkConnect (event 3) from tcp_accept",
                    "NetworkConnect (event 3) from udp_send",
                ],
                &["inet_sock_set_state"],
            ),
        ];
        for (missing, want, not) in cases {
            let g = gaps(|_, p| !missing.contains(&p));
            let line = describe(&g);
            if missing.is_empty() {
                assert_eq!(line, None);
                continue;
            }
            let line = line.unwrap();
            assert!(!line.contains('\n'), "one line: {line}");
            for w in *want {
                assert!(line.contains(w), "{missing:?}: {line:?} lacks {w:?}");
            }
            for n in *not {
                assert!(!line.contains(n), "{missing:?}: {line:?} has {n:?}");
            }
            // A program is off only when none of its tracepoints exist.
            for gap in &g {
                let (_, name, _) = SENSORS[gap.sensor];
                let all_missing = match &SENSORS[gap.sensor].2 {
                    Point::Syscalls(p) => p.iter().all(|p| missing.contains(p)),
                    Point::Raw(p) => missing.contains(p),
                };
                assert_eq!(gap.off, all_missing, "{name}");
            }
        }
    }

    #[test]
    fn every_sensor_tracepoint_exists_on_this_kernel() {
        if !Path::new(&format!("{TRACEFS}/events/sched")).exists() {
            eprintln!("skipped: no tracefs at {TRACEFS}");
            return;
        }
        assert_eq!(describe(&gaps(exists)), None);
    }

    fn attached(active: &[u16]) -> Vec<&'static str> {
        let mut v: Vec<_> = (0..SENSORS.len())
            .filter(|i| sensor_on(*i, active) == Some(true))
            .map(|i| SENSORS[i].1)
            .collect();
        v.sort();
        v
    }

    #[test]
    fn shared_programs_attach_once_for_either_event() {
        let ptrace_vm = [
            "ptrace_enter",
            "ptrace_exit",
            "vm_rw_exit",
            "vm_writev_enter",
        ];
        // (active events, programs attached)
        let cases: &[(&[u16], &[&str])] = &[
            (&[], &[]),
            (&[schema::PROCESS_TAMPERING], &[]),
            (
                &[schema::PROCESS_ACCESS],
                &[
                    "proc_mem_exit",
                    "ptrace_enter",
                    "ptrace_exit",
                    "vm_readv_enter",
                    "vm_rw_exit",
                    "vm_writev_enter",
                ],
            ),
            (&[schema::CREATE_REMOTE_THREAD], &ptrace_vm),
            (
                &[schema::CREATE_REMOTE_THREAD, schema::PROCESS_ACCESS],
                &[
                    "proc_mem_exit",
                    "ptrace_enter",
                    "ptrace_exit",
                    "vm_readv_enter",
                    "vm_rw_exit",
                    "vm_writev_enter",
                ],
            ),
            (&[schema::FILE_CREATE], &["file_create"]),
        ];
        for (active, want) in cases {
            assert_eq!(attached(active), *want, "{active:?}");
        }
    }

    #[test]
    fn the_receive_probes_serve_network_connect_and_dns_query_once() {
        let recv = [
            "recv_exit",
            "recvfrom_enter",
            "recvmmsg_enter",
            "recvmsg_enter",
        ];
        let dns = attached(&[schema::DNS_QUERY]);
        assert_eq!(dns, recv);
        let net = attached(&[schema::NETWORK_CONNECT]);
        let both = attached(&[schema::NETWORK_CONNECT, schema::DNS_QUERY]);
        assert_eq!(net, both);
        for p in recv.iter().chain(&["udp_recv", "udp_send", "tcp_accept"]) {
            assert_eq!(both.iter().filter(|n| *n == p).count(), 1, "{p}");
        }
        assert!(attached(&[schema::PROCESS_CREATE]).is_empty());
    }
}
