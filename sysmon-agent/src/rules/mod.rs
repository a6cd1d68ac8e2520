//! The Sysmon configuration engine: parse, compile once, evaluate.
//!
//! `load_file`/`parse_bytes` read a Sysmon XML config (spec §3, our differences in
//! docs/config.md) into a [`Config`]; errors name file, line and column. Then, per event:
//! `config.rules.decide(&event)` (include? RuleName?) and, for kept events,
//! `config.field_sizes.apply(&mut event)`. `config.rules.is_active(id)` says which probes the
//! config needs; `config.dump()` is `sysmon -c`; [`print_schema`] and [`config_help`] are
//! `sysmon -s` and `sysmon -? config`.
//!
//! Files: `encoding` (bytes → text) → `xml` (element tree) → `parse` (checks, config as
//! written: `model`, `options`) → `compile` (per-event-id entries) → `evaluate` (with
//! `conditions`).

mod compile;
mod conditions;
mod dump;
mod encoding;
mod error;
mod evaluate;
mod help;
mod model;
mod options;
mod parse;
mod xml;

#[cfg(test)]
mod tests;

use std::path::Path;

pub use compile::RuleSet;
pub use conditions::{Condition, Matcher};
pub use error::ConfigError;
pub use evaluate::Decision;
pub use help::{config_help, print_schema};
pub use model::{Combine, EntrySpec, FilterSpec, ItemSpec, RuleSpec};
pub use options::{FieldSizes, HashAlgorithms};

use crate::events::schema::SCHEMA_VERSION;
use error::Locator;

/// A loaded configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file's `schemaversion` as `%.2f`, e.g. "4.50".
    pub schema_version: String,
    pub hash_algorithms: HashAlgorithms,
    /// True when the file set HashAlgorithms (it then overrides the `-h` switch).
    pub hash_algorithms_set: bool,
    pub field_sizes: FieldSizes,
    pub rules: RuleSet,
    /// Problems that dropped an element or an option, as `file:line:col: message`.
    pub warnings: Vec<String>,
    /// The event elements as written, in document order (for `-c`).
    pub entries: Vec<EntrySpec>,
}

impl Default for Config {
    /// No rules: every event gets its manifest default; hashes SHA256.
    fn default() -> Config {
        Config {
            schema_version: SCHEMA_VERSION.to_string(),
            hash_algorithms: HashAlgorithms::default(),
            hash_algorithms_set: false,
            field_sizes: FieldSizes::default(),
            rules: RuleSet::default(),
            warnings: Vec::new(),
            entries: Vec::new(),
        }
    }
}

impl Config {
    /// Applies the `-h` switch: as in Sysmon, a HashAlgorithms option in the file wins.
    pub fn apply_hash_switch(&mut self, algs: &str) -> Result<(), String> {
        let parsed = HashAlgorithms::parse(algs)?;
        if !self.hash_algorithms_set {
            self.hash_algorithms = parsed;
        }
        Ok(())
    }
}

/// Reads and parses a config file.
pub fn load_file(path: &Path) -> Result<Config, ConfigError> {
    let file = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|e| ConfigError {
        file: file.clone(),
        line: 0,
        column: 0,
        message: format!("cannot read the configuration file: {e}"),
        sfl: error::sfl::OPEN,
    })?;
    parse_bytes(&bytes, &file)
}

/// Parses a config from its bytes; `file_name` is used in messages.
pub fn parse_bytes(bytes: &[u8], file_name: &str) -> Result<Config, ConfigError> {
    let text = encoding::decode(bytes).map_err(|(offset, message)| {
        // The offset is in the raw bytes: count lines over what can be read of them.
        Locator {
            file: file_name,
            text: &String::from_utf8_lossy(&bytes[..offset.min(bytes.len())]),
        }
        .error(usize::MAX, message)
        .sfl(error::sfl::LOAD)
    })?;
    let loc = Locator {
        file: file_name,
        text: &text,
    };
    let root = xml::parse(&text)
        .map_err(|(offset, message)| loc.error(offset, message).sfl(error::sfl::LOAD))?;
    let parsed = parse::parse(&root, &loc)?;
    Ok(Config {
        schema_version: parsed.schema_version,
        hash_algorithms: parsed.hash_algorithms.unwrap_or_default(),
        hash_algorithms_set: parsed.hash_algorithms.is_some(),
        field_sizes: parsed.field_sizes,
        rules: RuleSet::compile(&parsed.entries),
        warnings: parsed.warnings,
        entries: parsed.entries,
    })
}
