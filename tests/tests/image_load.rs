//! ImageLoad (7) end to end: the loader and libc of a dynamically linked exec, `dlopen`,
//! `LD_PRELOAD`, `mprotect` adding `PROT_EXEC`; the config deciding; and its cost per exec
//! (printed, never asserted).

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use sysmon_tests::{
    Session, config_logging, cpu_secs,
    events::Event,
    fs::{c, library, work_dir},
    kernel_test, record_with, unique,
};

/// `SHA256=<hex>` of a file, by the system's sha256sum.
fn sha256(p: &Path) -> String {
    let out = Command::new("sha256sum").arg(p).output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    format!("SHA256={}", text.split(' ').next().unwrap())
}

/// The interpreter and libc a dynamically linked program loads, from ldd.
fn loader_and_libc(program: &str) -> (PathBuf, PathBuf) {
    let out = Command::new("ldd").arg(program).output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let path_of = |needle: &str| {
        let line = text.lines().find(|l| l.contains(needle)).unwrap();
        let p = line
            .split_whitespace()
            .find(|w| w.starts_with('/'))
            .unwrap();
        std::fs::canonicalize(p).unwrap()
    };
    (path_of("ld-linux"), path_of("libc.so"))
}

fn loads<'a>(events: &'a [Event], pid: u32, path: &Path) -> Vec<&'a Event> {
    let (pid, path) = (pid.to_string(), path.display().to_string());
    events
        .iter()
        .filter(|e| e.id == 7 && e.get("ProcessId") == Some(&pid))
        .filter(|e| e.get("ImageLoaded") == Some(&path))
        .collect()
}

fn check(e: &Event, image: &str, loaded: &Path) {
    let name = loaded.display().to_string();
    assert_eq!(e.get("Image"), Some(image), "{name}");
    assert_eq!(e.get("Hashes"), Some(sha256(loaded).as_str()), "{name}");
    assert_eq!(e.get("User"), Some("root"), "{name}");
    assert_eq!(e.get("RuleName"), Some("-"), "{name}");
    for f in [
        "FileVersion",
        "Description",
        "Product",
        "Company",
        "OriginalFileName",
        "Signed",
        "Signature",
        "SignatureStatus",
    ] {
        assert_eq!(e.get(f), Some("-"), "{name} {f}");
    }
    assert_ne!(
        e.get("ProcessGuid"),
        Some("{00000000-0000-0000-0000-000000000000}"),
        "{name}"
    );
    assert!(e.get("UtcTime").unwrap().starts_with("20"), "{name}");
}

#[test]
#[cfg_attr(no_kernel, ignore = "kernel test: needs root, BTF and rsyslogd")]
fn image_load_of_the_loader_libc_dlopen_preload_and_mprotect() {
    let Some(_serial) = kernel_test("image_load") else {
        return;
    };
    let (_dir, root) = work_dir("imgload");
    let libz = library("libz.so.1");
    // Private copies, so that the paths are this test's alone.
    let [opened, preloaded, protected] = ["dlopen", "preload", "mprotect"].map(|n| {
        let p = root.join(format!("lib{n}-{}.so", unique()));
        std::fs::copy(&libz, &p).unwrap();
        p
    });
    let truebin = std::fs::canonicalize("/bin/true").unwrap();
    let (loader, libc_so) = loader_and_libc(truebin.to_str().unwrap());
    let me = std::process::id();
    let mut pids = (0, 0);
    let config = config_logging(&["ImageLoad"]);
    let (events, _) = record_with("imgload", Some(&config), |_| {
        let mut child = Command::new(&truebin).spawn().unwrap();
        pids.0 = child.id();
        assert!(child.wait().unwrap().success());
        let mut child = Command::new(&truebin)
            .env("LD_PRELOAD", &preloaded)
            .spawn()
            .unwrap();
        pids.1 = child.id();
        assert!(child.wait().unwrap().success());
        let h = unsafe { libc::dlopen(c(&opened).as_ptr(), libc::RTLD_NOW) };
        assert!(!h.is_null(), "dlopen");
        // Mapped readable, then made executable.
        let fd = unsafe { libc::open(c(&protected).as_ptr(), libc::O_RDONLY) };
        let m = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                4096,
                libc::PROT_READ,
                libc::MAP_PRIVATE,
                fd,
                0,
            )
        };
        assert_ne!(m, libc::MAP_FAILED);
        unsafe { libc::close(fd) };
        let rc = unsafe { libc::mprotect(m, 4096, libc::PROT_READ | libc::PROT_EXEC) };
        assert_eq!(rc, 0);
        unsafe { libc::munmap(m, 4096) };
    });
    let true_image = truebin.display().to_string();
    let my_image = std::env::current_exe().unwrap().display().to_string();
    // (pid, image, library)
    let cases = [
        (pids.0, true_image.as_str(), &loader),
        (pids.0, true_image.as_str(), &libc_so),
        (pids.1, true_image.as_str(), &loader),
        (pids.1, true_image.as_str(), &preloaded),
        (pids.1, true_image.as_str(), &libc_so),
        (me, my_image.as_str(), &opened),
        (me, my_image.as_str(), &protected),
    ];
    for (pid, image, lib) in cases {
        let got = loads(&events, pid, lib);
        assert_eq!(got.len(), 1, "{} in pid {pid}: {got:?}", lib.display());
        check(got[0], image, lib);
    }
    // The plain exec loads nothing else (a preload in one process is not in the other).
    assert!(loads(&events, pids.0, &preloaded).is_empty());
}

