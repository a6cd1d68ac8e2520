//! Real container runtimes for the kernel tests, from Debian's packages (`cargo xtask setup`
//! installs them): dockerd and containerd started here by hand (no systemd; cgroupfs
//! driver, no iptables or bridge), Podman with no daemon, and one image made offline from
//! busybox-static. Each runtime keeps its default state directories, where the agent reads
//! the containers' names; daemons listen on sockets of their own. Everything a test starts
//! is removed when its handle drops. Run under `flock /tmp/sysmon-kernel.lock`.

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

/// The test image, as `docker import` and `podman import` name it.
pub const IMAGE: &str = "sysmon-test/busybox:1";
/// What containers started by the tests carry, so that a failed test's leftovers are
/// removed by the next one.
pub const LABEL: &str = "sysmon-test=1";
/// busybox applets the image links.
const APPLETS: &[&str] = &["sh", "true", "sleep", "cat", "echo", "nc", "touch", "ls"];

/// A tarball of a root filesystem: `/bin/busybox` (static) and its applets.
pub fn rootfs_tar(dir: &Path) -> PathBuf {
    let root = dir.join("rootfs");
    std::fs::create_dir_all(root.join("bin")).unwrap();
    std::fs::create_dir_all(root.join("tmp")).unwrap();
    std::fs::copy("/bin/busybox", root.join("bin/busybox"))
        .expect("/bin/busybox (busybox-static; cargo xtask setup installs it)");
    for a in APPLETS {
        let _ = std::os::unix::fs::symlink("busybox", root.join("bin").join(a));
    }
    let tar = dir.join("rootfs.tar");
    run(Command::new("tar")
        .arg("-C")
        .arg(&root)
        .arg("-cf")
        .arg(&tar)
        .arg("."));
    tar
}

