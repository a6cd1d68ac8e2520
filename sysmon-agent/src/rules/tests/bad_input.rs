//! Broken configs (spec §3.10): errors that reject the file name the file, the line and what
//! was expected; problems Sysmon only warns about drop one element with a warning.

use super::super::{load_file, parse_bytes};
use super::{event, load};

/// Line 1 is `<Sysmon …>`, line 2 `<EventFiltering>`; `body` starts on line 3.
fn doc(body: &str) -> String {
    format!(
        "<Sysmon schemaversion=\"4.81\">\n<EventFiltering>\n{body}\n</EventFiltering>\n</Sysmon>\n"
    )
}

fn pc(inner: &str) -> String {
    doc(&format!(
        "<ProcessCreate onmatch=\"include\">\n{inner}\n</ProcessCreate>"
    ))
}

#[test]
fn rejected_configs_name_file_line_and_expectation() {
    let long = "N".repeat(256);
    let cases: Vec<(&str, String, u32, &str)> = vec![
        ("unclosed element", pc("<Image>bash"), 5, "malformed XML"),
        ("mismatched end tag", doc("<ProcessCreate onmatch=\"include\">\n</ProcessCreat>"), 4, "malformed XML"),
        ("empty file", String::new(), 1, "expected <Sysmon"),
        ("not a Sysmon root", "<?xml version=\"1.0\"?>\n<Config/>".into(), 2, "expected <Sysmon"),
        ("two roots", "<Sysmon schemaversion=\"4.81\"/>\n<Sysmon schemaversion=\"4.81\"/>".into(), 2, "expected one <Sysmon>"),
        ("no schemaversion", "<Sysmon>\n</Sysmon>".into(), 1, "expected e.g. schemaversion=\"4.81\""),
        ("schemaversion not a number", "<Sysmon schemaversion=\"latest\"/>".into(), 1, "expected a number from 4.00"),
        ("schemaversion too old", "\n<Sysmon schemaversion=\"3.40\"/>".into(), 2, "unsupported schema version 3.40"),
        ("unknown option element", "<Sysmon schemaversion=\"4.81\">\n<IncorrectTag/>\n</Sysmon>".into(), 2, "expected EventFiltering or an option"),
        ("unknown attribute", "<Sysmon schemaversion=\"4.81\">\n<EventFiltering unknownattr=\"1\"/>\n</Sysmon>".into(), 2, "unknown attribute unknownattr"),
        ("unknown event element", doc("<ProcessCreated onmatch=\"include\"/>"), 3, "expected RuleGroup or an event element"),
        ("bad onmatch value", doc("<ProcessCreate onmatch=\"notsure\"/>"), 3, "expected \"include\" or \"exclude\""),
        ("onmatch is case-sensitive", doc("<ProcessCreate onmatch=\"Include\"/>"), 3, "expected \"include\" or \"exclude\""),
        ("groupRelation is case-sensitive", doc("<RuleGroup groupRelation=\"OR\">\n</RuleGroup>"), 3, "expected \"and\" or \"or\""),
        ("RuleGroup without groupRelation", doc("<RuleGroup name=\"x\">\n</RuleGroup>"), 3, "expected groupRelation="),
        ("RuleGroup inside RuleGroup", doc("<RuleGroup groupRelation=\"or\">\n<RuleGroup groupRelation=\"or\"/>\n</RuleGroup>"), 4, "expected an event element"),
        ("unknown condition", pc("<Image condition=\"ends with\">bash</Image>"), 4, "Unknown condition: 'ends with'; expected one of: is, is not"),
        ("unknown field", pc("<Imag>bash</Imag>"), 4, "unknown element <Imag> in <ProcessCreate>; expected Rule or RuleName"),
        ("field of another event", pc("<TargetFilename>x</TargetFilename>"), 4, "unknown element <TargetFilename>"),
        ("Rule inside Rule", pc("<Rule>\n<Rule/>\n</Rule>"), 5, "cannot contain another <Rule>"),
        ("element inside a field", pc("<Image><b/></Image>"), 4, "expected the value as text"),
        ("unknown field attribute", pc("<Image cond=\"is\">bash</Image>"), 4, "unknown attribute cond on <Image>; expected condition, name"),
        ("text between elements", doc("stray words"), 3, "unexpected text in <EventFiltering>"),
        ("unknown entity", pc("<Image>&nbsp;</Image>"), 4, "unknown entity &nbsp;"),
        ("RuleGroup name too long", doc(&format!("<RuleGroup name=\"{long}\" groupRelation=\"or\"/>")), 3, "larger than 255"),
        ("Rule name too long", pc(&format!("<Rule name=\"{long}\"/>")), 4, "larger than 255"),
        ("field name too long", pc(&format!("<Image name=\"{long}\">x</Image>")), 4, "larger than 255"),
        (
            "HashAlgorithms with a space",
            "<Sysmon schemaversion=\"4.81\">\n<HashAlgorithms>md5, sha256</HashAlgorithms>\n</Sysmon>".into(),
            2,
            "Invalid hashing algorithm: ' sha256'",
        ),
        ("FieldSizes zero", "<Sysmon schemaversion=\"4.81\">\n\n<FieldSizes>Image:0</FieldSizes>\n</Sysmon>".into(), 3, "expected a number above 0"),
        ("FieldSizes unknown field", "<Sysmon schemaversion=\"4.81\">\n<FieldSizes>Nonfield:5</FieldSizes>\n</Sysmon>".into(), 2, "FieldSizes field 'Nonfield' is invalid"),
        ("FieldSizes bad separator", "<Sysmon schemaversion=\"4.81\">\n<FieldSizes>Image:5.User:6</FieldSizes>\n</Sysmon>".into(), 2, "invalid character: '.'"),
        ("option with an element", "<Sysmon schemaversion=\"4.81\">\n<DnsLookup><x/></DnsLookup>\n</Sysmon>".into(), 2, "expected text only"),
    ];
    for (what, xml, line, expected) in &cases {
        let err = match parse_bytes(xml.as_bytes(), "bad.xml") {
            Ok(_) => panic!("{what}: loaded\n{xml}"),
            Err(e) => e,
        };
        let text = err.to_string();
        let ours = text
            .strip_prefix(err.sfl)
            .and_then(|t| t.strip_prefix(": "))
            .unwrap_or(&text);
        assert!(
            ours.starts_with(&format!("bad.xml:{line}:")),
            "{what}: wrong place: {text}"
        );
        assert!(
            text.contains(expected),
            "{what}: {text}\n  should contain: {expected}"
        );
    }
}

