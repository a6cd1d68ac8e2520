//! Runs one command inside a distribution's kernel under qemu: the kernel tests against the
//! kernels our users run, not only this machine's (`tests/tests/guest.rs`, `cargo xtask vm`).
//!
//! The guest boots the kernel that `cargo xtask setup` cached (Debian's cloud kernel, from
//! apt) with a small initramfs: busybox, an init script and the modules it needs. The host's
//! root filesystem is shared read-only over virtiofs (Debian's cloud kernel has no 9p): its
//! directories bound on a tmpfs root, with tmpfs over the directories the tests write to;
//! init switches to it, brings loopback up and runs the command as root. Its output comes back on a second serial port, a line at a
//! time, and its exit status on a last marker line. qemu emulates the CPU (TCG): this
//! machine's /dev/kvm cannot boot a standard kernel.
//!
//! Lives in the test library, not in xtask, because the guest test target runs it and
//! `cargo xtask vm` runs it too (xtask depends on this crate, not the other way round).

use std::{
    collections::{HashMap, HashSet},
    fs,
    io::{Read, Seek, SeekFrom},
    os::unix::{ffi::OsStrExt, process::CommandExt},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};

/// Where `cargo xtask setup` keeps the kernels, outside any clone (CI clones afresh each time).
pub const CACHE: &str = "/var/cache/sysmon-ebpf/kernels";
pub const QEMU: &str = "/usr/bin/qemu-system-x86_64";
/// Debian 12's qemu ships this (C) virtiofsd.
pub const VIRTIOFSD: &str = "/usr/lib/qemu/virtiofsd";
pub const BUSYBOX: &str = "/bin/busybox";
/// The shared directory's tag, which init mounts.
const TAG: &str = "hostroot";
/// Marks the line with the command's exit status on the output port.
const EXIT_MARK: &str = "@@@sysmon-guest-exit ";
/// Modules init loads (with what they depend on): virtiofs and its PCI transport, and
/// `loop` for the raw-read test.
const MODULES: &[&str] = &["virtio_pci", "virtiofs", "loop"];
/// Directories the guest gets as empty tmpfs: what the tests, the agent and rsyslogd write.
const TMPFS: &[&str] = &["/tmp", "/run", "/var/tmp", "/var/log"];

/// A kernel `cargo xtask setup` unpacked: `boot/vmlinuz-<release>` and
/// `lib/modules/<release>/` under `dir`.
#[derive(Clone, Debug)]
pub struct Kernel {
    pub release: String,
    pub dir: PathBuf,
}

impl Kernel {
    /// The cached kernel of `series` ("6.1"): the file `CACHE/<series>` names its release.
    pub fn cached(series: &str) -> Option<Kernel> {
        let release = fs::read_to_string(Path::new(CACHE).join(series)).ok()?;
        let release = release.trim().to_string();
        let dir = Path::new(CACHE).join(&release);
        let k = Kernel { release, dir };
        k.vmlinuz().exists().then_some(k)
    }

    pub fn vmlinuz(&self) -> PathBuf {
        self.dir.join(format!("boot/vmlinuz-{}", self.release))
    }

    fn modules(&self) -> PathBuf {
        self.dir.join(format!("lib/modules/{}", self.release))
    }
}

/// Why a guest of `series` cannot run here, if it cannot.
pub fn unavailable(series: &str) -> Option<String> {
    if unsafe { libc::geteuid() } != 0 {
        return Some("not root (virtiofsd shares / as root)".into());
    }
    for (path, what) in [
        (QEMU, "qemu-system-x86"),
        (VIRTIOFSD, "qemu-system-x86"),
        (BUSYBOX, "busybox-static"),
    ] {
        if !Path::new(path).exists() {
            return Some(format!("no {path} (cargo xtask setup installs {what})"));
        }
    }
    if Kernel::cached(series).is_none() {
        return Some(format!(
            "no {series} kernel in {CACHE} (cargo xtask setup fetches it)"
        ));
    }
    None
}

/// How to run the command.
pub struct Options {
    /// Directories that must stay visible when they lie under one of the tmpfs directories
    /// (a CI clone in /tmp: the test binaries, the agent, the repository).
    pub keep: Vec<PathBuf>,
    /// After this, the guest is killed and the run fails: a hung guest must not hang CI.
    pub timeout: Duration,
}

