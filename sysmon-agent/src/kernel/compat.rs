//! 32-bit syscalls: whether this machine runs them, and which the programs cover. On x86_64
//! the compat programs (`probes/compat.rs`) cover ia32 syscalls (32-bit processes and
//! `int $0x80`) where the kernel has ia32 emulation on; x32 syscalls and, on other
//! architectures, 32-bit processes are not covered, and the agent says so at start (event
//! 255 `KernelCheck`).

use sysmon_common::compat::on;

use crate::events::schema;

/// The compat programs, attached only where ia32 syscalls run.
pub const PROGRAMS: [&str; 2] = ["compat_enter", "compat_exit"];

/// Whether this kernel runs ia32 syscalls: a child makes `getpid` through `int $0x80`. Without
/// ia32 emulation (not built in, or `ia32_emulation=false`) the instruction faults and the
/// child dies of SIGSEGV.
#[cfg(target_arch = "x86_64")]
pub fn ia32_on() -> bool {
    // SAFETY: the child makes one syscall and exits, touching no lock or allocation.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        let mut nr: u32 = 20; // ia32 getpid
        // SAFETY: int $0x80 with only eax set; it clobbers nothing but eax (r8-r11 are saved
        // by the kernel since 4.17, declared clobbered for older ones).
        unsafe {
            core::arch::asm!(
                "int 0x80",
                inout("eax") nr,
                out("r8") _, out("r9") _, out("r10") _, out("r11") _,
            );
            libc::_exit(i32::from(nr as i32 <= 0));
        }
    }
    if pid < 0 {
        return false;
    }
    let mut status = 0;
    // SAFETY: waits for the child just forked.
    let waited = unsafe { libc::waitpid(pid, &mut status, 0) };
    waited == pid && libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0
}

#[cfg(not(target_arch = "x86_64"))]
pub fn ia32_on() -> bool {
    false
}

/// Whether x32 syscalls (`__X32_SYSCALL_BIT`) run: a kernel without them says ENOSYS.
#[cfg(target_arch = "x86_64")]
fn x32_on() -> bool {
    const X32_GETPID: libc::c_long = 0x4000_0000 + 39;
    // SAFETY: getpid, in whichever ABI the kernel takes it, has no arguments.
    unsafe { libc::syscall(X32_GETPID) == libc::c_long::from(libc::getpid()) }
}

/// The `KernelCheck` line on the 32-bit syscalls this machine runs and the programs do not
/// see, if any.
pub fn uncovered() -> Option<String> {
    #[cfg(target_arch = "x86_64")]
    let what = x32_on().then_some(
        "x32 syscalls (64-bit processes of the x32 ABI) are not covered: files, processes and \
         sockets they touch give no event",
    );
    #[cfg(not(target_arch = "x86_64"))]
    let what = std::fs::read_to_string("/sys/devices/system/cpu/aarch32_el0")
        .is_ok_and(|cpus| !cpus.trim().is_empty())
        .then_some(
            "32-bit (compat) syscalls are not covered on this architecture: files, processes \
             and sockets 32-bit processes touch give no event",
        );
    what.map(str::to_string)
}

/// The `COMPAT_ON` bits for the events `active`.
pub fn bits(active: &[u16]) -> u32 {
    active
        .iter()
        .filter(|id| **id < 32)
        .fold(0, |b, id| b | 1 << id)
        & ALL
}

/// Every bit the compat programs look at.
const ALL: u32 = on::FILE_CREATE_TIME
    | on::NETWORK_CONNECT
    | on::IMAGE_LOAD
    | on::RAW_ACCESS_READ
    | on::FILE_CREATE
    | on::PIPE_CREATED
    | on::PIPE_CONNECTED
    | on::FILE_DELETE
    | on::FILE_EXECUTABLE_DETECTED;

/// Events the compat programs serve at a syscall's entry and at its exit.
pub const ENTER_EVENTS: &[u16] = &[
    schema::FILE_CREATE_TIME,
    schema::NETWORK_CONNECT,
    schema::CREATE_REMOTE_THREAD,
    schema::PROCESS_ACCESS,
    schema::PIPE_CREATED,
    schema::DNS_QUERY,
    schema::FILE_DELETE,
    schema::FILE_EXECUTABLE_DETECTED,
];
pub const EXIT_EVENTS: &[u16] = &[
    schema::FILE_CREATE_TIME,
    schema::NETWORK_CONNECT,
    schema::IMAGE_LOAD,
    schema::CREATE_REMOTE_THREAD,
    schema::RAW_ACCESS_READ,
    schema::PROCESS_ACCESS,
    schema::FILE_CREATE,
    schema::PIPE_CREATED,
    schema::PIPE_CONNECTED,
    schema::DNS_QUERY,
    schema::FILE_DELETE,
    schema::FILE_EXECUTABLE_DETECTED,
];

