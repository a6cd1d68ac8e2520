//! The agent's own log files (`-o json`, `-o xml`) written by the installed daemon: one line
//! per event, JSON equal to the XML field by field, hostile values kept on one line,
//! rotation, an external rename, kill -9 in a storm, a full filesystem.

use std::{
    ffi::OsStr,
    os::unix::{
        ffi::OsStrExt,
        fs::{MetadataExt, PermissionsExt},
    },
    path::{Path, PathBuf},
    process::Command,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
};

use serde_json::Value;
use sysmon_tests::{
    alive, events, kernel_test,
    rsyslog::wait_for,
    service::{Install, exec_true},
    unique,
};

/// Only ProcessCreate whose command line holds `token`: other engineers' processes stay out
/// of the files, so counts are exact.
fn config_for(token: &str) -> String {
    format!(
        "<Sysmon schemaversion=\"4.22\">\n  <EventFiltering>\n    <ProcessCreate \
         onmatch=\"include\">\n      <CommandLine condition=\"contains\">{token}</CommandLine>\n    \
         </ProcessCreate>\n    <ProcessTerminate onmatch=\"include\"/>\n  </EventFiltering>\n\
         </Sysmon>\n"
    )
}

/// Installs with `-o <outputs>` and a config that lets only `token`'s execs through.
fn install(tag: &str, token: &str, outputs: &str) -> Install {
    let t = Install::new(tag);
    std::fs::write(t.path("cfg.xml"), config_for(token)).unwrap();
    t.ok(&["-accepteula", "-i", "cfg.xml", "-o", outputs]);
    t
}

/// Every line of a file as JSON; a line that does not parse fails the test. A last line
/// without `\n` is left out: the daemon may be writing it right now (a reader can see a
/// large `write` half done); [`assert_whole`] checks once it has stopped.
fn json_lines(path: &Path) -> Vec<Value> {
    let mut bytes = std::fs::read(path).unwrap_or_default();
    bytes.truncate(bytes.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1));
    bytes
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| {
            serde_json::from_slice(l).unwrap_or_else(|e| {
                panic!(
                    "{}: not one JSON object ({e}): {}",
                    path.display(),
                    String::from_utf8_lossy(l)
                )
            })
        })
        .collect()
}

/// Once the daemon has stopped: the file ends with a whole line.
fn assert_whole(path: &Path) {
    let bytes = std::fs::read(path).unwrap();
    assert!(
        bytes.is_empty() || bytes.ends_with(b"\n"),
        "{} ends in a partial line",
        path.display()
    );
}

/// Every line of an XML file, each exactly one `<Event>…</Event>` (a last line without
/// `\n` is left out, as in [`json_lines`]).
fn xml_lines(path: &Path) -> Vec<(String, events::Event)> {
    let mut bytes = std::fs::read(path).unwrap_or_default();
    bytes.truncate(bytes.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1));
    let text = String::from_utf8(bytes).expect("UTF-8");
    text.lines()
        .map(|l| {
            assert!(
                l.starts_with("<Event>") && l.ends_with("</Event>"),
                "not one event: {l}"
            );
            let e = events::parse("", l).unwrap_or_else(|e| panic!("bad XML ({e}): {l}"));
            (l.to_string(), e)
        })
        .collect()
}

fn creates(lines: &[Value], token: &str) -> usize {
    lines
        .iter()
        .filter(|v| v["EventID"] == 1)
        .filter(|v| v["CommandLine"].as_str().is_some_and(|c| c.contains(token)))
        .count()
}

fn between<'a>(s: &'a str, open: &str, close: &str) -> &'a str {
    let at = s.find(open).unwrap() + open.len();
    &s[at..at + s[at..].find(close).unwrap()]
}

