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
use sysmon_common::{RecordKind, access, drops, offsets::ABSENT};

use super::{
    OBJECT, btf, compat, kallsyms,
    sensors::{
        FAIL_ATTACH_HOOK, Found, Gap, Point, SENSORS, check_required, describe, events_named, find,
        gaps, hooked, last_lines, wanted,
    },
};
use crate::events::schema;

/// Ring buffer size per CPU, and its bounds. Records are compact (a file creation about
/// 200 bytes, an exec a few hundred), so 8 MiB holds about 40 000 while user space catches
/// up: a 50 000/s file-creation storm on 2 CPUs is taken whole (4 MiB lost 2% of it when
/// the agent fell behind). Events come from every CPU, so the ring grows with them. User
/// space maps the ring twice (for wrap-around) and the whole mapping counts in its RSS:
/// 8 MiB shows as 16 MiB.
const RING_PER_CPU: u32 = 2 * 1024 * 1024;
const RING_MIN: u32 = 8 * 1024 * 1024;
const RING_MAX: u32 = 64 * 1024 * 1024;

/// Tables of calls in flight (a thread inside a receive, ptrace, mmap... call whose record
/// is made at its exit) hold one entry per thread in such a call, so they are sized by the
/// threads the host can have: the smaller of `kernel.pid_max` and `kernel.threads-max`,
/// within these bounds (an entry of the small tables takes about 120 bytes of kernel
/// memory, 32 768 of them 4 MiB). Past the bound a call is not watched and its possible
/// record is counted as a drop (event 255 `KernelDrops`, "in-flight table full").
const IN_FLIGHT_MIN: u32 = 1024;
const IN_FLIGHT_MAX: u32 = 32768;
/// The tables whose entries hold a whole record with its path (8 KiB each: unlink, and the
/// chmod / utimes / mknod family) are bounded lower.
const IN_FLIGHT_PATHS_MAX: u32 = 1024;

/// Size of the network maps: TCP connects between SYN_SENT and ESTABLISHED (a full table is
/// counted as drops), UDP flows reported in the last 30 minutes (LRU: the oldest make room).
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
    /// Probes of the configured events that this kernel refused (its verifier, or the
    /// attach), and the events they cost: those events are off, the others run.
    pub refused: Option<String>,
}

/// Where the programs come from and what to attach.
pub struct Options<'a> {
    /// BTF to read struct offsets from (`-btf <file>`), else the running kernel's.
    pub btf: Option<&'a Path>,
    /// Event ids the configuration can emit (`RuleSet::is_active`): only their probes are
    /// attached. The process probes always are, as every event needs the process cache.
    pub active: &'a [u16],
}

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
    /// The kernel runs 32-bit (ia32) syscalls: the compat programs have work.
    compat: bool,
}