#[test]
#[cfg_attr(no_kernel, ignore = "kernel test: needs root, BTF and rsyslogd")]
fn the_config_includes_excludes_and_names_image_loads() {
    let Some(_serial) = kernel_test("image_load_config") else {
        return;
    };
    let token = format!("cfg-{}", unique());
    let config = format!(
        r#"<Sysmon schemaversion="4.81">
  <EventFiltering>
    <RuleGroup name="" groupRelation="or">
      <ImageLoad onmatch="include">
        <ImageLoaded name="injected" condition="contains">{token}-in</ImageLoaded>
      </ImageLoad>
    </RuleGroup>
  </EventFiltering>
</Sysmon>"#
    );
    let (_dir, root) = work_dir("imgcfg");
    let libz = library("libz.so.1");
    let [inc, exc] = ["in", "out"].map(|w| {
        let p = root.join(format!("lib{token}-{w}.so"));
        std::fs::copy(&libz, &p).unwrap();
        p
    });
    let (events, _) = record_with("imgcfg", Some(&config), |_| {
        for lib in [&inc, &exc] {
            let h = unsafe { libc::dlopen(c(lib).as_ptr(), libc::RTLD_NOW) };
            assert!(!h.is_null());
        }
    });
    let me = std::process::id();
    let got = loads(&events, me, &inc);
    assert_eq!(got.len(), 1, "included: {got:?}");
    assert_eq!(got[0].get("RuleName"), Some("injected"));
    assert!(loads(&events, me, &exc).is_empty(), "not included");
    // Only what the rule names: libc of other processes is not logged.
    assert!(events.iter().filter(|e| e.id == 7).all(|e| {
        e.get("ImageLoaded")
            .is_some_and(|p| p.contains(&format!("{token}-in")))
    }));
}

const EXECS: usize = 3000;

/// Exec rate and agent CPU per exec with ProcessCreate only and with ImageLoad on too,
/// alternating, twice each.
#[test]
#[cfg_attr(no_kernel, ignore = "kernel test: needs root, BTF and rsyslogd")]
fn image_load_cost_per_exec() {
    let Some(_serial) = kernel_test("image_load_cost") else {
        return;
    };
    let truebin = std::fs::canonicalize("/bin/true").unwrap();
    for tags in [&[][..], &["ImageLoad"][..], &[][..], &["ImageLoad"][..]] {
        let config = config_logging(tags);
        let s = Session::start("imgcost", Some(&config));
        let cpu0 = cpu_secs(s.agent.pid);
        let start = Instant::now();
        for _ in 0..EXECS {
            assert!(Command::new(&truebin).status().unwrap().success());
        }
        let wall = start.elapsed().as_secs_f64();
        // The agent is done when syslog has stopped growing for a second.
        let (mut size, mut last_growth) = (0, Instant::now());
        while last_growth.elapsed() < Duration::from_secs(1) {
            let now = std::fs::metadata(&s.syslog.output).map_or(0, |m| m.len());
            if now != size {
                (size, last_growth) = (now, Instant::now());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let cpu = cpu_secs(s.agent.pid) - cpu0;
        let (events, _) = s.stop();
        let loads = events.iter().filter(|e| e.id == 7).count();
        println!(
            "ImageLoad {}: {EXECS} execs of /bin/true in {wall:.2} s ({:.0}/s); {loads} ImageLoad \
             events; agent CPU {cpu:.2} s ({:.1} µs/exec)",
            if tags.is_empty() { "off" } else { "on" },
            EXECS as f64 / wall,
            cpu / EXECS as f64 * 1e6,
        );
        if tags.is_empty() {
            assert_eq!(loads, 0, "ImageLoad is off by default");
        } else {
            assert!(loads >= 2 * EXECS, "loader and libc per exec: {loads}");
        }
    }
}
