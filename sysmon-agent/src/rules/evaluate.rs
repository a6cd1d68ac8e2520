//! Judging one event against the compiled rules (spec §3.7, RuleName per §3.8 with the name
//! cleared per entry). No allocation: fields are read in place from the event.

use super::compile::{Entry, Filter, Item, RuleSet};
use super::model::Combine;
use crate::events::Event;

/// Whether to log an event, and the rule name to report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision<'a> {
    pub include: bool,
    pub rule_name: Option<&'a str>,
}

impl RuleSet {
    pub fn decide(&self, event: &Event) -> Decision<'_> {
        let kind = event.kind();
        // Events 4, 16 and 255 have no config tag and are never filtered.
        if kind.tag.is_none() {
            return Decision {
                include: true,
                rule_name: None,
            };
        }
        let entries = self.entries(kind.id);
        if entries.is_empty() {
            return Decision {
                include: kind.default_on,
                rule_name: None,
            };
        }
        for e in entries {
            let mut name = None;
            if entry_matches(e, event, &mut name) {
                return Decision {
                    include: e.onmatch_include,
                    rule_name: name,
                };
            }
        }
        // Nothing matched: one entry gives its default; an include and an exclude together
        // (or several entries) exclude, even for events that are on by default.
        let include = entries.len() == 1 && !entries[0].onmatch_include;
        Decision {
            include,
            rule_name: None,
        }
    }

    /// Whether the event's probes must run: on by default, or named by the config (§1.0).
    pub fn is_active(&self, event_id: u16) -> bool {
        match crate::events::schema::by_id(event_id) {
            Some(k) if k.tag.is_none() || k.default_on => true,
            Some(_) => event_id < 32 && self.mentioned & (1 << event_id) != 0,
            None => false,
        }
    }
}

/// The entry's top-level group: same-field filters are OR-ed even when the entry is AND.
fn entry_matches<'a>(e: &'a Entry, event: &Event, name: &mut Option<&'a str>) -> bool {
    if e.items.is_empty() {
        return false;
    }
    let mut matched_fields = 0u64;
    for item in &e.items {
        let (hit, may_retry) = match item {
            Item::Rule { combine, filters } => {
                (rule_matches(*combine, filters, event, name), false)
            }
            Item::Filter(f) => {
                if f.field.is_some_and(|i| matched_fields & (1 << i) != 0) {
                    continue;
                }
                let hit = filter_matches(f, event, name);
                if let (true, Some(i)) = (hit, f.field) {
                    matched_fields |= 1 << i;
                }
                (hit, f.field_repeats)
            }
        };
        match e.combine {
            Combine::Or if hit => return true,
            Combine::And if !hit && !may_retry => return false,
            _ => {}
        }
    }
    e.combine == Combine::And
}

/// A `<Rule>`: its own combine mode over every filter, same field or not.
fn rule_matches<'a>(
    combine: Combine,
    filters: &'a [Filter],
    event: &Event,
    name: &mut Option<&'a str>,
) -> bool {
    if filters.is_empty() {
        return false;
    }
    for f in filters {
        let hit = filter_matches(f, event, name);
        match combine {
            Combine::Or if hit => return true,
            Combine::And if !hit => return false,
            _ => {}
        }
    }
    combine == Combine::And
}

fn filter_matches<'a>(f: &'a Filter, event: &Event, name: &mut Option<&'a str>) -> bool {
    let Some(i) = f.field else { return false };
    let hit = f.matcher.matches(field_value(event, i as usize));
    if hit && f.name.is_some() {
        *name = f.name.as_deref();
    }
    hit
}

/// Field value as Sysmon filters it: `-` when empty or unset; RuleName is always `-` here.
fn field_value(event: &Event, i: usize) -> &str {
    if i >= event.len() || (i == 0 && event.kind().fields[0] == "RuleName") {
        "-"
    } else {
        event.get(i)
    }
}
