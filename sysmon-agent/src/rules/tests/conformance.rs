//! Spec §7.1: Sysmon's own rule-matching unit tests (`UnitTests/rules.cpp`), every case, as
//! one table. Our decisions (docs/config.md) only show in case 27 (`image` also splits on `/`,
//! which changes none of Sysmon's inputs) and are tested in conditions.rs.

use super::{judge, load, sysmon};

const PC: u16 = 1;
const FCT: u16 = 2;
const DL: u16 = 6;
const IL: u16 = 7;
const RAR: u16 = 9;
const RK: u16 = 12;
const RS: u16 = 13;
const RN: u16 = 14;
const IN: bool = true;
const EX: bool = false;

type Fields = Vec<(&'static str, &'static str)>;

struct Case {
    n: &'static str,
    xml: String,
    /// (event id, fields, include, rule name)
    checks: Vec<(u16, Fields, bool, &'static str)>,
}

fn cl(v: &'static str) -> Fields {
    vec![("CommandLine", v)]
}
fn img(v: &'static str) -> Fields {
    vec![("Image", v)]
}
fn img_cl(i: &'static str, c: &'static str) -> Fields {
    vec![("Image", i), ("CommandLine", c)]
}
fn il(i: &'static str, loaded: &'static str) -> Fields {
    vec![("Image", i), ("ImageLoaded", loaded)]
}

/// One ProcessCreate include entry with one CommandLine filter (schema 4.50).
fn one_filter(
    n: &'static str,
    condition: &str,
    value: &str,
    rows: &[(&'static str, bool)],
) -> Case {
    let body = format!(
        "<ProcessCreate onmatch=\"include\"><CommandLine condition=\"{condition}\">{value}</CommandLine></ProcessCreate>"
    );
    Case {
        n,
        xml: sysmon("4.50", &body),
        checks: rows.iter().map(|(v, inc)| (PC, cl(v), *inc, "")).collect(),
    }
}

const SYS32: &str = "C:\\Windows\\System32\\kernel32.dll";
const TEST_DLL: &str = "C:\\test\\test.dll";
const MS: &str = "https://www.microsoft.com";

fn cases() -> Vec<Case> {
    let ie_or = "<RuleGroup name=\"internet-explorer second\" groupRelation=\"or\"><ProcessCreate onmatch=\"ONMATCH\">\
                 <CommandLine condition=\"contains\">iexplore.exe</CommandLine>\
                 <CommandLine condition=\"contains\">notepad.exe</CommandLine></ProcessCreate></RuleGroup>";
    let ie_name = "internet-explorer second";
    let ie_values = [
        "iexplore.exe",
        "\\SMB\\iexplore.exe\\something",
        "notepad.exe",
        "z:\\notepad.exe\\something",
    ];
    let both = "<ProcessCreate onmatch=\"include\"><Image condition=\"is\">iexplore.exe</Image>\
                <CommandLine condition=\"is\">notepad.exe</CommandLine></ProcessCreate>";
    let cmdmatch = |rel: &str| {
        format!(
            "<ProcessCreate onmatch=\"include\"><Image condition=\"is\">iexplore.exe</Image>\
             <Rule name=\"cmdmatch\" groupRelation=\"{rel}\"><CommandLine condition=\"begin with\">/testopt</CommandLine>\
             <CommandLine condition=\"contains\">{MS}</CommandLine></Rule></ProcessCreate>"
        )
    };
    let any8 = [
        "/Flag1 /Something:Equal /Flag2",
        "/Flag1 /sometHInG:eQual /Flag2",
        "/Flag3 OrElse /Flag4",
        "/Anotherlfag orELse /Something",
        "/Something:Equal",
        "/something:equal",
        "OrElse",
        "orelSE",
    ];
    let contains4 = [
        "/Flag1 /Something:Equal /Flag2",
        "/Flag1 /somEThing:eqUal /Flag2",
        "/Something:Equal",
        "/sOMething:equAl",
    ];
    let rows = |values: &[&'static str], inc: bool| {
        values.iter().map(move |v| (*v, inc)).collect::<Vec<_>>()
    };
    let with = |mut a: Vec<(&'static str, bool)>, b: &[(&'static str, bool)]| {
        a.extend_from_slice(b);
        a
    };

    vec![
        Case {
            n: "1 PC exclude, empty",
            xml: sysmon("4.50", "<ProcessCreate onmatch=\"exclude\"/>"),
            checks: vec![(PC, vec![], IN, ""), (PC, cl("svchost.exe"), IN, "")],
        },
        Case {
            n: "2 RawAccessRead exclude, empty",
            xml: sysmon("4.50", "<RawAccessRead onmatch=\"exclude\"/>"),
            checks: vec![(RAR, vec![], IN, ""), (RAR, img("svchost.exe"), IN, "")],
        },
        Case {
            n: "3 no EventFiltering: manifest defaults",
            xml: "<Sysmon schemaversion=\"4.50\"/>".into(),
            checks: vec![(PC, vec![], IN, ""), (RAR, vec![], EX, "")],
        },
        Case {
            n: "4 PC include, empty",
            xml: sysmon("4.50", "<ProcessCreate onmatch=\"include\"/>"),
            checks: vec![(PC, vec![], EX, ""), (PC, cl("svchost.exe"), EX, "")],
        },
        Case {
            n: "5 RuleGroup and, one filter",
            xml: sysmon(
                "4.50",
                "<RuleGroup name=\"internet-explorer\" groupRelation=\"and\"><ProcessCreate onmatch=\"include\">\
                 <CommandLine condition=\"contains\">iexplore.exe</CommandLine></ProcessCreate></RuleGroup>",
            ),
            checks: vec![
                (PC, img("iexplore.exe"), EX, ""),
                (PC, cl("svchost.exe"), EX, ""),
                (PC, cl("iexplore.exe"), IN, "internet-explorer"),
                (
                    PC,
                    cl("c:\\iexplore.exe\\something"),
                    IN,
                    "internet-explorer",
                ),
            ],
        },
        Case {
            n: "6 RuleGroup or, include",
            xml: sysmon("4.50", &ie_or.replace("ONMATCH", "include")),
            checks: [
                (PC, img("iexplore.exe"), EX, ""),
                (PC, cl("svchost.exe"), EX, ""),
            ]
            .into_iter()
            .chain(ie_values.iter().map(|v| (PC, cl(v), IN, ie_name)))
            .collect(),
        },
        Case {
            n: "7 RuleGroup or, exclude",
            xml: sysmon("4.50", &ie_or.replace("ONMATCH", "exclude")),
            checks: [
                (PC, img("iexplore.exe"), IN, ""),
                (PC, cl("svchost.exe"), IN, ""),
            ]
            .into_iter()
            .chain(ie_values.iter().map(|v| (PC, cl(v), EX, ie_name)))
            .collect(),
        },
        Case {
            n: "8 schema 4.1 combines with OR",
            xml: sysmon("4.1", both),
            checks: vec![
                (PC, img("iexplore.exe"), IN, ""),
                (PC, cl("notepad.exe"), IN, ""),
            ],
        },
        Case {
            n: "9 schema 4.21 combines with AND",
            xml: sysmon("4.21", both),
            checks: vec![
                (PC, img("iexplore.exe"), EX, ""),
                (PC, cl("notepad.exe"), EX, ""),
                (PC, img_cl("iexplore.exe", "notepad.exe"), IN, ""),
            ],
        },
        one_filter(
            "10 is",
            "is",
            "/Something:Equal",
            &[
                ("/Something:Equal", IN),
                ("/someThing:equaL", IN),
                ("/something:else", EX),
            ],
        ),
        one_filter(
            "11 is any",
            "is any",
            "/Something:Equal;OrElse",
            &[
                ("/Something:Equal", IN),
                ("/sOmething:eqUal", IN),
                ("OrElse", IN),
                ("oReLse", IN),
                ("/something:else", EX),
            ],
        ),
        one_filter(
            "12 is not",
            "is not",
            "/Something:Equal",
            &[
                ("/Something:Equal", EX),
                ("/soMething:equAl", EX),
                ("/something:else", IN),
            ],
        ),
        one_filter(
            "13 contains",
            "contains",
            "/Something:Equal",
            &with(rows(&contains4, IN), &[("/something:else", EX)]),
        ),
        one_filter(
            "14 contains any",
            "contains any",
            "/Something:Equal;OrElse",
            &with(rows(&any8, IN), &[("/something:else", EX)]),
        ),
        one_filter(
            "15 contains all",
            "contains all",
            "/Something:Equal;OrElse",
            &[
                ("/Flag1 /Something:Equal /Flag5", EX),
                ("/FlagP OrElse /FlagC", EX),
                ("/Something:Equal", EX),
                ("OrElse", EX),
                ("/Flag1 /Something:Equal /Flag2 OrElse /Something", IN),
                ("/Flag1 /something:equal /Flag2 ORelse /Something", IN),
                ("/something:else", EX),
            ],
        ),
        one_filter(
            "16 excludes",
            "excludes",
            "/Something:Equal",
            &with(rows(&contains4, EX), &[("/something:else", IN)]),
        ),
        one_filter(
            "17 excludes any",
            "excludes any",
            "/Something:Equal;OrElse",
            &with(rows(&any8, EX), &[("/something:else", IN)]),
        ),
        one_filter(
            "18 excludes all",
            "excludes all",
            "/Something:Equal;OrElse",
            &[
                ("/Flag1 /Something:Equal /Flag5", IN),
                ("/FlagP OrElse /FlagC", IN),
                ("/Something:Equal", IN),
                ("OrElse", IN),
                ("/Flag1 /Something:Equal /Flag2 OrElse /Something", EX),
                ("/Flag1 /something:equal /Flag2 ORelse /Something", EX),
                ("/something:else", IN),
            ],
        ),
        one_filter(
            "19 begin with",
            "begin with",
            "TheFirstString",
            &[
                ("TheFirstString", IN),
                ("TheFirstString and something else", IN),
                ("TheFirstStrin", EX),
                ("There was something before TheFirstString", EX),
                ("Before TheFirstString After", EX),
                ("Another string", EX),
            ],
        ),
        one_filter(
            "20 end with",
            "end with",
            "TheLastString",
            &[
                ("TheLastString", IN),
                ("TheLastString and something else", EX),
                ("TheLastStrin", EX),
                ("There was something before TheLastString", IN),
                ("Before TheLastString After", EX),
                ("Another string", EX),
            ],
        ),
        one_filter(
            "21 less than",
            "less than",
            "TargetString",
            &[
                ("TargetStrinf", IN),
                ("tarGeTstrinF", IN),
                ("TargetStrinh", EX),
                ("tArgeTStringH", EX),
                ("TargetString", EX),
            ],
        ),
        one_filter(
            "22 more than",
            "more than",
            "TargetString",
            &[
                ("TargetStrinf", EX),
                ("targetstrINF", EX),
                ("TargetString", EX),
                ("TargetStrinh", IN),
                ("tARGetstringH", IN),
            ],
        ),
        Case {
            n: "23 ImageLoad include on one field, exclude Rule and",
            xml: sysmon(
                "4.5",
                "<ImageLoad onmatch=\"include\"><Image condition=\"is\">notepad.exe</Image><Image condition=\"is\">conhost.exe</Image></ImageLoad>\
                 <ImageLoad onmatch=\"exclude\"><Rule groupRelation=\"and\"><Image condition=\"is\">notepad.exe</Image>\
                 <ImageLoaded condition=\"contains\">C:\\Windows\\System32</ImageLoaded></Rule></ImageLoad>",
            ),
            checks: vec![
                (IL, il("notepad.exe", SYS32), EX, ""),
                (IL, il("notepad.exe", TEST_DLL), IN, ""),
                (IL, il("conhost.exe", SYS32), IN, ""),
                (IL, il("conhost.exe", TEST_DLL), IN, ""),
                (IL, il("cmd.exe", SYS32), EX, ""),
                (IL, il("cmd.exe", TEST_DLL), EX, ""),
            ],
        },
        Case {
            n: "24 exclude Rule and with a field the event lacks",
            xml: sysmon(
                "4.5",
                "<ImageLoad onmatch=\"include\"><Image condition=\"is\">notepad.exe</Image></ImageLoad>\
                 <ImageLoad onmatch=\"exclude\"><Rule groupRelation=\"and\"><Image condition=\"is\">notepad.exe</Image>\
                 <ImageLoaded condition=\"contains\">C:\\Windows\\System32</ImageLoaded>\
                 <Company condition=\"is\">TestCompany</Company></Rule></ImageLoad>",
            ),
            checks: vec![
                (IL, il("notepad.exe", SYS32), IN, ""),
                (
                    IL,
                    vec![
                        ("Image", "notepad.exe"),
                        ("ImageLoaded", SYS32),
                        ("Company", "Company"),
                    ],
                    IN,
                    "",
                ),
                (
                    IL,
                    vec![
                        ("Image", "notepad.exe"),
                        ("ImageLoaded", SYS32),
                        ("Company", "TestCompany"),
                    ],
                    EX,
                    "",
                ),
            ],
        },
        Case {
            n: "25 RuleGroup or of two Rules",
            xml: sysmon(
                "4.5",
                "<RuleGroup groupRelation=\"or\"><ImageLoad onmatch=\"include\">\
                 <Rule groupRelation=\"and\"><Image condition=\"is\">notepad.exe</Image><ImageLoaded condition=\"contains\">a.dll</ImageLoaded></Rule>\
                 <Rule groupRelation=\"and\"><Image condition=\"is\">notepad.exe</Image><ImageLoaded condition=\"contains\">b.dll</ImageLoaded></Rule>\
                 </ImageLoad></RuleGroup>",
            ),
            checks: vec![
                (IL, il("notepad.exe", "C:\\x\\a.dll"), IN, ""),
                (IL, il("notepad.exe", "C:\\x\\b.dll"), IN, ""),
                (IL, il("notepad.exe", "C:\\x\\c.dll"), EX, ""),
            ],
        },
        Case {
            n: "26 RuleGroup or of a Rule and a field",
            xml: sysmon(
                "4.5",
                "<RuleGroup groupRelation=\"or\"><ImageLoad onmatch=\"include\">\
                 <Rule groupRelation=\"and\"><Image condition=\"is\">notepad.exe</Image><ImageLoaded condition=\"contains\">a.dll</ImageLoaded></Rule>\
                 <ImageLoaded condition=\"contains\">a.dll</ImageLoaded></ImageLoad></RuleGroup>",
            ),
            checks: vec![
                (IL, il("conhost.exe", "C:\\x\\a.dll"), IN, ""),
                (IL, il("notepad.exe", "C:\\x\\a.dll"), IN, ""),
            ],
        },
        one_filter(
            "27 image",
            "image",
            "Svchost.Exe",
            &[
                ("Svchost.Exe", IN),
                ("sVchost.eXe", IN),
                ("c:\\Windows\\System32\\svchost.exe", IN),
                ("\\ANOTHERMACHINE\\Windows\\System32\\svchost.exe", IN),
                ("\\??\\Drive0\\Windows\\System32\\svchost.exe", IN),
                ("..\\System32\\svchost.exe", IN),
                ("D:\\Windows\\System32\\lsass.exe", EX),
                ("D:\\Windows\\System32\\", EX),
                ("c:\\Windows\\System32\\svchost.exe\\", EX),
                ("Just a sentence", EX),
            ],
        ),
        one_filter(
            "28 is any with empty value",
            "is any",
            "",
            &[("/something:else", EX)],
        ),
        one_filter(
            "29 is any with only separators",
            "is any",
            ";;;;;;;",
            &[("/something:else", EX)],
        ),
        Case {
            n: "30 RuleGroup and: same field is OR-ed",
            xml: sysmon(
                "4.50",
                "<RuleGroup name=\"internet-explorer\" groupRelation=\"and\"><ProcessCreate onmatch=\"include\">\
                 <CommandLine condition=\"contains\">iexplore.exe</CommandLine>\
                 <CommandLine condition=\"contains\">Windows</CommandLine></ProcessCreate></RuleGroup>",
            ),
            checks: vec![
                (PC, img("iexplore.exe"), EX, ""),
                (PC, cl("iexplore.exe"), IN, "internet-explorer"),
                (PC, cl("c:\\windows\\iexplore.exe"), IN, "internet-explorer"),
            ],
        },
        Case {
            n: "31 RuleGroup or on two fields",
            xml: sysmon(
                "4.50",
                &format!("<RuleGroup name=\"procmatch\" groupRelation=\"or\">{both}</RuleGroup>"),
            ),
            checks: vec![
                (PC, img("svchost.exe"), EX, ""),
                (PC, img("iexplore.exe"), IN, "procmatch"),
                (PC, cl("notepad.exe"), IN, "procmatch"),
                (PC, img_cl("iexplore.exe", "notepad.exe"), IN, "procmatch"),
            ],
        },
        Case {
            n: "32 field AND Rule(and)",
            xml: sysmon("4.50", &cmdmatch("and")),
            checks: vec![
                (PC, img("svchost.exe"), EX, ""),
                (PC, img("iexplore.exe"), EX, ""),
                (PC, img_cl("iexplore.exe", "/testopt"), EX, ""),
                (
                    PC,
                    img_cl("iexplore.exe", "padding /testopt https://www.microsoft.com"),
                    EX,
                    "",
                ),
                (
                    PC,
                    img_cl("iexplore.exe", "/testopt https://www.microsoft.com"),
                    IN,
                    "cmdmatch",
                ),
            ],
        },
        Case {
            n: "33 field OR Rule(and) in a named RuleGroup",
            xml: sysmon(
                "4.50",
                &format!(
                    "<RuleGroup name=\"procmatch\" groupRelation=\"or\">{}</RuleGroup>",
                    cmdmatch("and")
                ),
            ),
            checks: vec![
                (PC, img("svchost.exe"), EX, ""),
                (PC, img("iexplore.exe"), IN, "procmatch"),
                (PC, img_cl("iexplore.exe", "/testopt"), IN, "procmatch"),
                (PC, cl("padding /testopt https://www.microsoft.com"), EX, ""),
                (PC, cl("/testopt https://www.microsoft.com"), IN, "cmdmatch"),
                (
                    PC,
                    img_cl("iexplore.exe", "/testopt https://www.microsoft.com"),
                    IN,
                    "procmatch",
                ),
            ],
        },
        Case {
            n: "34 field AND Rule(or)",
            xml: sysmon("4.50", &cmdmatch("or")),
            checks: vec![
                (PC, img("svchost.exe"), EX, ""),
                (PC, img("iexplore.exe"), EX, ""),
                (PC, img_cl("iexplore.exe", "/testopt"), IN, "cmdmatch"),
                (
                    PC,
                    img_cl("iexplore.exe", "padding /testopt https://www.microsoft.com"),
                    IN,
                    "cmdmatch",
                ),
                (
                    PC,
                    img_cl("iexplore.exe", "/testopt https://www.microsoft.com"),
                    IN,
                    "cmdmatch",
                ),
            ],
        },
        Case {
            n: "35 Rule(and) over three filters on one field",
            xml: sysmon(
                "4.50",
                &format!(
                    "<ProcessCreate onmatch=\"include\"><Rule name=\"cmdmatch\" groupRelation=\"and\">\
                     <CommandLine condition=\"begin with\">/testopt</CommandLine><CommandLine condition=\"end with\">/end</CommandLine>\
                     <CommandLine condition=\"contains\">{MS}</CommandLine></Rule></ProcessCreate>"
                ),
            ),
            checks: vec![
                (PC, cl("/testopt"), EX, ""),
                (PC, cl("/testopt /end"), EX, ""),
                (PC, cl("https://www.microsoft.com /end"), EX, ""),
                (PC, cl("/testopt https://www.microsoft.com"), EX, ""),
                (
                    PC,
                    cl("padding /testopt https://www.microsoft.com /end"),
                    EX,
                    "",
                ),
                (
                    PC,
                    cl("/testopt https://www.microsoft.com /end"),
                    IN,
                    "cmdmatch",
                ),
            ],
        },
        Case {
            n: "36 RegistryEvent next to ProcessCreate",
            xml: sysmon(
                "4.50",
                "<ProcessCreate onmatch=\"include\"><Rule groupRelation=\"or\"><Image condition=\"contains\">conhost.exe</Image>\
                 <Image condition=\"contains\">notepad.exe</Image></Rule></ProcessCreate>\
                 <RegistryEvent onmatch=\"include\"><Details condition=\"contains\">SomeValue</Details></RegistryEvent>",
            ),
            checks: vec![
                (RS, vec![("Details", "OtherValue")], EX, ""),
                (RS, vec![("Details", "SomeValue")], IN, ""),
                (PC, img("notepad.exe"), IN, ""),
            ],
        },
        Case {
            // Stand-in for sysmon-modular-config.xml (not available here): its PowerShell ImageLoad rule.
            n: "37 sysmon-modular ImageLoad technique rule",
            xml: sysmon(
                "4.50",
                "<RuleGroup name=\"\" groupRelation=\"or\"><ImageLoad onmatch=\"include\">\
                 <Rule name=\"technique_id=T1059.001,technique_name=PowerShell\" groupRelation=\"or\">\
                 <ImageLoaded condition=\"contains any\">System.Management.Automation;System.Management.Automation.ni.dll</ImageLoaded>\
                 <OriginalFileName condition=\"is\">System.Management.Automation.dll</OriginalFileName></Rule>\
                 <ImageLoaded name=\"technique_id=T1218,technique_name=Signed Binary Proxy Execution\" condition=\"end with\">scrobj.dll</ImageLoaded>\
                 </ImageLoad></RuleGroup>",
            ),
            checks: vec![
                (
                    IL,
                    il(
                        "c:\\file.exe",
                        "C:\\Windows\\assembly\\NativeImages_v2.0.50727_64\\System.Management.A#\\4b93b6bd71723bed2fa9dd778436dd5e\\System.Management.Automation.ni.dll",
                    ),
                    IN,
                    "technique_id=T1059.001,technique_name=PowerShell",
                ),
                (
                    IL,
                    il("c:\\file.exe", "C:\\Windows\\System32\\kernel32.dll"),
                    EX,
                    "",
                ),
            ],
        },
        Case {
            n: "38 include and exclude on CommandLine",
            xml: sysmon(
                "4.50",
                "<ProcessCreate onmatch=\"include\"><CommandLine condition=\"contains\">/include</CommandLine></ProcessCreate>\
                 <ProcessCreate onmatch=\"exclude\"><CommandLine condition=\"contains\">/exclude</CommandLine></ProcessCreate>",
            ),
            checks: vec![
                (PC, cl("/include"), IN, ""),
                (PC, cl("/exclude"), EX, ""),
                (PC, cl("/include /exclude"), EX, ""),
                (PC, cl("/nothing"), EX, ""),
            ],
        },
        Case {
            n: "39 include and exclude on FileCreateTime Image",
            xml: sysmon(
                "4.50",
                "<FileCreateTime onmatch=\"include\"><Image condition=\"contains\">include</Image></FileCreateTime>\
                 <FileCreateTime onmatch=\"exclude\"><Image condition=\"contains\">exclude</Image></FileCreateTime>",
            ),
            checks: vec![
                (FCT, img("include"), IN, ""),
                (FCT, img("exclude"), EX, ""),
                (FCT, img("include_exclude"), EX, ""),
                (FCT, img("nothing"), EX, ""),
            ],
        },
        case_40(),
        case_41(),
        Case {
            n: "42 shared tag: TargetObject reaches all three registry events",
            xml: sysmon(
                "4.50",
                "<RegistryEvent onmatch=\"include\"><TargetObject condition=\"contains\">\\test\\</TargetObject></RegistryEvent>",
            ),
            checks: vec![
                (RK, vec![("TargetObject", "HKLM\\nothing")], EX, ""),
                (RK, vec![("TargetObject", "HKLM\\test\\one")], IN, ""),
                (RS, vec![("TargetObject", "HKLM\\test\\two")], IN, ""),
                (RN, vec![("TargetObject", "HKLM\\test\\three")], IN, ""),
            ],
        },
        Case {
            n: "43 shared tag: Details only exists in set-value events",
            xml: sysmon(
                "4.50",
                "<RegistryEvent onmatch=\"include\"><Details condition=\"contains\">something</Details></RegistryEvent>",
            ),
            checks: vec![
                (RK, vec![("TargetObject", "HKLM\\nothing")], EX, ""),
                (RK, vec![("TargetObject", "HKLM\\test\\one")], EX, ""),
                (RS, vec![("Details", "something is here")], IN, ""),
                (RN, vec![("NewName", "it has something")], EX, ""),
            ],
        },
        Case {
            n: "44 shared tag: exclude on a field the event lacks is ignored",
            xml: sysmon(
                "4.50",
                "<RegistryEvent onmatch=\"exclude\"><Details condition=\"contains\">something</Details></RegistryEvent>\
                 <RegistryEvent onmatch=\"include\"><TargetObject condition=\"contains\">\\test\\</TargetObject></RegistryEvent>",
            ),
            checks: vec![
                (RK, vec![("TargetObject", "HKLM\\nothing")], EX, ""),
                (RK, vec![("TargetObject", "HKLM\\test\\one")], IN, ""),
                (
                    RS,
                    vec![
                        ("TargetObject", "HKLM\\test\\two"),
                        ("Details", "something is here"),
                    ],
                    EX,
                    "",
                ),
                (
                    RS,
                    vec![
                        ("TargetObject", "HKLM\\test\\two"),
                        ("Details", "nothing is here"),
                    ],
                    IN,
                    "",
                ),
                (
                    RN,
                    vec![
                        ("TargetObject", "HKLM\\test\\three"),
                        ("NewName", "something is here, should match"),
                    ],
                    IN,
                    "",
                ),
            ],
        },
        Case {
            n: "45 shared tag: OR works when a field is missing from the event",
            xml: sysmon(
                "4.50",
                "<RuleGroup groupRelation=\"or\"><RegistryEvent onmatch=\"include\"><Details condition=\"contains\">something</Details>\
                 <TargetObject condition=\"contains\">\\test\\</TargetObject></RegistryEvent></RuleGroup>",
            ),
            checks: vec![
                (RK, vec![("TargetObject", "HKLM\\test\\one")], IN, ""),
                (RS, vec![("Details", "something is here")], IN, ""),
                (RN, vec![("NewName", "there is something here")], EX, ""),
            ],
        },
    ]
}

const RASPPPOE: &str = "MD5=3DCFC79E16BA9A0DA42D466237F25120,SHA256=2E2630A58C1488ADE720136FE4A3C493A6045F08C3C1EBBB8642C07B0B7C6649,IMPHASH=3E419F563516B0B50BB14CFE54E4F1AC";
const DELL: &str = "10b30bdee43b3a2ec4aa63375577ade650269d25;d2fd132ab7bbc6bbb87a84f026fa0244";
const SIGNED: &str = "failed: failed: Signing queue is full";

/// Stand-in for sysmonconfig-export-omega.xml: a long `contains any` hash list whose last
/// item must still match, under a long rule name.
fn case_40() -> Case {
    let hashes: Vec<String> = (0..400u32)
        .map(|i| format!("{:064x}", (i as u128 + 1) * 0x9e37_79b9_7f4a_7c15))
        .collect();
    let name = "MR=T1195,Tec=Supply Chain Compromise,Tac=Initial Access,Alert=Vulnerable Dell Drivers Detected,Risk=10";
    let body = format!(
        "<RuleGroup name=\"\" groupRelation=\"or\"><DriverLoad onmatch=\"include\">\
         <Hashes condition=\"contains any\" name=\"{name}\">{};d2fd132ab7bbc6bbb87a84f026fa0244</Hashes></DriverLoad></RuleGroup>\
         <RuleGroup name=\"\" groupRelation=\"or\"><DriverLoad onmatch=\"exclude\">\
         <Signature condition=\"is\">Microsoft Windows</Signature></DriverLoad></RuleGroup>",
        hashes.join(";")
    );
    let driver = |file: &'static str, hashes: &'static str| {
        vec![
            ("ImageLoaded", file),
            ("Hashes", hashes),
            ("Signed", SIGNED),
        ]
    };
    Case {
        n: "40 long contains any list: the last item matches",
        xml: sysmon("4.70", &body),
        checks: vec![
            (
                DL,
                driver("c:\\Windows\\System32\\drivers\\raspppoe.sys", RASPPPOE),
                EX,
                "",
            ),
            (
                DL,
                driver("c:\\Windows\\System32\\drivers\\anydriver.sys", DELL),
                IN,
                name,
            ),
        ],
    }
}

/// longnames.xml: 255-character names on a RuleGroup, a Rule and a field.
fn case_41() -> Case {
    let (x, y, z) = ("X".repeat(255), "Y".repeat(255), "Z".repeat(255));
    let body = format!(
        "<RuleGroup name=\"{x}\" groupRelation=\"or\"><ProcessCreate onmatch=\"include\">\
         <Image condition=\"contains\">powershell.exe</Image>\
         <Rule name=\"{y}\" groupRelation=\"or\"><Image condition=\"contains\">cmd.exe</Image></Rule>\
         <Image condition=\"contains\" name=\"{z}\">bash.exe</Image></ProcessCreate></RuleGroup>"
    );
    let leak = |s: String| -> &'static str { Box::leak(s.into_boxed_str()) };
    Case {
        n: "41 255-character names",
        xml: sysmon("4.70", &body),
        checks: vec![
            (PC, img("powershell.exe"), IN, leak(x)),
            (PC, img("cmd.exe"), IN, leak(y)),
            (PC, img("bash.exe"), IN, leak(z)),
        ],
    }
}

#[test]
fn sysmon_rule_matching_table() {
    let mut failures = Vec::new();
    let mut count = 0;
    for case in cases() {
        let config = load(&case.xml);
        assert!(
            config.warnings.is_empty(),
            "case {}: {:?}",
            case.n,
            config.warnings
        );
        for (id, fields, include, name) in &case.checks {
            count += 1;
            let got = judge(&config, *id, fields);
            if got != (*include, name.to_string()) {
                failures.push(format!(
                    "case {}: event {id} {fields:?}: got {got:?}, want ({include}, {name:?})",
                    case.n
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {count} checks failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
