//! The daemon (`sysmon -service`): what the unit's `ExecStart` and `sysmon -i` without
//! systemd run. It forks the real daemon (setsid, second fork, pid file, stderr to syslog)
//! and returns only once that one has loaded its programs and sent `Started`, or failed;
//! that is what `Type=forking` expects, and what lets `-i` return with the daemon running.

use std::{
    cell::RefCell,
    fs,
    io::{BufRead, Read, Write},
    os::{
        fd::{AsRawFd, FromRawFd, OwnedFd},
        unix::net::UnixDatagram,
    },
    rc::Rc,
};

use sha2::{Digest, Sha256};

use super::{Paths, proc};
use crate::{
    agent::{self, NewConfig, Reload, Reloaded, Settings},
    cli, rules,
    sinks::outputs::Outputs,
};

/// The command line stored by the last `-i` / `-c` (arguments after the program name).
pub fn read_argv(paths: &Paths) -> Vec<String> {
    fs::read(paths.argv())
        .map(|b| {
            b.split(|c| *c == 0)
                .filter(|a| !a.is_empty())
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect()
        })
        .unwrap_or_default()
}

pub fn write_argv(paths: &Paths, argv: &[String]) -> std::io::Result<()> {
    let mut bytes = Vec::new();
    for a in argv {
        bytes.extend_from_slice(a.as_bytes());
        bytes.push(0);
    }
    proc::write_atomic(&paths.argv(), &bytes, 0o600).map(drop)
}

/// Event 16's `Configuration` (spec 1.9): `Defaults` for `--`, else the config path as typed
/// at `-i` / `-c`, else the command line itself (`sysmon -accepteula -i`).
pub fn label(argv: &[String]) -> String {
    if argv.iter().any(|a| a == "--") {
        return "Defaults".into();
    }
    let is_mode = |a: &String| a.eq_ignore_ascii_case("-i") || a.eq_ignore_ascii_case("-c");
    if let Some(at) = argv.iter().position(is_mode) {
        if let Some(path) = argv.get(at + 1).filter(|v| !v.starts_with('-')) {
            return path.clone();
        }
    }
    std::iter::once("sysmon")
        .chain(argv.iter().map(String::as_str))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The installed configuration, with the stored `-h` applied, and what event 16 says.
pub fn load_installed(paths: &Paths) -> Result<NewConfig, String> {
    let argv = read_argv(paths);
    let path = paths.config();
    let bytes = fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut config = rules::load_file(&path).map_err(|e| e.to_string())?;
    let stored = cli::parse(argv.clone()).ok();
    if let Some(algs) = stored.as_ref().and_then(|a| a.hash_algorithms.as_deref()) {
        config.apply_hash_switch(algs)?;
    }
    let label = label(&argv);
    let hash = (label != "Defaults").then(|| format!("SHA256={:x}", Sha256::digest(&bytes)));
    Ok(NewConfig {
        config,
        label,
        hash,
    })
}

/// SIGHUP: the installed config again, and an answer for the `-c` that is waiting for it.
/// The answer is written before the new rules are swapped in, but in the same step of the
/// daemon's loop: every record it reads after the answer is judged by the new rules.
/// Answers `-c` once a reload is in force: `<pid> <n> ok` or `<pid> <n> error <why>`.
fn answer_reload(paths: &Paths, outcome: Reloaded) {
    static RELOADS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = RELOADS.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
    let status = match outcome {
        Reloaded::Ok => "ok".to_string(),
        Reloaded::ProbesFailed(e) => format!("partial {e}"),
        Reloaded::Refused(e) => format!("error {e}"),
    };
    let answer = format!("{} {n} {status}\n", std::process::id());
    let _ = proc::write_atomic(&paths.reload_answer(), answer.as_bytes(), 0o600);
}

/// `sysmon -service`. Returns the exit code of the starting process.
pub fn service(paths: &Paths) -> i32 {
    let first = match load_installed(paths) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("Telemetry failed to start: {e}");
            return 1;
        }
    };
    let btf = cli::parse(read_argv(paths)).ok().and_then(|a| a.btf);
    let outputs = match paths.load_outputs() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("Telemetry failed to start: {e}");
            return 1;
        }
    };
    let (read_end, write_end) = match pipe() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("Telemetry failed to start: pipe: {e}");
            return 1;
        }
    };
    // Forking is safe here: no thread has been started yet.
    match unsafe { libc::fork() } {
        -1 => {
            eprintln!(
                "Telemetry failed to start: fork: {}",
                std::io::Error::last_os_error()
            );
            1
        }
        0 => {
            drop(read_end);
            unsafe { libc::setsid() };
            // The second fork: the daemon is not a session leader, so it can never get a
            // controlling terminal back.
            if unsafe { libc::fork() } != 0 {
                unsafe { libc::_exit(0) };
            }
            let code = daemon(paths, first, btf, outputs, write_end);
            std::process::exit(code);
        }
        child => {
            drop(write_end);
            let mut status = 0;
            unsafe { libc::waitpid(child, &mut status, 0) };
            let mut answer = String::new();
            let _ = fs::File::from(read_end).read_to_string(&mut answer);
            if answer == "ok" {
                0
            } else if answer.is_empty() {
                eprintln!("Telemetry failed to start: the daemon died while starting");
                1
            } else {
                eprintln!("Telemetry failed to start: {answer}");
                1
            }
        }
    }
}

