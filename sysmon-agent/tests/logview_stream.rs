//! sysmonLogView behind `tail -f`: each event must come out before the next line goes in.
//!
//! The test writes one line to the viewer's stdin, reads the whole event back from its
//! stdout (blocking reads), and only then writes the next line. If the viewer held output
//! back, the read would block forever; a watchdog kills the viewer after a generous time
//! so that such a bug fails the test instead of hanging it. No timing is asserted.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

fn sample_events() -> Vec<String> {
    let log = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/logview/sample.log"),
    )
    .unwrap();
    log.lines().map(String::from).collect()
}

/// Runs the viewer with `args`, feeding `lines` one at a time. `read_event` reads one
/// event's output and returns its first line. Returns those first lines, one per event.
fn feed(args: &[&str], read_event: fn(&mut dyn BufRead) -> Option<String>) -> Vec<String> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_sysmonLogView"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (done, watch) = mpsc::channel::<()>();
    let pid = child.id() as libc::pid_t;
    let watchdog = std::thread::spawn(move || {
        if watch.recv_timeout(Duration::from_secs(120)).is_err() {
            // SAFETY: plain syscall on the pid of a child this test still owns (not waited).
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    });
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut heads = Vec::new();
    for line in sample_events() {
        writeln!(stdin, "{line}").unwrap();
        stdin.flush().unwrap();
        // Lines that are not ours, and the truncated / malformed ones, print nothing; the
        // viewer only sees further lines once we have read this event's output.
        if !line.contains("<Event>")
            || !line.ends_with("</Event>")
            || line.contains("Event_broken")
            || line.contains("kernel:")
        {
            continue;
        }
        match read_event(&mut stdout) {
            Some(head) => heads.push(head),
            None => break,
        }
    }
    drop(stdin);
    let mut rest = String::new();
    let _ = std::io::Read::read_to_string(&mut stdout, &mut rest);
    let _ = done.send(());
    watchdog.join().unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "viewer killed or failed: {status}");
    assert_eq!(rest, "", "output after end of input");
    heads
}

fn read_line(r: &mut dyn BufRead) -> Option<String> {
    let mut s = String::new();
    (r.read_line(&mut s).ok()? > 0).then_some(s)
}

#[test]
fn text_events_stream_one_by_one() {
    // With -X every event ends with an empty line, so the test knows where it ends.
    let heads = feed(&["-X"], |r| {
        let head = read_line(r)?;
        while read_line(r)? != "\n" {}
        Some(head)
    });
    assert_eq!(heads.len(), 18, "{heads:?}");
    assert_eq!(heads[0], "Event SYSMONEVENT_SERVICE_CONFIGURATION_CHANGE\n");
    assert_eq!(heads[17], "Event SYSMONEVENT_SERVICE_STATE_CHANGE\n");
}

#[test]
fn json_events_stream_one_by_one() {
    let heads = feed(&["--json"], read_line);
    assert_eq!(heads.len(), 18);
    for h in &heads {
        let v: serde_json::Value = serde_json::from_str(h).unwrap();
        assert!(v["EventID"].is_u64());
    }
}
