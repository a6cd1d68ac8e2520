//! The optional probes, the events each serves and where it attaches, and what the running
//! kernel must have for them (checked before loading: a missing tracepoint turns off only
//! the events that need it).

use std::{fs, path::Path};

use anyhow::{Result, bail};

use super::btf;
use crate::events::schema;

/// Where an optional program attaches.
#[derive(PartialEq)]
pub enum Point {
    /// Syscall tracepoints; one this architecture lacks (no `open` on arm64) is skipped.
    Syscalls(&'static [&'static str]),
    /// A raw tracepoint.
    Raw(&'static str),
}

/// An optional probe: the events it serves, its program, where it attaches, and what is not
/// recorded while it is off (for the kernel check's line; by default, all it serves).
pub struct Sensor {
    pub events: &'static [u16],
    pub program: &'static str,
    pub point: Point,
    /// What is lost without it, when that is less than every event it serves.
    pub without: Option<&'static str>,
}

impl Sensor {
    const fn new(events: &'static [u16], program: &'static str, point: Point) -> Sensor {
        Sensor {
            events,
            program,
            point,
            without: None,
        }
    }

    const fn without(self, lost: &'static str) -> Sensor {
        Sensor {
            without: Some(lost),
            ..self
        }
    }
}

/// The optional probes: the events each serves, the program, where it attaches. A program
/// serving several events is attached once, while any of them is on (ACCESS_ON and
/// RECV_WANTS tell such a program which of its events to produce).
pub const SENSORS: &[Sensor] = &[
    Sensor::new(
        &[schema::FILE_CREATE],
        "file_create",
        Point::Syscalls(&[
            "sys_exit_creat",
            "sys_exit_open",
            "sys_exit_openat",
            "sys_exit_openat2",
        ]),
    ),
    Sensor::new(
        &[schema::RAW_ACCESS_READ],
        "raw_access",
        Point::Syscalls(&["sys_exit_open", "sys_exit_openat", "sys_exit_openat2"]),
    ),
    Sensor::new(
        &[schema::FILE_DELETE],
        "unlink_enter",
        Point::Syscalls(&["sys_enter_unlink"]),
    ),
    Sensor::new(
        &[schema::FILE_DELETE],
        "unlinkat_enter",
        Point::Syscalls(&["sys_enter_unlinkat"]),
    ),
    Sensor::new(
        &[schema::FILE_DELETE],
        "unlink_exit",
        Point::Syscalls(&["sys_exit_unlink", "sys_exit_unlinkat"]),
    ),
    Sensor::new(
        &[schema::NETWORK_CONNECT],
        "tcp_accept",
        Point::Syscalls(&["sys_exit_accept", "sys_exit_accept4"]),
    ),
    Sensor::new(
        &[schema::NETWORK_CONNECT],
        "inet_sock_set_state",
        Point::Raw("inet_sock_set_state"),
    ),
    Sensor::new(
        &[schema::NETWORK_CONNECT],
        "udp_send",
        Point::Raw("net_dev_queue"),
    ),
    // Without it (before 6.3) the receive exits also take the calls that pass no address
    // buffer, with the socket's ends (see `recv_wants`); only read() and readv() escape.
    Sensor::new(
        &[schema::NETWORK_CONNECT],
        "udp_recv",
        Point::Raw("sock_recv_length"),
    )
    .without("NetworkConnect (event 3) for UDP datagrams taken by read() or readv()"),
    Sensor::new(
        &[schema::FILE_CREATE_TIME],
        "utimensat_enter",
        Point::Syscalls(&["sys_enter_utimensat"]),
    ),
    Sensor::new(
        &[schema::FILE_CREATE_TIME],
        "futimesat_enter",
        Point::Syscalls(&["sys_enter_futimesat"]),
    ),
    Sensor::new(
        &[schema::FILE_CREATE_TIME],
        "utimes_enter",
        Point::Syscalls(&["sys_enter_utimes"]),
    ),
    Sensor::new(
        &[schema::FILE_CREATE_TIME],
        "utime_enter",
        Point::Syscalls(&["sys_enter_utime"]),
    ),
    Sensor::new(
        &[schema::FILE_CREATE_TIME],
        "attr_exit",
        Point::Syscalls(&[
            "sys_exit_utimensat",
            "sys_exit_futimesat",
            "sys_exit_utimes",
            "sys_exit_utime",
        ]),
    ),
    Sensor::new(
        &[schema::FILE_EXECUTABLE_DETECTED],
        "chmod_enter",
        Point::Syscalls(&["sys_enter_chmod"]),
    ),
    Sensor::new(
        &[schema::FILE_EXECUTABLE_DETECTED],
        "fchmodat_enter",
        Point::Syscalls(&["sys_enter_fchmodat", "sys_enter_fchmodat2"]),
    ),
    Sensor::new(
        &[schema::FILE_EXECUTABLE_DETECTED],
        "fchmod_enter",
        Point::Syscalls(&["sys_enter_fchmod"]),
    ),
    Sensor::new(
        &[schema::FILE_EXECUTABLE_DETECTED],
        "attr_exit",
        Point::Syscalls(&[
            "sys_exit_chmod",
            "sys_exit_fchmodat",
            "sys_exit_fchmodat2",
            "sys_exit_fchmod",
        ]),
    ),
    Sensor::new(
        &[schema::FILE_EXECUTABLE_DETECTED],
        "exec_created",
        Point::Syscalls(&[
            "sys_exit_creat",
            "sys_exit_open",
            "sys_exit_openat",
            "sys_exit_openat2",
        ]),
    ),
    Sensor::new(
        &[schema::FILE_CREATE_TIME, schema::FILE_EXECUTABLE_DETECTED],
        "attr_changed",
        Point::Raw("ctime_ns_xchg"),
    )
    .without(ATTR_CHANGED_WITHOUT),
    Sensor::new(
        &[schema::FILE_CREATE_TIME, schema::FILE_EXECUTABLE_DETECTED],
        "attr_changed",
        Point::Raw("ctime_xchg_skip"),
    )
    .without(ATTR_CHANGED_WITHOUT),
    Sensor::new(
        &[schema::FILE_CREATE_TIME, schema::FILE_EXECUTABLE_DETECTED],
        "attr_changed",
        Point::Raw("inode_set_ctime_to_ts"),
    )
    .without(ATTR_CHANGED_WITHOUT),
    Sensor::new(
        &[schema::PIPE_CREATED],
        "mknod_enter",
        Point::Syscalls(&["sys_enter_mknod"]),
    ),
    Sensor::new(
        &[schema::PIPE_CREATED],
        "mknodat_enter",
        Point::Syscalls(&["sys_enter_mknodat"]),
    ),
    Sensor::new(
        &[schema::PIPE_CREATED],
        "attr_exit",
        Point::Syscalls(&["sys_exit_mknod", "sys_exit_mknodat"]),
    ),
    Sensor::new(
        &[schema::PIPE_CONNECTED],
        "pipe_connect",
        Point::Syscalls(&["sys_exit_open", "sys_exit_openat", "sys_exit_openat2"]),
    ),
    Sensor::new(
        &[schema::IMAGE_LOAD],
        "mmap_enter",
        Point::Syscalls(&["sys_enter_mmap"]),
    ),
    Sensor::new(
        &[schema::IMAGE_LOAD],
        "mprotect_enter",
        Point::Syscalls(&["sys_enter_mprotect", "sys_enter_pkey_mprotect"]),
    ),
    Sensor::new(
        &[schema::IMAGE_LOAD],
        "attr_exit",
        Point::Syscalls(&[
            "sys_exit_mmap",
            "sys_exit_mprotect",
            "sys_exit_pkey_mprotect",
        ]),
    ),
    Sensor::new(
        &[schema::IMAGE_LOAD],
        "image_exec",
        Point::Raw("sched_process_exec"),
    ),
    Sensor::new(
        &[schema::PROCESS_ACCESS, schema::CREATE_REMOTE_THREAD],
        "ptrace_enter",
        PTRACE_ENTER,
    ),
    Sensor::new(
        &[schema::PROCESS_ACCESS, schema::CREATE_REMOTE_THREAD],
        "ptrace_exit",
        PTRACE_EXIT,
    ),
    Sensor::new(
        &[schema::PROCESS_ACCESS],
        "vm_readv_enter",
        Point::Syscalls(&["sys_enter_process_vm_readv"]),
    ),
    Sensor::new(
        &[schema::PROCESS_ACCESS, schema::CREATE_REMOTE_THREAD],
        "vm_writev_enter",
        VM_WRITEV_ENTER,
    ),
    Sensor::new(
        &[schema::PROCESS_ACCESS, schema::CREATE_REMOTE_THREAD],
        "vm_rw_exit",
        VM_RW_EXIT,
    ),
    Sensor::new(
        &[schema::PROCESS_ACCESS],
        "proc_mem_exit",
        Point::Syscalls(&["sys_exit_open", "sys_exit_openat", "sys_exit_openat2"]),
    ),
    Sensor::new(
        &[schema::NETWORK_CONNECT, schema::DNS_QUERY],
        "recvfrom_enter",
        Point::Syscalls(&["sys_enter_recvfrom"]),
    ),
    Sensor::new(
        &[schema::NETWORK_CONNECT, schema::DNS_QUERY],
        "recvmsg_enter",
        Point::Syscalls(&["sys_enter_recvmsg"]),
    ),
    Sensor::new(
        &[schema::NETWORK_CONNECT, schema::DNS_QUERY],
        "recvmmsg_enter",
        Point::Syscalls(&["sys_enter_recvmmsg"]),
    ),
    Sensor::new(
        &[schema::NETWORK_CONNECT, schema::DNS_QUERY],
        "recv_exit",
        Point::Syscalls(&["sys_exit_recvfrom", "sys_exit_recvmsg", "sys_exit_recvmmsg"]),
    ),
];