/// Runs a command; its stdout, trimmed; panics with its stderr if it fails.
pub fn run(cmd: &mut Command) -> String {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Waits up to 30 s for the daemon logging to `log` to be `ready`.
fn wait_until(log: &Path, mut ready: impl FnMut() -> bool) {
    let until = Instant::now() + Duration::from_secs(30);
    while !ready() {
        if Instant::now() > until {
            let text = std::fs::read_to_string(log).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(10).collect();
            panic!("{} did not come up in 30 s: {tail:#?}", log.display());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Stops a daemon: SIGTERM, then SIGKILL after 20 s.
fn stop(child: &mut Child) {
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let until = Instant::now() + Duration::from_secs(20);
    while Instant::now() < until {
        if child.try_wait().ok().flatten().is_some() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// `docker run` options of the agent's own container, as docs/containers.md gives them: the
/// host's pid and cgroup namespaces, its /sys, its root read-only at /host (the runtimes'
/// files, paths of exited processes' executables), its users and machine id. Every
/// capability but CAP_SYS_RESOURCE stands for `--privileged`, which this VM's bounding set
/// (no CAP_SYS_RESOURCE) refuses.
pub const AGENT_OPTIONS: &[&str] = &[
    "--cap-add",
    "ALL",
    "--cap-drop",
    "SYS_RESOURCE",
    "--security-opt",
    "seccomp=unconfined",
    "--security-opt",
    "apparmor=unconfined",
    "--security-opt",
    "systempaths=unconfined",
    "--pid",
    "host",
    "--cgroupns",
    "host",
    "--network",
    "host",
    "-v",
    "/sys:/sys",
    "-v",
    "/:/host:ro",
    "-v",
    "/etc/machine-id:/etc/machine-id:ro",
    "-v",
    "/etc/passwd:/etc/passwd:ro",
    "-v",
    "/etc/group:/etc/group:ro",
];

/// A dockerd of the test's own: its own socket and pid file, the default data root.
pub struct Dockerd {
    child: Child,
    sock: PathBuf,
}

impl Dockerd {
    pub fn start(dir: &Path) -> Dockerd {
        let sock = dir.join("docker.sock");
        let log = std::fs::File::create(dir.join("dockerd.log")).unwrap();
        let child = Command::new("dockerd")
            .args([
                "--iptables=false",
                "--ip-masq=false",
                "--bridge=none",
                "--exec-opt",
                "native.cgroupdriver=cgroupfs",
            ])
            .arg("-H")
            .arg(format!("unix://{}", sock.display()))
            .arg("--pidfile")
            .arg(dir.join("docker.pid"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("dockerd (docker.io; cargo xtask setup installs it)");
        let mut d = Dockerd { child, sock };
        let log = dir.join("dockerd.log");
        wait_until(&log, || {
            d.child.try_wait().ok().flatten().is_none() && d.try_docker(&["version"]).is_some()
        });
        d.clean();
        d.docker(&["import", rootfs_tar(dir).to_str().unwrap(), IMAGE]);
        // The image an earlier run imported under the same name.
        let _ = d.try_docker(&["image", "prune", "-f"]);
        d
    }

    /// `DOCKER_HOST` for this daemon.
    pub fn host(&self) -> String {
        format!("unix://{}", self.sock.display())
    }

    fn command(&self, args: &[&str]) -> Command {
        // Debian's client, which speaks this daemon's API version.
        let mut c = Command::new("/usr/bin/docker");
        c.arg("-H")
            .arg(format!("unix://{}", self.sock.display()))
            .args(args);
        c
    }

    fn try_docker(&self, args: &[&str]) -> Option<String> {
        let out = self.command(args).stdin(Stdio::null()).output().ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    /// `docker <args>`; its stdout. Panics if it fails.
    pub fn docker(&self, args: &[&str]) -> String {
        run(&mut self.command(args))
    }

    /// `docker run` of the test image, labelled, with no network.
    pub fn run(&self, options: &[&str], command: &[&str]) -> String {
        let mut args = vec!["run", "--label", LABEL, "--network", "none"];
        args.extend_from_slice(options);
        args.push(IMAGE);
        args.extend_from_slice(command);
        self.docker(&args)
    }

    /// Removes every container a test left.
    fn clean(&self) {
        let ids = self
            .try_docker(&["ps", "-aq", "--filter", &format!("label={LABEL}")])
            .unwrap_or_default();
        for id in ids.split_whitespace() {
            let _ = self.try_docker(&["rm", "-f", id]);
        }
    }
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        self.clean();
        stop(&mut self.child);
    }
}

/// Podman (no daemon) with the cgroupfs manager and runc (crun refuses this hybrid cgroup
/// host), limits no higher than ours (root here lacks CAP_SYS_RESOURCE).
pub fn podman(args: &[&str]) -> String {
    run(Command::new("podman")
        .args([
            "--cgroup-manager",
            "cgroupfs",
            "--runtime",
            "runc",
            "--events-backend",
            "none",
        ])
        .args(args))
}

/// `podman run` of the test image, labelled, with no network.
pub fn podman_run(options: &[&str], command: &[&str]) -> String {
    let mut args = vec![
        "run",
        "--label",
        LABEL,
        "--network",
        "none",
        "--ulimit",
        "nofile=1024:1024",
        "--ulimit",
        "nproc=1024:1024",
    ];
    args.extend_from_slice(options);
    args.push(IMAGE);
    args.extend_from_slice(command);
    podman(&args)
}

/// Imports the test image into Podman's store; removes containers a test left.
pub fn podman_image(dir: &Path) {
    let ids = podman(&["ps", "-aq", "--filter", &format!("label={LABEL}")]);
    for id in ids.split_whitespace() {
        let _ = podman(&["rm", "-f", id]);
    }
    podman(&["import", rootfs_tar(dir).to_str().unwrap(), IMAGE]);
    let _ = Command::new("podman")
        .args(["image", "prune", "-f"])
        .output();
}

/// A containerd of the test's own (its own socket, default root and state), with the test
/// image imported into namespace [`Containerd::NAMESPACE`].
pub struct Containerd {
    child: Child,
    sock: PathBuf,
}

impl Containerd {
    pub const NAMESPACE: &str = "sysmon-test";
    /// As `ctr images import` names the image of Podman's archive.
    pub const IMAGE: &str = "localhost/sysmon-test/busybox:1";

    pub fn start(dir: &Path) -> Containerd {
        let sock = dir.join("containerd.sock");
        let config = dir.join("containerd.toml");
        std::fs::write(
            &config,
            format!(
                "version = 2\n[grpc]\n  address = \"{}\"\n[ttrpc]\n  address = \"{}\"\n",
                sock.display(),
                dir.join("containerd.ttrpc.sock").display()
            ),
        )
        .unwrap();
        let log = std::fs::File::create(dir.join("containerd.log")).unwrap();
        let child = Command::new("containerd")
            .arg("--config")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("containerd (cargo xtask setup installs it)");
        let c = Containerd { child, sock };
        wait_until(&dir.join("containerd.log"), || {
            c.command(&["version"])
                .output()
                .is_ok_and(|o| o.status.success())
        });
        c.clean();
        // An archive of the image, made by Podman (no daemon needed).
        podman_image(dir);
        let archive = dir.join("image.tar");
        podman(&["save", "-o", archive.to_str().unwrap(), IMAGE]);
        c.ctr(&["images", "import", archive.to_str().unwrap()]);
        let images = c.ctr(&["images", "ls", "-q"]);
        assert!(
            images.lines().any(|l| l == Self::IMAGE),
            "ctr images: {images}"
        );
        c
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new("ctr");
        c.arg("-a")
            .arg(&self.sock)
            .args(["-n", Self::NAMESPACE])
            .args(args);
        c
    }

    pub fn ctr(&self, args: &[&str]) -> String {
        run(&mut self.command(args))
    }

    /// Removes every container of the test namespace.
    fn clean(&self) {
        let ids = self
            .command(&["containers", "ls", "-q"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        for id in ids.split_whitespace() {
            let _ = self
                .command(&["tasks", "kill", "-s", "SIGKILL", id])
                .output();
            std::thread::sleep(Duration::from_millis(200));
            let _ = self.command(&["tasks", "rm", "-f", id]).output();
            let _ = self.command(&["containers", "rm", id]).output();
        }
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        self.clean();
        stop(&mut self.child);
    }
}
