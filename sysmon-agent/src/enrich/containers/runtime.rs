//! A container's names, from the files its runtime writes before the container's first
//! process runs: the one place that knows those layouts. Read on the resolver's thread
//! only, never on the event path.

use std::path::{Path, PathBuf};

use serde_json::Value;

use super::{
    Container, bolt,
    path::{Found, Runtime},
};

/// Where the runtimes keep their files: the usual places under `prefix` (`/`, or the host's
/// root mounted into the agent's container, or a fixture tree in tests).
#[derive(Debug, Clone)]
pub struct Roots {
    pub prefix: PathBuf,
}

impl Default for Roots {
    fn default() -> Self {
        Roots {
            prefix: PathBuf::from("/"),
        }
    }
}

/// containerd's task bundles (`<state>/io.containerd.runtime.v2.task/<namespace>/<id>/`)
/// and metadata (`<root>/io.containerd.metadata.v1.bolt/meta.db`): containerd's own, and
/// k3s's.
const CONTAINERD: &[(&str, &str)] = &[
    ("run/containerd", "var/lib/containerd"),
    ("run/k3s/containerd", "var/lib/rancher/k3s/agent/containerd"),
];
const DOCKER: &str = "var/lib/docker/containers";
/// Podman's and CRI-O's storage (`overlay-containers/<id>/userdata/config.json`, Podman's
/// `containers.json`).
const STORAGE: &str = "var/lib/containers/storage/overlay-containers";

impl Roots {
    fn at(&self, rel: &str) -> PathBuf {
        self.prefix.join(rel)
    }

    /// The container `found` names, with what its runtime's files say; `None` when it is no
    /// container after all (a `/<a>/<b>` path containerd has no task for).
    pub fn describe(&self, found: &Found) -> Option<Container> {
        match found {
            Found::Container(rt, id) => Some(self.container(*rt, id)),
            Found::MaybeContainerd { namespace, id } => {
                let (state, root) = self.containerd_bundle(Some(namespace), id)?;
                Some(self.containerd(id, &state, root.as_deref(), Some(namespace)))
            }
        }
    }

    fn container(&self, rt: Runtime, id: &str) -> Container {
        let bare = Container::bare(rt, id);
        match rt {
            Runtime::Docker => self.docker(id).unwrap_or(bare),
            Runtime::Podman => self.podman(id).unwrap_or(bare),
            Runtime::CriO => self.crio(id).unwrap_or(bare),
            Runtime::Containerd => match self.containerd_bundle(None, id) {
                Some((state, root)) => self.containerd(id, &state, root.as_deref(), None),
                None => bare,
            },
            // A pod's container under the cgroupfs driver: whichever runtime has its files.
            Runtime::Kubernetes => {
                if let Some((state, root)) = self.containerd_bundle(None, id) {
                    self.containerd(id, &state, root.as_deref(), None)
                } else if let Some(c) = self.crio(id) {
                    c
                } else {
                    self.docker(id).unwrap_or(bare)
                }
            }
            Runtime::Lxc | Runtime::Nspawn => Container {
                name: id.to_string(),
                ..bare
            },
        }
    }

    /// Docker's `containers/<id>/config.v2.json`: `Name` (with a leading `/`),
    /// `Config.Image` as the user named it, and the Kubernetes labels of a dockershim pod.
    fn docker(&self, id: &str) -> Option<Container> {
        let v = read_json(&self.at(DOCKER).join(id).join("config.v2.json"))?;
        let labels = &v["Config"]["Labels"];
        Some(Container {
            name: text(&v["Name"]).trim_start_matches('/').to_string(),
            image: text(&v["Config"]["Image"]),
            pod_name: text(&labels["io.kubernetes.pod.name"]),
            pod_namespace: text(&labels["io.kubernetes.pod.namespace"]),
            ..Container::bare(Runtime::Docker, id)
        })
    }

    /// Podman's `containers.json`: `names[0]`, and `image-name` in its `metadata` (itself
    /// JSON in a string).
    fn podman(&self, id: &str) -> Option<Container> {
        let all = read_json(&self.at(STORAGE).join("containers.json"))?;
        let entry = all.as_array()?.iter().find(|c| c["id"] == id)?;
        let metadata: Value = entry["metadata"]
            .as_str()
            .and_then(|m| serde_json::from_str(m).ok())
            .unwrap_or_default();
        Some(Container {
            name: text(&entry["names"][0]),
            image: text(&metadata["image-name"]),
            ..Container::bare(Runtime::Podman, id)
        })
    }