/// The timestamp tracepoints (6.13+) give the inode of a call that names its file by path
/// (see probes/attr.rs); before them, the old modification time is unknown, and a chmod's
/// file is judged by user space as it is after the call.
const ATTR_CHANGED_WITHOUT: &str = "FileCreateTime (event 2) of a file named by path; \
    FileExecutableDetected (event 29) of a chmod by path is judged by user space from the file \
    after the call";

const PTRACE_ENTER: Point = Point::Syscalls(&["sys_enter_ptrace"]);
const PTRACE_EXIT: Point = Point::Syscalls(&["sys_exit_ptrace"]);
const VM_WRITEV_ENTER: Point = Point::Syscalls(&["sys_enter_process_vm_writev"]);
const VM_RW_EXIT: Point =
    Point::Syscalls(&["sys_exit_process_vm_readv", "sys_exit_process_vm_writev"]);
/// Whether `SENSORS[i]` must be attached for `active`: while any event it serves is on.
pub fn wanted(i: usize, active: &[u16]) -> bool {
    SENSORS[i].events.iter().any(|id| active.contains(id))
}

/// Tracepoints an optional program needs that this kernel lacks.
#[derive(Debug)]
pub struct Gap {
    /// Index in SENSORS.
    pub sensor: usize,
    pub points: Vec<&'static str>,
    /// None of its points exist: the program stays off. Otherwise it attaches where it can.
    pub off: bool,
}

