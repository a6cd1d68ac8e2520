//! Periodic timers on a timerfd: the kernel wakes the loop once per period and nothing
//! else. tokio's interval wakes it two or three times per 1 s tick (its timer wheel sleeps
//! to a coarse slot, then to the deadline), and a tokio sleep set again after every ring
//! read costs a self-wake (an eventfd write and one more epoll_wait) per read.

use std::{
    io,
    os::fd::{AsRawFd, FromRawFd, OwnedFd},
    time::Duration,
};

use tokio::io::{Interest, unix::AsyncFd};

pub struct Tick(AsyncFd<OwnedFd>);

impl Tick {
    pub fn every(period: Duration) -> io::Result<Tick> {
        let t = Tick::stopped()?;
        t.set(Some(period))?;
        Ok(t)
    }

    /// A timer that does not run until `set`.
    pub fn stopped() -> io::Result<Tick> {
        // SAFETY: plain syscalls; the fd is owned at once.
        let fd = unsafe {
            libc::timerfd_create(
                libc::CLOCK_MONOTONIC,
                libc::TFD_NONBLOCK | libc::TFD_CLOEXEC,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        // SAFETY: the AsyncFd owns the fd, so it stays open while registered.
        let fd = unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE) }
            .map_err(|e| e.into_parts().1)?;
        Ok(Tick(fd))
    }

    /// Ticks every `period` from now on (the first a period from now), or never (`None`).
    pub fn set(&self, period: Option<Duration>) -> io::Result<()> {
        let p = period.unwrap_or_default();
        let ts = libc::timespec {
            tv_sec: p.as_secs() as libc::time_t,
            tv_nsec: p.subsec_nanos() as libc::c_long,
        };
        let spec = libc::itimerspec {
            it_interval: ts,
            it_value: ts,
        };
        // SAFETY: a valid itimerspec; all zero disarms the timer.
        if unsafe { libc::timerfd_settime(self.0.as_raw_fd(), 0, &spec, std::ptr::null_mut()) } < 0
        {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// The next tick (ticks missed while busy count as one).
    pub async fn tick(&self) {
        loop {
            let Ok(mut ready) = self.0.readable().await else {
                return std::future::pending().await;
            };
            let mut n = [0u8; 8];
            // SAFETY: reads 8 bytes into an 8-byte buffer.
            let got = unsafe { libc::read(self.0.as_raw_fd(), n.as_mut_ptr().cast(), 8) };
            if got == 8 {
                return;
            }
            ready.clear_ready();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let t = Tick::every(Duration::from_millis(20)).unwrap();
            let start = std::time::Instant::now();
            for _ in 0..3 {
                t.tick().await;
            }
            // Three ticks cannot come before three periods.
            assert!(start.elapsed() >= Duration::from_millis(60));
            // Stopped, it never ticks; set again, it does.
            t.set(None).unwrap();
            let quiet = tokio::time::timeout(Duration::from_millis(50), t.tick()).await;
            assert!(quiet.is_err(), "a stopped timer ticked");
            t.set(Some(Duration::from_millis(10))).unwrap();
            t.tick().await;
        });
    }
}
