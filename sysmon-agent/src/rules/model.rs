//! The config as written (document order, original letter case): what `parse` produces,
//! what `compile` turns into a [`super::RuleSet`], and what `-c` displays.

use super::conditions::Condition;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Combine {
    And,
    Or,
}

impl Combine {
    pub fn name(self) -> &'static str {
        match self {
            Combine::And => "And",
            Combine::Or => "Or",
        }
    }
}

/// One event element (`<ProcessCreate onmatch="include">…`) wherever it sits.
#[derive(Clone, Debug)]
pub struct EntrySpec {
    pub tag: &'static str,
    /// Event ids the tag covers (several for RegistryEvent, PipeEvent, WmiEvent).
    pub ids: Vec<u16>,
    /// `onmatch="include"` (log only what matches) or `default="exclude"`.
    pub onmatch_include: bool,
    pub combine: Combine,
    pub items: Vec<ItemSpec>,
}

#[derive(Clone, Debug)]
pub enum ItemSpec {
    Filter(FilterSpec),
    Rule(RuleSpec),
}

/// A `<Rule>`: filters combined on their own.
#[derive(Clone, Debug)]
pub struct RuleSpec {
    pub name: Option<String>,
    pub combine: Combine,
    pub filters: Vec<FilterSpec>,
}

/// A field element such as `<Image condition="end with">/bash</Image>`.
#[derive(Clone, Debug)]
pub struct FilterSpec {
    pub field: &'static str,
    pub condition: Condition,
    /// Element text as written.
    pub value: String,
    /// Effective name: the field's `name`, else the `<Rule name>`, else the `<RuleGroup name>`.
    pub name: Option<String>,
}
