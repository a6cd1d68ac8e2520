//! Configuration errors: every one names the file, the line and column, and what was expected.
//! Where Sysmon for Linux has a message for the same failure (scripts and its integration
//! tests look for them), its words come first: `Failed to load xml configuration: a.xml:3:1: …`.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: String,
    /// 1-based; 0 when the problem is not tied to a place in the file (e.g. unreadable file).
    pub line: u32,
    pub column: u32,
    pub message: String,
    /// Sysmon for Linux's words for this failure, or "".
    pub sfl: &'static str,
}

/// Sysmon for Linux's messages (spec §3.1, §3.2, §3.10).
pub mod sfl {
    pub const OPEN: &str = "Failed to open xml configuration";
    pub const LOAD: &str = "Failed to load xml configuration";
    pub const NO_SYSMON: &str = "Failed to find Sysmon tag in configuration";
    pub const VERSION: &str = "Invalid schema version number";
    pub const UNSUPPORTED: &str = "Incorrect or unsupported schema version";
}

impl ConfigError {
    /// The same error under Sysmon for Linux's `words`.
    pub fn sfl(self, words: &'static str) -> Self {
        ConfigError { sfl: words, ..self }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.sfl.is_empty() {
            write!(f, "{}: ", self.sfl)?;
        }
        if self.line == 0 {
            write!(f, "{}: {}", self.file, self.message)
        } else {
            write!(
                f,
                "{}:{}:{}: {}",
                self.file, self.line, self.column, self.message
            )
        }
    }
}

impl std::error::Error for ConfigError {}

/// Turns byte offsets in the decoded text into line/column errors.
pub(crate) struct Locator<'a> {
    pub file: &'a str,
    pub text: &'a str,
}

impl Locator<'_> {
    pub fn error(&self, offset: usize, message: impl Into<String>) -> ConfigError {
        let (line, column) = line_col(self.text, offset);
        ConfigError {
            file: self.file.to_string(),
            line,
            column,
            message: message.into(),
            sfl: "",
        }
    }

    /// `file:line: message`, for warnings about dropped elements.
    pub fn warning(&self, offset: usize, message: impl fmt::Display) -> String {
        let (line, column) = line_col(self.text, offset);
        format!("{}:{}:{}: {}", self.file, line, column, message)
    }
}

/// 1-based line and column (in characters) of a byte offset.
pub(crate) fn line_col(text: &str, offset: usize) -> (u32, u32) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.bytes().filter(|b| *b == b'\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    (line as u32, column as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_and_column_count_from_one() {
        let text = "ab\ncdé\nf";
        assert_eq!(line_col(text, 0), (1, 1));
        assert_eq!(line_col(text, 4), (2, 2));
        assert_eq!(line_col(text, 8), (3, 1));
        assert_eq!(line_col(text, 999), (3, 2));
    }

    #[test]
    fn display_names_file_line_and_column() {
        let e = ConfigError {
            file: "a.xml".into(),
            line: 3,
            column: 7,
            message: "bad".into(),
            sfl: "",
        };
        assert_eq!(e.to_string(), "a.xml:3:7: bad");
        let e = ConfigError { line: 0, ..e };
        assert_eq!(e.to_string(), "a.xml: bad");
        let e = e.sfl(sfl::LOAD);
        assert_eq!(
            e.to_string(),
            "Failed to load xml configuration: a.xml: bad"
        );
    }
}