/// Sysmon for Linux's words come first, so that scripts and SfL's own tests that look for
/// them still work; our place and detail follow.
#[test]
fn sysmon_for_linux_words_lead_the_message() {
    // (what, file, expected start of the message)
    let cases: &[(&str, &str, &str)] = &[
        (
            "unclosed element",
            "<Sysmon schemaversion=\"4.81\">\n<EventFiltering>\n</Sysmon>",
            "Failed to load xml configuration: bad.xml:3:",
        ),
        (
            "empty file",
            "",
            "Failed to load xml configuration: bad.xml:1:1: no root element",
        ),
        (
            "unknown entity",
            "<Sysmon schemaversion=\"4.81\">&nbsp;</Sysmon>",
            "Failed to load xml configuration: bad.xml:1:",
        ),
        (
            "two roots",
            "<Sysmon schemaversion=\"4.81\"/>\n<Sysmon/>",
            "Failed to load xml configuration: bad.xml:2:",
        ),
        (
            "no schemaversion",
            "<Sysmon>\n</Sysmon>",
            "Invalid schema version number: bad.xml:1:1: <Sysmon> has no schemaversion",
        ),
        (
            "empty schemaversion",
            "<Sysmon schemaversion=\"\"/>",
            "Invalid schema version number: bad.xml:1:1: invalid schema version ''",
        ),
        (
            "blank schemaversion",
            "<Sysmon schemaversion=\" \"/>",
            "Invalid schema version number: bad.xml:1:1:",
        ),
        (
            "non-numeric schemaversion",
            "<Sysmon schemaversion=\"4.x\"/>",
            "Invalid schema version number: bad.xml:1:1: invalid schema version '4.x'",
        ),
        (
            "schemaversion 0.5",
            "<Sysmon schemaversion=\"0.5\"/>",
            "Invalid schema version number: bad.xml:1:1:",
        ),
        (
            "schemaversion 3.40",
            "\n<Sysmon schemaversion=\"3.40\"/>",
            "Incorrect or unsupported schema version: bad.xml:2:1: unsupported schema version 3.40",
        ),
        (
            "schemaversion 1",
            "<Sysmon schemaversion=\"1\"/>",
            "Incorrect or unsupported schema version: bad.xml:1:1: unsupported schema version 1.00",
        ),
        (
            "not a Sysmon root",
            "<Config/>",
            "Failed to find Sysmon tag in configuration: bad.xml:1:1:",
        ),
    ];
    for (what, xml, want) in cases {
        let err = parse_bytes(xml.as_bytes(), "bad.xml").expect_err(what);
        let text = err.to_string();
        assert!(
            text.starts_with(want),
            "{what}: {text}\n  should start with: {want}"
        );
    }
    let err = parse_bytes(b"<Sysmon schemaversion=\"4.81\">\xff</Sysmon>", "bad.xml").unwrap_err();
    assert!(
        err.to_string()
            .starts_with("Failed to load xml configuration: bad.xml:1:"),
        "{err}"
    );
    let err = load_file(std::path::Path::new("/nonexistent/sysmon.xml")).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("Failed to open xml configuration: /nonexistent/sysmon.xml: cannot read"),
        "{err}"
    );
}

