//! DNS answers made by the tests, and a network namespace to send them from port 53 in (the
//! host's port 53 may be taken, and nothing may leave the machine).

use std::thread;

/// `name` in wire form.
pub fn wire(name: &str) -> Vec<u8> {
    let mut v = Vec::new();
    for l in name.split('.') {
        v.push(l.len() as u8);
        v.extend_from_slice(l.as_bytes());
    }
    v.push(0);
    v
}

/// A response to the A query for `name`: one answer, 192.0.2.1.
pub fn response(name: &str) -> Vec<u8> {
    let mut m = vec![0x42, 0x42, 0x81, 0x80, 0, 1, 0, 1, 0, 0, 0, 0];
    m.extend_from_slice(&wire(name));
    m.extend_from_slice(&[0, 1, 0, 1]);
    m.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 192, 0, 2, 1]);
    m
}

/// Runs `f` on a thread of its own in a new network namespace with loopback up.
pub fn in_netns<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    thread::scope(|s| {
        s.spawn(|| {
            let rc = unsafe { libc::unshare(libc::CLONE_NEWNET) };
            assert_eq!(rc, 0, "unshare: {}", std::io::Error::last_os_error());
            let up = std::process::Command::new("ip")
                .args(["link", "set", "lo", "up"])
                .status()
                .unwrap();
            assert!(up.success(), "ip link set lo up");
            f()
        })
        .join()
        .unwrap()
    })
}
