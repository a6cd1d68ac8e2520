//! The systemd unit. `Type=forking`: `sysmon -service` returns once the daemon it forked
//! has loaded its programs and sent event 4 `Started`, so `systemctl start` (like `sysmon
//! -i` without systemd) reports a daemon that really runs.

use super::Paths;

/// The shipped unit (`configs/sysmon.service`), for the default paths.
pub const SHIPPED: &str = include_str!("../../../configs/sysmon.service");

/// The unit for these paths: the shipped one with the install dir and pid file moved.
pub fn render(paths: &Paths) -> String {
    SHIPPED
        .replace("/opt/sysmon", &paths.dir.display().to_string())
        .replace("/run/sysmon.pid", &paths.pid_file.display().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    /// Golden: the default paths give the shipped file byte for byte, and its settings are
    /// those of spec 4.3 plus the pid file and reload.
    #[test]
    fn golden() {
        let paths = Paths::new(Path::new("/"), None, None, None, None);
        assert_eq!(render(&paths), SHIPPED);
        for line in [
            "Type=forking",
            "User=root",
            "WorkingDirectory=/opt/sysmon",
            "PIDFile=/run/sysmon.pid",
            "ExecStart=/opt/sysmon/sysmon -service",
            "ExecReload=/bin/kill -HUP $MAINPID",
            "Restart=on-failure",
            "RestartSec=10",
            "StartLimitBurst=5",
            "StartLimitIntervalSec=90",
            "WantedBy=multi-user.target",
        ] {
            assert!(SHIPPED.lines().any(|l| l == line), "unit lacks {line}");
        }
        let moved = render(&Paths::new(Path::new("/r"), None, None, None, None));
        assert!(moved.contains("ExecStart=/r/opt/sysmon/sysmon -service"));
        assert!(moved.contains("PIDFile=/r/run/sysmon.pid"));
    }
}
