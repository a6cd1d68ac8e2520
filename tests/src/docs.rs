//! README.md and docs/*.md read for the checks of tests/tests/docs.rs: the pages, their
//! prose and fenced code, inline code spans, links, headings' anchors and the commands they
//! show.

use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
};

/// One page: its name from the repository's root (`docs/events.md`), path and text.
pub struct Page {
    pub name: String,
    pub path: PathBuf,
    pub text: String,
}

/// The repository's root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Cargo's target directory (`CARGO_TARGET_DIR`, else `target/`).
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root().join("target"), PathBuf::from)
}

/// A file's text; a file that cannot be read fails the test, naming it.
pub fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// README.md and every page under docs/.
pub fn pages() -> Vec<Page> {
    let mut paths = vec![root().join("README.md")];
    for entry in std::fs::read_dir(root().join("docs")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "md") {
            paths.push(path);
        }
    }
    paths.sort();
    assert!(paths.len() > 5, "docs/ has pages");
    paths
        .into_iter()
        .map(|path| Page {
            name: path.strip_prefix(root()).unwrap().display().to_string(),
            text: read(&path),
            path,
        })
        .collect()
}

/// The page's text outside fenced code blocks, and the lines inside them.
fn split_fences(text: &str) -> (String, Vec<&str>) {
    let (mut prose, mut code, mut fenced) = (String::new(), Vec::new(), false);
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
        } else if fenced {
            code.push(line);
        } else {
            prose.push_str(line);
            prose.push('\n');
        }
    }
    (prose, code)
}

/// Inline code spans of the prose (they may run over a line break).
pub fn spans(text: &str) -> Vec<String> {
    let (prose, _) = split_fences(text);
    prose
        .split('`')
        .skip(1)
        .step_by(2)
        .map(|s| s.replace('\n', " "))
        .collect()
}

/// Targets of relative links: `[text](target)`.
pub fn links(text: &str) -> Vec<String> {
    let (prose, _) = split_fences(text);
    prose
        .split("](")
        .skip(1)
        .filter_map(|rest| rest.split_once(')').map(|(t, _)| t.to_string()))
        .filter(|t| !t.contains("://") && !t.starts_with("mailto:"))
        .collect()
}

/// GitHub's anchors for the page's headings: lower case, punctuation dropped, spaces to
/// hyphens, `-1`, `-2` … for repeats.
pub fn anchors(text: &str) -> BTreeSet<String> {
    let (prose, _) = split_fences(text);
    let mut seen = BTreeSet::new();
    for heading in prose.lines().filter_map(|l| l.strip_prefix('#')) {
        let title = heading.trim_start_matches('#').trim();
        let slug: String = title
            .to_lowercase()
            .chars()
            .filter(|c| c.is_alphanumeric() || matches!(c, ' ' | '-' | '_'))
            .map(|c| if c == ' ' { '-' } else { c })
            .collect();
        let mut anchor = slug.clone();
        let mut n = 0;
        while !seen.insert(anchor.clone()) {
            n += 1;
            anchor = format!("{slug}-{n}");
        }
    }
    seen
}

/// A word without the punctuation around it in prose and usage lines.
pub fn trim(word: &str) -> &str {
    word.trim_matches(|c: char| {
        matches!(c, '[' | ']' | '(' | ')' | ',' | ';' | ':' | '.' | '|' | '"')
    })
}

/// Commands the pages show, from code spans and fenced blocks: each `sysmon …`,
/// `sysmonLogView …` or `cargo xtask …`, up to a pipe, `;`, `&&` or a comment.
pub fn commands(text: &str) -> Vec<String> {
    let (_, code) = split_fences(text);
    let mut found = Vec::new();
    for piece in spans(text).iter().map(String::as_str).chain(code) {
        for part in piece.split(['|', ';', '#']).flat_map(|p| p.split("&&")) {
            let words: Vec<&str> = part.split_whitespace().collect();
            let start = words.iter().position(|w| {
                let program = w.rsplit('/').next().unwrap();
                program == "sysmon" || program == "sysmonLogView" || *w == "cargo"
            });
            let Some(start) = start else { continue };
            let words = &words[start..];
            let program = words[0].rsplit('/').next().unwrap();
            let xtask = program == "cargo" && words.get(1) == Some(&"xtask");
            if program != "cargo" || xtask {
                found.push(words.join(" "));
            }
        }
    }
    found
}

/// Option words (`-x`, `--long`), without their values (`--color=auto` → `--color`), and not
/// the bare `--` that ends them.
pub fn options<'a>(words: &'a [&'a str]) -> impl Iterator<Item = &'a str> {
    words
        .iter()
        .map(|w| w.split('=').next().unwrap())
        .filter(|w| w.starts_with('-') && *w != "--" && w.len() > 1)
}