fn daemon(
    paths: &Paths,
    first: NewConfig,
    btf: Option<std::path::PathBuf>,
    outputs: Outputs,
    ready: OwnedFd,
) -> i32 {
    unsafe { libc::umask(0o077) };
    let _ = std::env::set_current_dir(&paths.dir);
    detach_stdio(&paths.syslog_socket);
    let me = std::process::id();
    if let Some(dir) = paths.pid_file.parent() {
        let _ = fs::create_dir_all(dir);
    }
    if let Err(e) = proc::write_atomic(&paths.pid_file, format!("{me}\n").as_bytes(), 0o644) {
        eprintln!("sysmon: pid file {}: {e}", paths.pid_file.display());
    }
    // Shared by the readiness hook and the error path below: whichever comes first answers.
    let ready = Rc::new(RefCell::new(Some(fs::File::from(ready))));
    let on_ready = {
        let ready = ready.clone();
        Box::new(move || {
            if let Some(mut f) = ready.borrow_mut().take() {
                let _ = f.write_all(b"ok");
            }
        })
    };
    let (load_paths, answer_paths) = (paths.clone(), paths.clone());
    let result = agent::run(Settings {
        config: first.config,
        config_label: first.label,
        config_hash: first.hash,
        debug: false,
        syslog_path: paths.syslog_socket.clone(),
        rsyslog_socket: Some(paths.rsyslog_socket.clone()),
        outputs,
        state_dir: paths.dir.clone(),
        btf,
        reload: Some(Reload {
            load: Box::new(move || load_installed(&load_paths)),
            done: Box::new(move |outcome| answer_reload(&answer_paths, outcome)),
        }),
        on_ready: Some(on_ready),
    });
    if proc::read_pid(&paths.pid_file) == Some(me as i32) {
        let _ = fs::remove_file(&paths.pid_file);
    }
    match result {
        Ok(()) => 0,
        Err(e) => {
            match ready.borrow_mut().take() {
                Some(mut f) => drop(write!(f, "{e:#}")),
                None => eprintln!("sysmon: {e:#}"),
            }
            1
        }
    }
}

fn pipe() -> std::io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// stdin and stdout to /dev/null; stderr, line by line, to syslog as `sysmon-daemon` at
/// severity err. A different ident than the events': the rsyslog split sends `sysmon` to
/// the event file, and these diagnostics belong in the system log (as SfL's go to journald).
fn detach_stdio(socket: &std::path::Path) {
    if let Ok(null) = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
    {
        unsafe {
            libc::dup2(null.as_raw_fd(), 0);
            libc::dup2(null.as_raw_fd(), 1);
        }
    }
    let Ok((read_end, write_end)) = pipe() else {
        return;
    };
    unsafe { libc::dup2(write_end.as_raw_fd(), 2) };
    drop(write_end);
    let socket = socket.to_owned();
    let pid = std::process::id();
    std::thread::spawn(move || {
        // Non-blocking: a stuck syslog must not stop this thread reading the pipe, or the
        // pipe would fill and every `eprintln!` of the event loop would wait. A line syslog
        // cannot take now is dropped.
        let sock = UnixDatagram::unbound()
            .ok()
            .filter(|s| s.set_nonblocking(true).is_ok());
        for line in std::io::BufReader::new(fs::File::from(read_end))
            .lines()
            .map_while(Result::ok)
        {
            if let Some(s) = &sock {
                let msg = format!("<11>sysmon-daemon[{pid}]: {line}");
                let _ = s.send_to(msg.as_bytes(), &socket);
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_16_label() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        // (stored command line, Configuration)
        let cases: &[(&[&str], &str)] = &[
            (&["-accepteula", "-i", "cfg.xml"], "cfg.xml"),
            (&["-C", "/etc/new.xml"], "/etc/new.xml"),
            (&["-c", "--"], "Defaults"),
            (&["-accepteula", "-i"], "sysmon -accepteula -i"),
            (&["-i", "-h", "md5"], "sysmon -i -h md5"),
        ];
        for (argv, want) in cases {
            assert_eq!(label(&s(argv)), *want, "{argv:?}");
        }
    }
}