/// Whether a tracepoint is there.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Found {
    Yes,
    No,
    /// The tracepoint of a syscall this kernel or architecture does not have (fchmodat2
    /// before 6.6, open on arm64): no process can make the call, so nothing is missed.
    NoSyscall,
}

/// The gaps of every SENSORS entry, given what `find` says of each attach point.
pub fn gaps(find: impl Fn(&Point, &str) -> Found) -> Vec<Gap> {
    let mut out = Vec::new();
    for (i, sensor) in SENSORS.iter().enumerate() {
        let point = &sensor.point;
        let points: &[&'static str] = match point {
            Point::Syscalls(p) => p,
            Point::Raw(p) => std::slice::from_ref(p),
        };
        let present = points
            .iter()
            .filter(|p| find(point, p) == Found::Yes)
            .count();
        let missing: Vec<_> = points
            .iter()
            .copied()
            .filter(|p| find(point, p) == Found::No)
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
pub fn describe(gaps: &[Gap]) -> Option<String> {
    if gaps.is_empty() {
        return None;
    }
    let mut names: Vec<&str> = Vec::new();
    for p in gaps.iter().flat_map(|g| g.points.iter().copied()) {
        if !names.contains(&p) {
            names.push(p);
        }
    }
    let mut effects: Vec<String> = gaps
        .iter()
        .map(|g| {
            let Sensor {
                events,
                program,
                without,
                ..
            } = &SENSORS[g.sensor];
            let events = events_named(events);
            if let (true, Some(without)) = (g.off, without) {
                format!("{without} ({program})")
            } else if g.off {
                format!("{events} from {program}")
            } else {
                format!("{events} through {}", g.points.join(", "))
            }
        })
        .collect();
    // Programs attached at several points lose the same for each.
    effects.dedup();
    Some(format!(
        "this kernel lacks tracepoint {}: not recorded: {}",
        names.join(", "),
        effects.join("; ")
    ))
}

/// `FileCreate (event 11), …` for event ids.
pub fn events_named(ids: &[u16]) -> String {
    let named: Vec<String> = ids
        .iter()
        .map(|id| {
            let event = schema::by_id(*id).map_or("?", |k| k.tag.unwrap_or(k.name));
            format!("{event} (event {id})")
        })
        .collect();
    named.join(", ")
}

/// The last `n` non-empty lines of an error: a verifier's refusal is its whole log, of which
/// the last lines say why.
pub fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(n)..].join(" | ")
}

/// Test hook: tracepoints to treat as missing, as on an older kernel
/// (`SYSMON_TEST_MISSING_TRACEPOINTS=sock_recv_length,sys_exit_openat2`).
pub const MISSING_HOOK: &str = "SYSMON_TEST_MISSING_TRACEPOINTS";
/// Test hook: tracepoints that exist but whose attach the kernel refuses (the attach is
/// made to a tracepoint that does not exist, so the refusal is the kernel's own).
pub const FAIL_ATTACH_HOOK: &str = "SYSMON_TEST_FAIL_ATTACH";

