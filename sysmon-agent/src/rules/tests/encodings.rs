//! Sysmon's encoding test files (spec §3.11) end to end: a rule with a non-ASCII value loads
//! from every encoding and matches, and errors still name the right line.

use super::super::parse_bytes;
use super::judge;

const BODY: &str = "<Sysmon schemaversion=\"4.50\">\n<EventFiltering>\n<RuleGroup name=\"\" groupRelation=\"or\">\n\
                    <ProcessCreate onmatch=\"include\">\n<CommandLine name=\"unicode test\" condition=\"contains\">VALUE</CommandLine>\n\
                    </ProcessCreate>\n</RuleGroup>\n</EventFiltering>\n</Sysmon>\n";

fn utf16le(s: &str, bom: bool) -> Vec<u8> {
    let mut v = if bom { vec![0xFF, 0xFE] } else { vec![] };
    s.encode_utf16().for_each(|u| v.extend(u.to_le_bytes()));
    v
}

#[test]
fn non_ascii_rules_load_from_every_encoding() {
    let caret = BODY.replace("VALUE", "\u{2c6}");
    let latin = BODY.replace("VALUE", "\u{e9}t\u{e9}");
    let latin_bytes: Vec<u8> = format!("<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?>\n{latin}")
        .chars()
        .map(|c| c as u8)
        .collect();
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("utf8", caret.clone().into_bytes(), "a \u{2c6} b"),
        (
            "utf8 bom",
            [&[0xEF, 0xBB, 0xBF][..], caret.as_bytes()].concat(),
            "a \u{2c6} b",
        ),
        ("utf16le", utf16le(&caret, false), "a \u{2c6} b"),
        ("utf16le bom", utf16le(&caret, true), "a \u{2c6} b"),
        ("iso-8859-1", latin_bytes, "x \u{e9}t\u{e9} y"),
    ];
    for (what, bytes, command_line) in cases {
        let config = parse_bytes(&bytes, "enc.xml").unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_eq!(
            judge(&config, 1, &[("CommandLine", command_line)]),
            (true, "unicode test".into()),
            "{what}"
        );
        assert_eq!(
            judge(&config, 1, &[("CommandLine", "plain")]),
            (false, String::new()),
            "{what}"
        );
    }
}

#[test]
fn utf16_errors_name_the_line() {
    let broken = BODY
        .replace("VALUE", "x")
        .replace("condition=\"contains\"", "condition=\"containz\"");
    let err = parse_bytes(&utf16le(&broken, true), "enc16.xml").unwrap_err();
    assert!(
        err.to_string()
            .starts_with("enc16.xml:5:1: Unknown condition: 'containz'"),
        "{err}"
    );
}
