//! Text for `sysmon -s [version|all]` (our schema, manifest-like XML) and `sysmon -? config`.

use std::fmt::Write;

use super::conditions::CONDITIONS;
use crate::events::schema::{EVENTS, SCHEMA_VERSION};

/// Top-level options a config may set, with what they do here.
const OPTIONS: &[(&str, &str)] = &[
    (
        "HashAlgorithms",
        "hashes for ProcessCreate: sha1, md5, sha256, imphash (ignored) or * (all)",
    ),
    (
        "FieldSizes",
        "maximum field lengths, e.g. CommandLine:100,Image:20 (schema 4.81)",
    ),
    ("DnsLookup", "accepted, no effect on Linux"),
    ("ProcessAccessConfig", "accepted, no effect on Linux"),
    ("PipeMonitoringConfig", "accepted, no effect on Linux"),
    ("ArchiveDirectory", "Windows only: accepted with a warning"),
    ("CaptureClipboard", "Windows only: accepted with a warning"),
    ("CheckRevocation", "Windows only: accepted with a warning"),
    ("DriverName", "Windows only: accepted with a warning"),
];

/// Our schema as manifest-like XML. `None`, `"all"` and any supported version number give the
/// 4.81 layout, which is the one every config is read with.
pub fn print_schema(version: Option<&str>) -> Result<String, String> {
    let requested = match version {
        None | Some("all") => None,
        Some(v) => {
            let n: f64 = v
                .trim()
                .parse()
                .map_err(|_| format!("invalid schema version '{v}'; expected e.g. 4.81 or all"))?;
            if !(4.0..1000.0).contains(&n) {
                return Err(format!(
                    "unsupported schema version {n:.2}; expected 4.00 or later"
                ));
            }
            Some(format!("{n:.2}"))
        }
    };
    let mut out = String::new();
    if let Some(v) = requested.filter(|v| v != SCHEMA_VERSION) {
        let _ = writeln!(
            out,
            "<!-- configs with schemaversion {v} are read with schema {SCHEMA_VERSION} -->"
        );
    }
    let _ = writeln!(out, "<manifest schemaversion=\"{SCHEMA_VERSION}\">");
    out.push_str("  <configuration>\n    <options>\n");
    for (name, _) in OPTIONS {
        let _ = writeln!(out, "      <option name=\"{name}\" />");
    }
    out.push_str("    </options>\n");
    let names: Vec<&str> = CONDITIONS.iter().map(|(_, n)| *n).collect();
    let _ = writeln!(
        out,
        "    <filters default=\"is\">{}</filters>",
        names.join(",")
    );
    out.push_str("  </configuration>\n  <events>\n");
    for k in EVENTS {
        let _ = write!(
            out,
            "    <event name=\"{}\" value=\"{}\" level=\"{}\"",
            k.name,
            k.id,
            if k.level == 2 {
                "Error"
            } else {
                "Informational"
            }
        );
        if let Some(tag) = k.tag {
            let _ = write!(
                out,
                " rulename=\"{tag}\" ruledefault=\"{}\"",
                if k.default_on { "include" } else { "exclude" }
            );
        }
        let _ = writeln!(out, " version=\"{}\" linux=\"{}\">", k.version, k.linux);
        for f in k.fields {
            let _ = writeln!(out, "      <data name=\"{f}\" />");
        }
        out.push_str("    </event>\n");
    }
    out.push_str("  </events>\n</manifest>\n");
    Ok(out)
}

