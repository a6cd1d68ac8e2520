//! Element tree → config as written (spec §3.3–3.5). Checks everything Sysmon's DTD checks,
//! so a config that loads here also loads in Sysmon; problems Sysmon only warns about drop
//! the one element with a warning.

use super::conditions::{CONDITIONS, Condition};
use super::error::{ConfigError, Locator, sfl};
use super::model::{Combine, EntrySpec, FilterSpec, ItemSpec, RuleSpec};
use super::options::{FieldSizes, HashAlgorithms};
use super::xml::Node;
use crate::events::schema::{EVENTS, EventKind, by_tag};

/// Sysmon stores rule names in 255-character buffers.
const MAX_NAME: usize = 255;

/// Everything read from the file.
pub(crate) struct Parsed {
    pub schema_version: String,
    pub hash_algorithms: Option<HashAlgorithms>,
    pub field_sizes: FieldSizes,
    pub entries: Vec<EntrySpec>,
    pub warnings: Vec<String>,
}

#[derive(Clone, Copy, PartialEq)]
enum Opt {
    Hash,
    Sizes,
    /// Read and validated by Sysmon, but they change nothing on Linux.
    NoEffect,
    WindowsOnly,
    /// Options of Sysmon's internal build.
    Internal,
}

const OPTIONS: &[(&str, Opt)] = &[
    ("HashAlgorithms", Opt::Hash),
    ("FieldSizes", Opt::Sizes),
    ("DnsLookup", Opt::NoEffect),
    ("ProcessAccessConfig", Opt::NoEffect),
    ("PipeMonitoringConfig", Opt::NoEffect),
    ("CheckRevocation", Opt::WindowsOnly),
    ("ArchiveDirectory", Opt::WindowsOnly),
    ("DriverName", Opt::WindowsOnly),
    ("CaptureClipboard", Opt::WindowsOnly),
    ("CopyOnDelete_PE", Opt::WindowsOnly),
    ("CopyOnDelete_SIDs", Opt::WindowsOnly),
    ("CopyOnDelete_Extensions", Opt::WindowsOnly),
    ("CopyOnDelete_Processes", Opt::WindowsOnly),
    ("ServiceArchiveDirectory", Opt::Internal),
    ("InternalRepresentation", Opt::Internal),
    ("OutputRules", Opt::Internal),
    ("TraceEvents", Opt::Internal),
];

pub(crate) fn parse(root: &Node, loc: &Locator<'_>) -> Result<Parsed, ConfigError> {
    if root.name != "Sysmon" {
        return Err(loc
            .error(
                root.pos,
                format!(
                    "root element is <{}>; expected <Sysmon schemaversion=\"…\">",
                    root.name
                ),
            )
            .sfl(sfl::NO_SYSMON));
    }
    check_attrs(root, &["schemaversion"], loc)?;
    let raw = root.attr("schemaversion").ok_or_else(|| {
        loc.error(
            root.pos,
            "<Sysmon> has no schemaversion attribute; expected e.g. schemaversion=\"4.81\"",
        )
        .sfl(sfl::VERSION)
    })?;
    let (schema_version, combine) =
        schema_version(raw).map_err(|(words, m)| loc.error(root.pos, m).sfl(words))?;
    let mut p = Parser {
        loc,
        combine,
        entries: Vec::new(),
        warnings: Vec::new(),
    };
    let mut hash_algorithms = None;
    let mut field_sizes = FieldSizes::default();
    no_text(root, loc)?;
    for child in &root.children {
        if child.name == "EventFiltering" {
            p.filtering(child)?;
            continue;
        }
        let Some(&(_, kind)) = OPTIONS.iter().find(|(n, _)| *n == child.name) else {
            let expected: Vec<&str> = OPTIONS.iter().map(|(n, _)| *n).collect();
            return Err(loc.error(
                child.pos,
                format!(
                    "unknown element <{}> in <Sysmon>; expected EventFiltering or an option: {}",
                    child.name,
                    expected.join(", ")
                ),
            ));
        };
        check_attrs(child, &[], loc)?;
        if let Some(c) = child.children.first() {
            return Err(loc.error(
                c.pos,
                format!(
                    "unexpected element <{}> in <{}>; expected text only",
                    c.name, child.name
                ),
            ));
        }
        let value = child.text.trim();
        let at = child.text_pos.unwrap_or(child.pos);
        match kind {
            Opt::Hash if !value.is_empty() => {
                hash_algorithms = Some(HashAlgorithms::parse(value).map_err(|m| loc.error(at, m))?);
            }
            Opt::Sizes => field_sizes = FieldSizes::parse(value).map_err(|m| loc.error(at, m))?,
            Opt::Hash => p.warn(child.pos, "<HashAlgorithms> is empty; ignored".into()),
            Opt::NoEffect => p.warn(
                child.pos,
                format!("<{}> has no effect on Linux; ignored", child.name),
            ),
            Opt::WindowsOnly => p.warn(
                child.pos,
                format!("<{}> is a Windows-only option; ignored", child.name),
            ),
            Opt::Internal => p.warn(
                child.pos,
                format!("<{}> is an internal Sysmon option; ignored", child.name),
            ),
        }
    }
    Ok(Parsed {
        schema_version,
        hash_algorithms,
        field_sizes,
        entries: p.entries,
        warnings: p.warnings,
    })
}

