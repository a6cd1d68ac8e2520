//! Which container a cgroup path names: the one place that knows each runtime's cgroup
//! layout (systemd and cgroupfs drivers, v1 and v2 alike: the path relative to its
//! hierarchy's root looks the same in both).
//!
//! The last container-shaped component wins, so a container nested in another (Docker in
//! Docker, a pod's container under its pod) is named by the innermost one.

/// The runtimes we name; `ContainerRuntime` prints [`Runtime::name`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Runtime {
    Docker,
    Podman,
    Containerd,
    CriO,
    Lxc,
    Nspawn,
    /// A Kubernetes pod's container under the cgroupfs driver (`pod<uid>/<id>`): containerd,
    /// CRI-O or Docker, told apart by which of them has the container's files.
    Kubernetes,
}

impl Runtime {
    pub fn name(self) -> &'static str {
        match self {
            Runtime::Docker => "docker",
            Runtime::Podman => "podman",
            Runtime::Containerd => "containerd",
            Runtime::CriO => "cri-o",
            Runtime::Lxc => "lxc",
            Runtime::Nspawn => "systemd-nspawn",
            Runtime::Kubernetes => "kubernetes",
        }
    }
}

/// What a cgroup path says about its container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found {
    /// A container of this runtime with this id.
    Container(Runtime, String),
    /// `/<namespace>/<id>` as containerd's `ctr` and nerdctl (cgroupfs driver) make it: a
    /// container only if containerd has a task of that id in that namespace.
    MaybeContainerd { namespace: String, id: String },
}

/// The container `path` (relative to its hierarchy's root) names, if any.
pub fn parse(path: &str) -> Option<Found> {
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    for (i, part) in parts.iter().enumerate().rev() {
        let parent = i.checked_sub(1).map(|j| parts[j]);
        if let Some(found) = component(part, parent) {
            return Some(found);
        }
    }
    match parts.as_slice() {
        [namespace, id] if plain(namespace) && plain(id) => Some(Found::MaybeContainerd {
            namespace: namespace.to_string(),
            id: id.to_string(),
        }),
        _ => None,
    }
}

/// One path component, with its parent's.
fn component(part: &str, parent: Option<&str>) -> Option<Found> {
    use Runtime::*;
    let found = |rt, id: &str| Some(Found::Container(rt, id.to_string()));
    // systemd driver: `<prefix>-<id>.scope`.
    if let Some(unit) = part.strip_suffix(".scope") {
        for (prefix, rt) in [
            ("docker-", Docker),
            ("cri-containerd-", Containerd),
            ("nerdctl-", Containerd),
            ("crio-", CriO),
            ("libpod-", Podman),
        ] {
            if let Some(id) = unit.strip_prefix(prefix).filter(|id| hex_id(id)) {
                return found(rt, id);
            }
        }
        if let Some(name) = unit.strip_prefix("machine-") {
            return found(Nspawn, &unescape(name));
        }
        return None;
    }
    // The systemd driver's name as some v1 hosts show it: `<slice>:cri-containerd:<id>`.
    if let Some((_, id)) = part
        .rsplit_once(":cri-containerd:")
        .filter(|(_, id)| hex_id(id))
    {
        return found(Containerd, id);
    }
    if let Some((_, id)) = part.rsplit_once(":crio:").filter(|(_, id)| hex_id(id)) {
        return found(CriO, id);
    }
    // Podman with cgroupfs: `libpod_parent/libpod-<id>`.
    if let Some(id) = part.strip_prefix("libpod-").filter(|id| hex_id(id)) {
        return found(Podman, id);
    }
    if let Some(name) = part.strip_prefix("lxc.payload.") {
        return found(Lxc, name);
    }
    if !hex_id(part) {
        return None;
    }
    match parent {
        Some("docker") => found(Docker, part),
        // cgroupfs driver: `kubepods[/<qos>]/pod<uid>/<id>`.
        Some(p) if p.starts_with("pod") => found(Kubernetes, part),
        _ => None,
    }
}

