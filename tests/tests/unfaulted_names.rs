//! A path the kernel has to fault in hides nothing: a call whose path argument lies in a
//! page not yet mapped in (a fresh mapping of a file, never touched) cannot be read by the
//! programs at the call's entry, but the call faults it in and succeeds; its event must
//! still come (the name is read again at the exit). So must the event of a utimes whose
//! times are in such a page.

use std::{ffi::CString, os::unix::ffi::OsStrExt, path::Path};

use sysmon_tests::{config_logging, events::Event, fs::work_dir, kernel_test, record_with};

const PAGE: usize = 4096;

/// What is done with the path, and the event it must give.
#[derive(Clone, Copy, Debug)]
enum Call {
    Chmod,
    Fchmodat,
    Utimes,
    Utimensat,
    Mknod,
    Unlink,
}

/// (call, file name, event id, the field naming the file)
const CASES: [(Call, &str, u16, &str); 6] = [
    (Call::Chmod, "chmod", 29, "TargetFilename"),
    (Call::Fchmodat, "fchmodat", 29, "TargetFilename"),
    (Call::Utimes, "utimes", 2, "TargetFilename"),
    (Call::Utimensat, "utimensat", 2, "TargetFilename"),
    (Call::Mknod, "mknod", 17, "PipeName"),
    (Call::Unlink, "unlink", 23, "TargetFilename"),
];

/// Each path at the start of its own page of a file, mapped one page per mapping (so that
/// the kernel's fault-around cannot bring in the next one): the pointers, never touched.
fn unfaulted(paths: &[&Path], dir: &Path) -> Vec<*const libc::c_char> {
    let mut bytes = vec![0u8; PAGE * paths.len()];
    for (i, p) in paths.iter().enumerate() {
        let b = p.as_os_str().as_bytes();
        bytes[i * PAGE..i * PAGE + b.len()].copy_from_slice(b);
    }
    let file = dir.join("names");
    std::fs::write(&file, &bytes).unwrap();
    let c = CString::new(file.as_os_str().as_bytes()).unwrap();
    let fd = unsafe { libc::open(c.as_ptr(), libc::O_RDONLY) };
    assert!(fd >= 0);
    let ptrs = (0..paths.len())
        .map(|i| {
            let m = unsafe {
                libc::mmap(
                    std::ptr::null_mut(),
                    PAGE,
                    libc::PROT_READ,
                    libc::MAP_PRIVATE,
                    fd,
                    (i * PAGE) as i64,
                )
            };
            assert_ne!(m, libc::MAP_FAILED);
            m as *const libc::c_char
        })
        .collect();
    unsafe { libc::close(fd) };
    ptrs
}

/// A fresh anonymous page, never touched.
fn untouched() -> *const libc::c_void {
    let m = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            PAGE,
            libc::PROT_READ,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    assert_ne!(m, libc::MAP_FAILED);
    m
}

/// Makes `call` on the path at `name`; panics unless it succeeds.
fn make(call: Call, name: *const libc::c_char) {
    // An explicit time earlier than the file's: a FileCreateTime.
    let ts = [libc::timespec {
        tv_sec: 1_000_000_000,
        tv_nsec: 0,
    }; 2];
    let rc = unsafe {
        match call {
            Call::Chmod => libc::syscall(libc::SYS_chmod, name, 0o755) as i32,
            Call::Fchmodat => libc::fchmodat(libc::AT_FDCWD, name, 0o755, 0),
            // The times too in a page not faulted in yet: zeros once it is, 1970.
            Call::Utimes => libc::utimes(name, untouched().cast()),
            Call::Utimensat => libc::utimensat(libc::AT_FDCWD, name, ts.as_ptr(), 0),
            Call::Mknod => libc::mknod(name, libc::S_IFIFO | 0o644, 0),
            Call::Unlink => libc::unlink(name),
        }
    };
    assert_eq!(rc, 0, "{call:?}: {}", std::io::Error::last_os_error());
}

fn about<'a>(events: &'a [Event], id: u16, field: &str, path: &str) -> Vec<&'a Event> {
    events
        .iter()
        .filter(|e| e.id == id && e.get(field) == Some(path))
        .collect()
}

#[test]
#[cfg_attr(no_kernel, ignore = "kernel test: needs root, BTF and rsyslogd")]
fn a_path_in_a_page_not_yet_faulted_in_hides_no_event() {
    let Some(_serial) = kernel_test("unfaulted_names") else {
        return;
    };
    let (_dir, root) = work_dir("unfaulted");
    let paths: Vec<_> = CASES.iter().map(|(_, n, _, _)| root.join(n)).collect();
    for ((call, ..), p) in CASES.iter().zip(&paths) {
        if !matches!(call, Call::Mknod) {
            std::fs::write(p, b"\x7fELF").unwrap();
        }
    }
    let refs: Vec<&Path> = paths.iter().map(|p| p.as_path()).collect();
    let names = unfaulted(&refs, &root);
    let config = config_logging(&[
        "FileExecutableDetected",
        "FileCreateTime",
        "PipeEvent",
        "FileDelete",
    ]);
    let (events, _) = record_with("unfaulted", Some(&config), |_| {
        for ((call, ..), name) in CASES.iter().zip(&names) {
            make(*call, *name);
        }
    });
    let me = std::process::id().to_string();
    let mut missing = Vec::new();
    for ((call, _, id, field), p) in CASES.iter().zip(&paths) {
        let path = p.display().to_string();
        let got = about(&events, *id, field, &path);
        match got.len() {
            0 => missing.push(*call),
            1 => assert_eq!(got[0].get("ProcessId"), Some(me.as_str()), "{call:?}"),
            _ => panic!("{call:?}: {got:#?}"),
        }
    }
    assert!(missing.is_empty(), "no event for: {missing:?}");
}
