//! What more than one bench measures with.

/// CPU time of the calling thread, in ns: what the work cost, whatever else runs.
pub fn thread_cpu_ns() -> u64 {
    sysmon_agent::enrich::clock::now(libc::CLOCK_THREAD_CPUTIME_ID) as u64
}