/// `sysmon -? config`: how to write a configuration file.
pub fn config_help() -> String {
    let mut out = String::new();
    let _ = writeln!(out, "Configuration file:");
    let _ = writeln!(
        out,
        "  The configuration is an XML file; the current schema is version: {SCHEMA_VERSION}"
    );
    out.push_str(
        "  <Sysmon schemaversion=\"4.81\">\n    <HashAlgorithms>sha256</HashAlgorithms>\n    <EventFiltering>\n      \
         <RuleGroup name=\"\" groupRelation=\"or\">\n        <ProcessCreate onmatch=\"include\">\n          \
         <Image condition=\"end with\">/nc</Image>\n        </ProcessCreate>\n      </RuleGroup>\n    </EventFiltering>\n  </Sysmon>\n\n",
    );
    out.push_str("Options:\n");
    for (name, what) in OPTIONS {
        let _ = writeln!(out, "  {name:<22} {what}");
    }
    out.push_str("\nEvents (tag: id, fields) - Linux produces the ones marked *:\n");
    let mut tags: Vec<&str> = EVENTS.iter().filter_map(|k| k.tag).collect();
    tags.dedup();
    for tag in tags {
        let kinds: Vec<_> = EVENTS.iter().filter(|k| k.tag == Some(tag)).collect();
        let ids: Vec<String> = kinds.iter().map(|k| k.id.to_string()).collect();
        let mark = if kinds[0].linux { "*" } else { " " };
        let mut fields: Vec<&str> = kinds
            .iter()
            .flat_map(|k| k.fields.iter().copied())
            .collect();
        fields.dedup();
        let _ = writeln!(
            out,
            " {mark}{tag} ({}): {}",
            ids.join(","),
            fields.join(", ")
        );
    }
    out.push_str(
        "\nEach event element needs onmatch=\"include\" (log only what matches) or onmatch=\"exclude\"\n\
         (log all but what matches). Exclude matches win over include matches. Filters on different\n\
         fields are AND-ed (schema > 4.1) and on the same field OR-ed; RuleGroup groupRelation and\n\
         <Rule groupRelation> change that. A name attribute on a RuleGroup, Rule or field is reported\n\
         as RuleName.\n\nConditions (case-insensitive on ASCII letters):\n",
    );
    for (c, what) in [
        ("is", "the value equals (default)"),
        ("is not", "the value differs"),
        ("contains", "the value contains"),
        (
            "contains any",
            "the value contains any of the ;-separated pieces",
        ),
        ("is any", "the value equals one of the ;-separated pieces"),
        (
            "contains all",
            "the value contains all of the ;-separated pieces",
        ),
        ("excludes", "the value does not contain"),
        (
            "excludes any",
            "the value contains none of the ;-separated pieces",
        ),
        (
            "excludes all",
            "the value lacks at least one of the ;-separated pieces",
        ),
        ("begin with", "the value starts with"),
        ("not begin with", "the value does not start with"),
        ("end with", "the value ends with"),
        ("not end with", "the value does not end with"),
        (
            "less than",
            "numerically (both integers) or alphabetically lower",
        ),
        (
            "more than",
            "numerically (both integers) or alphabetically higher",
        ),
        (
            "image",
            "the file name (after the last / or \\) equals, or the whole path if given",
        ),
    ] {
        debug_assert!(CONDITIONS.iter().any(|(_, n)| *n == c));
        let _ = writeln!(out, "  {c:<16} {what}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_lists_every_event_and_condition() {
        let s = print_schema(None).unwrap();
        assert!(s.contains("schemaversion=\"4.81\""));
        assert!(s.contains("rulename=\"RegistryEvent\""));
        assert!(s.contains("not end with"));
        assert_eq!(s.matches("<event ").count(), EVENTS.len());
        assert_eq!(print_schema(Some("all")).unwrap(), s);
        assert!(
            print_schema(Some("4.50"))
                .unwrap()
                .starts_with("<!-- configs with schemaversion 4.50")
        );
        assert!(print_schema(Some("3.0")).is_err());
        assert!(print_schema(Some("x")).is_err());
    }

    #[test]
    fn help_names_the_schema_version_and_all_conditions() {
        let h = config_help();
        assert!(h.contains("schema is version: 4.81"));
        for (_, n) in CONDITIONS {
            assert!(h.contains(&format!("  {n:<16} ")), "{n}");
        }
    }
}
