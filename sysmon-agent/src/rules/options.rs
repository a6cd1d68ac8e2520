//! The two top-level options that change what we log: HashAlgorithms (§3.4, also the `-h`
//! switch) and FieldSizes (§2.4).

use std::fmt;

use crate::events::Event;
use crate::events::schema::EVENTS;

/// Hashes computed for ProcessCreate `Hashes`; printed in the fixed order SHA1, MD5, SHA256.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HashAlgorithms {
    pub sha1: bool,
    pub md5: bool,
    pub sha256: bool,
    /// Accepted for Windows configs; there is no import table hash on Linux.
    pub imphash: bool,
}

impl Default for HashAlgorithms {
    fn default() -> Self {
        HashAlgorithms {
            sha1: false,
            md5: false,
            sha256: true,
            imphash: false,
        }
    }
}

impl HashAlgorithms {
    /// Comma list, case-insensitive: `sha1`/`sha-1`, `md5`/`md-5`, `sha256`/`sha-256`,
    /// `imphash`/`imp-hash`, or `*`/`all`. Spaces are not trimmed, as in Sysmon.
    pub fn parse(s: &str) -> Result<Self, String> {
        let mut h = HashAlgorithms {
            sha1: false,
            md5: false,
            sha256: false,
            imphash: false,
        };
        for name in s.split(',') {
            match name.to_ascii_lowercase().as_str() {
                "sha1" | "sha-1" => h.sha1 = true,
                "md5" | "md-5" => h.md5 = true,
                "sha256" | "sha-256" => h.sha256 = true,
                "imphash" | "imp-hash" => h.imphash = true,
                "*" | "all" => {
                    h = HashAlgorithms {
                        sha1: true,
                        md5: true,
                        sha256: true,
                        imphash: true,
                    }
                }
                _ => {
                    return Err(format!(
                        "Invalid hashing algorithm: '{name}'; expected a comma list (no spaces) of \
                         sha1, md5, sha256, imphash, or * for all"
                    ));
                }
            }
        }
        Ok(h)
    }
}

impl fmt::Display for HashAlgorithms {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names = [
            (self.sha1, "SHA1"),
            (self.md5, "MD5"),
            (self.sha256, "SHA256"),
            (self.imphash, "IMPHASH"),
        ];
        let on: Vec<&str> = names
            .iter()
            .filter(|(on, _)| *on)
            .map(|(_, n)| *n)
            .collect();
        f.write_str(&on.join(","))
    }
}

/// Per-field maximum lengths, compiled per event id.
#[derive(Clone, Debug, Default)]
pub struct FieldSizes {
    /// As written, for `-c`.
    text: String,
    /// (event id, field index, max bytes).
    limits: Vec<(u16, u8, usize)>,
}

impl FieldSizes {
    /// `Name:N,Name:N`: alphanumerics, `,` and `:` only; names are case-sensitive field names
    /// and apply to every event that has the field; entries without `:` are ignored.
    pub fn parse(s: &str) -> Result<Self, String> {
        if let Some(c) = s
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || *c == ',' || *c == ':'))
        {
            return Err(format!(
                "FieldSizes option ('{s}') has invalid character: '{c}'; expected Name:N,Name:N"
            ));
        }
        let mut limits = Vec::new();
        for (name, n) in s.split(',').filter_map(|e| e.split_once(':')) {
            let mut known = false;
            for k in EVENTS {
                if let Some(i) = k.field_index(name) {
                    known = true;
                    limits.retain(|(id, f, _)| (*id, *f) != (k.id, i as u8));
                    let n: usize = n
                        .parse()
                        .ok()
                        .filter(|n| *n > 0)
                        .ok_or_else(|| format!("FieldSizes field '{name}' has max size of '{n}'; expected a number above 0"))?;
                    limits.push((k.id, i as u8, n));
                }
            }
            if !known {
                return Err(format!(
                    "FieldSizes field '{name}' is invalid; expected an event field name such as CommandLine"
                ));
            }
        }
        Ok(FieldSizes {
            text: s.to_string(),
            limits,
        })
    }

    pub fn is_empty(&self) -> bool {
        self.limits.is_empty()
    }

    /// Limit for a field of an event, if any.
    pub fn limit(&self, event_id: u16, field: usize) -> Option<usize> {
        self.limits
            .iter()
            .find(|(id, f, _)| *id == event_id && *f as usize == field)
            .map(|l| l.2)
    }

    /// Trims every limited field of the event (after filtering, before rendering).
    pub fn apply(&self, event: &mut Event) {
        for &(id, i, n) in &self.limits {
            let i = i as usize;
            if id == event.id() && i < event.len() {
                if let Some(t) = trim(event.get(i), n) {
                    event.set(i, &t);
                }
            }
        }
    }
}

