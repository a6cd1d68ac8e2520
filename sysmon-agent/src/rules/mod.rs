//! The Sysmon configuration engine: parse, compile once, evaluate.
//!
//! Placeholder with the engine's interface: manifest defaults (events 1 and 5 on), plus
//! every event type that has an element under `<EventFiltering>` is active; with
//! `onmatch="exclude"` all its events are logged, with `include` none (no filters are
//! evaluated yet). The full engine lands from the config-engine work.

use std::path::Path;

use crate::events::{Event, schema};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HashAlgorithms {
    pub sha1: bool,
    pub md5: bool,
    pub sha256: bool,
}

impl Default for HashAlgorithms {
    fn default() -> Self {
        HashAlgorithms {
            sha1: false,
            md5: false,
            sha256: true,
        }
    }
}

#[derive(Clone, Debug, Default)]
pub struct FieldSizes;

impl FieldSizes {
    pub fn apply(&self, _event: &mut Event) {}
}

#[derive(Clone, Debug, Default)]
pub struct RuleSet {
    /// (event id, logs everything) for every event type the config names.
    named: Vec<(u16, bool)>,
}

pub struct Decision<'a> {
    pub include: bool,
    pub rule_name: Option<&'a str>,
}

impl RuleSet {
    pub fn decide(&self, event: &Event) -> Decision<'_> {
        let include = match self.named.iter().find(|(id, _)| *id == event.id()) {
            Some((_, all)) => *all,
            None => event.kind().default_on,
        };
        Decision {
            include,
            rule_name: None,
        }
    }

    pub fn is_active(&self, event_id: u16) -> bool {
        schema::by_id(event_id).is_some_and(|k| k.default_on)
            || self.named.iter().any(|(id, _)| *id == event_id)
    }

    /// The event types named under `<EventFiltering>` (inside a RuleGroup or not).
    fn parse(xml: &str) -> Result<RuleSet, ConfigError> {
        use quick_xml::{Reader, events::Event as Xml};
        let mut r = Reader::from_str(xml);
        let mut named = Vec::new();
        let mut in_filtering = false;
        loop {
            match r.read_event() {
                Ok(Xml::Start(e) | Xml::Empty(e)) => {
                    let tag = String::from_utf8_lossy(e.name().as_ref()).into_owned();
                    if tag == "EventFiltering" {
                        in_filtering = true;
                        continue;
                    }
                    if !in_filtering {
                        continue;
                    }
                    let all = e
                        .attributes()
                        .flatten()
                        .any(|a| a.key.as_ref() == b"onmatch" && a.value.as_ref() == b"exclude");
                    for k in schema::by_tag(&tag) {
                        named.push((k.id, all));
                    }
                }
                Ok(Xml::End(e)) if e.name().as_ref() == b"EventFiltering" => in_filtering = false,
                Ok(Xml::Eof) => return Ok(RuleSet { named }),
                Err(e) => return Err(ConfigError(format!("configuration XML: {e}"))),
                _ => {}
            }
        }
    }
}

#[derive(Clone, Debug)]
pub struct Config {
    pub schema_version: String,
    pub hash_algorithms: HashAlgorithms,
    pub field_sizes: FieldSizes,
    pub rules: RuleSet,
    pub warnings: Vec<String>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            schema_version: "4.22".into(),
            hash_algorithms: HashAlgorithms::default(),
            field_sizes: FieldSizes,
            rules: RuleSet::default(),
            warnings: Vec::new(),
        }
    }
}

#[derive(Debug)]
pub struct ConfigError(pub String);

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

pub fn load_file(path: &Path) -> Result<Config, ConfigError> {
    let bytes = std::fs::read(path).map_err(|e| ConfigError(format!("{}: {e}", path.display())))?;
    Ok(Config {
        rules: RuleSet::parse(&String::from_utf8_lossy(&bytes))?,
        ..Config::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn named_event_types_are_active() {
        let rules = RuleSet::parse(
            r#"<Sysmon schemaversion="4.22"><EventFiltering>
                 <RuleGroup groupRelation="or"><FileCreate onmatch="exclude"/></RuleGroup>
                 <FileDelete onmatch="include"><TargetFilename condition="is">x</TargetFilename></FileDelete>
               </EventFiltering></Sysmon>"#,
        )
        .unwrap();
        // (event id, active)
        let cases = [
            (1, true),
            (5, true),
            (3, false),
            (9, false),
            (11, true),
            (23, true),
        ];
        for (id, active) in cases {
            assert_eq!(rules.is_active(id), active, "event {id}");
        }
        let ev = |id| Event::new(schema::by_id(id).unwrap());
        assert!(rules.decide(&ev(schema::FILE_CREATE)).include);
        assert!(!rules.decide(&ev(schema::FILE_DELETE)).include);
        assert!(rules.decide(&ev(schema::PROCESS_CREATE)).include);
        assert!(!RuleSet::default().is_active(schema::FILE_CREATE));
    }
}
