//! The rsyslog split: an input of Sysmon's own (a stream socket) and a ruleset that writes
//! its events to their own file (`/var/log/sysmon.log`), and its rotation. rsyslogd reads its
//! configuration only at start (SIGHUP just reopens files), so a running rsyslogd is
//! restarted when the rule is new.

use std::{
    fs, io,
    os::unix::process::CommandExt,
    process::{Command, Stdio},
    time::Duration,
};

use super::{Paths, proc};

pub const CONF: &str = include_str!("../../../configs/30-sysmon.conf");
pub const LOGROTATE: &str = include_str!("../../../configs/logrotate-sysmon");

/// Where the rule includes more for sysmon's events (forwarding), beside the rule.
const DROP_INS: &str = "/etc/rsyslog.d/sysmon.d";

fn for_paths(text: &str, paths: &Paths) -> String {
    let drop_ins = paths.rsyslog_conf.with_file_name("sysmon.d");
    text.replace("/var/log/sysmon.log", &paths.log_file.display().to_string())
        .replace(
            "/run/rsyslogd.pid",
            &paths.rsyslog_pid_file.display().to_string(),
        )
        .replace(
            "/run/sysmon-syslog.sock",
            &paths.rsyslog_socket.display().to_string(),
        )
        .replace(DROP_INS, &drop_ins.display().to_string())
}

/// Writes the rule and the logrotate file (0644); restarts rsyslogd if the rule changed.
pub fn install(paths: &Paths) -> io::Result<()> {
    for p in [
        &paths.rsyslog_conf,
        &paths.logrotate,
        &paths.log_file,
        &paths.rsyslog_socket,
    ] {
        if let Some(parent) = p.parent() {
            fs::create_dir_all(parent)?;
        }
    }
    proc::write_atomic(
        &paths.logrotate,
        for_paths(LOGROTATE, paths).as_bytes(),
        0o644,
    )?;
    if proc::write_atomic(
        &paths.rsyslog_conf,
        for_paths(CONF, paths).as_bytes(),
        0o644,
    )? {
        restart(paths)?;
    }
    Ok(())
}

/// Removes both files (`-u force`) and restarts rsyslogd so that the rule goes too.
pub fn remove(paths: &Paths) -> io::Result<()> {
    let _ = fs::remove_file(&paths.logrotate);
    if fs::remove_file(&paths.rsyslog_conf).is_ok() {
        restart(paths)?;
    }
    Ok(())
}

/// Restarts a running rsyslogd: through systemd when it runs, else by stopping the process
/// in the pid file and starting its command line again. Not running: nothing to do.
pub fn restart(paths: &Paths) -> io::Result<()> {
    if paths.systemd() {
        let _ = Command::new("systemctl")
            .args(["try-restart", "rsyslog.service"])
            .status();
        return Ok(());
    }
    let Some(pid) = proc::running(&paths.rsyslog_pid_file, "rsyslogd") else {
        return Ok(());
    };
    let cmdline = fs::read(format!("/proc/{pid}/cmdline"))?;
    let mut argv = cmdline
        .split(|b| *b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned());
    let exe = fs::read_link(format!("/proc/{pid}/exe"))?;
    let _program = argv.next();
    let args: Vec<String> = argv.collect();
    proc::signal(pid, libc::SIGTERM);
    if !proc::wait_gone(pid, Duration::from_secs(10)) {
        return Err(io::Error::other(format!("rsyslogd ({pid}) did not stop")));
    }
    let mut cmd = Command::new(exe);
    cmd.args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // Its own session: it must outlive us and not get our terminal's signals.
    unsafe {
        cmd.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
    cmd.spawn()?;
    wait_for_start(paths, pid);
    Ok(())
}

/// rsyslogd writes its pid file once it is up, and then opens its inputs: ours, when the
/// rule is installed, so that the daemon started next finds it. Give it a few seconds.
fn wait_for_start(paths: &Paths, old: i32) {
    let ours = paths.rsyslog_conf.exists();
    for _ in 0..250 {
        if proc::running(&paths.rsyslog_pid_file, "rsyslogd").is_some_and(|p| p != old)
            && (!ours || paths.rsyslog_socket.exists())
        {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn rule_sends_sysmon_to_its_file_and_stops() {
        let paths = Paths::new(Path::new("/r"), None, None, None, None);
        let conf = for_paths(CONF, &paths);
        // Our input, bound to our ruleset, which writes the file and what the drop-ins add.
        assert!(conf.contains(r#"input(type="imptcp" path="/r/run/sysmon-syslog.sock""#));
        assert!(conf.contains(r#"ruleset="sysmon")"#));
        assert!(conf.contains(r#"ruleset(name="sysmon" queue.type="Direct") {"#));
        assert!(conf.contains(r#"file="/r/var/log/sysmon.log""#));
        assert!(conf.contains(r#"include(file="/r/etc/rsyslog.d/sysmon.d/*.conf""#));
        // Datagrams (the fallback) go the same way, and no further.
        assert!(conf.contains(r#"if $programname == "sysmon" then {"#));
        assert!(conf.contains("    call sysmon\n    stop\n"));
        let rotate = for_paths(LOGROTATE, &paths);
        assert!(rotate.starts_with("# ") && rotate.contains("/r/var/log/sysmon.log {"));
        assert!(rotate.contains("/r/run/rsyslogd.pid"));
    }
}
