//! The Sysmon for Linux agent: kernel records in, Sysmon XML events out.
//!
//! The path of one event, module by module:
//! `kernel` (load, attach, read records) → `enrich` (process cache, users, hashes, GUIDs)
//! → `events` (a Sysmon event: id + ordered fields) → `rules` (include / exclude, RuleName)
//! → `render` (XML, logview layout) → `sinks` (syslog, stdout).

pub mod agent;
pub mod cli;
pub mod enrich;
pub mod events;
pub mod kernel;
pub mod logview;
pub mod render;
pub mod rules;
pub mod service;
pub mod sinks;