/// `schemaversion` as Sysmon reads it (§3.1–3.2): a number printed as `%.2f`, at least 4.00.
/// Also returns the default combine mode: OR up to 4.10, AND after. An error carries Sysmon
/// for Linux's words for it: not a number (or below 1, which SfL takes for a bad number) is
/// [`sfl::VERSION`], a number below 4.00 [`sfl::UNSUPPORTED`].
fn schema_version(raw: &str) -> Result<(String, Combine), (&'static str, String)> {
    let expected = "expected a number from 4.00 up, e.g. \"4.81\"";
    let v: f64 = raw
        .trim()
        .parse()
        .ok()
        .filter(|v: &f64| v.is_finite() && *v >= 1.0 && *v < 1000.0)
        .ok_or_else(|| {
            (
                sfl::VERSION,
                format!("invalid schema version '{raw}'; {expected}"),
            )
        })?;
    let text = format!("{v:.2}");
    let (major, minor) = text.split_once('.').unwrap_or((&text, "0"));
    let (major, minor): (u32, u32) = (major.parse().unwrap_or(0), minor.parse().unwrap_or(0));
    if major < 4 {
        return Err((
            sfl::UNSUPPORTED,
            format!(
                "unsupported schema version {text} (current Sysmon schema is 4.81); {expected}"
            ),
        ));
    }
    let combine = if (major, minor) > (4, 10) {
        Combine::And
    } else {
        Combine::Or
    };
    Ok((text, combine))
}

struct Parser<'a> {
    loc: &'a Locator<'a>,
    /// Combine mode of event elements outside a RuleGroup (depends on the schema version).
    combine: Combine,
    entries: Vec<EntrySpec>,
    warnings: Vec<String>,
}

/// A field element's home: inside a `<Rule>` any event's field passes the DTD.
#[derive(Clone, Copy, PartialEq)]
enum Place {
    Entry,
    Rule,
}

