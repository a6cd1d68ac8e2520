//! `-o <sinks>`: where events go. A comma-separated list of `syslog`, `json[=PATH]`,
//! `xml[=PATH]`, `size=N[K|M|G]`, `keep=N` and `containers=on|off`; without `-o`, syslog
//! only, with the container fields.

use std::path::{Path, PathBuf};

pub const DEFAULT_JSON: &str = "var/log/sysmon/sysmon.json";
pub const DEFAULT_XML: &str = "var/log/sysmon/sysmon.xml";
pub const DEFAULT_SIZE: u64 = 100 << 20;
pub const DEFAULT_KEEP: u32 = 5;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outputs {
    pub syslog: bool,
    pub json: Option<PathBuf>,
    pub xml: Option<PathBuf>,
    pub rotation: Rotation,
    /// The container fields after each event's own (`containers=off`: Sysmon's fields only).
    pub containers: bool,
}

/// When a file is rotated and how many older files stay (`.1` … `.keep`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rotation {
    pub size: u64,
    pub keep: u32,
}

impl Default for Outputs {
    fn default() -> Self {
        Outputs {
            syslog: true,
            json: None,
            xml: None,
            rotation: Rotation {
                size: DEFAULT_SIZE,
                keep: DEFAULT_KEEP,
            },
            containers: true,
        }
    }
}

impl Outputs {
    /// Parses an `-o` list; default paths are under `root` (`/` but in tests).
    pub fn parse(list: &str, root: &Path) -> Result<Outputs, String> {
        let mut out = Outputs {
            syslog: false,
            ..Outputs::default()
        };
        let mut sinks = 0;
        for item in list.split(',') {
            let (name, value) = match item.split_once('=') {
                Some((n, v)) => (n, Some(v)),
                None => (item, None),
            };
            let path = |default: &str| -> Result<PathBuf, String> {
                match value {
                    None => Ok(root.join(default)),
                    Some(v) if v.starts_with('/') => Ok(PathBuf::from(v)),
                    Some(v) => Err(format!("-o {name}={v}: the path must be absolute")),
                }
            };
            let fresh = |taken: bool| {
                if taken {
                    Err(format!("-o: '{name}' given twice"))
                } else {
                    Ok(())
                }
            };
            match name.to_ascii_lowercase().as_str() {
                "syslog" if value.is_none() => {
                    fresh(out.syslog)?;
                    out.syslog = true;
                    sinks += 1;
                }
                "json" => {
                    fresh(out.json.is_some())?;
                    out.json = Some(path(DEFAULT_JSON)?);
                    sinks += 1;
                }
                "xml" => {
                    fresh(out.xml.is_some())?;
                    out.xml = Some(path(DEFAULT_XML)?);
                    sinks += 1;
                }
                "size" => {
                    out.rotation.size = value
                        .and_then(parse_size)
                        .ok_or_else(|| format!("-o: bad size '{item}' (e.g. size=100M)"))?;
                }
                "keep" => {
                    out.rotation.keep =
                        value
                            .and_then(|v| v.parse().ok())
                            .filter(|k| *k <= 1000)
                            .ok_or_else(|| format!("-o: bad keep '{item}' (0 to 1000)"))?;
                }
                "containers" => {
                    out.containers = match value.map(str::to_ascii_lowercase).as_deref() {
                        Some("on") => true,
                        Some("off") => false,
                        _ => return Err(format!("-o: bad containers '{item}' (on or off)")),
                    };
                }
                _ => {
                    return Err(format!(
                        "-o: unknown item '{item}' (syslog, json[=PATH], xml[=PATH], \
                         size=N[K|M|G], keep=N, containers=on|off)"
                    ));
                }
            }
        }
        if sinks == 0 {
            return Err(format!("-o {list}: no sink (syslog, json or xml)"));
        }
        if out.json.is_some() && out.json == out.xml {
            return Err("-o: json and xml cannot share one file".into());
        }
        Ok(out)
    }
}

/// `N`, `NK`, `NM`, `NG` (powers of 1024); at least 1 KiB, so that a file holds an event.
fn parse_size(v: &str) -> Option<u64> {
    let (digits, unit) = match v.char_indices().last()? {
        (i, c) if c.is_ascii_alphabetic() => (&v[..i], c.to_ascii_uppercase()),
        _ => (v, ' '),
    };
    let shift = match unit {
        ' ' => 0,
        'K' => 10,
        'M' => 20,
        'G' => 30,
        _ => return None,
    };
    let n: u64 = digits.parse().ok()?;
    n.checked_mul(1 << shift).filter(|s| *s >= 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn good_lists() {
        let root = Path::new("/r");
        let o = |syslog, json: Option<&str>, xml: Option<&str>, size, keep| Outputs {
            syslog,
            json: json.map(PathBuf::from),
            xml: xml.map(PathBuf::from),
            rotation: Rotation { size, keep },
            containers: true,
        };
        let cases = [
            ("syslog", o(true, None, None, DEFAULT_SIZE, 5)),
            (
                "json,syslog",
                o(
                    true,
                    Some("/r/var/log/sysmon/sysmon.json"),
                    None,
                    DEFAULT_SIZE,
                    5,
                ),
            ),
            (
                "xml=/x/e.xml,size=10M,keep=3",
                o(false, None, Some("/x/e.xml"), 10 << 20, 3),
            ),
            (
                "JSON=/j,XML,size=4096,keep=0",
                o(
                    false,
                    Some("/j"),
                    Some("/r/var/log/sysmon/sysmon.xml"),
                    4096,
                    0,
                ),
            ),
            (
                "json,size=2g",
                o(
                    false,
                    Some("/r/var/log/sysmon/sysmon.json"),
                    None,
                    2 << 30,
                    5,
                ),
            ),
        ];
        for (list, want) in cases {
            assert_eq!(Outputs::parse(list, root), Ok(want), "{list}");
        }
        // The container fields: on unless turned off.
        for (list, on) in [
            ("syslog,containers=off", false),
            ("syslog,containers=OFF", false),
            ("syslog,containers=on", true),
        ] {
            assert_eq!(Outputs::parse(list, root).unwrap().containers, on, "{list}");
        }
    }

    #[test]
    fn bad_lists() {
        // (list, what the error must say)
        let cases = [
            ("syslog,containers", "bad containers"),
            ("syslog,containers=no", "bad containers"),
            ("", "unknown item ''"),
            ("size=1M", "no sink"),
            ("json,csv", "unknown item 'csv'"),
            ("json=rel/x", "must be absolute"),
            ("json,size=10X", "bad size"),
            ("json,size=12", "bad size"),
            ("json,keep=-1", "bad keep"),
            ("json,json", "given twice"),
            ("json=/a,xml=/a", "cannot share"),
            ("syslog=/x", "unknown item"),
        ];
        for (list, want) in cases {
            let err = Outputs::parse(list, Path::new("/")).expect_err(list);
            assert!(err.contains(want), "{list}: {err}");
        }
    }
}
