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

#[cfg(test)]
mod tests {
    use super::super::tests::load;

    /// The sample of spec §4.5, byte for byte.
    #[test]
    fn layout_matches_sysmon() {
        let config = load(
            "<Sysmon schemaversion=\"4.50\"><FieldSizes>CommandLine:100,Image:20</FieldSizes><EventFiltering>\
             <NetworkConnect onmatch=\"exclude\"><Image condition=\"is\">/usr/sbin/chronyd</Image></NetworkConnect>\
             <RuleGroup name=\"\" groupRelation=\"or\"><ProcessCreate onmatch=\"include\">\
             <Image condition=\"end with\">/bash</Image>\
             <Rule name=\"powershell by cmd\" groupRelation=\"and\"><Image condition=\"end with\">pwsh</Image>\
             <ParentImage condition=\"contains\">sshd</ParentImage></Rule></ProcessCreate></RuleGroup>\
             </EventFiltering></Sysmon>",
        );
        let want = " - Field Sizes:                   CommandLine:100,Image:20\n\
                    \n\
                    Rule configuration (version 4.50):\n \
                    - ProcessCreate                      onmatch: include   combine rules using 'Or'\n\
                    \tImage                          filter: end with     value: '/bash'\n\
                    \tCompound Rule powershell by cmd   combine using And\n\
                    \t    Image                          filter: end with     value: 'pwsh'\n\
                    \t    ParentImage                    filter: contains     value: 'sshd'\n \
                    - NetworkConnect                     onmatch: exclude   combine rules using 'And'\n\
                    \tImage                          filter: is           value: '/usr/sbin/chronyd'\n";
        assert_eq!(config.dump(), want);
    }

    #[test]
    fn values_keep_their_case_and_empty_configs_say_so() {
        let config = load(
            "<Sysmon schemaversion=\"4.81\"><EventFiltering><ProcessCreate onmatch=\"include\">\
             <Rule groupRelation=\"or\"><Image>C:\\Windows\\CMD.exe</Image></Rule></ProcessCreate></EventFiltering></Sysmon>",
        );
        let dump = config.dump();
        assert!(dump.contains("value: 'C:\\Windows\\CMD.exe'"), "{dump}");
        assert!(
            dump.contains("\tCompound Rule 0001   combine using Or"),
            "{dump}"
        );
        assert_eq!(
            load("<Sysmon schemaversion=\"4.81\"/>").dump(),
            "No rules installed\n"
        );
    }
}