impl Parser<'_> {
    fn warn(&mut self, at: usize, message: String) {
        self.warnings.push(self.loc.warning(at, message));
    }

    fn filtering(&mut self, node: &Node) -> Result<(), ConfigError> {
        check_attrs(node, &[], self.loc)?;
        no_text(node, self.loc)?;
        for child in &node.children {
            if child.name == "RuleGroup" {
                self.rule_group(child)?;
            } else {
                let kinds = event_kinds(
                    child,
                    self.loc,
                    "EventFiltering",
                    "RuleGroup or an event element",
                )?;
                self.entry(child, kinds, self.combine, None)?;
            }
        }
        Ok(())
    }

    fn rule_group(&mut self, node: &Node) -> Result<(), ConfigError> {
        check_attrs(node, &["groupRelation", "name"], self.loc)?;
        no_text(node, self.loc)?;
        let combine = match node.attr("groupRelation") {
            Some("and") => Combine::And,
            Some("or") => Combine::Or,
            Some(other) => {
                return Err(self.loc.error(
                    node.pos,
                    format!("groupRelation=\"{other}\" on <RuleGroup>; expected \"and\" or \"or\""),
                ));
            }
            None => {
                return Err(self.loc.error(
                    node.pos,
                    "<RuleGroup> has no groupRelation; expected groupRelation=\"and\" or \"or\"",
                ));
            }
        };
        let name = name_attr(node, self.loc)?;
        for child in &node.children {
            let kinds = event_kinds(child, self.loc, "RuleGroup", "an event element")?;
            self.entry(child, kinds, combine, name)?;
        }
        Ok(())
    }

    fn entry(
        &mut self,
        node: &Node,
        kinds: Vec<&'static EventKind>,
        combine: Combine,
        group_name: Option<&str>,
    ) -> Result<(), ConfigError> {
        check_attrs(node, &["onmatch", "default"], self.loc)?;
        no_text(node, self.loc)?;
        let tag = kinds[0].tag.unwrap_or_default();
        let include = |attr: &str| -> Result<Option<bool>, ConfigError> {
            match node.attr(attr) {
                None => Ok(None),
                Some("include") => Ok(Some(true)),
                Some("exclude") => Ok(Some(false)),
                Some(v) => Err(self.loc.error(
                    node.pos,
                    format!("{attr}=\"{v}\" on <{tag}>; expected \"include\" or \"exclude\""),
                )),
            }
        };
        // `default="include"` means: log unless a filter matches, i.e. onmatch="exclude".
        let onmatch_include = match (include("onmatch")?, include("default")?) {
            (Some(on), None) => on,
            (None, Some(default)) => !default,
            (Some(_), Some(_)) => {
                self.warn(
                    node.pos,
                    format!("<{tag}> has both onmatch and default; element ignored (pick one)"),
                );
                return Ok(());
            }
            (None, None) => {
                self.warn(node.pos, format!("<{tag}> has no onmatch attribute; element ignored (expected onmatch=\"include\" or \"exclude\")"));
                return Ok(());
            }
        };
        let mut items = Vec::new();
        let mut dropped = false;
        for child in &node.children {
            if child.name == "Rule" {
                match self.rule(child, &kinds, group_name)? {
                    Some(rule) => items.push(ItemSpec::Rule(rule)),
                    None => dropped = true,
                }
            } else {
                match self.filter(child, &kinds, Place::Entry, group_name)? {
                    Some(f) => items.push(ItemSpec::Filter(f)),
                    None => dropped = true,
                }
            }
        }
        if !dropped {
            let ids = kinds.iter().map(|k| k.id).collect();
            self.entries.push(EntrySpec {
                tag,
                ids,
                onmatch_include,
                combine,
                items,
            });
        }
        Ok(())
    }

    /// `None` when the rule names a field its event does not have (the entry is dropped).
    fn rule(
        &mut self,
        node: &Node,
        kinds: &[&'static EventKind],
        group_name: Option<&str>,
    ) -> Result<Option<RuleSpec>, ConfigError> {
        check_attrs(node, &["groupRelation", "name"], self.loc)?;
        no_text(node, self.loc)?;
        // CDATA in the DTD: "or" in any case is OR, anything else AND, missing OR.
        let combine = match node.attr("groupRelation") {
            Some(r) if !r.eq_ignore_ascii_case("or") => Combine::And,
            _ => Combine::Or,
        };
        let name = name_attr(node, self.loc)?.or(group_name);
        let mut filters = Vec::new();
        let mut ok = true;
        for child in &node.children {
            match self.filter(child, kinds, Place::Rule, name)? {
                Some(f) => filters.push(f),
                None => ok = false,
            }
        }
        Ok(ok.then(|| RuleSpec {
            name: name.map(str::to_string),
            combine,
            filters,
        }))
    }

    fn filter(
        &mut self,
        node: &Node,
        kinds: &[&'static EventKind],
        place: Place,
        inherited: Option<&str>,
    ) -> Result<Option<FilterSpec>, ConfigError> {
        let tag = kinds[0].tag.unwrap_or_default();
        let own = kinds
            .iter()
            .find_map(|k| k.fields.iter().find(|f| **f == node.name));
        let anywhere = EVENTS
            .iter()
            .find_map(|k| k.fields.iter().find(|f| **f == node.name));
        let field = match (own, anywhere) {
            (Some(f), _) => *f,
            (None, Some(_)) if place == Place::Rule => {
                self.warn(
                    node.pos,
                    format!(
                        "Incorrect field {} for <{tag}>; the whole <{tag}> element is ignored",
                        node.name
                    ),
                );
                return Ok(None);
            }
            _ => {
                let mut fields: Vec<&str> = kinds
                    .iter()
                    .flat_map(|k| k.fields.iter().copied())
                    .collect();
                fields.dedup();
                let what = if node.name == "Rule" {
                    "a <Rule> cannot contain another <Rule>; expected"
                } else {
                    "expected"
                };
                return Err(self.loc.error(
                    node.pos,
                    format!(
                        "unknown element <{}> in <{tag}>; {what} {}{}",
                        node.name,
                        if place == Place::Entry {
                            "Rule or "
                        } else {
                            ""
                        },
                        fields.join(", ")
                    ),
                ));
            }
        };
        check_attrs(node, &["condition", "name"], self.loc)?;
        if let Some(c) = node.children.first() {
            return Err(self.loc.error(
                c.pos,
                format!(
                    "unexpected element <{}> in <{}>; expected the value as text",
                    c.name, node.name
                ),
            ));
        }
        let condition = match node.attr("condition") {
            None => Condition::Is,
            Some(c) => Condition::parse(c).ok_or_else(|| {
                let names: Vec<&str> = CONDITIONS.iter().map(|(_, n)| *n).collect();
                self.loc.error(
                    node.pos,
                    format!(
                        "Unknown condition: '{c}'; expected one of: {}",
                        names.join(", ")
                    ),
                )
            })?,
        };
        let name = name_attr(node, self.loc)?.or(inherited).map(str::to_string);
        Ok(Some(FilterSpec {
            field,
            condition,
            value: node.text.clone(),
            name,
        }))
    }
}

/// The events an element names (several for shared tags), or an error listing what fits here.
fn event_kinds(
    node: &Node,
    loc: &Locator<'_>,
    parent: &str,
    expected: &str,
) -> Result<Vec<&'static EventKind>, ConfigError> {
    let kinds: Vec<_> = by_tag(&node.name).collect();
    if kinds.is_empty() {
        let mut tags: Vec<&str> = EVENTS.iter().filter_map(|k| k.tag).collect();
        tags.dedup();
        return Err(loc.error(
            node.pos,
            format!(
                "unknown element <{}> in <{parent}>; expected {expected}: {}",
                node.name,
                tags.join(", ")
            ),
        ));
    }
    Ok(kinds)
}

