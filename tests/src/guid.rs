//! The ProcessGuid the agent gives a live process, computed from /proc as a consumer could.

/// The ProcessGuids process `pid` can have: the agent measures the boot-to-wall offset at
/// its start, so the hundredth of a second its start falls in may differ by one from ours.
pub fn candidates(pid: i32) -> Vec<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let f: Vec<&str> = stat.rsplit_once(") ").unwrap().1.split(' ').collect();
    let (ticks, end_code): (u64, u64) = (f[19].parse().unwrap(), f[24].parse().unwrap());
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as u64;
    let clock = |id| {
        let mut t: libc::timespec = unsafe { std::mem::zeroed() };
        unsafe { libc::clock_gettime(id, &mut t) };
        t.tv_sec as i128 * 1_000_000_000 + t.tv_nsec as i128
    };
    let boot_epoch = clock(libc::CLOCK_REALTIME) - clock(libc::CLOCK_BOOTTIME);
    let start = ticks as i128 * (1_000_000_000 / hz as i128);
    let hundredths = ((boot_epoch + start) / 10_000_000) as u64;
    let machine = std::fs::read_to_string("/etc/machine-id").unwrap()[..8].to_string();
    (hundredths - 1..=hundredths + 1)
        .map(|h| {
            let secs = h / 100;
            let key = (pid as u64) << 42 | (h % 100) << 35 | (end_code & ((1 << 35) - 1));
            let k = key.to_le_bytes();
            format!(
                "{{{machine}-{:04x}-{:04x}-{:02x}{:02x}-{:02x}{:02x}{:02x}{:02x}{:02x}{:02x}}}",
                secs & 0xffff,
                secs >> 16,
                k[0],
                k[1],
                k[2],
                k[3],
                k[4],
                k[5],
                k[6],
                k[7]
            )
        })
        .collect()
}
