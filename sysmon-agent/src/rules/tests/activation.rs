//! Which events need probes (spec §1.0), and events built only partly.

use super::{load, sysmon};
use crate::events::Event;
use crate::events::schema::by_id;

#[test]
fn active_events_follow_defaults_and_mentions() {
    // (config body, active ids, inactive ids)
    let cases: &[(&str, &[u16], &[u16])] = &[
        ("", &[1, 4, 5, 16, 255], &[2, 3, 9, 10, 11, 12, 23]),
        // Filtering every ProcessCreate out still needs the probe, as in Sysmon.
        ("<ProcessCreate onmatch=\"include\"/>", &[1, 5], &[3]),
        (
            "<NetworkConnect onmatch=\"exclude\"/>",
            &[1, 3, 5],
            &[9, 11],
        ),
        (
            "<RuleGroup groupRelation=\"or\"><FileDelete onmatch=\"include\"/></RuleGroup>",
            &[23],
            &[11],
        ),
        (
            "<RegistryEvent onmatch=\"include\"/>",
            &[12, 13, 14],
            &[15, 17],
        ),
        (
            "<PipeEvent onmatch=\"include\"/><WmiEvent onmatch=\"include\"/>",
            &[17, 18, 19, 20, 21],
            &[22],
        ),
    ];
    for (body, active, inactive) in cases {
        let config = load(&sysmon("4.81", body));
        for id in *active {
            assert!(config.rules.is_active(*id), "{body}: {id} should be active");
        }
        for id in *inactive {
            assert!(
                !config.rules.is_active(*id),
                "{body}: {id} should be inactive"
            );
        }
    }
    assert!(!load(&sysmon("4.81", "")).rules.is_active(999));
}

#[test]
fn unset_fields_read_as_dash() {
    let config = load(&sysmon(
        "4.81",
        "<ProcessCreate onmatch=\"include\"><CommandLine name=\"no command line\">-</CommandLine></ProcessCreate>",
    ));
    let mut e = Event::new(by_id(1).unwrap());
    e.push("");
    e.push("2024-05-14 09:21:07.731");
    let d = config.rules.decide(&e);
    assert!(d.include);
    assert_eq!(d.rule_name, Some("no command line"));
}

#[test]
fn unfiltered_events_are_always_included() {
    let config = load(&sysmon("4.81", "<ProcessCreate onmatch=\"include\"/>"));
    for id in [4, 16, 255] {
        let d = config.rules.decide(&Event::new(by_id(id).unwrap()));
        assert_eq!((d.include, d.rule_name), (true, None), "{id}");
    }
}