/// Non-empty `name` attribute, at most 255 characters.
fn name_attr<'n>(node: &'n Node, loc: &Locator<'_>) -> Result<Option<&'n str>, ConfigError> {
    match node.attr("name") {
        Some(n) if n.chars().count() > MAX_NAME => Err(loc.error(
            node.pos,
            format!("Rule name is larger than {MAX_NAME} characters ({}) on <{}>; expected a shorter name", n.chars().count(), node.name),
        )),
        Some("") | None => Ok(None),
        Some(n) => Ok(Some(n)),
    }
}

fn check_attrs(node: &Node, allowed: &[&str], loc: &Locator<'_>) -> Result<(), ConfigError> {
    for (key, _) in &node.attrs {
        if !allowed.contains(&key.as_str()) {
            let expected = if allowed.is_empty() {
                "none".to_string()
            } else {
                allowed.join(", ")
            };
            return Err(loc.error(
                node.pos,
                format!(
                    "unknown attribute {key} on <{}>; expected {expected}",
                    node.name
                ),
            ));
        }
    }
    Ok(())
}

/// Elements with element content may hold only whitespace and comments between children.
fn no_text(node: &Node, loc: &Locator<'_>) -> Result<(), ConfigError> {
    match node.text_pos {
        Some(at) => Err(loc.error(
            at,
            format!("unexpected text in <{}>; expected only elements", node.name),
        )),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_versions() {
        let cases: &[(&str, Option<(&str, Combine)>)] = &[
            ("4.81", Some(("4.81", Combine::And))),
            ("4.1", Some(("4.10", Combine::Or))),
            ("4.10", Some(("4.10", Combine::Or))),
            ("4.2", Some(("4.20", Combine::And))),
            ("4.21", Some(("4.21", Combine::And))),
            ("4", Some(("4.00", Combine::Or))),
            ("4.90", Some(("4.90", Combine::And))),
            ("5.0", Some(("5.00", Combine::And))),
            ("3.50", None),
            ("0.5", None),
            ("", None),
            ("four", None),
            ("NaN", None),
            ("inf", None),
            ("-4.5", None),
        ];
        for (raw, want) in cases {
            let got = schema_version(raw).ok();
            assert_eq!(
                got.as_ref().map(|(s, c)| (s.as_str(), *c)),
                *want,
                "{raw:?}"
            );
        }
    }
}
