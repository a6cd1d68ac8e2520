//! Turning raw (XML-escaped) values back into text for people, `-f` and JSON.
//!
//! Values arrive escaped by §2.3 plus our renderer's two additions: LF, TAB and CR as
//! `&#10;` `&#9;` `&#13;`, and bytes that are not UTF-8 or are control characters as the
//! four characters `\xNN`. Entities are decoded. `\xNN` is left as it is: the renderer does
//! not escape backslashes, so a command line such as `printf '\x41'` looks the same, and
//! turning it into a byte would falsify data. For the same reason rsyslog's `#012` stays text.
//!
//! Printing must never let a value break the one-line-per-field layout or send escape
//! sequences to a terminal, so for people control characters (from entities, or raw from
//! SfL logs) and bytes that are not UTF-8 are shown as `\xNN` too.

use memchr::memchr;
use std::io::{self, Write};

/// Appends `raw` with XML entities decoded. Unknown or broken entities are kept as text.
pub fn decode(raw: &[u8], out: &mut Vec<u8>) {
    let mut rest = raw;
    while let Some(amp) = memchr(b'&', rest) {
        out.extend_from_slice(&rest[..amp]);
        rest = &rest[amp..];
        match entity(rest) {
            Some((ch, len)) => {
                let mut utf8 = [0; 4];
                out.extend_from_slice(ch.encode_utf8(&mut utf8).as_bytes());
                rest = &rest[len..];
            }
            None => {
                out.push(b'&');
                rest = &rest[1..];
            }
        }
    }
    out.extend_from_slice(rest);
}

/// Decodes the entity at the start of `s` (which starts with `&`): the character and the
/// length of the entity text.
fn entity(s: &[u8]) -> Option<(char, usize)> {
    let semi = memchr(b';', &s[..s.len().min(12)])?;
    let body = &s[1..semi];
    let ch = match body {
        b"lt" => '<',
        b"gt" => '>',
        b"amp" => '&',
        b"quot" => '"',
        b"apos" => '\'',
        [b'#', b'x' | b'X', hex @ ..] => char::from_u32(parse_radix(hex, 16)?)?,
        [b'#', dec @ ..] => char::from_u32(parse_radix(dec, 10)?)?,
        _ => return None,
    };
    Some((ch, semi + 1))
}

fn parse_radix(digits: &[u8], radix: u32) -> Option<u32> {
    if digits.is_empty() {
        return None;
    }
    u32::from_str_radix(std::str::from_utf8(digits).ok()?, radix).ok()
}

/// True when `raw` needs no work at all: printable ASCII without `&`. The common case,
/// checked in one pass so most values are copied straight to the output.
fn plain(raw: &[u8], also_special: &[u8]) -> bool {
    raw.iter()
        .all(|&b| (0x20..0x7f).contains(&b) && b != b'&' && !also_special.contains(&b))
}

/// Writes a raw value for people: entities decoded, control characters and bytes that are
/// not UTF-8 as `\xNN`. `scratch` is a reused buffer.
pub fn write_display(w: &mut impl Write, raw: &[u8], scratch: &mut Vec<u8>) -> io::Result<()> {
    if plain(raw, b"") {
        return w.write_all(raw);
    }
    scratch.clear();
    decode(raw, scratch);
    for_utf8_chunks(scratch, |chunk| match chunk {
        Ok(s) => {
            let mut start = 0;
            for (i, b) in s.bytes().enumerate() {
                if b < 0x20 || b == 0x7f {
                    w.write_all(&s.as_bytes()[start..i])?;
                    write!(w, "\\x{b:02x}")?;
                    start = i + 1;
                }
            }
            w.write_all(&s.as_bytes()[start..])
        }
        Err(b) => write!(w, "\\x{b:02x}"),
    })
}

