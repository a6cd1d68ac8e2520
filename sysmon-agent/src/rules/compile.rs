//! Config as written → per-event-id rule entries in evaluation order, with field names
//! resolved to indices and values prepared for matching (done once per config).

use super::conditions::Matcher;
use super::model::{Combine, EntrySpec, FilterSpec, ItemSpec};
use crate::events::schema::{EventKind, by_id};

/// Event ids are below this (255, the error event, is never filtered).
const MAX_ID: usize = 32;

/// The compiled rules: for each event id, its entries in the order they are tried.
#[derive(Debug, Clone, Default)]
pub struct RuleSet {
    pub(crate) by_id: Vec<Vec<Entry>>,
    /// Bit per event id that has at least one element in the config (activation, §1.0).
    pub(crate) mentioned: u32,
    /// Per event id, a bit per field some filter reads (to judge before costly fields).
    pub(crate) reads: Vec<u64>,
}

#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub onmatch_include: bool,
    pub combine: Combine,
    pub items: Vec<Item>,
}

#[derive(Debug, Clone)]
pub(crate) enum Item {
    Filter(Filter),
    Rule {
        combine: Combine,
        filters: Vec<Filter>,
    },
}

#[derive(Debug, Clone)]
pub(crate) struct Filter {
    /// Index of the field in this event; `None` when a shared tag's field belongs to a
    /// sibling event (RegistryEvent `Details` on a key event): never matches.
    pub field: Option<u8>,
    pub matcher: Matcher,
    pub name: Option<Box<str>>,
    /// A later top-level filter of the same entry reads the same field: in an AND entry a
    /// miss here is not final, because filters on one field are OR-ed (§3.7).
    pub field_repeats: bool,
}

impl RuleSet {
    pub(crate) fn compile(specs: &[EntrySpec]) -> RuleSet {
        let mut set = RuleSet {
            by_id: vec![Vec::new(); MAX_ID],
            mentioned: 0,
            reads: vec![0; MAX_ID],
        };
        for spec in specs {
            for &id in &spec.ids {
                let Some(kind) = by_id(id).filter(|_| (id as usize) < MAX_ID) else {
                    continue;
                };
                set.mentioned |= 1 << id;
                let entry = entry(spec, kind);
                set.reads[id as usize] |= fields_read(&entry);
                set.by_id[id as usize].push(entry);
            }
        }
        // Sysmon tries every "exclude" entry before any "include" one, each class from the
        // last element in the file to the first.
        for entries in &mut set.by_id {
            entries.reverse();
            entries.sort_by_key(|e| e.onmatch_include);
        }
        set
    }

    pub(crate) fn entries(&self, id: u16) -> &[Entry] {
        self.by_id.get(id as usize).map_or(&[], Vec::as_slice)
    }

    /// Whether judging event `id` reads field `field`: if not, the field can be filled
    /// after the decision, and only for included events.
    pub fn reads(&self, id: u16, field: usize) -> bool {
        field < 64
            && self
                .reads
                .get(id as usize)
                .is_some_and(|r| r & (1 << field) != 0)
    }
}

fn fields_read(e: &Entry) -> u64 {
    let bit = |f: &Filter| f.field.map_or(0, |i| 1u64 << i);
    e.items
        .iter()
        .map(|item| match item {
            Item::Filter(f) => bit(f),
            Item::Rule { filters, .. } => filters.iter().map(bit).fold(0, |a, b| a | b),
        })
        .fold(0, |a, b| a | b)
}

fn entry(spec: &EntrySpec, kind: &EventKind) -> Entry {
    let mut items: Vec<Item> = spec
        .items
        .iter()
        .map(|item| match item {
            ItemSpec::Filter(f) => Item::Filter(filter(f, kind)),
            ItemSpec::Rule(r) => Item::Rule {
                combine: r.combine,
                filters: r.filters.iter().map(|f| filter(f, kind)).collect(),
            },
        })
        .collect();
    for i in 0..items.len() {
        let Item::Filter(Filter {
            field: Some(field), ..
        }) = items[i]
        else {
            continue;
        };
        let repeats = items[i + 1..]
            .iter()
            .any(|later| matches!(later, Item::Filter(f) if f.field == Some(field)));
        if let Item::Filter(f) = &mut items[i] {
            f.field_repeats = repeats;
        }
    }
    Entry {
        onmatch_include: spec.onmatch_include,
        combine: spec.combine,
        items,
    }
}

fn filter(spec: &FilterSpec, kind: &EventKind) -> Filter {
    // Events have at most 23 fields; evaluation keeps matched fields in a u64 bit set.
    let field = kind
        .field_index(spec.field)
        .filter(|i| *i < 64)
        .map(|i| i as u8);
    Filter {
        field,
        matcher: Matcher::new(spec.condition, &spec.value),
        name: spec.name.as_deref().map(Box::from),
        field_repeats: false,
    }
}
