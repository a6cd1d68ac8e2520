//! Container fields end to end, with real runtimes (dockerd and containerd started here,
//! Podman), an image made offline from busybox-static, the agent and a real rsyslogd:
//! every event names the container it came from, by what the runtime itself reports. And
//! pids across pid namespaces: a process tracing its own child inside a new pid namespace
//! is reported with the child's host pid. Run under `flock /tmp/sysmon-kernel.lock`.

use std::{path::Path, process::Command};

use sysmon_tests::{
    Session, TempDir, config_logging,
    containers::{
        AGENT_OPTIONS, Containerd, Dockerd, IMAGE, LABEL, podman, podman_image, podman_run, run,
    },
    events::Event,
    guids_of, kernel_test,
    rsyslog::wait_for,
    unique,
};

/// The six container fields of an event, in order.
fn fields(e: &Event) -> [&str; 6] {
    [
        "ContainerId",
        "ContainerName",
        "ContainerImage",
        "ContainerRuntime",
        "PodName",
        "PodNamespace",
    ]
    .map(|f| e.get(f).unwrap_or_else(|| panic!("no {f} in {e:?}")))
}

fn creates<'a>(events: &'a [Event], cmdline: &str) -> Vec<&'a Event> {
    events
        .iter()
        .filter(|e| e.id == 1 && e.get("CommandLine") == Some(cmdline))
        .collect()
}

/// The one ProcessCreate of `cmdline`.
fn create<'a>(events: &'a [Event], cmdline: &str) -> &'a Event {
    match creates(events, cmdline).as_slice() {
        [e] => e,
        other => panic!("{} ProcessCreate of {cmdline:?}", other.len()),
    }
}

