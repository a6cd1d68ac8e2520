//! README.md and docs/*.md say only what is true of this repository: every relative link
//! leads to a file (and its `#anchor` to a heading there), every repository path, source
//! file, test, constant and environment variable they name exists, and every command they
//! show names a `cargo xtask` subcommand, option, test file or bench that exists and only
//! switches `sysmon -?` and `sysmonLogView --help` list. Not kernel tests: no root needed.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use sysmon_tests::docs::{
    anchors, commands, links, options, pages, read, root, spans, target_dir, trim,
};

/// Crate source roots a short path such as `enrich/guid.rs` or `probes/compat.rs` is read
/// from, as the pages name them.
const SOURCE_ROOTS: &[&str] = &[
    "sysmon-agent/src",
    "sysmon-agent",
    "sysmon-ebpf/src",
    "sysmon-common/src",
    "xtask/src",
    "tests/src",
    "tests",
];

/// Crates whose `.rs` files hold every name the pages may cite.
const CODE: &[&str] = &[
    "sysmon-agent",
    "sysmon-ebpf",
    "sysmon-common",
    "xtask",
    "tests",
];

/// Switches the help leaves out on purpose: `sysmon`'s internal `-service` (what the unit and
/// `-i` start) and `sysmonLogView`'s `-T` (Sysmon for Linux's undocumented one, kept).
const HIDDEN_SWITCHES: &[&str] = &["-service", "-T"];

#[test]
fn links_and_anchors_lead_somewhere() {
    let mut wrong = Vec::new();
    for page in pages() {
        let dir = page.path.parent().unwrap();
        for link in links(&page.text) {
            let (file, anchor) = link.split_once('#').unwrap_or((&link, ""));
            let target = if file.is_empty() {
                page.path.clone()
            } else {
                dir.join(file)
            };
            if !target.exists() {
                wrong.push(format!("{}: link to {link}: no such file", page.name));
            } else if !anchor.is_empty() && !anchors(&read(&target)).contains(anchor) {
                wrong.push(format!("{}: link to {link}: no such heading", page.name));
            }
        }
    }
    assert!(wrong.is_empty(), "\n{}", wrong.join("\n"));
}

#[test]
fn paths_and_names_exist() {
    let code = code_text();
    let mut wrong = Vec::new();
    for page in pages() {
        for span in spans(&page.text) {
            let words: Vec<&str> = span.split_whitespace().map(trim).collect();
            for (i, word) in words.iter().enumerate() {
                let bench = (i > 0 && words[i - 1] == "--bench")
                    .then(|| root().join(format!("sysmon-agent/benches/{word}.rs")))
                    .filter(|b| !b.exists())
                    .map(|_| "no such bench (sysmon-agent/benches/)".to_string());
                let why = bench
                    .or_else(|| path_missing(word))
                    .or_else(|| name_missing(word, &code));
                if let Some(why) = why {
                    wrong.push(format!("{}: `{word}`: {why}", page.name));
                }
            }
        }
    }
    assert!(wrong.is_empty(), "\n{}", wrong.join("\n"));
}

#[test]
fn commands_name_what_exists() {
    let helps = Helps::new();
    let mut wrong = Vec::new();
    for page in pages() {
        for command in commands(&page.text) {
            let words: Vec<&str> = command.split_whitespace().map(trim).collect();
            for why in helps.problems(&words) {
                wrong.push(format!("{}: `{command}`: {why}", page.name));
            }
        }
    }
    assert!(wrong.is_empty(), "\n{}", wrong.join("\n"));
}

/// What the binaries say they take.
struct Helps {
    sysmon: String,
    logview: String,
    xtask: PathBuf,
    subcommands: Vec<String>,
}

impl Helps {
    fn new() -> Self {
        let xtask = target_dir().join("debug/xtask");
        let subcommands = help(&xtask, &["--help"])
            .lines()
            .skip_while(|l| !l.starts_with("Commands:"))
            .skip(1)
            .map_while(|l| l.split_whitespace().next().map(str::to_string))
            .collect();
        let sysmon = sysmon_tests::sysmon_bin();
        Helps {
            logview: help(&sysmon.with_file_name("sysmonLogView"), &["--help"]),
            sysmon: help(&sysmon, &["-?"]),
            xtask,
            subcommands,
        }
    }

    /// What is wrong with one command: `sysmon …`, `sysmonLogView …` or `cargo xtask …`.
    fn problems(&self, words: &[&str]) -> Vec<String> {
        let listed = |help: &str, o: &str| {
            help.contains(&format!("{o} ")) || help.contains(&format!("{o},"))
        };
        let mut wrong = Vec::new();
        match words[0].rsplit('/').next().unwrap() {
            "sysmon" => {
                for switch in options(&words[1..]).filter(|s| !s.starts_with("--")) {
                    let lower = switch.to_ascii_lowercase();
                    if !HIDDEN_SWITCHES.contains(&lower.as_str()) && !listed(&self.sysmon, &lower) {
                        wrong.push(format!("sysmon -? lists no {switch}"));
                    }
                }
            }
            "sysmonLogView" => {
                for option in options(&words[1..]).filter(|o| !HIDDEN_SWITCHES.contains(o)) {
                    if !listed(&self.logview, option) {
                        wrong.push(format!("sysmonLogView --help lists no {option}"));
                    }
                }
            }
            _ => {
                // cargo xtask <sub> [--option …] [-- cargo test's arguments]
                let Some(sub) = words.get(2) else {
                    return wrong;
                };
                if !self.subcommands.iter().any(|s| s == sub) {
                    return vec![format!("xtask has no subcommand {sub}")];
                }
                let own: Vec<&str> = words[3..]
                    .iter()
                    .copied()
                    .take_while(|w| *w != "--")
                    .collect();
                let sub_help = help(&self.xtask, &[sub, "--help"]);
                for option in options(&own).filter(|o| o.starts_with("--")) {
                    if !listed(&sub_help, option) {
                        wrong.push(format!("cargo xtask {sub} has no {option}"));
                    }
                }
                wrong.extend(test_args_missing(words));
            }
        }
        wrong
    }
}