fn run_true(args: &[&[u8]]) {
    let status = Command::new("/bin/true")
        .args(args.iter().map(|a| OsStr::from_bytes(a)))
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
#[cfg_attr(no_kernel, ignore = "kernel test: needs root, BTF and rsyslogd")]
fn json_and_xml_files_agree_line_by_line() {
    let Some(_serial) = kernel_test("json_and_xml_files") else {
        return;
    };
    let token = format!("jx-{}", unique());
    let t = install("files", &token, "json,xml,syslog");
    let (json, xml) = (
        t.path("var/log/sysmon/sysmon.json"),
        t.path("var/log/sysmon/sysmon.xml"),
    );
    // Hostile values: each must stay one valid line in both files.
    let long = "L".repeat(32 * 1024);
    let cases: &[&[&[u8]]] = &[
        &[b"plain"],
        &[b"quote\"d", b"back\\slash\\", b"<tag a='1'>&amp;"],
        &[b"new\nline", b"cr\rtab\t", b"ctl\x01\x07\x1b[31m\x7f"],
        &[b"bad-utf8-\xff\xfe", b"cut-\xc3", b"caf\xc3\xa9"],
        &[long.as_bytes()],
    ];
    for (i, args) in cases.iter().enumerate() {
        let tag = format!("{token}-{i}");
        let mut argv: Vec<&[u8]> = vec![tag.as_bytes()];
        argv.extend_from_slice(args);
        run_true(&argv);
    }
    wait_for(
        || creates(&json_lines(&json), &token) == cases.len(),
        "every ProcessCreate in the JSON file",
    );
    wait_for(
        || xml_lines(&xml).len() >= json_lines(&json).len(),
        "the XML file to catch up",
    );
    let (js, xs) = (json_lines(&json), xml_lines(&xml));
    assert_eq!(js.len(), xs.len(), "one line per event in both files");
    for (j, (line, x)) in js.iter().zip(&xs) {
        assert_eq!(j["EventRecordID"], x.record_id, "same order, same ids");
        assert_eq!(j["EventID"], x.id);
        assert_eq!(j["Computer"], between(line, "<Computer>", "</Computer>"));
        assert_eq!(j["SystemTime"], between(line, "SystemTime=\"", "\""));
        let obj = j.as_object().unwrap();
        // The header (EventID, EventRecordID, SystemTime, Computer), then every field.
        assert_eq!(obj.len(), 4 + x.data.len(), "{j}");
        for (name, value) in &x.data {
            assert_eq!(j[name.as_str()], value.as_str(), "field {name} of {line}");
        }
        assert!(obj.contains_key("UtcTime"), "{j}");
    }
    let mine: Vec<&Value> = js
        .iter()
        .filter(|v| {
            v["CommandLine"]
                .as_str()
                .is_some_and(|c| c.contains(&token))
        })
        .collect();
    let cmd = |i: usize| mine[i]["CommandLine"].as_str().unwrap();
    assert!(mine.iter().all(|v| v.get("RuleName").is_some()));
    assert!(cmd(1).contains("quote\"d back\\slash\\ <tag a='1'>&amp;"));
    assert!(cmd(2).contains("new\nline"), "{}", cmd(2));
    assert!(
        cmd(3).contains("bad-utf8-\\xff\\xfe cut-\\xc3 café"),
        "{}",
        cmd(3)
    );
    assert!(cmd(4).len() > 30 * 1024);

    // `sysmonLogView --json` on the XML file: the same objects.
    let viewer = t.path("opt/sysmon/sysmonLogView");
    let out = Command::new(&viewer)
        .arg("--json")
        .arg(&xml)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let viewed: Vec<Value> = out
        .stdout
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).unwrap())
        .collect();
    assert_eq!(
        viewed, js,
        "sysmonLogView --json differs from the JSON file"
    );

    // Syslog still gets the same events.
    let in_syslog = t
        .events()
        .iter()
        .filter(|e| e.get("CommandLine").is_some_and(|c| c.contains(&token)))
        .count();
    assert_eq!(in_syslog, cases.len());

    // 0640 root:adm in a 0750 directory.
    for f in [&json, &xml] {
        let m = std::fs::metadata(f).unwrap();
        assert_eq!(m.permissions().mode() & 0o777, 0o640, "{}", f.display());
        assert_eq!(m.uid(), 0);
        assert_eq!(m.gid(), adm_gid());
    }
    let dir = std::fs::metadata(json.parent().unwrap()).unwrap();
    assert_eq!(dir.permissions().mode() & 0o777, 0o750);

    // -c keeps the sinks: a start after it (what the unit runs) still writes the files.
    t.ok(&["-c", "cfg.xml"]);
    t.ok(&["-u"]);
    let (before_json, before_xml) = (json_lines(&json).len(), xml_lines(&xml).len());
    t.ok(&["-service"]);
    let pid = t.daemon().expect("the restarted daemon") as u64;
    let started = |v: &Value| v["EventID"] == 4 && v["State"] == "Started";
    wait_for(
        || json_lines(&json)[before_json..].iter().any(started),
        "Started from the restarted daemon in the JSON file",
    );
    assert!(
        xml_lines(&xml).len() > before_xml,
        "the XML file was left out"
    );
    assert!(pid > 0);
    t.ok(&["-u"]);
    assert!(json.exists() && xml.exists(), "-u removed the log files");
    t.ok(&["-u", "force"]);
    assert!(
        json.exists() && xml.exists(),
        "-u force removed the log files"
    );
    assert_whole(&json);
    assert_whole(&xml);
}