/// Writes a raw value as a JSON string (with quotes): entities decoded, JSON escapes for
/// `"`, `\` and control characters; bytes that are not UTF-8 as the text `\xNN` since JSON
/// strings must be UTF-8.
pub fn write_json(w: &mut impl Write, raw: &[u8], scratch: &mut Vec<u8>) -> io::Result<()> {
    w.write_all(b"\"")?;
    if plain(raw, b"\"\\") {
        w.write_all(raw)?;
        return w.write_all(b"\"");
    }
    scratch.clear();
    decode(raw, scratch);
    for_utf8_chunks(scratch, |chunk| match chunk {
        Ok(s) => crate::render::json::escaped(w, s),
        Err(b) => write!(w, "\\\\x{b:02x}"),
    })?;
    w.write_all(b"\"")
}

/// Decoded, printable text as an owned string (for the tree and the summary, which keep
/// values past the line they came from).
pub fn to_display_string(raw: &[u8], scratch: &mut Vec<u8>) -> String {
    let mut out = Vec::with_capacity(raw.len());
    // Writing into a Vec cannot fail.
    let _ = write_display(&mut out, raw, scratch);
    String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// Calls `f` on each valid UTF-8 run of `bytes` and on each byte that is not part of one.
fn for_utf8_chunks(
    mut bytes: &[u8],
    mut f: impl FnMut(Result<&str, u8>) -> io::Result<()>,
) -> io::Result<()> {
    loop {
        match std::str::from_utf8(bytes) {
            Ok(s) => return f(Ok(s)),
            Err(e) => {
                let (good, rest) = bytes.split_at(e.valid_up_to());
                // SAFETY: from_utf8 just said these bytes are valid UTF-8.
                f(Ok(unsafe { std::str::from_utf8_unchecked(good) }))?;
                let bad = e.error_len().unwrap_or(rest.len());
                for &b in &rest[..bad] {
                    f(Err(b))?;
                }
                bytes = &rest[bad..];
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode_table() {
        let cases: &[(&[u8], &[u8])] = &[
            (b"plain", b"plain"),
            (b"a&lt;b&gt;c&amp;d&quot;e&apos;", b"a<b>c&d\"e'"),
            (b"l1&#10;l2&#9;x&#13;", b"l1\nl2\tx\r"),
            (b"&#x41;&#233;", "A\u{e9}".as_bytes()),
            (b"AT&T & &bogus; &#xZZ; &", b"AT&T & &bogus; &#xZZ; &"),
            (b"#012 \\x07 stay", b"#012 \\x07 stay"),
        ];
        for (raw, want) in cases {
            let mut out = Vec::new();
            decode(raw, &mut out);
            assert_eq!(out, *want, "{}", String::from_utf8_lossy(raw));
        }
    }

    #[test]
    fn display_and_json_table() {
        // (raw, display, json)
        let cases: &[(&[u8], &str, &str)] = &[
            (b"/usr/bin/curl", "/usr/bin/curl", r#""/usr/bin/curl""#),
            (b"a&lt;b", "a<b", r#""a<b""#),
            (b"l1&#10;l2&#9;", r"l1\x0al2\x09", r#""l1\nl2\t""#),
            (b"raw\x1b[31m", r"raw\x1b[31m", r#""raw\u001b[31m""#),
            (b"caf\xc3\xa9 \xff", r"café \xff", r#""café \\xff""#),
            (b"q&quot;\\", "q\"\\", r#""q\"\\""#),
            (b"\\x07", r"\x07", r#""\\x07""#),
            (b"", "", r#""""#),
        ];
        let mut scratch = Vec::new();
        for (raw, display, json) in cases {
            let mut out = Vec::new();
            write_display(&mut out, raw, &mut scratch).unwrap();
            assert_eq!(String::from_utf8(out).unwrap(), *display);
            let mut out = Vec::new();
            write_json(&mut out, raw, &mut scratch).unwrap();
            let out = String::from_utf8(out).unwrap();
            assert_eq!(out, *json);
            let back: String = serde_json::from_str(&out).unwrap();
            assert!(!back.contains('\u{fffd}'));
        }
    }
}
