//! `-c` (update, reset, show) and `-u` (stop): talking to the running daemon.
//!
//! The daemon is found through its pid file only, never by process name: another `sysmon`
//! on the machine (a `-t` run, a test's private install) is none of our business.

use std::{path::Path, process::Command, time::Duration};

use super::{DEFAULT_CONFIG, Paths, daemon, proc, rsyslog};
use crate::{cli, rules};

/// An error and the exit code it deserves.
#[derive(Debug)]
pub struct Failure {
    pub code: i32,
    pub message: String,
}

impl Failure {
    pub fn new(code: i32, message: impl Into<String>) -> Failure {
        Failure {
            code,
            message: message.into(),
        }
    }
}

/// A clean stop takes the agent well under a second; this leaves room for a loaded machine.
const STOP_WAIT: Duration = Duration::from_secs(5);

pub fn daemon_pid(paths: &Paths) -> Option<i32> {
    proc::running(&paths.pid_file, "sysmon")
}

/// Stops the daemon: SIGTERM (it sends event 4 `Stopped`), then, if `force` and it is still
/// there, SIGKILL. Ok(true) if one was running.
pub fn stop(paths: &Paths, force: bool) -> Result<bool, Failure> {
    if paths.systemd() {
        let _ = Command::new("systemctl")
            .args(["stop", "sysmon.service"])
            .status();
    }
    let Some(pid) = daemon_pid(paths) else {
        return Ok(false);
    };
    proc::signal(pid, libc::SIGTERM);
    if !proc::wait_gone(pid, STOP_WAIT) {
        if !force {
            return Err(Failure::new(
                1,
                format!("Sysmon (pid {pid}) did not stop; `sysmon -u force` kills it."),
            ));
        }
        proc::signal(pid, libc::SIGKILL);
        proc::wait_gone(pid, STOP_WAIT);
    }
    let _ = std::fs::remove_file(&paths.pid_file);
    Ok(true)
}

/// `-u [force]`: stop, disable; /opt/sysmon stays. `force` also removes the rsyslog split.
pub fn uninstall(paths: &Paths, force: bool) -> Result<(), Failure> {
    stop(paths, force)?;
    if paths.systemd() {
        let _ = Command::new("systemctl")
            .args(["disable", "sysmon.service"])
            .status();
    }
    if force {
        rsyslog::remove(paths).map_err(|e| Failure::new(1, format!("rsyslog: {e}")))?;
    }
    println!("Sysmon stopped.");
    Ok(())
}

/// The stored command line after `-c`: the new one, plus the `-h` and `-btf` of the last
/// one unless the new one sets them (the daemon reads both from it, and a `-c` without them
/// keeps what `-i` chose, as in Sysmon).
fn keep_install_switches(old: &[String], new: &[String]) -> Vec<String> {
    let mut argv = new.to_vec();
    let (Ok(old_args), Ok(new_args)) = (
        crate::cli::parse(old.to_vec()),
        crate::cli::parse(new.to_vec()),
    ) else {
        return argv;
    };
    if new_args.hash_algorithms.is_none()
        && let Some(h) = old_args.hash_algorithms
    {
        argv.extend(["-h".to_string(), h]);
    }
    if new_args.btf.is_none()
        && let Some(b) = old_args.btf
    {
        argv.extend(["-btf".to_string(), b.display().to_string()]);
    }
    argv
}