fn adm_gid() -> u32 {
    std::fs::read_to_string("/etc/group")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("adm:x:"))
        .and_then(|r| r.split(':').next()?.parse().ok())
        .unwrap_or(0)
}

/// `-o` with a bad list: 87 and the reason, nothing installed.
#[test]
#[cfg_attr(no_kernel, ignore = "kernel test: needs root, BTF and rsyslogd")]
fn bad_output_list_installs_nothing() {
    let Some(_serial) = kernel_test("bad_output_list") else {
        return;
    };
    let t = Install::new("badout");
    for (list, why) in [
        ("json,csv", "unknown item 'csv'"),
        ("xml,size=10Q", "bad size"),
        ("json=relative.json", "absolute"),
        ("size=1M", "no sink"),
    ] {
        let out = t.sysmon(&["-accepteula", "-i", "-o", list]);
        assert_eq!(out.status.code(), Some(87), "-o {list}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(why), "-o {list}: {err}");
        assert!(
            !t.path("opt/sysmon").exists(),
            "-o {list} installed something"
        );
        assert!(t.daemon().is_none());
    }
}

/// Rotation at 16 KiB keeping 3: exactly 4 files, each of whole lines under the size, the
/// events in them consecutive (none lost or split); then logrotate's rename is followed.
#[test]
#[cfg_attr(no_kernel, ignore = "kernel test: needs root, BTF and rsyslogd")]
fn rotation_keeps_n_files_and_an_external_rename_is_followed() {
    let Some(_serial) = kernel_test("file_rotation") else {
        return;
    };
    let token = format!("rot-{}", unique());
    let t = install("rotate", &token, "json,size=16K,keep=3");
    let json = t.path("var/log/sysmon/sysmon.json");
    const N: usize = 200;
    for i in 0..N {
        exec_true(&format!("{token}-{i:04}"));
    }
    let last = format!("{token}-{:04}", N - 1);
    wait_for(
        || creates(&json_lines(&json), &last) == 1,
        "the last exec in the current file",
    );
    let dir = json.parent().unwrap();
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "sysmon.json",
            "sysmon.json.1",
            "sysmon.json.2",
            "sysmon.json.3"
        ]
    );
    let mut ids = Vec::new();
    let mut execs = Vec::new();
    for name in [
        "sysmon.json.3",
        "sysmon.json.2",
        "sysmon.json.1",
        "sysmon.json",
    ] {
        let p = dir.join(name);
        assert!(std::fs::metadata(&p).unwrap().len() <= 16 * 1024, "{name}");
        for v in json_lines(&p) {
            ids.push(v["EventRecordID"].as_u64().unwrap());
            if let Some(c) = v["CommandLine"].as_str().filter(|c| c.contains(&token)) {
                execs.push(c.rsplit('-').next().unwrap().parse::<usize>().unwrap());
            }
        }
    }
    assert!(
        ids.windows(2).all(|w| w[1] == w[0] + 1),
        "a gap or a repeat in the kept files: {ids:?}"
    );
    assert!(execs.windows(2).all(|w| w[1] == w[0] + 1), "{execs:?}");
    assert_eq!(*execs.last().unwrap(), N - 1);
    assert!(execs.len() < N, "nothing was rotated away");

    // logrotate (copytruncate-free): rename, and the agent follows by inode.
    let moved = dir.join("sysmon.json-20240101");
    std::fs::rename(&json, &moved).unwrap();
    let after = format!("{token}-after");
    exec_true(&after);
    wait_for(
        || creates(&json_lines(&json), &after) == 1,
        "the next event in a new file",
    );
    assert_eq!(creates(&json_lines(&moved), &after), 0);
    t.ok(&["-u"]);
    assert_whole(&json);
}

