//! The Sysmon configuration engine: parse, compile once, evaluate.
//!
//! Placeholder with the engine's interface and manifest defaults only (events 1 and 5 on);
//! the full engine lands from the config-engine work.

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
pub struct RuleSet;

pub struct Decision<'a> {
    pub include: bool,
    pub rule_name: Option<&'a str>,
}

impl RuleSet {
    pub fn decide(&self, event: &Event) -> Decision<'_> {
        Decision {
            include: event.kind().default_on,
            rule_name: None,
        }
    }

    pub fn is_active(&self, event_id: u16) -> bool {
        schema::by_id(event_id).is_some_and(|k| k.default_on)
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
            rules: RuleSet,
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
    std::fs::read(path).map_err(|e| ConfigError(format!("{}: {e}", path.display())))?;
    Ok(Config::default())
}