    /// CRI-O's `overlay-containers/<id>/userdata/config.json`: Kubernetes annotations.
    fn crio(&self, id: &str) -> Option<Container> {
        let v = read_json(&self.at(STORAGE).join(id).join("userdata/config.json"))?;
        let a = &v["annotations"];
        let pick = |names: &[&str]| first(a, names);
        Some(Container {
            name: pick(&["io.kubernetes.container.name"]),
            image: pick(&["io.kubernetes.cri-o.ImageName", "io.kubernetes.cri-o.Image"]),
            pod_name: pick(&["io.kubernetes.pod.name"]),
            pod_namespace: pick(&["io.kubernetes.pod.namespace"]),
            ..Container::bare(Runtime::CriO, id)
        })
    }

    /// The task bundle of containerd container `id` (in `namespace`, or any): its state
    /// directory and containerd's root (for the metadata).
    fn containerd_bundle(
        &self,
        namespace: Option<&str>,
        id: &str,
    ) -> Option<(PathBuf, Option<PathBuf>)> {
        for (state, root) in CONTAINERD {
            let tasks = self.at(state).join("io.containerd.runtime.v2.task");
            let namespaces: Vec<PathBuf> = match namespace {
                Some(ns) => vec![tasks.join(ns)],
                None => std::fs::read_dir(&tasks)
                    .map(|d| d.filter_map(|e| Some(e.ok()?.path())).collect())
                    .unwrap_or_default(),
            };
            for ns in namespaces {
                let bundle = ns.join(id);
                if bundle.join("config.json").is_file() {
                    return Some((bundle, Some(self.at(root))));
                }
            }
        }
        None
    }

    /// A containerd bundle's `config.json`: the CRI annotations of a Kubernetes container
    /// (newer names first), nerdctl's name; else the id as name and the image from
    /// containerd's metadata database (what `ctr` runs have).
    fn containerd(
        &self,
        id: &str,
        bundle: &Path,
        root: Option<&Path>,
        namespace: Option<&str>,
    ) -> Container {
        let v = read_json(&bundle.join("config.json")).unwrap_or_default();
        let a = &v["annotations"];
        let pick = |names: &[&str]| first(a, names);
        let mut c = Container {
            name: pick(&[
                "io.kubernetes.cri.container-name",
                "io.kubernetes.container.name",
                "nerdctl/name",
            ]),
            image: pick(&["io.kubernetes.cri.image-name"]),
            pod_name: pick(&["io.kubernetes.cri.sandbox-name", "io.kubernetes.pod.name"]),
            pod_namespace: pick(&[
                "io.kubernetes.cri.sandbox-namespace",
                "io.kubernetes.pod.namespace",
            ]),
            ..Container::bare(Runtime::Containerd, id)
        };
        let namespace = namespace.map(str::to_string).or_else(|| {
            let ns = bundle.parent()?.file_name()?;
            Some(ns.to_string_lossy().into_owned())
        });
        if c.image.is_empty()
            && let (Some(root), Some(ns)) = (root, namespace)
        {
            let db = root.join("io.containerd.metadata.v1.bolt/meta.db");
            c.image = bolt::containerd_image(&db, &ns, id).unwrap_or_default();
        }
        if c.name.is_empty() {
            c.name = id.to_string();
        }
        c
    }
}

fn read_json(path: &Path) -> Option<Value> {
    serde_json::from_slice(&std::fs::read(path).ok()?).ok()
}

fn text(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_string()
}

