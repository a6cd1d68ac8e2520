//! Our Windows-style example configs (configs/examples/ at the workspace root) load with
//! warnings for the Windows-only options, and their rules work on the events they name.

use std::path::PathBuf;

use super::super::load_file;
use super::judge;

fn path(name: &str) -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../configs/examples")).join(name)
}

#[test]
fn windows_style_configs_load_with_warnings() {
    let cases: &[(&str, &[&str])] = &[
        (
            "sysmon-modular-style.xml",
            &[
                "<ArchiveDirectory> is a Windows-only option",
                "<CheckRevocation> is a Windows-only option",
            ],
        ),
        (
            "swiftonsecurity-style.xml",
            &[
                "<CheckRevocation> is a Windows-only option",
                "<DnsLookup> has no effect",
            ],
        ),
        (
            "windows-pipes-dns.xml",
            &[
                "<CaptureClipboard> is a Windows-only option",
                "<DriverName> is a Windows-only option",
            ],
        ),
    ];
    for (name, warnings) in cases {
        let config = load_file(&path(name)).unwrap_or_else(|e| panic!("{e}"));
        for w in *warnings {
            assert!(
                config.warnings.iter().any(|got| got.contains(w)),
                "{name}: no warning {w:?} in {:?}",
                config.warnings
            );
        }
        assert_eq!(
            config.warnings.len(),
            warnings.len(),
            "{name}: {:?}",
            config.warnings
        );
    }
}

#[test]
fn windows_style_rules_work() {
    let modular = load_file(&path("sysmon-modular-style.xml")).unwrap();
    let swift = load_file(&path("swiftonsecurity-style.xml")).unwrap();
    let pipes = load_file(&path("windows-pipes-dns.xml")).unwrap();
    let run_key = "HKU\\S-1-5-21\\Software\\Microsoft\\Windows\\CurrentVersion\\Run\\evil";
    let cases = [
        (
            &modular,
            13,
            vec![("TargetObject", run_key), ("Details", "c:\\x.exe")],
            true,
            "technique_id=T1547.001,technique_name=Registry Run Keys / Start Folder",
        ),
        (
            &modular,
            12,
            vec![("TargetObject", run_key)],
            true,
            "technique_id=T1547.001,technique_name=Registry Run Keys / Start Folder",
        ),
        (
            &modular,
            13,
            vec![("TargetObject", "HKLM\\Software\\Vendor\\Setting")],
            false,
            "",
        ),
        (
            &modular,
            22,
            vec![("QueryName", "abc.ngrok.io"), ("Image", "C:\\x.exe")],
            true,
            "technique_id=T1572,technique_name=Protocol Tunneling",
        ),
        (
            &modular,
            22,
            vec![("QueryName", "www.microsoft.com"), ("Image", "C:\\x.exe")],
            false,
            "",
        ),
        (
            &modular,
            1,
            vec![
                ("Image", "C:\\Windows\\System32\\certutil.exe"),
                ("CommandLine", "certutil -urlcache -f http://x"),
            ],
            true,
            "technique_id=T1105,technique_name=Ingress Tool Transfer",
        ),
        (
            &swift,
            1,
            vec![
                ("Image", "C:\\Windows\\System32\\svchost.exe"),
                ("ParentImage", "C:\\Windows\\System32\\services.exe"),
            ],
            false,
            "",
        ),
        (
            &swift,
            1,
            vec![("Image", "C:\\Users\\a\\evil.exe")],
            true,
            "",
        ),
        (
            &swift,
            3,
            vec![("Image", "C:\\Windows\\System32\\certutil.exe")],
            true,
            "T1105",
        ),
        (
            &swift,
            12,
            vec![(
                "TargetObject",
                "HKLM\\System\\CurrentControlSet\\Services\\evil\\ImagePath",
            )],
            true,
            "T1031,T1050",
        ),
        (
            &pipes,
            17,
            vec![("PipeName", "\\msagent_42"), ("Image", "C:\\x.exe")],
            true,
            "CobaltStrike",
        ),
        (
            &pipes,
            18,
            vec![("PipeName", "\\postex_ssh_1"), ("Image", "C:\\x.exe")],
            true,
            "CobaltStrike",
        ),
        (
            &pipes,
            17,
            vec![
                ("PipeName", "\\lsass"),
                ("Image", "C:\\Windows\\System32\\lsass.exe"),
            ],
            false,
            "",
        ),
        (
            &pipes,
            22,
            vec![("QueryName", "wpad.corp"), ("Image", "C:\\x.exe")],
            false,
            "",
        ),
        (
            &pipes,
            22,
            vec![("QueryName", "evil.example"), ("Image", "C:\\x.exe")],
            true,
            "",
        ),
        (
            &pipes,
            19,
            vec![("Operation", "Created"), ("Name", "x")],
            true,
            "WMI persistence",
        ),
        (&pipes, 21, vec![("Consumer", "x")], true, "WMI persistence"),
    ];
    for (i, (config, id, fields, include, name)) in cases.iter().enumerate() {
        assert_eq!(
            judge(config, *id, fields),
            (*include, name.to_string()),
            "case {i}: event {id} {fields:?}"
        );
    }
}

#[test]
fn hash_switch_yields_to_the_files_option() {
    let with = "<Sysmon schemaversion=\"4.50\"><HashAlgorithms>md5</HashAlgorithms></Sysmon>";
    let without = "<Sysmon schemaversion=\"4.50\"></Sysmon>";
    // (config, -h value, md5, sha256 afterwards)
    let cases = [
        (with, "sha256", true, false),
        (without, "md5", true, false),
        (without, "sha1,sha256", false, true),
    ];
    for (xml, switch, md5, sha256) in cases {
        let mut c = crate::rules::parse_bytes(xml.as_bytes(), "t.xml").unwrap();
        c.apply_hash_switch(switch).unwrap();
        assert_eq!(
            (c.hash_algorithms.md5, c.hash_algorithms.sha256),
            (md5, sha256),
            "{xml} -h {switch}"
        );
    }
    assert!(
        crate::rules::Config::default()
            .apply_hash_switch("crc32")
            .is_err()
    );
}