/// kill -9 while 10 000 execs run: only whole lines in both files, and after a re-install
/// the EventRecordIDs keep increasing.
#[test]
#[cfg_attr(no_kernel, ignore = "kernel test: needs root, BTF and rsyslogd")]
fn kill_9_in_an_exec_storm_leaves_whole_lines() {
    let Some(_serial) = kernel_test("file_kill_9") else {
        return;
    };
    const N: usize = 10_000;
    let token = format!("k9-{}", unique());
    let t = install("kill9", &token, "json,xml");
    let (json, xml) = (
        t.path("var/log/sysmon/sysmon.json"),
        t.path("var/log/sysmon/sysmon.xml"),
    );
    let pid = t.daemon().expect("daemon");
    let done = Arc::new(AtomicUsize::new(0));
    let worker = {
        let (token, done) = (token.clone(), done.clone());
        std::thread::spawn(move || {
            for i in 0..N {
                exec_true(&format!("{token}-{i}"));
                done.fetch_add(1, Ordering::Relaxed);
            }
        })
    };
    wait_for(|| done.load(Ordering::Relaxed) >= N / 2, "half the execs");
    unsafe { libc::kill(pid, libc::SIGKILL) };
    wait_for(|| !alive(pid), "the killed daemon to go");
    worker.join().unwrap();
    let before = json_lines_allowing_cut(&json);
    t.ok(&["-accepteula", "-i", "cfg.xml", "-o", "json,xml"]);
    let again = format!("{token}-again");
    exec_true(&again);
    wait_for(
        || creates(&json_lines(&json), &again) == 1,
        "the event after the re-install",
    );
    let js = json_lines(&json);
    assert!(js.len() >= before, "the re-install lost whole lines");
    xml_lines(&xml);
    let ids: Vec<u64> = js
        .iter()
        .map(|v| v["EventRecordID"].as_u64().unwrap())
        .collect();
    assert!(
        ids.windows(2).all(|w| w[1] > w[0]),
        "EventRecordID not increasing"
    );
    eprintln!(
        "execs seen before the kill: {}, lines now: {}",
        creates(&js, &token),
        js.len()
    );
    t.ok(&["-u"]);
    assert_whole(&json);
    assert_whole(&xml);
}

/// The whole lines of a file a crash may have left with a partial last line.
fn json_lines_allowing_cut(path: &Path) -> usize {
    let bytes = std::fs::read(path).unwrap();
    let whole = bytes.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
    bytes[..whole]
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .inspect(|l| drop(serde_json::from_slice::<Value>(l).expect("a whole JSON line")))
        .count()
}

