//! Reading a process from /proc: for processes that started before the agent, and for the
//! rare cache miss.

use std::{fs, os::unix::fs::MetadataExt};

/// What /proc tells about one process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcEntry {
    pub pid: u32,
    pub ppid: u32,
    /// Start time, nanoseconds since boot (clock-tick precision).
    pub start_ns: u64,
    /// `mm->end_code`, the ProcessGuid key (0 for kernel threads and zombies).
    pub end_code: u64,
    pub uid: u32,
    pub image: String,
    /// Arguments joined by spaces.
    pub cmdline: String,
}

pub fn read(pid: u32) -> Option<ProcEntry> {
    let dir = format!("/proc/{pid}");
    let stat = fs::read(format!("{dir}/stat")).ok()?;
    let (ppid, start_ticks, end_code) = parse_stat(&stat)?;
    let uid = fs::metadata(&dir).ok()?.uid();
    let image = fs::read_link(format!("{dir}/exe"))
        .map(|p| {
            p.to_string_lossy()
                .trim_end_matches(" (deleted)")
                .to_string()
        })
        .unwrap_or_default();
    let mut cmdline = String::new();
    if let Ok(raw) = fs::read(format!("{dir}/cmdline")) {
        crate::events::text::push_bytes(&mut cmdline, &join_args(&raw));
    }
    Some(ProcEntry {
        pid,
        ppid,
        start_ns: start_ticks * tick_ns(),
        end_code,
        uid,
        image,
        cmdline,
    })
}

/// Every numeric entry of /proc.
pub fn pids() -> Vec<u32> {
    fs::read_dir("/proc")
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// (ppid, starttime in ticks, endcode) from `/proc/<pid>/stat`, whose comm field may hold
/// spaces and parentheses: fields are counted after the last `)`.
fn parse_stat(stat: &[u8]) -> Option<(u32, u64, u64)> {
    let close = stat.iter().rposition(|b| *b == b')')?;
    let rest = std::str::from_utf8(&stat[close + 1..]).ok()?;
    let f: Vec<&str> = rest.split_ascii_whitespace().collect();
    // After ")": f[0] = state (field 3), so field N is f[N - 3].
    Some((
        f.get(1)?.parse().ok()?,
        f.get(19)?.parse().ok()?,
        f.get(24)?.parse().ok()?,
    ))
}

/// NUL-separated argv as Sysmon prints it: arguments joined by one space.
pub fn join_args(raw: &[u8]) -> Vec<u8> {
    let trimmed = raw.strip_suffix(b"\0").unwrap_or(raw);
    trimmed
        .iter()
        .map(|b| if *b == 0 { b' ' } else { *b })
        .collect()
}

fn tick_ns() -> u64 {
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    1_000_000_000 / if hz > 0 { hz as u64 } else { 100 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_with_odd_comm() {
        let line = b"42 (a) b (c)) S 7 42 42 0 -1 4194560 1 0 0 0 0 0 0 0 20 0 1 0 12345 1000 10 \
                     18446744073709551615 94000000000000 94000000012345 1 2 3 4 5";
        assert_eq!(parse_stat(line), Some((7, 12345, 94000000012345)));
    }

    #[test]
    fn args_join() {
        assert_eq!(join_args(b"ls\0-l\0\0x\0"), b"ls -l  x");
        assert_eq!(join_args(b""), b"");
    }

    #[test]
    fn reads_self() {
        let me = read(std::process::id()).unwrap();
        assert_eq!(me.ppid, std::os::unix::process::parent_id());
        assert!(me.end_code > 0);
        assert_eq!(me.image, std::env::current_exe().unwrap().to_string_lossy());
    }
}