/// A full container id: 64 hex digits.
fn hex_id(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// A name containerd accepts for a namespace or a container id.
fn plain(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 76
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        && !s.ends_with(".slice")
        && !s.ends_with(".scope")
}

/// systemd's unit-name escaping (`\x2d` for `-`).
fn unescape(s: &str) -> String {
    let mut out = Vec::with_capacity(s.len());
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && b.get(i + 1) == Some(&b'x')
            && let Some(v) = s
                .get(i + 2..i + 4)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(v);
            i += 4;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::Runtime::*;
    use super::*;

    const A: &str = "4a3b2c1d0e9f8a7b6c5d4e3f2a1b0c9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b";
    const B: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    /// Every runtime's cgroup paths, systemd and cgroupfs drivers (the path relative to the
    /// hierarchy is the same in v1 and v2).
    #[test]
    fn paths_of_every_runtime() {
        let c = |rt, id: &str| Some(Found::Container(rt, id.to_string()));
        let cases: Vec<(String, Option<Found>)> = vec![
            // Docker: systemd driver, cgroupfs driver.
            (format!("/system.slice/docker-{A}.scope"), c(Docker, A)),
            (format!("/docker/{A}"), c(Docker, A)),
            // Docker in Docker: the innermost wins.
            (format!("/docker/{A}/docker/{B}"), c(Docker, B)),
            // Kubernetes with containerd: systemd driver (pod uid with `_`), its v1 name form,
            // cgroupfs driver (guaranteed and burstable pods).
            (
                format!(
                    "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod0f1e2d3c_4b5a_6978_8796_a5b4c3d2e1f0.slice/cri-containerd-{A}.scope"
                ),
                c(Containerd, A),
            ),
            (
                format!(
                    "/kubepods-besteffort-pod0f1e2d3c_4b5a_6978_8796_a5b4c3d2e1f0.slice:cri-containerd:{A}"
                ),
                c(Containerd, A),
            ),
            (
                format!("/kubepods/pod0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0/{A}"),
                c(Kubernetes, A),
            ),
            (
                format!("/kubepods/burstable/pod0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0/{A}"),
                c(Kubernetes, A),
            ),
            // k3s (cgroupfs driver, its own containerd).
            (
                format!("/kubepods/besteffort/pod0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0/{B}"),
                c(Kubernetes, B),
            ),
            // CRI-O, and its conmon (not a container).
            (
                format!("/kubepods.slice/kubepods-pod1_2.slice/crio-{A}.scope"),
                c(CriO, A),
            ),
            (
                format!("/kubepods.slice/kubepods-pod1_2.slice/crio-conmon-{A}.scope"),
                None,
            ),
            // Podman: systemd driver (and its `container` child), cgroupfs driver; conmon.
            (format!("/machine.slice/libpod-{A}.scope"), c(Podman, A)),
            (
                format!("/machine.slice/libpod-{A}.scope/container"),
                c(Podman, A),
            ),
            (format!("/libpod_parent/libpod-{A}"), c(Podman, A)),
            (format!("/machine.slice/libpod-conmon-{A}.scope"), None),
            // nerdctl (systemd driver), ctr and nerdctl (cgroupfs driver).
            (
                format!("/nerdctl.slice/nerdctl-{A}.scope"),
                c(Containerd, A),
            ),
            (
                "/sysmon-test/c1".into(),
                Some(Found::MaybeContainerd {
                    namespace: "sysmon-test".into(),
                    id: "c1".into(),
                }),
            ),
            // LXC, systemd-nspawn (escaped name).
            ("/lxc.payload.web1".into(), c(Lxc, "web1")),
            ("/lxc.payload.web1/init.scope".into(), c(Lxc, "web1")),
            (
                "/machine.slice/machine-my\\x2dbox.scope".into(),
                c(Nspawn, "my-box"),
            ),
            // Host cgroups.
            ("/".into(), None),
            ("/user.slice/user-1000.slice/session-3.scope".into(), None),
            ("/system.slice/docker.service".into(), None),
            ("/system.slice".into(), None),
            // Two plain components: a container only if containerd has the task.
            (
                "/process_api/48a67de3b034549bd44c87537d91b76f".into(),
                Some(Found::MaybeContainerd {
                    namespace: "process_api".into(),
                    id: "48a67de3b034549bd44c87537d91b76f".into(),
                }),
            ),
            (format!("/{A}"), None),
            (format!("/a/b/docker/{}", &A[..12]), None),
            (format!("/system.slice/docker-{}.scope", &A[..63]), None),
        ];
        for (path, want) in cases {
            assert_eq!(parse(&path), want, "{path}");
        }
    }
}
