//! No event is lost to its size: an exec whose arguments are padded past what one syslog
//! message can carry arrives cut, as valid XML, through the rsyslog rule `sysmon -i` installs
//! (which raises rsyslog's 8 KiB default), and is not counted as a drop.

use std::process::Command;

use sysmon_tests::{
    kernel_test,
    service::{CONFIG, Install, lines},
    unique,
};

/// `render::fit::BUDGET`: the most bytes an event's XML may take.
const BUDGET: usize = 127 * 1024;

#[test]
#[cfg_attr(no_kernel, ignore = "kernel test: needs root, BTF and rsyslogd")]
fn a_padded_exec_arrives_cut_as_valid_xml() {
    let Some(_serial) = kernel_test("padded_exec") else {
        return;
    };
    let t = Install::new("size");
    std::fs::write(t.path("cfg.xml"), CONFIG).unwrap();
    t.ok(&["-accepteula", "-i", "cfg.xml"]);
    let pid = t.daemon().expect("a daemon") as u32;

    // A 32 KiB command line of `"` (6 bytes each once escaped) under a parent whose command
    // line is 32 KiB of `"` too: about 390 KiB of XML before cutting.
    let token = format!("pad-{}", unique());
    let quotes = "\"".repeat(32 * 1024);
    let status = Command::new("/bin/sh")
        .arg("-c")
        .arg("/bin/true \"$TOKEN\" \"$QUOTES\"; exit 0")
        .arg(format!("{token}-parent{quotes}"))
        .env("TOKEN", &token)
        .env("QUOTES", &quotes)
        .status()
        .unwrap();
    assert!(status.success());

    let child = t.wait_event("the padded exec", |e| {
        e.id == 1
            && e.get("CommandLine")
                .is_some_and(|c| c.starts_with(&format!("/bin/true {token} ")))
    });
    let cmd = child.get("CommandLine").unwrap();
    let parent = child.get("ParentCommandLine").unwrap();
    assert!(cmd.ends_with("\"..."), "CommandLine cut and marked");
    assert!(
        parent.starts_with("/bin/sh -c ") && parent.contains(&format!("{token}-parent\"")),
        "{}",
        &parent[..200.min(parent.len())]
    );
    assert!(
        parent.ends_with("\"..."),
        "ParentCommandLine cut and marked"
    );
    // Both command lines share the room; neither is cut to nothing.
    for (name, v) in [("CommandLine", cmd), ("ParentCommandLine", parent)] {
        assert!(v.len() > 5_000, "{name} kept only {} bytes", v.len());
    }
    // The line as written is within the budget (and so was one datagram), and the rest of
    // the event is whole.
    let log = lines(&t.path("var/log/sysmon.log"));
    let raw = log
        .iter()
        .find(|l| l.contains(&format!("/bin/true {token} ")))
        .unwrap();
    let xml = &raw[raw.find("<Event>").unwrap()..];
    eprintln!(
        "event XML {} bytes (budget {BUDGET}); CommandLine kept {} of {} bytes, \
         ParentCommandLine {} bytes",
        xml.len(),
        cmd.len(),
        "/bin/true ".len() + token.len() + 1 + 32 * 1024,
        parent.len()
    );
    assert!(xml.len() <= BUDGET, "{} bytes", xml.len());
    assert!(
        xml.len() > BUDGET - 1024,
        "cut further than needed: {} bytes",
        xml.len()
    );
    assert!(xml.ends_with("</EventData></Event>"));
    assert!(child.get("Image").unwrap().ends_with("/true"));
    assert!(child.get("ParentImage").unwrap().ends_with("sh"));

    // The parent's own ProcessCreate (its command line alone is too long) arrives cut too.
    let sh = t.wait_event("the padded parent", |e| {
        e.id == 1
            && e.get("CommandLine")
                .is_some_and(|c| c.contains(&format!("{token}-parent")))
    });
    assert!(sh.get("CommandLine").unwrap().ends_with("\"..."));

    // Nothing was refused: no event 255 (SyslogDrops) from this daemon, up to its Stopped
    // (an older kernel's KernelCheck at start says what it lacks, not what was refused).
    t.ok(&["-u"]);
    t.wait_event("event 4 Stopped", |e| {
        e.id == 4 && e.agent_pid == pid && e.get("State") == Some("Stopped")
    });
    let errors: Vec<_> = t
        .events()
        .into_iter()
        .filter(|e| e.id == 255 && e.agent_pid == pid && e.get("ID") != Some("KernelCheck"))
        .map(|e| e.data)
        .collect();
    assert!(errors.is_empty(), "{errors:?}");
}