/// The first of `names` set in the object `v`.
fn first(v: &Value, names: &[&str]) -> String {
    names
        .iter()
        .find_map(|n| v[*n].as_str().filter(|s| !s.is_empty()))
        .unwrap_or_default()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "4a3b2c1d0e9f8a7b6c5d4e3f2a1b0c9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b";

    fn write(root: &Path, rel: &str, body: &str) {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, body).unwrap();
    }

    /// Fixture trees of every runtime's files, as each runtime writes them, under a root of
    /// our own: what each container is called.
    #[test]
    fn names_from_each_runtimes_files() {
        let root = std::env::temp_dir().join(format!("sysmon-containers-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        write(
            &root,
            &format!("var/lib/docker/containers/{A}/config.v2.json"),
            r#"{"ID":"x","Name":"/web","Config":{"Image":"nginx:1.25","Labels":{}}}"#,
        );
        write(
            &root,
            &format!("run/containerd/io.containerd.runtime.v2.task/k8s.io/{A}/config.json"),
            r#"{"ociVersion":"1.1.0","annotations":{
                "io.kubernetes.cri.container-type":"container",
                "io.kubernetes.cri.container-name":"api",
                "io.kubernetes.cri.image-name":"registry.local/api:2",
                "io.kubernetes.cri.sandbox-name":"api-7d9f-xk2",
                "io.kubernetes.cri.sandbox-namespace":"shop"}}"#,
        );
        write(
            &root,
            "run/k3s/containerd/io.containerd.runtime.v2.task/k8s.io/b1/config.json",
            r#"{"annotations":{"io.kubernetes.container.name":"old",
                "io.kubernetes.pod.name":"p1","io.kubernetes.pod.namespace":"ns1"}}"#,
        );
        write(
            &root,
            "var/lib/containers/storage/overlay-containers/c1/userdata/config.json",
            r#"{"annotations":{"io.kubernetes.container.name":"db",
                "io.kubernetes.cri-o.ImageName":"quay.io/db:15",
                "io.kubernetes.pod.name":"db-0","io.kubernetes.pod.namespace":"data"}}"#,
        );
        write(
            &root,
            "var/lib/containers/storage/overlay-containers/containers.json",
            r#"[{"id":"p1","names":["other"],"metadata":"{}"},
                {"id":"p2","names":["cache"],"image":"da53",
                 "metadata":"{\"image-name\":\"localhost/redis:7\",\"name\":\"cache\"}"}]"#,
        );
        let roots = Roots {
            prefix: root.clone(),
        };
        let c = |rt, id: &str| Found::Container(rt, id.to_string());
        // (what the path says, name, image, runtime, pod, pod namespace)
        let cases = [
            (c(Runtime::Docker, A), "web", "nginx:1.25", "docker", "", ""),
            (
                c(Runtime::Containerd, A),
                "api",
                "registry.local/api:2",
                "containerd",
                "api-7d9f-xk2",
                "shop",
            ),
            // cgroupfs driver: containerd has it (k3s's state directory, older annotations).
            (
                c(Runtime::Kubernetes, "b1"),
                "old",
                "",
                "containerd",
                "p1",
                "ns1",
            ),
            (
                c(Runtime::Kubernetes, "c1"),
                "db",
                "quay.io/db:15",
                "cri-o",
                "db-0",
                "data",
            ),
            (
                c(Runtime::CriO, "c1"),
                "db",
                "quay.io/db:15",
                "cri-o",
                "db-0",
                "data",
            ),
            (
                c(Runtime::Podman, "p2"),
                "cache",
                "localhost/redis:7",
                "podman",
                "",
                "",
            ),
            (c(Runtime::Lxc, "web1"), "web1", "", "lxc", "", ""),
            // Files gone (or never there): the id and runtime from the path only.
            (c(Runtime::Docker, "d0"), "", "", "docker", "", ""),
            (c(Runtime::Podman, "p9"), "", "", "podman", "", ""),
        ];
        for (found, name, image, runtime, pod, pod_ns) in cases {
            let got = roots.describe(&found).unwrap();
            let want = (name, image, runtime, pod, pod_ns);
            let have = (
                got.name.as_str(),
                got.image.as_str(),
                got.runtime,
                got.pod_name.as_str(),
                got.pod_namespace.as_str(),
            );
            assert_eq!(have, want, "{found:?}");
        }
        // `/<namespace>/<id>`: a container only where containerd has the task.
        let maybe = |ns: &str, id: &str| Found::MaybeContainerd {
            namespace: ns.into(),
            id: id.into(),
        };
        assert_eq!(
            roots.describe(&maybe("k8s.io", A)).map(|c| c.name),
            Some("api".to_string())
        );
        assert!(roots.describe(&maybe("process_api", "48a6")).is_none());
        std::fs::remove_dir_all(&root).unwrap();
    }
}
