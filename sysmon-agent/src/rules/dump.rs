//! `sysmon -c` with no file: the loaded rules in Sysmon's display layout (spec §4.5).

use std::fmt::Write;

use super::Config;
use super::model::{EntrySpec, FilterSpec, ItemSpec};

impl Config {
    /// Entries are listed by event id (Sysmon's rule order), each id's in document order;
    /// values keep their original letter case.
    pub fn dump(&self) -> String {
        let mut out = String::new();
        if !self.field_sizes.is_empty() {
            let _ = writeln!(out, "{:<34}{}", " - Field Sizes:", self.field_sizes);
        }
        if self.entries.is_empty() {
            out.push_str("No rules installed\n");
            return out;
        }
        let _ = writeln!(
            out,
            "\nRule configuration (version {}):",
            self.schema_version
        );
        let mut order: Vec<&EntrySpec> = self.entries.iter().collect();
        order.sort_by_key(|e| e.ids.first().copied().unwrap_or(0));
        let mut compound = 0;
        for e in order {
            let onmatch = if e.onmatch_include {
                "include"
            } else {
                "exclude"
            };
            let _ = writeln!(
                out,
                " - {:<34} onmatch: {onmatch}   combine rules using '{}'",
                e.tag,
                e.combine.name()
            );
            for item in &e.items {
                match item {
                    ItemSpec::Filter(f) => filter_line(&mut out, "\t", f),
                    ItemSpec::Rule(r) => {
                        compound += 1;
                        match &r.name {
                            Some(n) => {
                                let short: String = n.chars().take(32).collect();
                                let _ = writeln!(
                                    out,
                                    "\tCompound Rule {short}   combine using {}",
                                    r.combine.name()
                                );
                            }
                            None => {
                                let _ = writeln!(
                                    out,
                                    "\tCompound Rule {compound:04}   combine using {}",
                                    r.combine.name()
                                );
                            }
                        }
                        for f in &r.filters {
                            filter_line(&mut out, "\t    ", f);
                        }
                    }
                }
            }
        }
        out
    }
}

fn filter_line(out: &mut String, indent: &str, f: &FilterSpec) {
    let _ = writeln!(
        out,
        "{indent}{:<30} filter: {:<12} value: '{}'",
        f.field,
        f.condition.name(),
        f.value
    );
}
