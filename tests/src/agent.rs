//! The `sysmon` binary, run in the foreground (`-t`) against a private rsyslogd.

use std::{
    fs::File,
    path::Path,
    process::{Child, Command, Stdio},
};

use crate::{
    events,
    rsyslog::{Rsyslog, wait_for},
};

pub struct Agent {
    child: Option<Child>,
    pub pid: u32,
}

impl Agent {
    /// Starts the agent and waits for its event 4 `Started` in syslog.
    pub fn start(syslog: &Rsyslog, dir: &Path, config: Option<&Path>) -> Agent {
        Self::start_with_env(syslog, dir, config, &[])
    }

    /// [`Agent::start`] with extra environment variables.
    pub fn start_with_env(
        syslog: &Rsyslog,
        dir: &Path,
        config: Option<&Path>,
        env: &[(&str, &str)],
    ) -> Agent {
        Self::start_with(syslog, dir, config, env, &[])
    }

    /// [`Agent::start`] with extra environment variables (which win over the defaults) and
    /// command-line options.
    pub fn start_with(
        syslog: &Rsyslog,
        dir: &Path,
        config: Option<&Path>,
        env: &[(&str, &str)],
        options: &[&std::ffi::OsStr],
    ) -> Agent {
        let mut cmd = Command::new(crate::sysmon_bin());
        cmd.env("SYSMON_SYSLOG_SOCKET", &syslog.socket)
            // Never the machine's own rsyslogd: without a stream of this one, a path that
            // does not exist.
            .env(
                "SYSMON_RSYSLOG_SOCKET",
                syslog
                    .stream
                    .clone()
                    .unwrap_or_else(|| dir.join("no-stream.sock")),
            )
            .env("SYSMON_STATE_DIR", dir.join("state"))
            .envs(env.iter().copied());
        cmd.arg("-accepteula").arg("-t");
        if let Some(c) = config {
            cmd.arg(c);
        }
        cmd.args(options);
        let child = cmd
            .stdin(Stdio::null())
            .stdout(File::create(dir.join("agent.stdout")).unwrap())
            .stderr(File::create(dir.join("agent.stderr")).unwrap())
            .spawn()
            .expect("starting sysmon");
        let pid = child.id();
        let mut agent = Agent {
            child: Some(child),
            pid,
        };
        wait_for(
            || agent.has_state(syslog, "Started") || agent.exited(dir),
            "the agent's Started event",
        );
        agent
    }

    fn has_state(&self, syslog: &Rsyslog, state: &str) -> bool {
        events::parse_lines(&syslog.lines())
            .iter()
            .any(|e| e.id == 4 && e.agent_pid == self.pid && e.get("State") == Some(state))
    }

    fn exited(&mut self, dir: &Path) -> bool {
        if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().unwrap()) {
            let err = std::fs::read_to_string(dir.join("agent.stderr")).unwrap_or_default();
            panic!("sysmon exited early ({status}): {err}");
        }
        false
    }

    /// SIGTERM, then waits for the process to end and for its `Stopped` event in syslog.
    pub fn stop(mut self, syslog: &Rsyslog) {
        let mut child = self.child.take().unwrap();
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        let status = child.wait().unwrap();
        assert!(status.success(), "sysmon exited with {status}");
        wait_for(
            || self.has_state(syslog, "Stopped"),
            "the agent's Stopped event",
        );
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