pub fn hooked(var: &str, point: &str) -> bool {
    std::env::var(var).is_ok_and(|v| v.split(',').any(|p| p.trim() == point))
}

/// Whether the tracepoint `point` is there: `events/syscalls/<point>` for a syscall, any
/// `events/<category>/<point>` for a raw tracepoint (tracefs lists every trace event). A
/// kernel that traces syscalls has a tracepoint for every syscall it has, so one missing
/// there is a syscall it does not have.
pub fn find(kind: &Point, point: &str) -> Found {
    if hooked(MISSING_HOOK, point) {
        return Found::No;
    }
    let here = match kind {
        Point::Syscalls(_) => Path::new(&format!("{TRACEFS}/events/syscalls/{point}")).exists(),
        Point::Raw(_) => fs::read_dir(format!("{TRACEFS}/events"))
            .map(|dirs| dirs.flatten().any(|d| d.path().join(point).is_dir()))
            .unwrap_or(false),
    };
    let syscalls_traced = Path::new(&format!("{TRACEFS}/events/syscalls")).is_dir();
    match (here, kind) {
        (true, _) => Found::Yes,
        (false, Point::Syscalls(_)) if syscalls_traced => Found::NoSyscall,
        (false, _) => Found::No,
    }
}

/// What no event can do without; one line naming all that is missing.
pub fn check_required(kernel: &btf::Kernel) -> Result<()> {
    let mut lacks: Vec<String> = kernel.lacks.iter().map(|w| w.to_string()).collect();
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
            "this kernel lacks {}: sysmon cannot run (every event needs them; it needs Linux \
             5.17 or later with BTF)",
            lacks.join(", ")
        );
    }
    Ok(())
}

const TRACEFS: &str = "/sys/kernel/tracing";

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
                    "NetworkConnect (event 3) for UDP datagrams taken by read() or readv() \
                     (udp_recv)",
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
            (
                // 6.1: the three alternatives of one program lose the same, said once.
                &["ctime_ns_xchg", "ctime_xchg_skip", "inode_set_ctime_to_ts"],
                &[
                    "lacks tracepoint ctime_ns_xchg, ctime_xchg_skip, inode_set_ctime_to_ts: \
                     not recorded: FileCreateTime (event 2) of a file named by path; \
                     FileExecutableDetected (event 29) of a chmod by path is judged by user \
                     space from the file after the call (attr_changed)",
                ],
                &["attr_changed);"],
            ),
        ];
        for (missing, want, not) in cases {
            let g = gaps(|_, p| {
                if missing.contains(&p) {
                    Found::No
                } else {
                    Found::Yes
                }
            });
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
                let name = SENSORS[gap.sensor].program;
                let all_missing = match &SENSORS[gap.sensor].point {
                    Point::Syscalls(p) => p.iter().all(|p| missing.contains(p)),
                    Point::Raw(p) => missing.contains(p),
                };
                assert_eq!(gap.off, all_missing, "{name}");
            }
        }
    }

    /// A syscall the kernel does not have (fchmodat2 before 6.6) is not a gap: no process
    /// can make the call. The other points of its program still attach.
    #[test]
    fn a_syscall_the_kernel_lacks_is_not_a_gap() {
        let g = gaps(|_, p| {
            if p.contains("fchmodat2") {
                Found::NoSyscall
            } else {
                Found::Yes
            }
        });
        assert_eq!(describe(&g), None);
    }

    #[test]
    fn every_sensor_tracepoint_exists_on_this_kernel() {
        // A fresh machine has no tracefs until the agent (or this test, as root) mounts it.
        if let Err(e) = super::super::load::mount_tracefs() {
            let ci = std::env::var("CI").is_ok_and(|v| v == "true");
            assert!(!ci, "no tracefs under CI: {e:#}");
            eprintln!("skipped: no tracefs at {TRACEFS}: {e:#}");
            return;
        }
        assert_eq!(describe(&gaps(find)), None);
    }

    fn attached(active: &[u16]) -> Vec<&'static str> {
        let mut v: Vec<_> = (0..SENSORS.len())
            .filter(|i| wanted(*i, active))
            .map(|i| SENSORS[i].program)
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

    /// A program at one point is one entry (listing every event it serves), so it is never
    /// attached twice.
    #[test]
    fn each_program_and_point_is_one_entry() {
        for (i, s) in SENSORS.iter().enumerate() {
            let (name, point) = (s.program, &s.point);
            let twice = SENSORS[..i]
                .iter()
                .any(|o| o.program == name && o.point == *point);
            assert!(!twice, "{name} is listed twice at the same point");
        }
    }
}
