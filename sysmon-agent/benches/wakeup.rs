//! The machine's floor under the agent's read loop: the CPU a thread is charged for being
//! woken by a periodic timer and going back to sleep, with no work in between. While
//! records flow the agent reads the ring every 4 ms, so this times 250 per second is what
//! the read period costs before any record is handled.
//! `cargo bench -p sysmon-agent --bench wakeup`.

mod common;

use common::thread_cpu_ns;
use std::time::Duration;

fn main() {
    for ms in [4, 10, 20] {
        let period = Duration::from_millis(ms);
        let us = per_wakeup(period, Duration::from_secs(3));
        let per_sec = 1000 / ms;
        println!(
            "woken every {ms} ms: {us:.1} µs CPU per wake-up; {per_sec} wake-ups/s cost \
             {:.2}% of a core",
            us * per_sec as f64 / 1e4
        );
    }
}

/// µs of the thread's CPU per wake-up of a periodic timerfd waited on with epoll, as the
/// agent's loop does.
fn per_wakeup(period: Duration, length: Duration) -> f64 {
    // SAFETY: plain syscalls on fds this function owns and closes.
    unsafe {
        let tfd = libc::timerfd_create(libc::CLOCK_MONOTONIC, libc::TFD_NONBLOCK);
        let ep = libc::epoll_create1(0);
        assert!(tfd >= 0 && ep >= 0, "timerfd or epoll refused");
        let mut ev = libc::epoll_event {
            events: libc::EPOLLIN as u32,
            u64: 0,
        };
        libc::epoll_ctl(ep, libc::EPOLL_CTL_ADD, tfd, &mut ev);
        let ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: period.as_nanos() as libc::c_long,
        };
        let spec = libc::itimerspec {
            it_interval: ts,
            it_value: ts,
        };
        libc::timerfd_settime(tfd, 0, &spec, std::ptr::null_mut());
        let n = (length.as_nanos() / period.as_nanos()) as u64;
        let start = thread_cpu_ns();
        let mut ticks = 0u64;
        for _ in 0..n {
            libc::epoll_wait(ep, &mut ev, 1, -1);
            libc::read(tfd, (&mut ticks as *mut u64).cast(), 8);
        }
        let spent = thread_cpu_ns() - start;
        libc::close(tfd);
        libc::close(ep);
        spent as f64 / n as f64 / 1e3
    }
}