/// Why a repository path named in a code span does not exist, if it does not. A path starts
/// at the repository's root (`tests/tests/dns.rs`, `configs/real-world/`) or, for a source
/// file, at a crate's source root (`enrich/guid.rs`); `*` matches any run of characters.
fn path_missing(word: &str) -> Option<String> {
    let plain = word
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "/._-*".contains(c));
    if !plain || !word.contains('/') || word.starts_with('/') || word.starts_with("target/") {
        return None;
    }
    let top = word.split('/').next().unwrap();
    let bases: Vec<PathBuf> = if root().join(top).is_dir() {
        vec![root()]
    } else if word.ends_with(".rs") {
        SOURCE_ROOTS.iter().map(|r| root().join(r)).collect()
    } else {
        return None;
    };
    let found = bases
        .iter()
        .any(|base| matches_glob(base, word.trim_end_matches('/')));
    (!found).then(|| "no such file in the repository".into())
}

fn matches_glob(base: &Path, pattern: &str) -> bool {
    let Some((dir, name)) = pattern.rsplit_once('/') else {
        return base.join(pattern).exists();
    };
    let Some((before, after)) = name.split_once('*') else {
        return base.join(pattern).exists();
    };
    std::fs::read_dir(base.join(dir)).is_ok_and(|entries| {
        entries.filter_map(Result::ok).any(|e| {
            let n = e.file_name().to_string_lossy().into_owned();
            n.starts_with(before) && n.ends_with(after) && n.len() >= before.len() + after.len()
        })
    })
}

/// Why a name the pages cite from the code is not in it: a test or function
/// (`rsyslog_restart_during_a_thousand_execs`: four words or more in snake case), an
/// environment variable (`SYSMON_…`), or an item path of the agent (`render::fit::BUDGET`,
/// whose module must exist and hold the rest).
fn name_missing(word: &str, code: &str) -> Option<String> {
    let snake = word.split('_').count() >= 4
        && word
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    let env = word.starts_with("SYSMON_")
        && word
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
    if snake || env {
        return (!code.contains(word)).then(|| "not in the code".into());
    }
    let segments: Vec<&str> = word.split("::").collect();
    let plain = word
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':');
    if segments.len() < 2 || !plain {
        return None;
    }
    let mut module = root().join("sysmon-agent/src");
    let mut file = None;
    let mut rest = segments.as_slice();
    while let Some((first, tail)) = rest.split_first() {
        let (dir, rs) = (module.join(first), module.join(format!("{first}.rs")));
        if rs.exists() {
            file = Some(rs);
        } else if dir.join("mod.rs").exists() {
            file = Some(dir.join("mod.rs"));
        } else {
            break;
        }
        module = dir;
        rest = tail;
    }
    let file = file?;
    let text = read(&file);
    let missing: Vec<&&str> = rest
        .iter()
        .filter(|s| **s != "tests" && !text.contains(**s))
        .collect();
    (!missing.is_empty()).then(|| format!("{} holds no {missing:?}", file.display()))
}

/// Every `.rs` file of the workspace, concatenated.
fn code_text() -> String {
    fn walk(dir: &Path, out: &mut String) {
        for entry in std::fs::read_dir(dir).unwrap().filter_map(Result::ok) {
            let path = entry.path();
            if path.is_dir() && entry.file_name() != "target" {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push_str(&read(&path));
            }
        }
    }
    let mut all = String::new();
    for krate in CODE {
        walk(&root().join(krate), &mut all);
    }
    all
}

/// `cargo xtask test -- --test FILE [FILTER]`: the file is a test target, and a filter names
/// part of a test in it.
fn test_args_missing(words: &[&str]) -> Option<String> {
    let at = words.iter().position(|w| *w == "--test")?;
    let file = trim(words.get(at + 1)?);
    if file.contains('<') {
        return None; // a placeholder: `--test <file>`
    }
    let path = root().join(format!("tests/tests/{file}.rs"));
    if !path.exists() {
        return Some(format!("no test file tests/tests/{file}.rs"));
    }
    let filter = words.get(at + 2).filter(|w| !w.starts_with('-'))?;
    let text = read(&path);
    let named = text
        .split("fn ")
        .skip(1)
        .any(|f| f.split('(').next().unwrap().contains(filter));
    (!named).then(|| format!("no test in tests/tests/{file}.rs matches {filter}"))
}

/// What a binary prints for its help (stdout and stderr), built or not.
fn help(bin: &Path, args: &[&str]) -> String {
    let out = Command::new(bin).args(args).output().unwrap_or_else(|e| {
        panic!(
            "{}: {e}: build it first (`cargo xtask build`; `cargo xtask test` does)",
            bin.display()
        )
    });
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        text.len() > 100,
        "{} {args:?} printed no help: {text}",
        bin.display()
    );
    text
}