impl fmt::Display for FieldSizes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// Sysmon's TrimStringToNChars: longer than `n` bytes → `-` when `n < 3`, else the first
/// `n - 3` bytes (at a character boundary, so UTF-8 stays valid) followed by `...`.
pub fn trim(value: &str, n: usize) -> Option<String> {
    if value.len() <= n {
        return None;
    }
    if n < 3 {
        return Some("-".to_string());
    }
    let mut cut = n - 3;
    while !value.is_char_boundary(cut) {
        cut -= 1;
    }
    Some(format!("{}...", &value[..cut]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::schema::by_id;

    #[test]
    fn hash_algorithms() {
        let all = HashAlgorithms {
            sha1: true,
            md5: true,
            sha256: true,
            imphash: true,
        };
        let cases: &[(&str, Option<HashAlgorithms>)] = &[
            ("sha256", Some(HashAlgorithms::default())),
            (
                "SHA-1,md5",
                Some(HashAlgorithms {
                    sha1: true,
                    md5: true,
                    sha256: false,
                    imphash: false,
                }),
            ),
            (
                "md5,sha256,IMPHASH",
                Some(HashAlgorithms {
                    sha1: false,
                    md5: true,
                    sha256: true,
                    imphash: true,
                }),
            ),
            ("*", Some(all)),
            ("ALL", Some(all)),
            ("md5, sha256", None),
            ("", None),
            ("sha512", None),
        ];
        for (s, want) in cases {
            assert_eq!(HashAlgorithms::parse(s).ok(), *want, "{s:?}");
        }
        assert_eq!(all.to_string(), "SHA1,MD5,SHA256,IMPHASH");
    }

    /// Sysmon's FieldSizes.LoadAndRetrieveFieldSizes.
    #[test]
    fn field_sizes_parse() {
        for bad in [
            "Nonfield:5",
            "Image:5,Nonfield:6",
            "Nonfield:5,Image:6",
            "Image:0",
            "Image:-1",
            "Image:-2",
            "Image:0,User:5",
            "Image:5,User:0",
            "Image:-1,User:5",
            "Image:5,User:-1",
            "Image:-2,User:5",
            "Image:5,User:-2",
            "Image:5.User:6",
            "Image:x",
            "image:5",
            "Image: 5",
        ] {
            assert!(FieldSizes::parse(bad).is_err(), "{bad}");
        }
        assert!(FieldSizes::parse("").unwrap().is_empty());
        assert!(FieldSizes::parse("Image").unwrap().is_empty());
        let fs = FieldSizes::parse("Image:5,User:6").unwrap();
        for k in EVENTS {
            for (i, name) in k.fields.iter().enumerate() {
                let want = match *name {
                    "Image" => Some(5),
                    "User" => Some(6),
                    _ => None,
                };
                assert_eq!(fs.limit(k.id, i), want, "event {} {name}", k.id);
            }
        }
    }

    /// Sysmon's FieldSizes.CheckTrim (N ≤ 0 cannot be configured).
    #[test]
    fn trim_like_sysmon() {
        let s = "ABCDEFGHIJKLMN";
        for (n, want) in [
            (200, None),
            (14, None),
            (5, Some("AB...")),
            (3, Some("...")),
            (2, Some("-")),
            (1, Some("-")),
        ] {
            assert_eq!(trim(s, n).as_deref(), want, "{n}");
        }
        // Cut at a character boundary so the value stays UTF-8.
        assert_eq!(trim("aébc", 4).as_deref(), Some("a..."));
        assert_eq!(trim("éééé", 4).as_deref(), Some("..."));
    }

    #[test]
    fn apply_trims_only_listed_fields() {
        let kind = by_id(5).unwrap();
        let mut e = crate::events::Event::new(kind);
        for v in [
            "",
            "2024-05-14 09:21:07.731",
            "{g}",
            "2345",
            "/usr/bin/curl",
            "alice",
        ] {
            e.push(v);
        }
        FieldSizes::parse("Image:8,User:2,CommandLine:3")
            .unwrap()
            .apply(&mut e);
        assert_eq!(e.field("Image"), Some("/usr/..."));
        assert_eq!(e.field("User"), Some("-"));
        assert_eq!(e.field("ProcessGuid"), Some("{g}"));
    }
}