#[test]
fn undecodable_bytes_are_located() {
    let err = parse_bytes(
        b"<Sysmon schemaversion=\"4.81\">\n\n<!-- \xff -->\n</Sysmon>",
        "enc.xml",
    )
    .unwrap_err();
    assert_eq!((err.line, err.file.as_str()), (3, "enc.xml"), "{err}");
    assert!(err.message.contains("invalid UTF-8"), "{err}");
}

#[test]
fn unreadable_file_is_an_error_not_a_panic() {
    let err = load_file(std::path::Path::new("/nonexistent/sysmon.xml")).unwrap_err();
    assert!(
        err.to_string()
            .contains("/nonexistent/sysmon.xml: cannot read"),
        "{err}"
    );
}

/// Sysmon reports these and carries on without the element (spec §3.10).
#[test]
fn dropped_elements_warn_and_leave_the_rest() {
    let keep = "<NetworkConnect onmatch=\"include\"><Image condition=\"end with\">curl</Image></NetworkConnect>";
    let cases: Vec<(&str, String, &str)> = vec![
        ("no onmatch", "<FileCreate>\n<TargetFilename>x</TargetFilename>\n</FileCreate>".into(), "test.xml:4:1: <FileCreate> has no onmatch"),
        ("onmatch and default", "<FileCreate onmatch=\"include\" default=\"exclude\"/>".into(), "test.xml:4:1: <FileCreate> has both"),
        (
            "field of another event inside a Rule",
            "<FileCreate onmatch=\"include\"><Rule>\n  <CommandLine>x</CommandLine></Rule></FileCreate>".into(),
            "test.xml:5:3: Incorrect field CommandLine for <FileCreate>",
        ),
    ];
    for (what, dropped, warning) in cases {
        let xml = format!(
            "<Sysmon schemaversion=\"4.81\">\n<EventFiltering>\n{keep}\n{dropped}\n</EventFiltering>\n</Sysmon>"
        );
        let config = load(&xml);
        assert_eq!(config.warnings.len(), 1, "{what}: {:?}", config.warnings);
        assert!(
            config.warnings[0].starts_with(warning),
            "{what}: {}",
            config.warnings[0]
        );
        assert!(
            !config.rules.is_active(11),
            "{what}: the dropped element must not switch FileCreate on"
        );
        assert!(config.rules.is_active(3), "{what}");
        assert!(
            config
                .rules
                .decide(&event(3, &[("Image", "/usr/bin/curl")]))
                .include,
            "{what}"
        );
    }
}

#[test]
fn default_attribute_is_the_inverse_of_onmatch() {
    let config = load(&super::sysmon(
        "4.81",
        "<FileCreate default=\"include\"><TargetFilename condition=\"end with\">.tmp</TargetFilename></FileCreate>",
    ));
    assert!(
        config
            .rules
            .decide(&event(11, &[("TargetFilename", "/x/a.sh")]))
            .include
    );
    assert!(
        !config
            .rules
            .decide(&event(11, &[("TargetFilename", "/x/a.tmp")]))
            .include
    );
}