#[cfg(test)]
mod tests {
    use super::*;
    use sysmon_common::compat::ia32;

    #[test]
    fn the_bits_are_the_event_ids() {
        // (bit, event id)
        let cases = [
            (on::FILE_CREATE_TIME, schema::FILE_CREATE_TIME),
            (on::NETWORK_CONNECT, schema::NETWORK_CONNECT),
            (on::IMAGE_LOAD, schema::IMAGE_LOAD),
            (on::RAW_ACCESS_READ, schema::RAW_ACCESS_READ),
            (on::FILE_CREATE, schema::FILE_CREATE),
            (on::PIPE_CREATED, schema::PIPE_CREATED),
            (on::PIPE_CONNECTED, schema::PIPE_CONNECTED),
            (on::FILE_DELETE, schema::FILE_DELETE),
            (
                on::FILE_EXECUTABLE_DETECTED,
                schema::FILE_EXECUTABLE_DETECTED,
            ),
        ];
        for (bit, id) in cases {
            assert_eq!(bit, 1 << id, "event {id}");
            assert_eq!(bits(&[id]), bit, "event {id}");
        }
        // Events the programs do not look at (or learn from ACCESS_ON, RECV_WANTS) set none.
        let none = [
            schema::PROCESS_CREATE,
            schema::PROCESS_ACCESS,
            schema::DNS_QUERY,
            schema::ERROR,
        ];
        assert_eq!(bits(&none), 0);
        // Every event the exit serves is looked at through a bit or a map of its own.
        for id in EXIT_EVENTS {
            let own_map = [
                schema::PROCESS_ACCESS,
                schema::CREATE_REMOTE_THREAD,
                schema::DNS_QUERY,
            ];
            assert!(bits(&[*id]) != 0 || own_map.contains(id), "event {id}");
        }
    }

    /// The ia32 numbers as the system's headers have them, where they are installed.
    #[test]
    fn ia32_numbers_match_the_system_headers() {
        let Some(text) = [
            "/usr/include/x86_64-linux-gnu/asm/unistd_32.h",
            "/usr/include/asm/unistd_32.h",
        ]
        .iter()
        .find_map(|p| std::fs::read_to_string(p).ok()) else {
            eprintln!("skipped: no unistd_32.h");
            return;
        };
        let mut checked = 0;
        for (name, nr) in ia32::ALL {
            let define = format!("#define __NR_{name} ");
            // Headers older than a call lack it (fchmodat2 is 6.6).
            if let Some(line) = text.lines().find(|l| l.starts_with(&define)) {
                let got: i32 = line[define.len()..].trim().parse().unwrap();
                assert_eq!(got, *nr, "{name}");
                checked += 1;
            }
        }
        assert!(checked >= ia32::ALL.len() - 1, "{checked} checked");
    }

    /// What the probes find agrees with the kernel's configuration and command line, where
    /// the kernel publishes its configuration.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn the_ia32_and_x32_probes_agree_with_the_kernel_config() {
        let Ok(out) = std::process::Command::new("zcat")
            .arg("/proc/config.gz")
            .output()
        else {
            eprintln!("skipped: no zcat");
            return;
        };
        let config = String::from_utf8_lossy(&out.stdout);
        if !out.status.success() || config.is_empty() {
            eprintln!("skipped: no /proc/config.gz");
            return;
        }
        let set = |opt: &str| config.lines().any(|l| l == format!("{opt}=y"));
        let cmdline = std::fs::read_to_string("/proc/cmdline").unwrap_or_default();
        let word = |w: &str| cmdline.split_whitespace().any(|x| x == w);
        let ia32 = set("CONFIG_IA32_EMULATION")
            && !word("ia32_emulation=false")
            && (!set("CONFIG_IA32_EMULATION_DEFAULT_DISABLED") || word("ia32_emulation=true"));
        assert_eq!(ia32_on(), ia32);
        if !set("CONFIG_X86_X32_ABI") {
            assert_eq!(uncovered(), None);
        }
    }
}
