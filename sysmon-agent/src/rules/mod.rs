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

impl HashAlgorithms {
    /// Stub: comma list of `sha1`, `md5`, `sha256` or `*`.
    pub fn parse(s: &str) -> Result<Self, String> {
        let mut h = HashAlgorithms {
            sha1: false,
            md5: false,
            sha256: false,
        };
        for name in s.split(',') {
            match name.to_ascii_lowercase().as_str() {
                "sha1" => h.sha1 = true,
                "md5" => h.md5 = true,
                "sha256" => h.sha256 = true,
                "*" => (h.sha1, h.md5, h.sha256) = (true, true, true),
                other => return Err(format!("unknown hash algorithm '{other}'")),
            }
        }
        Ok(h)
    }
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

impl Config {
    /// Stub of the `-c` display (spec 4.5).
    pub fn dump(&self) -> String {
        format!(
            "Rule configuration (version {}):\n - no rules (placeholder engine)\n",
            self.schema_version
        )
    }
}

/// Stub of `-s`.
pub fn print_schema(version: Option<&str>) -> Result<String, String> {
    match version {
        None | Some("all") => Ok(format!(
            "<manifest schemaversion=\"{}\"></manifest>\n",
            schema::SCHEMA_VERSION
        )),
        Some(_) => Err("There is no schema that matches that version.".into()),
    }
}

/// Stub of `-? config`.
pub fn config_help() -> String {
    "Configuration file: see the Sysmon documentation (placeholder engine).\n".into()
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
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError(format!("{}: {e}", path.display())))?;
    // Stub check until the engine lands: the file must be well-formed XML.
    let mut r = quick_xml::Reader::from_str(&text);
    r.config_mut().check_end_names = true;
    loop {
        match r.read_event() {
            Ok(quick_xml::events::Event::Eof) => return Ok(Config::default()),
            Ok(_) => {}
            Err(e) => {
                let at = (r.error_position() as usize).min(text.len());
                let before = &text[..at];
                let line = before.matches('\n').count() + 1;
                let col = at - before.rfind('\n').map_or(0, |i| i + 1) + 1;
                return Err(ConfigError(format!("{}:{line}:{col}: {e}", path.display())));
            }
        }
    }
}