/// What the command printed, and how it ended.
pub struct Run {
    /// stdout and stderr, as they came.
    pub output: String,
    /// None when the guest ended without reporting one (it crashed, or was killed at the
    /// timeout): see `console`.
    pub status: Option<i32>,
    /// The kernel's console and init's own messages.
    pub console: String,
    pub timed_out: bool,
}

/// Boots `kernel`, runs `script` (sh) in it as root; `on_line` sees each line of its output
/// as it arrives.
pub fn run(
    kernel: &Kernel,
    script: &str,
    opts: &Options,
    on_line: &mut dyn FnMut(&str),
) -> Result<Run> {
    let dir = crate::TempDir::new("guest");
    let initramfs = dir.0.join("initramfs.cpio");
    fs::write(&initramfs, initramfs_image(kernel, script, &opts.keep)?)?;
    let (console, output) = (dir.0.join("console.log"), dir.0.join("output.log"));
    let socket = dir.0.join("fs.sock");
    let share = dir.0.join("share");
    fs::create_dir(&share)?;
    let fsd_log = dir.0.join("virtiofsd.log");
    let mut fsd = Reaped(virtiofsd(&share, &socket, &fsd_log)?);
    while !socket.exists() {
        if let Some(status) = fsd.0.try_wait()? {
            let log = fs::read_to_string(&fsd_log).unwrap_or_default();
            bail!("virtiofsd exited ({status}): {log}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut qemu = Reaped(
        Command::new(QEMU)
            .args(["-accel", "tcg,thread=multi", "-cpu", "max", "-smp", "2"])
            .args(["-m", "2G", "-nodefaults", "-no-reboot", "-display", "none"])
            .arg("-kernel")
            .arg(kernel.vmlinuz())
            .arg("-initrd")
            .arg(&initramfs)
            .args(["-append", "console=ttyS0 panic=-1 quiet"])
            // vhost-user (virtiofsd) needs the guest's memory shared with it.
            .args(["-object", "memory-backend-memfd,id=mem,size=2G,share=on"])
            .args(["-numa", "node,memdev=mem"])
            .arg("-chardev")
            .arg(format!("socket,id=fs,path={}", socket.display()))
            .args([
                "-device",
                &format!("vhost-user-fs-pci,chardev=fs,tag={TAG}"),
            ])
            .arg("-serial")
            .arg(format!("file:{}", console.display()))
            .arg("-serial")
            .arg(format!("file:{}", output.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(fs::File::create(dir.0.join("qemu.stderr"))?)
            .spawn()
            .context("starting qemu")?,
    );
    let start = Instant::now();
    let mut tail = Tail::default();
    let mut status = None;
    let mut timed_out = false;
    loop {
        let ended = qemu.0.try_wait()?.is_some();
        let mut lines = tail.lines(&output);
        if ended {
            lines.extend(tail.rest());
        }
        for line in lines {
            match line.strip_prefix(EXIT_MARK) {
                Some(code) => status = code.trim().parse().ok(),
                None => on_line(&line),
            }
        }
        if ended {
            break;
        }
        if start.elapsed() > opts.timeout {
            timed_out = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    drop(qemu);
    let read = |p: &Path| fs::read_to_string(p).unwrap_or_default();
    let mut console = read(&console).replace('\r', "");
    for log in ["qemu.stderr", "virtiofsd.log"] {
        let text = read(&dir.0.join(log));
        if status.is_none() && !text.trim().is_empty() {
            console.push_str(&format!("\n--- {log}\n{text}"));
        }
    }
    Ok(Run {
        output: tail.all.replace('\r', ""),
        status,
        console,
        timed_out,
    })
}

/// A child killed and reaped on drop.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Reads what was appended to a file since the last call, in whole lines.
#[derive(Default)]
struct Tail {
    offset: u64,
    partial: String,
    all: String,
}

impl Tail {
    fn lines(&mut self, path: &Path) -> Vec<String> {
        let mut new = Vec::new();
        if let Ok(mut f) = fs::File::open(path) {
            let _ = f.seek(SeekFrom::Start(self.offset));
            let _ = f.read_to_end(&mut new);
        }
        self.offset += new.len() as u64;
        self.partial.push_str(&String::from_utf8_lossy(&new));
        let Some(end) = self.partial.rfind('\n') else {
            return Vec::new();
        };
        let whole: String = self.partial.drain(..=end).collect();
        let whole = whole.replace('\r', "");
        self.all.push_str(&whole);
        whole.lines().map(str::to_string).collect()
    }

    /// A last line without its newline, if any.
    fn rest(&mut self) -> Option<String> {
        let line = std::mem::take(&mut self.partial).replace('\r', "");
        self.all.push_str(&line);
        (!line.is_empty()).then_some(line)
    }
}

/// virtiofsd serving `share`, which is the host's whole mount tree made read-only: even a
/// guest that remounted its side read-write could not change the host.
fn virtiofsd(share: &Path, socket: &Path, log: &Path) -> Result<Child> {
    let root = c"/";
    let empty = c"";
    let target = std::ffi::CString::new(share.as_os_str().as_bytes())?;
    let mut cmd = Command::new(VIRTIOFSD);
    cmd.arg(format!("--socket-path={}", socket.display()))
        .arg("-o")
        .arg(format!("source={},cache=auto", share.display()))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(fs::File::create(log)?);
    // SAFETY: between fork and exec only system calls run, on C strings made before the
    // fork; the child is single-threaded, so unshare(CLONE_NEWNS) is allowed. The mounts
    // change only the child's new mount namespace (made a slave first, so nothing goes back
    // to the host's).
    unsafe {
        cmd.pre_exec(move || {
            let check = |rc: libc::c_long| {
                if rc < 0 {
                    Err(std::io::Error::last_os_error())
                } else {
                    Ok(rc)
                }
            };
            check(libc::unshare(libc::CLONE_NEWNS) as _)?;
            check(libc::mount(
                std::ptr::null(),
                root.as_ptr(),
                std::ptr::null(),
                libc::MS_REC | libc::MS_SLAVE,
                std::ptr::null(),
            ) as _)?;
            // A detached copy of the whole tree, made read-only mount by mount, placed
            // over `share`.
            let tree = check(libc::syscall(
                libc::SYS_open_tree,
                libc::AT_FDCWD,
                root.as_ptr(),
                OPEN_TREE_CLONE | libc::AT_RECURSIVE as u32,
            ))? as libc::c_int;
            let attr = MountAttr {
                attr_set: MOUNT_ATTR_RDONLY,
                attr_clr: 0,
                propagation: 0,
                userns_fd: 0,
            };
            check(libc::syscall(
                libc::SYS_mount_setattr,
                tree,
                empty.as_ptr(),
                libc::AT_EMPTY_PATH | libc::AT_RECURSIVE,
                &attr as *const MountAttr,
                size_of::<MountAttr>(),
            ))?;
            check(libc::syscall(
                libc::SYS_move_mount,
                tree,
                empty.as_ptr(),
                libc::AT_FDCWD,
                target.as_ptr(),
                MOVE_MOUNT_F_EMPTY_PATH,
            ))?;
            Ok(())
        });
    }
    cmd.spawn().context("starting virtiofsd")
}

// From <linux/mount.h>.
const OPEN_TREE_CLONE: u32 = 1;
const MOVE_MOUNT_F_EMPTY_PATH: u32 = 4;
const MOUNT_ATTR_RDONLY: u64 = 1;

#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

/// The initramfs (a newc cpio): busybox, the modules in load order, init, and the command.
fn initramfs_image(kernel: &Kernel, script: &str, keep: &[PathBuf]) -> Result<Vec<u8>> {
    let modules = load_order(&kernel.modules(), MODULES)?;
    let names: Vec<String> = modules.iter().map(|(n, _)| n.clone()).collect();
    let mut cpio = Cpio::default();
    for d in ["bin", "dev", "proc", "sys", "modules", "root"] {
        cpio.dir(d);
    }
    cpio.file("bin/busybox", 0o755, &fs::read(BUSYBOX)?);
    for (name, path) in &modules {
        cpio.file(&format!("modules/{name}.ko"), 0o644, &fs::read(path)?);
    }
    cpio.file("init", 0o755, init_script(&names, keep).as_bytes());
    cpio.file("command.sh", 0o755, script.as_bytes());
    Ok(cpio.finish())
}

/// Init: mounts, the switch into the shared root, the command, its exit status, power off.
fn init_script(modules: &[String], keep: &[PathBuf]) -> String {
    let mut s = String::from(
        "#!/bin/busybox sh\n\
         /bin/busybox --install -s /bin\n\
         export PATH=/bin\n\
         fail() { echo \"sysmon-guest: $*\"; poweroff -f; }\n\
         mount -t proc proc /proc && mount -t sysfs sysfs /sys && mount -t devtmpfs dev /dev || fail mounts\n",
    );
    for m in modules {
        s += &format!("insmod /modules/{m}.ko || fail insmod {m}\n");
    }
    // The root is a tmpfs holding the host's top-level directories, each bound read-only,
    // and its symlinks (/bin -> usr/bin): a test may write in / itself, the host never
    // changes, and every file the tests see is the host's own inode (an overlay would show
    // other device numbers to stat than the kernel records, and the agent's hashes check
    // those). /dev, /proc, /sys and the tmpfs directories are mounted apart.
    s += &format!(
        "mkdir /lower && mount -t virtiofs -o ro {TAG} /lower || fail mounting the host root\n\
         mount -t tmpfs -o mode=0755 tmpfs /root || fail tmpfs /\n\
         for e in /lower/* /lower/.[!.]*; do\n\
         n=${{e#/lower/}}\n\
         if [ ! -e $e ]; then continue\n\
         elif [ -L $e ]; then ln -s $(readlink $e) /root/$n\n\
         elif [ -d $e ]; then mkdir /root/$n\n\
         case $n in dev|proc|sys|tmp|run) continue;; esac\n\
         mount --bind $e /root/$n || fail bind $n\n\
         else touch /root/$n && mount --bind $e /root/$n || fail bind $n\n\
         fi\n\
         done\n"
    );
    for t in TMPFS {
        s += &format!("mount -t tmpfs -o mode=1777 tmpfs /root{t} || fail tmpfs {t}\n");
    }
    // What must stay visible under a tmpfs (the binaries of a CI clone in /tmp), from the host.
    for k in keep
        .iter()
        .filter(|k| TMPFS.iter().any(|t| k.starts_with(t)))
    {
        let k = k.display();
        s += &format!("mkdir -p /root{k} && mount --bind /lower{k} /root{k} || fail keep {k}\n");
    }
    // The mounts init made move into the new root; the rest is mounted there.
    s += "mount --move /dev /root/dev && mount --move /proc /root/proc && mount --move /sys /root/sys || fail moving mounts\n\
          mkdir -p /root/dev/pts /root/dev/shm\n\
          mount -t devpts devpts /root/dev/pts\n\
          mount -t tmpfs -o mode=1777 tmpfs /root/dev/shm\n\
          ln -s /proc/self/fd /root/dev/fd\n\
          mount -t tracefs tracefs /root/sys/kernel/tracing\n\
          mount -t debugfs debugfs /root/sys/kernel/debug\n\
          mount -t bpf bpf /root/sys/fs/bpf\n\
          mount -t cgroup2 cgroup2 /root/sys/fs/cgroup\n\
          ip link set lo up || fail loopback\n\
          hostname sysmon-guest\n\
          cp /command.sh /root/run/sysmon-guest.sh\n\
          echo \"sysmon-guest: $(uname -r) running the command\"\n";
    // The shared root becomes the root of the mount namespace, not a chroot: the kernel
    // names files from there (paths in events are the host's), and the initramfs is freed.
    // PID 1 is then the host's busybox (the one copied into the initramfs).
    let pid1 = format!(
        "/bin/sh /run/sysmon-guest.sh </dev/null >/dev/ttyS1 2>&1; \
         echo \"{EXIT_MARK}$?\" >/dev/ttyS1; {BUSYBOX} poweroff -f"
    );
    s += &format!("exec switch_root /root {BUSYBOX} sh -c '{pid1}'\n");
    s
}

/// `roots` and every module they depend on, each after its dependencies: (name, file).
/// The dependencies come from each module's own `.modinfo` (a package has no modules.dep).
fn load_order(dir: &Path, roots: &[&str]) -> Result<Vec<(String, PathBuf)>> {
    let mut files = HashMap::new();
    index(&dir.join("kernel"), &mut files)?;
    let mut order = Vec::new();
    let mut seen = HashSet::new();
    fn visit(
        name: &str,
        files: &HashMap<String, PathBuf>,
        seen: &mut HashSet<String>,
        order: &mut Vec<(String, PathBuf)>,
    ) -> Result<()> {
        if !seen.insert(name.to_string()) {
            return Ok(());
        }
        let Some(path) = files.get(name) else {
            // Built into this kernel: nothing to load.
            return Ok(());
        };
        for dep in depends(&fs::read(path)?) {
            visit(&dep, files, seen, order)?;
        }
        order.push((name.to_string(), path.clone()));
        Ok(())
    }
    for r in roots {
        if !files.contains_key(*r) {
            bail!("no module {r}.ko under {}", dir.display());
        }
        visit(r, &files, &mut seen, &mut order)?;
    }
    Ok(order)
}

/// Module name (dashes as underscores, as the kernel names them) → its .ko file.
fn index(dir: &Path, files: &mut HashMap<String, PathBuf>) -> Result<()> {
    for entry in fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        if path.is_dir() {
            index(&path, files)?;
        } else if let Some(stem) = path
            .file_name()
            .and_then(|n| n.to_str()?.strip_suffix(".ko"))
        {
            files.insert(stem.replace('-', "_"), path);
        }
    }
    Ok(())
}

/// The `depends=` list of a module's .modinfo strings.
fn depends(ko: &[u8]) -> Vec<String> {
    let key = b"\0depends=";
    let Some(at) = ko.windows(key.len()).position(|w| w == key) else {
        return Vec::new();
    };
    let rest = &ko[at + key.len()..];
    let end = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
    String::from_utf8_lossy(&rest[..end])
        .split(',')
        .filter(|d| !d.is_empty())
        .map(|d| d.replace('-', "_"))
        .collect()
}

/// A cpio archive in the "newc" format, the one the kernel unpacks as an initramfs.
#[derive(Default)]
struct Cpio {
    bytes: Vec<u8>,
    ino: u32,
}

impl Cpio {
    fn dir(&mut self, name: &str) {
        self.entry(name, 0o040755, &[]);
    }

    fn file(&mut self, name: &str, perm: u32, data: &[u8]) {
        self.entry(name, 0o100000 | perm, data);
    }

    fn entry(&mut self, name: &str, mode: u32, data: &[u8]) {
        self.ino += 1;
        let nlink = if mode & 0o040000 != 0 { 2 } else { 1 };
        // ino mode uid gid nlink mtime filesize devmajor devminor rdevmajor rdevminor
        // namesize check
        let fields = [
            self.ino,
            mode,
            0,
            0,
            nlink,
            0,
            data.len() as u32,
            0,
            0,
            0,
            0,
            name.len() as u32 + 1,
            0,
        ];
        self.bytes.extend_from_slice(b"070701");
        for f in fields {
            self.bytes.extend_from_slice(format!("{f:08x}").as_bytes());
        }
        self.bytes.extend_from_slice(name.as_bytes());
        self.bytes.push(0);
        self.pad();
        self.bytes.extend_from_slice(data);
        self.pad();
    }

    fn pad(&mut self) {
        while !self.bytes.len().is_multiple_of(4) {
            self.bytes.push(0);
        }
    }

    fn finish(mut self) -> Vec<u8> {
        self.entry("TRAILER!!!", 0, &[]);
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn depends_reads_the_modinfo_list() {
        let ko = b"\x7fELF...\0license=GPL\0depends=fuse,virtio,virtio_ring\0retpoline=Y\0";
        assert_eq!(depends(ko), ["fuse", "virtio", "virtio_ring"]);
        assert!(depends(b"\0depends=\0name=loop\0").is_empty());
    }

    #[test]
    fn cpio_entries_are_aligned_and_end_with_the_trailer() {
        let mut c = Cpio::default();
        c.dir("bin");
        c.file("init", 0o755, b"#!/bin/sh\n");
        let bytes = c.finish();
        assert!(bytes.len().is_multiple_of(4));
        assert!(bytes.starts_with(b"070701"));
        // The second header starts where the first entry (110-byte header, "bin\0",
        // padding) ends.
        assert_eq!(&bytes[116..122], b"070701");
        let trailer = b"TRAILER!!!\0";
        assert!(bytes.windows(trailer.len()).any(|w| w == trailer));
    }

    #[test]
    fn a_kept_directory_under_tmp_is_bound_over_the_tmpfs() {
        let s = init_script(
            &[],
            &[PathBuf::from("/tmp/ci/repo"), PathBuf::from("/work/x")],
        );
        let tmpfs = s.find("tmpfs /root/tmp ").unwrap();
        let back = s
            .find("mount --bind /lower/tmp/ci/repo /root/tmp/ci/repo")
            .unwrap();
        assert!(tmpfs < back, "{s}");
        // Not under a tmpfs: visible as it is.
        assert!(!s.contains("/work/x"), "{s}");
    }
}
