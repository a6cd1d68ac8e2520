//! Table tests of the whole engine: spec §7.1 (conformance), bad input, real-world configs.

mod activation;
mod bad_input;
mod conformance;
mod encodings;
mod examples;
mod real_world;

use crate::events::Event;
use crate::events::schema::by_id;

use super::{Config, parse_bytes};

/// Parses a config given as text; panics with the error so failing tests say why.
pub(crate) fn load(xml: &str) -> Config {
    parse_bytes(xml.as_bytes(), "test.xml").unwrap_or_else(|e| panic!("{e}\n{xml}"))
}

/// `<Sysmon schemaversion="ver"><EventFiltering>body</EventFiltering></Sysmon>`.
pub(crate) fn sysmon(ver: &str, body: &str) -> String {
    format!("<Sysmon schemaversion=\"{ver}\"><EventFiltering>{body}</EventFiltering></Sysmon>")
}

/// An event with the named fields set; every other field is empty (read as `-`).
pub(crate) fn event(id: u16, fields: &[(&str, &str)]) -> Event {
    let kind = by_id(id).unwrap_or_else(|| panic!("no event {id}"));
    for (name, _) in fields {
        assert!(
            kind.field_index(name).is_some(),
            "event {id} has no field {name}"
        );
    }
    let mut e = Event::new(kind);
    for f in kind.fields {
        e.push(fields.iter().find(|(n, _)| n == f).map_or("", |(_, v)| v));
    }
    e
}

/// (include, rule name or "") for an event under a config.
pub(crate) fn judge(config: &Config, id: u16, fields: &[(&str, &str)]) -> (bool, String) {
    let d = config.rules.decide(&event(id, fields));
    (d.include, d.rule_name.unwrap_or("").to_string())
}
