//! The kernel's floor under the syslog sink: the sender's CPU per datagram on a local unix
//! socket whose reader is another process, nothing of the agent around it. Every event
//! logged is one datagram, so this times the events per exec is the part of the agent's
//! cost per exec no user-space work can remove.
//! `cargo bench -p sysmon-agent --bench datagram`.
//!
//! As the agent sends them at 1600 exec/s: batches of 32 datagrams (10 ms of events, a
//! ProcessCreate and a ProcessTerminate per exec) with one sendmmsg, every 10 ms, and what
//! the reader's full queue (`net.unix.max_dgram_qlen`) refuses again 2 ms later. Reported:
//! CPU in the send calls per datagram, and all of the sender's CPU per datagram (its sleeps
//! and wake-ups included).

mod common;

use common::thread_cpu_ns;
use std::{
    os::{fd::AsRawFd, unix::net::UnixDatagram},
    time::Duration,
};

const BATCHES: usize = 400;
const BATCH: usize = 32;

fn main() {
    let qlen = std::fs::read_to_string("/proc/sys/net/unix/max_dgram_qlen").unwrap_or_default();
    println!("net.unix.max_dgram_qlen = {}", qlen.trim());
    for size in [700, 1400] {
        let (in_send, all, refused) = run(size);
        println!(
            "datagram of {size} bytes, {BATCH} per sendmmsg every 10 ms: {in_send:.2} µs CPU \
             in the send calls per datagram ({all:.2} µs all the sender's CPU; {refused} \
             sends refused by a full queue)"
        );
    }
}

/// Returns µs of CPU in sends and in all per datagram, and how many sends a full queue
/// refused.
fn run(size: usize) -> (f64, f64, u64) {
    let dir = std::env::temp_dir().join(format!("sysmon-dgram-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("log.sock");
    let _ = std::fs::remove_file(&path);
    let reader = UnixDatagram::bind(&path).unwrap();
    // The reader is a process of its own, as rsyslogd is: a wake-up crosses processes.
    let child = unsafe { libc::fork() };
    if child == 0 {
        let mut buf = vec![0u8; 70_000];
        while matches!(reader.recv(&mut buf), Ok(n) if n > 1) {}
        unsafe { libc::_exit(0) };
    }
    drop(reader);
    let sock = UnixDatagram::unbound().unwrap();
    sock.connect(&path).unwrap();
    sock.set_nonblocking(true).unwrap();
    let msg = vec![b'x'; size];
    let mut iov: Vec<libc::iovec> = (0..BATCH)
        .map(|_| libc::iovec {
            iov_base: msg.as_ptr() as *mut libc::c_void,
            iov_len: size,
        })
        .collect();
    let mut hdrs: Vec<libc::mmsghdr> = iov
        .iter_mut()
        .map(|v| {
            let mut h: libc::mmsghdr = unsafe { std::mem::zeroed() };
            h.msg_hdr.msg_iov = v;
            h.msg_hdr.msg_iovlen = 1;
            h
        })
        .collect();
    let (mut in_send, mut refused) = (0u64, 0u64);
    let all0 = thread_cpu_ns();
    for _ in 0..BATCHES {
        let mut sent = 0;
        while sent < BATCH {
            let t = thread_cpu_ns();
            let n = unsafe {
                libc::sendmmsg(
                    sock.as_raw_fd(),
                    hdrs[sent..].as_mut_ptr(),
                    (BATCH - sent) as u32,
                    0,
                )
            };
            in_send += thread_cpu_ns() - t;
            if n <= 0 {
                refused += 1;
                std::thread::sleep(Duration::from_millis(2));
            } else {
                sent += n as usize;
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let all = thread_cpu_ns() - all0;
    sock.set_nonblocking(false).unwrap();
    let _ = sock.send(b"");
    unsafe {
        libc::kill(child, libc::SIGKILL);
        libc::waitpid(child, std::ptr::null_mut(), 0);
    }
    let _ = std::fs::remove_dir_all(&dir);
    let n = (BATCHES * BATCH) as f64;
    (in_send as f64 / n / 1e3, all as f64 / n / 1e3, refused)
}