/// A small tmpfs, unmounted (lazily: the daemon may hold a file) when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: PathBuf, size: &str) -> Tmpfs {
        std::fs::create_dir_all(&at).unwrap();
        let ok = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0750"),
                "tmpfs",
            ])
            .arg(&at)
            .status()
            .unwrap()
            .success();
        assert!(ok, "mount tmpfs");
        Tmpfs(at)
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// The disk fills up: the daemon keeps running, holds what its queue holds, and once space
/// is back writes it and reports the rest as event 255 `FileSinkDrops`; every exec is in the
/// file or in that count.
#[test]
#[cfg_attr(no_kernel, ignore = "kernel test: needs root, BTF and rsyslogd")]
fn full_filesystem_counts_what_is_lost() {
    let Some(_serial) = kernel_test("file_full_disk") else {
        return;
    };
    // Each event carries a 32 KiB command line; a file's queue (8 MiB) holds about 250 of
    // them. Both files on the small disk: each counts its own losses.
    const N: usize = 600;
    let token = format!("full-{}", unique());
    let t = Install::new("full");
    let disk = Tmpfs::mount(t.path("full"), "24m");
    let json = disk.0.join("sysmon.json");
    let xml = disk.0.join("sysmon.xml");
    std::fs::write(t.path("cfg.xml"), config_for(&token)).unwrap();
    let list = format!("json={},xml={}", json.display(), xml.display());
    t.ok(&["-accepteula", "-i", "cfg.xml", "-o", &list]);
    let pid = t.daemon().expect("daemon");
    wait_for(
        || json_lines(&json).iter().any(|v| v["EventID"] == 4),
        "Started in the file",
    );
    // Fill the filesystem.
    let filler = disk.0.join("filler");
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&filler).unwrap();
        let block = vec![0u8; 64 * 1024];
        while f.write_all(&block).is_ok() {}
        while f.write_all(&block[..512]).is_ok() {}
    }
    let pad = "P".repeat(32 * 1024);
    for i in 0..N {
        exec_true(&format!("{token}-{i}-{pad}"));
    }
    assert_eq!(t.daemon(), Some(pid), "the daemon stopped on a full disk");
    std::fs::remove_file(&filler).unwrap();
    // "… (disk full or not writable; <json path> <n>, <xml path> <n>) …", per file.
    let reported_for = |lines: &[Value], file: &Path| -> Option<u64> {
        let key = format!("{} ", file.display());
        lines
            .iter()
            .filter(|v| v["EventID"] == 255 && v["ID"] == "FileSinkDrops")
            .filter_map(|v| v["Description"].as_str())
            .map(|d| {
                let at = d.find(&key).unwrap() + key.len();
                let digits: String = d[at..].chars().take_while(char::is_ascii_digit).collect();
                digits.parse::<u64>().unwrap()
            })
            .reduce(|a, b| a + b)
    };
    let reported = |lines: &[Value]| reported_for(lines, &json);
    wait_for(
        || reported(&json_lines(&json)).is_some(),
        "event 255 FileSinkDrops",
    );
    let lines = json_lines(&json);
    let (written, lost) = (creates(&lines, &token), reported(&lines).unwrap());
    eprintln!("written {written}, reported lost {lost}");
    assert!(lost > 0, "the queue never overflowed");
    assert_eq!(
        written as u64 + lost,
        N as u64,
        "an exec neither written nor counted"
    );
    let xml_written = xml_lines(&xml)
        .iter()
        .filter(|(_, e)| e.id == 1 && e.get("CommandLine").is_some_and(|c| c.contains(&token)))
        .count();
    let xml_lost = reported_for(&lines, &xml).unwrap();
    eprintln!("xml: written {xml_written}, reported lost {xml_lost}");
    assert_eq!(
        xml_written as u64 + xml_lost,
        N as u64,
        "the XML file's count"
    );
    assert_eq!(t.daemon(), Some(pid), "the daemon did not survive");
    // And it writes on.
    let after = format!("{token}-after");
    exec_true(&after);
    wait_for(
        || creates(&json_lines(&json), &after) == 1,
        "an event after",
    );
    t.ok(&["-u"]);
    assert_whole(&json);
    assert_whole(&xml);
}
