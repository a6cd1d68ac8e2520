//! Turns the bytes of a config file into text (spec §3.11): UTF-8 with or without BOM,
//! UTF-16 (LE, or BE with a BOM) with or without BOM, ISO-8859-1 when the declaration says so.

/// Decoded text, or (byte offset in the input, message).
pub(crate) fn decode(bytes: &[u8]) -> Result<String, (usize, String)> {
    if let Some(rest) = bytes.strip_prefix(&[0xFF, 0xFE]) {
        return utf16(rest, u16::from_le_bytes, 2);
    }
    if let Some(rest) = bytes.strip_prefix(&[0xFE, 0xFF]) {
        return utf16(rest, u16::from_be_bytes, 2);
    }
    // No BOM: an ASCII character followed by a zero byte can only be UTF-16LE (Sysmon's test).
    if bytes.len() >= 2 && bytes[1] == 0 && bytes[0] != 0 {
        return utf16(bytes, u16::from_le_bytes, 0);
    }
    if bytes.len() >= 2 && bytes[0] == 0 && bytes[1] != 0 {
        return utf16(bytes, u16::from_be_bytes, 0);
    }
    let (body, skip) = match bytes.strip_prefix(&[0xEF, 0xBB, 0xBF]) {
        Some(rest) => (rest, 3),
        None => (bytes, 0),
    };
    match declared_encoding(body)
        .map(|e| e.to_ascii_lowercase())
        .as_deref()
    {
        None | Some("utf-8") | Some("utf8") => match std::str::from_utf8(body) {
            Ok(s) => Ok(s.to_string()),
            Err(e) => Err((
                skip + e.valid_up_to(),
                "invalid UTF-8; expected UTF-8, UTF-16 or a declared ISO-8859-1 file".to_string(),
            )),
        },
        Some("iso-8859-1" | "iso8859-1" | "latin1" | "latin-1" | "us-ascii" | "ascii") => {
            Ok(body.iter().map(|&b| b as char).collect())
        }
        Some("utf-16" | "utf-16le" | "utf-16be") => Err((
            skip,
            "declared UTF-16 but the file is 8-bit; expected UTF-16 bytes".to_string(),
        )),
        Some(other) => Err((
            skip,
            format!("unsupported encoding '{other}'; expected UTF-8, UTF-16 or ISO-8859-1"),
        )),
    }
}

fn utf16(bytes: &[u8], unit: fn([u8; 2]) -> u16, skip: usize) -> Result<String, (usize, String)> {
    let units = bytes
        .chunks(2)
        .map(|c| unit([c[0], *c.get(1).unwrap_or(&0)]));
    let mut out = String::with_capacity(bytes.len() / 2);
    for (i, c) in char::decode_utf16(units).enumerate() {
        match c {
            Ok(c) => out.push(c),
            Err(_) => return Err((skip + 2 * i, "invalid UTF-16 (lone surrogate)".to_string())),
        }
    }
    Ok(out)
}

/// The `encoding="…"` of a leading `<?xml …?>` declaration (ASCII-compatible input).
fn declared_encoding(bytes: &[u8]) -> Option<&str> {
    let start = bytes.iter().position(|b| !b.is_ascii_whitespace())?;
    let rest = bytes[start..].strip_prefix(b"<?xml")?;
    let end = rest.windows(2).position(|w| w == b"?>")?;
    let decl = std::str::from_utf8(&rest[..end]).ok()?;
    let at = decl.find("encoding")?;
    let after = decl[at + "encoding".len()..]
        .trim_start()
        .strip_prefix('=')?
        .trim_start();
    let quote = after.chars().next().filter(|q| *q == '"' || *q == '\'')?;
    let value = &after[1..];
    Some(&value[..value.find(quote)?])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utf16le(s: &str, bom: bool) -> Vec<u8> {
        let mut v = if bom { vec![0xFF, 0xFE] } else { vec![] };
        s.encode_utf16().for_each(|u| v.extend(u.to_le_bytes()));
        v
    }

    /// Sysmon's DetectEncoding files: each one must come out as the same text.
    #[test]
    fn every_sysmon_encoding_variant_decodes() {
        let body = "<Sysmon schemaversion=\"4.50\"><EventFiltering/></Sysmon>";
        let iso = "<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?>";
        let utf8 = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>";
        let utf16 = "<?xml version=\"1.0\" encoding=\"UTF-16\"?>";
        let bom8 = |s: &str| [&[0xEF, 0xBB, 0xBF][..], s.as_bytes()].concat();
        let cases: Vec<(&str, Vec<u8>)> = vec![
            (
                "iso8859-nobom-iso8859enc",
                format!("{iso}{body}").into_bytes(),
            ),
            ("iso8859-utf8bom-iso8859enc", bom8(&format!("{iso}{body}"))),
            ("utf16-nobom-noenc", utf16le(body, false)),
            (
                "utf16-nobom-noenc-ws",
                utf16le(&format!("  \r\n{body}"), false),
            ),
            (
                "utf16-nobom-utf16enc",
                utf16le(&format!("{utf16}{body}"), false),
            ),
            ("utf16-utf16bom-noenc", utf16le(body, true)),
            (
                "utf16-utf16bom-noenc-ws",
                utf16le(&format!("\n {body}"), true),
            ),
            (
                "utf16-utf16bom-utf16enc",
                utf16le(&format!("{utf16}{body}"), true),
            ),
            ("utf8-nobom-noenc", body.as_bytes().to_vec()),
            ("utf8-nobom-noenc-ws", format!(" \n{body}").into_bytes()),
            ("utf8-nobom-utf8enc", format!("{utf8}{body}").into_bytes()),
            ("utf8-utf8bom-noenc", bom8(body)),
            ("utf8-utf8bom-utf8enc", bom8(&format!("{utf8}{body}"))),
        ];
        for (name, bytes) in cases {
            let text = decode(&bytes).unwrap_or_else(|e| panic!("{name}: {e:?}"));
            assert!(text.ends_with(body), "{name}: {text:?}");
        }
    }

    #[test]
    fn latin1_bytes_become_their_code_points() {
        let text = decode(b"<?xml version='1.0' encoding='iso-8859-1'?><a>\xe9\x88</a>").unwrap();
        assert!(text.ends_with("<a>\u{e9}\u{88}</a>"));
    }

    #[test]
    fn bad_bytes_are_reported_with_their_offset() {
        assert_eq!(decode(b"<a>\xff</a>").unwrap_err().0, 3);
        assert!(decode(&[0xFF, 0xFE, 0x00, 0xD8]).is_err());
        assert!(decode(b"<?xml version='1.0' encoding='EBCDIC'?><a/>").is_err());
    }
}
