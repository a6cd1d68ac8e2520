//! Turning kernel bytes into event text.
//!
//! Field values must be valid XML character data after escaping. Bytes that are not UTF-8,
//! and control characters that XML 1.0 cannot carry at all, are written as `\xNN` (a
//! documented, readable and reversible-by-eye form); everything else is kept as is.

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
    if !s.bytes().any(forbidden) {
        out.push_str(s);
        return;
    }
    for c in s.chars() {
        if c.is_ascii() && forbidden(c as u8) {
            let _ = write!(out, "\\x{:02x}", c as u8);
        } else {
            out.push(c);
        }
    }
}

/// Characters XML 1.0 forbids even as character references.
fn forbidden(b: u8) -> bool {
    b < 0x20 && !matches!(b, b'\t' | b'\n' | b'\r')
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
            (b"", ""),
        ];
        for (input, want) in cases {
            let mut s = String::new();
            push_bytes(&mut s, input);
            assert_eq!(&s, want, "input {input:?}");
        }
    }
}
