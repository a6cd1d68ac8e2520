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
    pub cgroups: sysmon_common::process::Cgroups,
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
        cgroups: super::containers::Mounts::get().of_pid(pid),
    })
}

/// The thread group of thread `tid` (`Tgid:` of /proc/<tid>/status).
pub fn tgid_of(tid: u32) -> Option<u32> {
    let status = fs::read_to_string(format!("/proc/{tid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("Tgid:"))?;
    line[5..].trim().parse().ok()
}

/// Bytes of /proc/<pid>/maps read at most where the kernel cannot be asked for one address
/// (before Linux 6.11): about 2 500 mappings. A mapping past them shows as unknown.
const MAPS_READ_MAX: usize = 256 << 10;

/// The file mapped at `addr` in process `pid`, if any: asked of the kernel for that one
/// address (`PROCMAP_QUERY`, Linux 6.11+), which costs the same however many mappings the
/// process has (a process could make reading its whole map take long); on older kernels
/// from the first `MAPS_READ_MAX` bytes of /proc/<pid>/maps.
pub fn mapped_file(pid: u32, addr: u64) -> Option<String> {
    let maps = fs::File::open(format!("/proc/{pid}/maps")).ok()?;
    match query_mapping(&maps, addr) {
        Ok(path) => path,
        Err(_) => read_mapping(maps, addr),
    }
}

/// `struct procmap_query` (uapi linux/fs.h).
#[repr(C)]
#[derive(Default)]
struct ProcmapQuery {
    size: u64,
    query_flags: u64,
    query_addr: u64,
    vma_start: u64,
    vma_end: u64,
    vma_flags: u64,
    vma_page_size: u64,
    vma_offset: u64,
    inode: u64,
    dev_major: u32,
    dev_minor: u32,
    vma_name_size: u32,
    build_id_size: u32,
    vma_name_addr: u64,
    build_id_addr: u64,
}

/// `_IOWR('f', 17, struct procmap_query)`.
const PROCMAP_QUERY: libc::c_ulong = 0xC068_6611;

/// `Ok(path)` from the kernel (`Ok(None)`: nothing, or no file, there); `Err` when this
/// kernel cannot be asked.
fn query_mapping(maps: &fs::File, addr: u64) -> Result<Option<String>, ()> {
    use std::os::fd::AsRawFd;
    let mut name = vec![0u8; libc::PATH_MAX as usize];
    let mut q = ProcmapQuery {
        size: size_of::<ProcmapQuery>() as u64,
        query_addr: addr,
        vma_name_size: name.len() as u32,
        vma_name_addr: name.as_mut_ptr() as u64,
        ..Default::default()
    };
    // SAFETY: `q` is the struct the ioctl takes, with its size set; the kernel writes at
    // most `vma_name_size` bytes to `name`, which lives through the call.
    let rc = unsafe { libc::ioctl(maps.as_raw_fd(), PROCMAP_QUERY, &mut q) };
    if rc != 0 {
        return match std::io::Error::last_os_error().raw_os_error() {
            Some(libc::ENOENT) => Ok(None),
            Some(libc::ENOTTY | libc::EINVAL | libc::EOPNOTSUPP) => Err(()),
            // A name longer than PATH_MAX, a process gone: nothing to show.
            _ => Ok(None),
        };
    }
    // Size with the final NUL; 0 when the mapping has no name.
    let len = (q.vma_name_size as usize).saturating_sub(1).min(name.len());
    let path = String::from_utf8_lossy(&name[..len]);
    Ok(path.starts_with('/').then(|| path.into_owned()))
}

/// From the first `MAPS_READ_MAX` bytes of the map, whole lines only.
fn read_mapping(maps: fs::File, addr: u64) -> Option<String> {
    use std::io::Read;
    let mut text = Vec::new();
    maps.take(MAPS_READ_MAX as u64)
        .read_to_end(&mut text)
        .ok()?;
    let whole = text.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
    find_mapping(&String::from_utf8_lossy(&text[..whole]), addr)
}

fn find_mapping(maps: &str, addr: u64) -> Option<String> {
    maps.lines().find_map(|l| {
        let (range, rest) = l.split_once(' ')?;
        let (lo, hi) = range.split_once('-')?;
        let (lo, hi) = (
            u64::from_str_radix(lo, 16).ok()?,
            u64::from_str_radix(hi, 16).ok()?,
        );
        if addr < lo || addr >= hi {
            return None;
        }
        // perms offset dev inode, then the path (which may hold spaces).
        let path = rest.splitn(5, ' ').nth(4)?.trim_start();
        path.starts_with('/').then(|| path.to_string())
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
    fn mapping_at_an_address() {
        let maps = "55d0c0a00000-55d0c0a02000 r--p 00000000 fd:01 1234  /usr/bin/my prog\n\
                    55d0c0a02000-55d0c0a04000 r-xp 00002000 fd:01 1234  /usr/bin/my prog\n\
                    7ffc1000-7ffc2000 rw-p 00000000 00:00 0          [stack]\n\
                    7ffd0000-7ffd1000 rw-p 00000000 00:00 0 \n\
                    7ffe0000-7ffe1000 r-xp 00000000 00:01 77   /memfd:x (deleted)\n";
        // (address, file)
        let cases = [
            (0x55d0c0a00000, Some("/usr/bin/my prog")),
            (0x55d0c0a03fff, Some("/usr/bin/my prog")),
            (0x55d0c0a04000, None),
            (0x7ffc1800, None),
            (0x7ffd0000, None),
            (0x7ffe0010, Some("/memfd:x (deleted)")),
            (0, None),
        ];
        for (addr, want) in cases {
            assert_eq!(find_mapping(maps, addr).as_deref(), want, "{addr:#x}");
        }
    }

    /// The kernel's answer for one address and the map read as text agree: this binary's
    /// code, a memfd mapped here, and anonymous memory.
    #[test]
    fn mapping_of_this_process_both_ways() {
        let me = std::process::id();
        let code = mapping_of_this_process_both_ways as *const () as u64;
        let exe = std::env::current_exe()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let heap = Box::new([0u8; 1 << 20]);
        // SAFETY: plain syscalls; the mapping is unmapped below and not used otherwise.
        let (fd, map) = unsafe {
            let fd = libc::memfd_create(c"sysmon-maps-test".as_ptr(), 0);
            assert!(fd >= 0);
            assert_eq!(libc::ftruncate(fd, 4096), 0);
            let map = libc::mmap(
                std::ptr::null_mut(),
                4096,
                libc::PROT_READ,
                libc::MAP_SHARED,
                fd,
                0,
            );
            assert_ne!(map, libc::MAP_FAILED);
            (fd, map)
        };
        // (address, file)
        let cases = [
            (code, Some(exe.as_str())),
            (map as u64 + 100, Some("/memfd:sysmon-maps-test (deleted)")),
            (heap.as_ptr() as u64 + 10, None),
            (8, None),
        ];
        let maps = || fs::File::open(format!("/proc/{me}/maps")).unwrap();
        for (addr, want) in cases {
            assert_eq!(
                read_mapping(maps(), addr).as_deref(),
                want,
                "{addr:#x} read"
            );
            match query_mapping(&maps(), addr) {
                Ok(got) => assert_eq!(got.as_deref(), want, "{addr:#x} asked"),
                Err(()) => eprintln!("this kernel has no PROCMAP_QUERY"),
            }
            assert_eq!(mapped_file(me, addr).as_deref(), want);
        }
        // SAFETY: the mapping and descriptor made above.
        unsafe {
            libc::munmap(map, 4096);
            libc::close(fd);
        }
    }

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
