//! Configuration errors: every one names the file, the line and column, and what was expected.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: String,
    /// 1-based; 0 when the problem is not tied to a place in the file (e.g. unreadable file).
    pub line: u32,
    pub column: u32,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
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
        };
        assert_eq!(e.to_string(), "a.xml:3:7: bad");
        let e = ConfigError { line: 0, ..e };
        assert_eq!(e.to_string(), "a.xml: bad");
    }
}
