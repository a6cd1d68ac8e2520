//! Turning kernel bytes into event text.
//!
//! Field values must be valid XML character data after escaping. Bytes that are not UTF-8,
//! and the characters XML 1.0 cannot carry at all (control characters other than TAB, LF
//! and CR; U+FFFE and U+FFFF), are written as `\xNN` per byte (a documented, readable and
//! reversible-by-eye form); everything else is kept as is. Surrogates cannot occur: they
//! are not valid UTF-8, so their bytes already come out as `\xNN`.

use std::fmt::Write;

/// Appends `bytes` to `out`, replacing what XML cannot carry with `\xNN`.
pub fn push_bytes(out: &mut String, mut bytes: &[u8]) {
    loop {
        match std::str::from_utf8(bytes) {
            Ok(s) => {
                push_str(out, s);
                return;
            }
            Err(e) => {
                let (good, rest) = bytes.split_at(e.valid_up_to());
                // SAFETY: from_utf8 just said these bytes are valid UTF-8.
                push_str(out, unsafe { std::str::from_utf8_unchecked(good) });
                let bad = e.error_len().unwrap_or(rest.len());
                for b in &rest[..bad] {
                    let _ = write!(out, "\\x{b:02x}");
                }
                bytes = &rest[bad..];
            }
        }
    }
}

fn push_str(out: &mut String, s: &str) {
    // 0xEF leads U+F000..U+FFFF, among them the two non-characters.
    if !s.bytes().any(|b| forbidden_byte(b) || b == 0xEF) {
        out.push_str(s);
        return;
    }
    for c in s.chars() {
        if forbidden(c) {
            for b in c.encode_utf8(&mut [0; 4]).bytes() {
                let _ = write!(out, "\\x{b:02x}");
            }
        } else {
            out.push(c);
        }
    }
}

/// ASCII characters XML 1.0 forbids even as character references.
fn forbidden_byte(b: u8) -> bool {
    b < 0x20 && !matches!(b, b'\t' | b'\n' | b'\r')
}

/// Characters outside XML 1.0's `Char` production (surrogates cannot be in a `str`).
pub fn forbidden(c: char) -> bool {
    (c.is_ascii() && forbidden_byte(c as u8)) || matches!(c, '\u{FFFE}' | '\u{FFFF}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table() {
        let cases: &[(&[u8], &str)] = &[
            (b"plain", "plain"),
            (b"a<b&\"'", "a<b&\"'"),
            (b"tab\tnl\ncr\r", "tab\tnl\ncr\r"),
            (b"\xff\xfeok", "\\xff\\xfeok"),
            (b"caf\xc3\xa9", "café"),
            (b"cut\xc3", "cut\\xc3"),
            (b"bell\x07", "bell\\x07"),
            (b"nul\x00esc\x1b", "nul\\x00esc\\x1b"),
            (
                "a\u{FFFE}b\u{FFFF}c".as_bytes(),
                "a\\xef\\xbf\\xbeb\\xef\\xbf\\xbfc",
            ),
            // Neighbours of the non-characters are fine XML and stay as they are.
            (
                "\u{FFFD}\u{F000}\u{10000}".as_bytes(),
                "\u{FFFD}\u{F000}\u{10000}",
            ),
            (b"\xed\xa0\x80", "\\xed\\xa0\\x80"), // a surrogate's encoding is not UTF-8
            (b"", ""),
        ];
        for (input, want) in cases {
            let mut s = String::new();
            push_bytes(&mut s, input);
            assert_eq!(&s, want, "input {input:?}");
        }
    }
}
