//! The 1 s tick on a timerfd: the kernel wakes the loop once a second. tokio's interval
//! wakes it two or three times per tick (its timer wheel sleeps to a coarse slot, then to
//! the deadline), and an idle daemon should wake at most once a second.

use std::{
    io,
    os::fd::{AsRawFd, FromRawFd, OwnedFd},
    time::Duration,
};

use tokio::io::{Interest, unix::AsyncFd};

pub struct Tick(AsyncFd<OwnedFd>);

impl Tick {
    pub fn every(period: Duration) -> io::Result<Tick> {
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
        let ts = libc::timespec {
            tv_sec: period.as_secs() as libc::time_t,
            tv_nsec: period.subsec_nanos() as libc::c_long,
        };
        let spec = libc::itimerspec {
            it_interval: ts,
            it_value: ts,
        };
        if unsafe { libc::timerfd_settime(fd.as_raw_fd(), 0, &spec, std::ptr::null_mut()) } < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: the AsyncFd owns the fd, so it stays open while registered.
        let fd = unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE) }
            .map_err(|e| e.into_parts().1)?;
        Ok(Tick(fd))
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
        });
    }
}
