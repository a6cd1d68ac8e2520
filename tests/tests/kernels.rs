//! The programs against the running kernel's verifier: every one loads within the portable
//! limits (`sysmon -kernelcheck`), and the published configurations that log network
//! connections start and log one. Run on this machine's kernel and inside the older guest
//! kernels (tests/tests/guest.rs).

use std::{net::TcpListener, path::Path, process::Command};

use sysmon_tests::{TempDir, kernel_test, record_with, sysmon_bin};

/// The verifier's own numbers for each program: every program loads, with at most half the
/// verifier's instruction limit and the 512-byte stack (`-kernelcheck` exits 1 otherwise).
/// The table is printed for the test log (`--nocapture`) and by `cargo xtask test`.
#[test]
#[cfg_attr(
    no_kernel,
    ignore = "kernel test: needs root, BTF and rsyslogd (cargo xtask test)"
)]
fn every_program_loads_within_the_limits() {
    let _serial = kernel_test("every_program_loads_within_the_limits");
    let out = Command::new(sysmon_bin())
        .arg("-kernelcheck")
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&out.stdout);
    println!("{report}");
    assert!(
        out.status.success(),
        "{report}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: Vec<Vec<&str>> = report
        .lines()
        .skip_while(|l| !l.starts_with("program "))
        .skip(1)
        .take_while(|l| !l.starts_with("most instructions"))
        .filter(|l| !l.starts_with(' '))
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert!(rows.len() > 30, "{} programs: {report}", rows.len());
    for row in &rows {
        let [name, verified, _share, _frames, combined] = row[..] else {
            panic!("row {row:?}");
        };
        let verified: u32 = verified.parse().unwrap_or_else(|_| panic!("{row:?}"));
        let combined: u32 = combined.parse().unwrap();
        assert!(verified > 0 && verified <= 500_000, "{name}: {verified}");
        assert!(combined <= 512, "{name}: {combined}");
    }
    assert!(report.contains("every program loads within the limits"));
}

/// Each published configuration under configs/real-world starts with its network probes
/// and logs one TCP connect by a program named like a download tool in /tmp: each includes
/// it in its own way (`Image` ends with `curl`, begins with `/tmp/`, everything, or TCP
/// excluded only to ports 80 and 443).
#[test]
#[cfg_attr(
    no_kernel,
    ignore = "kernel test: needs root, BTF and rsyslogd (cargo xtask test)"
)]
fn real_world_configs_start_and_log_a_tcp_connect() {
    let _serial = kernel_test("real_world_configs_start_and_log_a_tcp_connect");
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs/real-world");
    // (config, a TCP connect from /tmp/…/curl to a high port is logged)
    let cases = [
        ("0xAnalyst_Sysmon__SysmonForLinux__config.xml", true),
        ("QubitSecurity_EDR__plura-v3.1-gtfobins-curated.xml", true),
        (
            "microsoft_MSTIC-Sysmon__linux_configs__collect-all.xml",
            true,
        ),
        ("microsoft_MSTIC-Sysmon__linux_configs__main.xml", true),
        (
            "oz9un_SysmonForLinux-Manual__network_specifications.xml",
            true,
        ),
    ];
    let mut listed: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".xml"))
        .collect();
    listed.sort();
    let mut named: Vec<&str> = cases.iter().map(|(n, _)| *n).collect();
    named.sort();
    assert_eq!(listed, named, "every published config has a case");

    let tools = TempDir::new("curl");
    let curl = tools.0.join("curl");
    std::fs::copy("/bin/bash", &curl).unwrap();
    for (name, logged) in cases {
        let config = std::fs::read_to_string(dir.join(name)).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let (events, stderr) = record_with("realworld", Some(&config), |_| {
            let status = Command::new(&curl)
                .args(["-c", &format!("exec 3<>/dev/tcp/127.0.0.1/{port}")])
                .status()
                .unwrap();
            assert!(status.success(), "{name}: connect");
        });
        let connects: Vec<_> = events
            .iter()
            .filter(|e| {
                e.id == 3
                    && e.get("Image") == curl.to_str()
                    && e.get("DestinationPort") == Some(&port.to_string())
            })
            .collect();
        assert_eq!(
            connects.len(),
            usize::from(logged),
            "{name}: {connects:#?}\n{stderr}"
        );
        if let Some(e) = connects.first() {
            assert_eq!(e.get("Protocol"), Some("tcp"), "{name}");
            assert_eq!(e.get("Initiated"), Some("true"), "{name}");
            assert_eq!(e.get("DestinationIp"), Some("127.0.0.1"), "{name}");
        }
    }
}