impl Probes {
    /// Attaches the probes of `active` event kinds, detaches the others. A probe that fails
    /// does not stop the others; the error names every one that failed (and stays off, so
    /// the next call tries it again).
    pub fn set_active(&mut self, active: &[u16]) -> Result<()> {
        let mut failed = Vec::new();
        for (i, s) in SENSORS.iter().enumerate() {
            let (ids, name, point) = (s.events, s.program, &s.point);
            let on = wanted(i, active)
                && !self.gaps.iter().any(|g| g.sensor == i && g.off)
                && (self.compat || !compat::PROGRAMS.contains(&name));
            let at = self.attached.iter().position(|(j, _)| *j == i);
            match (on, at) {
                (true, None) => match attach(&mut self.ebpf, name, point) {
                    Ok(links) => self.attached.push((i, links)),
                    Err(e) => failed.push(format!(
                        "{} from {name}: {}",
                        events_named(ids),
                        last_lines(&format!("{e:#}"), 3)
                    )),
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
        let unnamed = self
            .gaps
            .iter()
            .any(|g| g.off && SENSORS[g.sensor].program == "udp_recv");
        if let Err(e) = recv_wants(&mut self.ebpf, active, unnamed) {
            failed.push(format!("{e:#}"));
        }
        if let Err(e) = set_word(&mut self.ebpf, "COMPAT_ON", compat::bits(active)) {
            failed.push(format!("{e:#}"));
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

    /// One line on the 32-bit syscalls this machine runs that no program sees, if any.
    pub fn uncovered(&self) -> Option<String> {
        compat::uncovered()
    }
}

/// Sets slot 0 of the array map `name`.
fn set_word(ebpf: &mut Ebpf, name: &str, value: u32) -> Result<()> {
    let map = ebpf.map_mut(name).with_context(|| format!("map {name}"))?;
    Array::<_, u32>::try_from(map)?
        .set(0, value, 0)
        .with_context(|| format!("setting {name}"))
}

/// Tells the receive exit what to report (bits of `RECV_WANTS`, see probes/recv.rs). While
/// `sock_recv_length` is missing (`unnamed`), the receive probes also take the calls that
/// pass no address buffer, which that tracepoint answers where it exists.
fn recv_wants(ebpf: &mut Ebpf, active: &[u16], unnamed: bool) -> Result<()> {
    let net = active.contains(&schema::NETWORK_CONNECT);
    let bits = u32::from(net)
        | u32::from(active.contains(&schema::DNS_QUERY)) << 1
        | u32::from(net && unnamed) << 2;
    let map = ebpf.map_mut("RECV_WANTS").context("map RECV_WANTS")?;
    aya::maps::Array::<_, u32>::try_from(map)?
        .set(0, bits, 0)
        .context("setting RECV_WANTS")
}

/// The object loaded into the kernel with this kernel's offsets and map sizes (maps
/// created, no program verified yet), and what the kernel lacks.
pub fn open(opts: &Options) -> Result<(Ebpf, Vec<Gap>)> {
    preflight(opts)?;
    mount_tracefs()?;
    mount_if_missing("bpf", BPFFS, "")?;
    let btf_path = opts.btf.unwrap_or(Path::new(btf::VMLINUX));
    let kernel = btf::inspect(btf_path)?;
    check_required(&kernel)?;
    let gaps = gaps(find);
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
    // Direct loads of kernel structs need the verifier to know them: only with the
    // running kernel's own BTF (see `kernel_btf` in sysmon-ebpf).
    let kernel_btf = u32::from(btf_path == Path::new(btf::VMLINUX));
    let in_flight = in_flight()?;
    let in_flight_paths = in_flight.min(IN_FLIGHT_PATHS_MAX);

    // Maps are sized for every kind, so that a reload can turn any of them on.
    let ebpf = EbpfLoader::new()
        .override_global("OFFSETS", &offsets, true)
        .override_global("EXIT_GROUP_DEAD", &group_dead, true)
        .override_global("PROC_MEM_OPEN", &mem_open, true)
        .override_global("USER_REGS_IP", &regs_ip, true)
        .override_global("KERNEL_BTF", &kernel_btf, true)
        .map_max_entries("EXEC_SCRATCH", cpus)
        .map_max_entries("EVENTS", ring_bytes(cpus)?)
        .map_max_entries("DELETES", in_flight_paths)
        .map_max_entries("ATTRS", in_flight_paths)
        .map_max_entries("CONNECTS", FLOWS)
        .map_max_entries("UDP_SEEN", FLOWS)
        .map_max_entries("RECVS", in_flight)
        .map_max_entries("ACCESS_CALLS", in_flight)
        .map_max_entries("IMAGE_CALLS", in_flight)
        .load(OBJECT)
        .context("loading the eBPF object into the kernel (is BPF enabled and are we root?)")?;
    Ok((ebpf, gaps))
}

pub fn load(opts: &Options) -> Result<Loaded> {
    let (mut ebpf, gaps) = open(opts)?;
    attach_tracepoint(&mut ebpf, "sched", "sched_process_exec")?;
    attach_tracepoint(&mut ebpf, "sched", "sched_process_exit")?;
    let fork: &mut RawTracePoint = program(&mut ebpf, "sched_process_fork")?;
    fork.load().context("verifying sched_process_fork")?;
    fork.attach("sched_process_fork")
        .context("attaching sched_process_fork")?;
    // New cgroups, so a container is named before its first process runs; without it a
    // container is found by walking cgroupfs when its first process is seen.
    let no_cgroups = attach_tracepoint(&mut ebpf, "cgroup", "cgroup_mkdir")
        .err()
        .map(|e| format!("{e:#}: a new container's first events may lack its names"));

    // Parsing BTF took tens of MiB that the process no longer needs.
    unsafe { libc::malloc_trim(0) };
    let ring = RingBuf::try_from(ebpf.take_map("EVENTS").context("map EVENTS")?)?;
    let drops = PerCpuArray::try_from(ebpf.take_map("DROPS").context("map DROPS")?)?;
    let reader = Array::try_from(ebpf.take_map("READER").context("map READER")?)?;
    let mut probes = Probes {
        ebpf,
        attached: Vec::new(),
        gaps,
        compat: compat::ia32_on(),
    };
    let refused = probes.set_active(opts.active).err().map(|e| {
        let line = format!("this kernel refused probes: not recorded: {e:#}");
        eprintln!("sysmon: {line}");
        line
    });
    let refused = match (refused, no_cgroups) {
        (Some(a), Some(b)) => Some(format!("{a}; {b}")),
        (a, b) => a.or(b),
    };
    Ok(Loaded {
        probes,
        ring,
        drops,
        reader,
        refused,
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
                if find(point, p) == Found::Yes {
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

/// Records dropped in the kernel so far, per cause (`drops::*`) and kind, summed over CPUs.
pub fn drop_totals(map: &PerCpuArray<MapData, u64>) -> Vec<(u32, RecordKind, u64)> {
    (0..drops::CAUSES)
        .flat_map(|cause| RecordKind::ALL.iter().map(move |k| (cause, *k)))
        .map(|(cause, k)| {
            let n = map
                .get(&drops::slot(cause, k), 0)
                .map(|v| v.iter().sum())
                .unwrap_or(0);
            (cause, k, n)
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

/// Test hook: the size of every table of calls in flight (tests make it small to fill it).
pub const IN_FLIGHT_HOOK: &str = "SYSMON_TEST_IN_FLIGHT";

/// Entries of the tables of calls in flight: `$SYSMON_TEST_IN_FLIGHT`, else sized by the
/// threads the host can have (see `IN_FLIGHT_MIN`).
fn in_flight() -> Result<u32> {
    if let Ok(v) = std::env::var(IN_FLIGHT_HOOK) {
        return match v.parse::<u32>() {
            Ok(n) if n > 0 => Ok(n),
            _ => bail!("{IN_FLIGHT_HOOK}={v}: must be a number of entries, at least 1"),
        };
    }
    let read = |p: &str| fs::read_to_string(p).ok()?.trim().parse::<u32>().ok();
    let threads = [
        read("/proc/sys/kernel/pid_max"),
        read("/proc/sys/kernel/threads-max"),
    ];
    Ok(in_flight_for(threads.into_iter().flatten().min()))
}

/// The tables' size for a host that can have `threads` threads (unknown: the largest).
fn in_flight_for(threads: Option<u32>) -> u32 {
    threads
        .unwrap_or(IN_FLIGHT_MAX)
        .clamp(IN_FLIGHT_MIN, IN_FLIGHT_MAX)
}

/// `$SYSMON_RING_BYTES` (tests use a small ring to force drops), else sized by CPUs.
fn ring_bytes(cpus: u32) -> Result<u32> {
    let Ok(v) = std::env::var("SYSMON_RING_BYTES") else {
        return Ok(ring_for(cpus));
    };
    match v.parse::<u32>() {
        Ok(n) if n.is_power_of_two() && n >= 4096 => Ok(n),
        _ => bail!("SYSMON_RING_BYTES={v}: must be a power of two, at least 4096"),
    }
}

/// `RING_PER_CPU` per CPU, a power of two within `RING_MIN..=RING_MAX`.
fn ring_for(cpus: u32) -> u32 {
    RING_PER_CPU
        .saturating_mul(cpus)
        .checked_next_power_of_two()
        .unwrap_or(RING_MAX)
        .clamp(RING_MIN, RING_MAX)
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

/// Mounts tracefs where the tracepoint checks and attaches look for it, unless it is there.
pub(crate) fn mount_tracefs() -> Result<()> {
    mount_if_missing("tracefs", TRACEFS, &format!("{TRACEFS}/events"))
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

    #[test]
    fn in_flight_tables_follow_the_threads_within_their_bounds() {
        // (threads the host can have, entries)
        for (threads, entries) in [
            (None, 32768),
            (Some(0), 1024),
            (Some(100), 1024),
            (Some(4096), 4096),
            (Some(32768), 32768),
            (Some(4_194_304), 32768),
        ] {
            assert_eq!(in_flight_for(threads), entries, "{threads:?}");
        }
    }

    #[test]
    fn the_ring_grows_with_cpus_within_its_bounds() {
        const MIB: u32 = 1024 * 1024;
        for (cpus, mib) in [
            (1, 8),
            (2, 8),
            (5, 16),
            (4, 8),
            (8, 16),
            (24, 64),
            (64, 64),
            (4096, 64),
        ] {
            assert_eq!(ring_for(cpus), mib * MIB, "{cpus} CPUs");
        }
    }
}