/// Waits until the session's syslog holds a ProcessCreate of each of `cmdlines`.
fn wait_for_creates(s: &Session, cmdlines: &[&str]) {
    let until = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let lines = s.syslog.lines();
        let missing: Vec<&&str> = cmdlines
            .iter()
            .filter(|c| {
                !lines
                    .iter()
                    .any(|l| l.contains(&format!("<Data Name=\"CommandLine\">{c}</Data>")))
            })
            .collect();
        if missing.is_empty() {
            return;
        }
        if std::time::Instant::now() > until {
            panic!("no ProcessCreate of {missing:?} in 20 s");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

fn host_echo(word: &str) -> String {
    Command::new("/bin/echo").arg(word).output().unwrap();
    format!("/bin/echo {word}")
}

#[test]
#[cfg_attr(no_kernel, ignore = "kernel test: needs root, BTF and rsyslogd")]
fn docker_events_name_their_container() {
    let Some(_serial) = kernel_test("docker") else {
        return;
    };
    let dir = TempDir::new("docker");
    let d = Dockerd::start(&dir.0);
    let u = unique();
    let name = format!("web-{u}");
    let s = Session::start(
        "docker",
        Some(&config_logging(&["FileCreate", "NetworkConnect"])),
    );
    // A container that lives on: a listener on its own loopback, a file, a connect to it.
    // Applets by path: busybox sh runs an applet named alone in its own process, no exec.
    let main = format!(
        "/bin/nc -l -p 7001 >/dev/null & /bin/sleep 0.5; /bin/touch /tmp/f-{u}; \
         echo x | /bin/nc 127.0.0.1 7001; /bin/sleep 60"
    );
    d.run(&["-d", "--name", &name], &["sh", "-c", &main]);
    let id = d.docker(&["inspect", "-f", "{{.Id}}", &name]);
    // A container whose one process lives a few milliseconds.
    let quick = format!("quick-{u}");
    let cidfile = dir.0.join("quick.cid");
    d.run(
        &[
            "--rm",
            "--name",
            &quick,
            "--cidfile",
            cidfile.to_str().unwrap(),
        ],
        &["echo", &quick],
    );
    let quick_id = std::fs::read_to_string(&cidfile).unwrap();
    // docker exec: a host-side parent, a process inside.
    let exec = format!("echo exec-{u}");
    d.docker(&["exec", &name, "echo", &format!("exec-{u}")]);
    let host = host_echo(&format!("host-{u}"));
    let touch = format!("/bin/touch /tmp/f-{u}");
    let quick_cmd = format!("echo {quick}");
    wait_for_creates(&s, &[&touch, &quick_cmd, &exec, &host]);
    wait_for(
        || {
            s.syslog
                .lines()
                .iter()
                .any(|l| l.contains("<Data Name=\"DestinationPort\">7001</Data>"))
        },
        "the NetworkConnect to the container's listener",
    );
    let (events, _) = s.stop();

    let ours = [id.as_str(), &name, IMAGE, "docker", "-", "-"];
    let main = create(&events, &format!("sh -c {main}"));
    assert_eq!(fields(main), ours, "the container's first process");
    // Its parent is containerd's shim, on the host.
    assert_eq!(main.get("ParentContainerId"), Some("-"));
    let touch = create(&events, &touch);
    assert_eq!(fields(touch), ours);
    assert_eq!(touch.get("ParentContainerId"), Some(id.as_str()));
    assert_eq!(
        fields(create(&events, &quick_cmd)),
        [quick_id.as_str(), &quick, IMAGE, "docker", "-", "-"],
        "a `docker run --rm` of a few milliseconds"
    );
    let exec = create(&events, &exec);
    assert_eq!(fields(exec), ours, "docker exec");
    assert_eq!(exec.get("ParentContainerId"), Some("-"), "docker exec");
    let host = create(&events, &host);
    assert_eq!(fields(host), ["-"; 6], "a host process");
    assert_eq!(host.get("ParentContainerId"), Some("-"));

    let file = events
        .iter()
        .find(|e| e.id == 11 && e.get("TargetFilename") == Some(&format!("/tmp/f-{u}")))
        .expect("FileCreate of the container's file");
    assert_eq!(fields(file), ours, "FileCreate");
    let connects: Vec<&Event> = events
        .iter()
        .filter(|e| e.id == 3 && e.get("DestinationPort") == Some("7001"))
        .collect();
    assert!(!connects.is_empty());
    for c in connects {
        assert_eq!(fields(c), ours, "NetworkConnect");
    }
    // Every event from inside the container names it; none outside does.
    for e in &events {
        if e.get("ContainerId") == Some(id.as_str()) {
            assert_eq!(fields(e), ours, "{e:?}");
        }
    }

    // A config that includes only this container's events keeps exactly those.
    let config = format!(
        r#"<Sysmon schemaversion="4.81"><EventFiltering><RuleGroup groupRelation="or">
<ProcessCreate onmatch="include"><ContainerName condition="is">{name}</ContainerName></ProcessCreate>
</RuleGroup></EventFiltering></Sysmon>"#
    );
    let s = Session::start("docker-rule", Some(&config));
    let inside = format!("echo in-{u}");
    d.docker(&["exec", &name, "echo", &format!("in-{u}")]);
    d.run(&["--rm"], &["echo", &format!("out-{u}")]);
    let host = host_echo(&format!("host2-{u}"));
    wait_for_creates(&s, &[&inside]);
    let (events, _) = s.stop();
    let kept: Vec<&Event> = events.iter().filter(|e| e.id == 1).collect();
    assert!(
        kept.iter()
            .all(|e| e.get("ContainerName") == Some(name.as_str()))
    );
    assert_eq!(creates(&events, &inside).len(), 1);
    assert!(creates(&events, &format!("echo out-{u}")).is_empty());
    assert!(creates(&events, &host).is_empty());
}

#[test]
#[cfg_attr(no_kernel, ignore = "kernel test: needs root, BTF and rsyslogd")]
fn podman_and_containerd_events_name_their_container() {
    let Some(_serial) = kernel_test("podman_containerd") else {
        return;
    };
    let dir = TempDir::new("podman");
    let c = Containerd::start(&dir.0);
    podman_image(&dir.0);
    let u = unique();
    let s = Session::start("podman", None);

    let pname = format!("p-{u}");
    let cidfile = dir.0.join("podman.cid");
    let pcmd = format!("echo {pname}");
    podman_run(
        &[
            "--rm",
            "--name",
            &pname,
            "--cidfile",
            cidfile.to_str().unwrap(),
        ],
        &["echo", &pname],
    );
    let pid = std::fs::read_to_string(&cidfile).unwrap();

    let cname = format!("c-{u}");
    let ccmd = format!("echo {cname}");
    c.ctr(&["run", "--rm", Containerd::IMAGE, &cname, "echo", &cname]);
    wait_for_creates(&s, &[&pcmd, &ccmd]);
    let (events, _) = s.stop();

    assert_eq!(
        fields(create(&events, &pcmd)),
        [
            pid.trim(),
            &pname,
            &format!("localhost/{IMAGE}"),
            "podman",
            "-",
            "-"
        ],
        "podman run --rm"
    );
    assert_eq!(
        fields(create(&events, &ccmd)),
        [
            cname.as_str(),
            &cname,
            Containerd::IMAGE,
            "containerd",
            "-",
            "-"
        ],
        "ctr run --rm"
    );
    let _ = podman(&["rmi", "-f", IMAGE]);
}

/// Inside a new pid namespace (as in a container), a process ptrace-attaches its own child,
/// which it knows as pid 2: event 10 names the child's host pid, image and ProcessGuid
/// (pid 2 on the host is kthreadd).
#[test]
#[cfg_attr(no_kernel, ignore = "kernel test: needs root, BTF and rsyslogd")]
fn ptrace_in_a_pid_namespace_names_the_host_process() {
    let Some(_serial) = kernel_test("pidns_ptrace") else {
        return;
    };
    let s = Session::start("pidns", Some(&config_logging(&["ProcessAccess"])));
    let mut fds = [0; 2];
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    // SAFETY: the children call only async-signal-safe functions (raw system calls).
    let outer = unsafe { libc::fork() };
    if outer == 0 {
        unsafe {
            if libc::unshare(libc::CLONE_NEWPID) != 0 {
                libc::_exit(2);
            }
            let init = libc::fork();
            if init == 0 {
                // pid 1 of the new namespace.
                let child = libc::fork();
                if child == 0 {
                    loop {
                        libc::pause();
                    }
                }
                let ok = libc::ptrace(libc::PTRACE_ATTACH, child, 0, 0) == 0;
                let mut status = 0;
                libc::waitpid(child, &mut status, libc::__WALL);
                let byte = [u8::from(ok && child == 2)];
                libc::write(fds[1], byte.as_ptr() as *const _, 1);
                loop {
                    libc::pause();
                }
            }
            let mut status = 0;
            libc::waitpid(init, &mut status, 0);
            libc::_exit(0);
        }
    }
    let mut byte = [0u8];
    assert_eq!(
        unsafe { libc::read(fds[0], byte.as_mut_ptr() as *mut _, 1) },
        1
    );
    assert_eq!(byte[0], 1, "the traced child is pid 2 in its namespace");
    let children = |pid: i32| -> i32 {
        std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    };
    let init = children(outer);
    let child = children(init);
    let child_guids = guids_of(child);
    let me = std::env::current_exe().unwrap().display().to_string();
    wait_for(
        || {
            s.syslog
                .lines()
                .iter()
                .any(|l| l.contains(&format!("<Data Name=\"SourceProcessId\">{init}</Data>")))
        },
        "event 10 from the namespace's init",
    );
    unsafe { libc::kill(init, libc::SIGKILL) };
    let mut status = 0;
    unsafe { libc::waitpid(outer, &mut status, 0) };
    let (events, _) = s.stop();
    let e = events
        .iter()
        .find(|e| e.id == 10 && e.get("SourceProcessId") == Some(&init.to_string()))
        .unwrap();
    assert_eq!(e.get("TargetProcessId"), Some(child.to_string().as_str()));
    assert_eq!(e.get("TargetImage"), Some(me.as_str()));
    assert!(
        child_guids
            .iter()
            .any(|g| Some(g.as_str()) == e.get("TargetProcessGUID")),
        "{e:?} {child_guids:?}"
    );
    assert_eq!(e.get("GrantedAccess"), Some("0x0"));
}

/// The agent itself in a container on the Docker host, by the command docs/containers.md
/// gives (image from `cargo xtask image`), events to a JSON file on a host volume: a host
/// process and another container's process, each with its fields.
#[test]
#[cfg_attr(no_kernel, ignore = "kernel test: needs root, BTF and rsyslogd")]
fn the_agent_runs_as_a_container() {
    let Some(_serial) = kernel_test("agent_container") else {
        return;
    };
    let dir = TempDir::new("agent-image");
    let d = Dockerd::start(&dir.0);
    let tag = "sysmon-ebpf:test";
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    run(Command::new("cargo")
        .current_dir(&root)
        .args(["xtask", "image", "--tag", tag, "--bin"])
        .arg(sysmon_tests::sysmon_bin())
        .env("DOCKER", "/usr/bin/docker")
        .env("DOCKER_HOST", d.host()));
    let out = dir.0.join("out");
    std::fs::create_dir_all(&out).unwrap();
    let volume = format!("{}:/var/log/sysmon", out.display());
    let mut args = vec!["run", "-d", "--name", "sysmon-agent", "--label", LABEL];
    args.extend(AGENT_OPTIONS);
    args.extend(["-v", &volume, tag]);
    args.extend(["-accepteula", "-t", "/etc/sysmon/default.xml"]);
    args.extend(["-o", "json=/var/log/sysmon/sysmon.json"]);
    d.docker(&args);
    let json = out.join("sysmon.json");
    let events = || -> Vec<serde_json::Value> {
        std::fs::read_to_string(&json)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    };
    wait_for(
        || events().iter().any(|e| e["EventID"] == 4),
        "the containerised agent's event 4",
    );
    let u = unique();
    let host = host_echo(&format!("host-{u}"));
    let name = format!("other-{u}");
    d.run(&["--rm", "--name", &name], &["echo", &name]);
    let inside = format!("echo {name}");
    let find = |cmdline: &str| {
        events()
            .into_iter()
            .find(|e| e["EventID"] == 1 && e["CommandLine"] == cmdline)
    };
    wait_for(
        || find(&host).is_some() && find(&inside).is_some(),
        "both ProcessCreate events in the JSON file",
    );
    d.docker(&["stop", "sysmon-agent"]);
    let field = |e: &serde_json::Value, f: &str| e[f].as_str().unwrap_or("").to_string();
    let host = find(&host).unwrap();
    assert_eq!(field(&host, "Image"), "/usr/bin/echo");
    assert_eq!(field(&host, "User"), "root");
    assert_eq!(field(&host, "ContainerId"), "-");
    assert!(field(&host, "Hashes").starts_with("SHA256="), "{host}");
    let other = find(&inside).unwrap();
    assert_eq!(field(&other, "ContainerName"), name);
    assert_eq!(field(&other, "ContainerImage"), IMAGE);
    assert_eq!(field(&other, "ContainerRuntime"), "docker");
    assert_eq!(field(&other, "ContainerId").len(), 64);
}