/// `-c <file>` / `-c --`: validate, install the new config, tell the daemon (SIGHUP). A bad
/// file changes nothing.
pub fn update(paths: &Paths, config: Option<&Path>, argv: &[String]) -> Result<(), Failure> {
    let bytes = match config {
        Some(path) => {
            check(path)?;
            std::fs::read(path).map_err(|e| Failure::new(1, format!("{}: {e}", path.display())))?
        }
        None => {
            println!("Updating configuration to use all defaults.");
            DEFAULT_CONFIG.as_bytes().to_vec()
        }
    };
    if !paths.dir.is_dir() {
        return Err(Failure::new(1, "Error: Sysmon is not installed."));
    }
    let io = |e: std::io::Error| Failure::new(1, format!("{}: {e}", paths.dir.display()));
    // config.xml first: the daemon reads argv (for event 16) and config.xml on SIGHUP, and
    // both must be in place before it does.
    proc::write_atomic(&paths.config(), &bytes, 0o600).map_err(io)?;
    let argv = keep_install_switches(&daemon::read_argv(paths), argv);
    daemon::write_argv(paths, &argv).map_err(io)?;
    let Some(pid) = daemon_pid(paths) else {
        println!("Sysmon is not running; the configuration applies when it starts.");
        return Ok(());
    };
    // Wait for the daemon's answer, so that once `-c` returns the new rules are in force.
    let before = std::fs::read_to_string(paths.reload_answer()).unwrap_or_default();
    proc::signal(pid, libc::SIGHUP);
    let start = std::time::Instant::now();
    loop {
        let answer = std::fs::read_to_string(paths.reload_answer()).unwrap_or_default();
        if answer != before {
            return reload_result(&answer);
        }
        if start.elapsed() > STOP_WAIT || !proc::alive(pid) {
            return Err(Failure::new(
                1,
                format!("Sysmon (pid {pid}) did not confirm the new configuration."),
            ));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// What `-c` says of the daemon's answer (`<pid> <n> ok|partial <why>|error <why>`).
fn reload_result(answer: &str) -> Result<(), Failure> {
    let status = answer.trim().splitn(3, ' ').nth(2).unwrap_or("");
    let (word, why) = status.split_once(' ').unwrap_or((status, ""));
    match word {
        "ok" => {
            println!("Configuration updated.");
            Ok(())
        }
        "partial" => Err(Failure::new(
            1,
            format!("Configuration updated, but its events are not all recorded: {why}"),
        )),
        "error" => Err(Failure::new(1, format!("Sysmon kept its rules: {why}"))),
        _ => Err(Failure::new(
            1,
            format!("Sysmon kept its rules: no answer ({status:?})"),
        )),
    }
}

/// `-c` alone: the rules in force.
pub fn show(paths: &Paths) -> Result<String, Failure> {
    if daemon_pid(paths).is_none() {
        return Err(Failure::new(cli::BAD_USAGE, "Sysmon is not running"));
    }
    let config = daemon::load_installed(paths)
        .map_err(|e| Failure::new(cli::BAD_USAGE, format!("No config to display: {e}")))?;
    Ok(config.config.dump())
}

/// Loads a config only to check it: errors name the file and line, exit 87.
pub fn check(path: &Path) -> Result<rules::Config, Failure> {
    let config = rules::load_file(path).map_err(|e| Failure::new(cli::BAD_USAGE, e.to_string()))?;
    for w in &config.warnings {
        eprintln!("Warning: {w}");
    }
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reload_answers() {
        // (answer file, succeeds, what the message says)
        let cases = [
            ("42 1 ok\n", true, ""),
            (
                "42 2 partial probes not attached: attaching udp_send to net_dev_queue\n",
                false,
                "Configuration updated, but its events are not all recorded: probes not attached",
            ),
            (
                "42 3 error config.xml:3: bad\n",
                false,
                "Sysmon kept its rules: config.xml:3",
            ),
            ("", false, "no answer"),
        ];
        for (answer, ok, want) in cases {
            match reload_result(answer) {
                Ok(()) => assert!(ok, "{answer:?}"),
                Err(f) => {
                    assert!(!ok, "{answer:?}");
                    assert_eq!(f.code, 1);
                    assert!(f.message.contains(want), "{answer:?}: {}", f.message);
                }
            }
        }
    }

    #[test]
    fn c_keeps_the_install_switches_it_does_not_set() {
        let v = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        // (stored before, the -c command line, stored after)
        let cases: &[(&[&str], &[&str], &[&str])] = &[
            (
                &["-accepteula", "-i", "a.xml", "-h", "md5"],
                &["-c", "b.xml"],
                &["-c", "b.xml", "-h", "md5"],
            ),
            (
                &["-i", "a.xml", "-h", "md5", "-btf", "/k"],
                &["-c", "b.xml", "-h", "sha1"],
                &["-c", "b.xml", "-h", "sha1", "-btf", "/k"],
            ),
            (&["-i", "a.xml"], &["-c", "--"], &["-c", "--"]),
            (&[], &["-c", "b.xml"], &["-c", "b.xml"]),
        ];
        for (old, new, want) in cases {
            assert_eq!(
                keep_install_switches(&v(old), &v(new)),
                v(want),
                "{old:?} {new:?}"
            );
        }
    }
}
