//! The exact XML of one event, as Sysmon for Linux writes it: one line, no declaration,
//! `<X/>` empties, fields in schema order.

use super::fit;
use crate::{enrich::clock, events::Event};

/// The `<System>` values that do not change from event to event.
#[derive(Clone, Debug)]
pub struct Host {
    pub computer: String,
    pub pid: u32,
    pub tid: u32,
    pub euid: u32,
}

impl Host {
    pub fn this() -> Self {
        let mut name = [0u8; 256];
        unsafe { libc::gethostname(name.as_mut_ptr() as *mut libc::c_char, name.len()) };
        let len = name.iter().position(|b| *b == 0).unwrap_or(0);
        Host {
            computer: String::from_utf8_lossy(&name[..len]).into_owned(),
            pid: std::process::id(),
            tid: unsafe { libc::gettid() } as u32,
            euid: unsafe { libc::geteuid() },
        }
    }
}

/// Appends the XML of `ev` to `out` (which is not cleared).
pub fn render(out: &mut String, ev: &Event, host: &Host, record_id: u64, now_ns: i128) {
    let k = ev.kind();
    out.push_str(
        "<Event><System><Provider Name=\"Linux-Sysmon\" \
         Guid=\"{ff032593-a8d3-4f13-b0d6-01fc615a0f97}\"/><EventID>",
    );
    push_num(out, k.id as u64);
    out.push_str("</EventID><Version>");
    push_num(out, k.version as u64);
    out.push_str("</Version><Level>");
    push_num(out, k.level as u64);
    out.push_str("</Level><Task>");
    push_num(out, k.id as u64);
    out.push_str(
        "</Task><Opcode>0</Opcode><Keywords>0x8000000000000000</Keywords>\
         <TimeCreated SystemTime=\"",
    );
    clock::write_system_time(out, now_ns);
    out.push_str("\"/><EventRecordID>");
    push_num(out, record_id);
    out.push_str("</EventRecordID><Correlation/><Execution ProcessID=\"");
    push_num(out, host.pid as u64);
    out.push_str("\" ThreadID=\"");
    push_num(out, host.tid as u64);
    out.push_str("\"/><Channel>Linux-Sysmon/Operational</Channel><Computer>");
    escape(out, &host.computer);
    out.push_str("</Computer><Security UserId=\"");
    push_num(out, host.euid as u64);
    out.push_str("\"/></System><EventData>");
    for (name, value) in ev.pairs() {
        out.push_str("<Data Name=\"");
        out.push_str(name);
        out.push_str("\">");
        escape(out, value);
        out.push_str("</Data>");
    }
    out.push_str("</EventData></Event>");
}

fn push_num(out: &mut String, n: u64) {
    super::digits::push_u64(out, n);
}

/// [`render`] within `budget` bytes: an event whose XML would be longer has its longest
/// values cut first ([`fit::shrink`]), so that every sink gets it whole.
pub fn render_within(
    out: &mut String,
    ev: &mut Event,
    host: &Host,
    record_id: u64,
    now_ns: i128,
    budget: usize,
) {
    let start = out.len();
    render(out, ev, host, record_id, now_ns);
    let len = out.len() - start;
    if len > budget {
        fit::shrink(ev, len - budget, escaped_len);
        out.truncate(start);
        render(out, ev, host, record_id, now_ns);
    }
}

/// libxml2's escapes (`<`, `>`, `&`, `"`, CR), plus LF and TAB as character references so
/// that one event stays one syslog line and syslog daemons do not rewrite them. What XML 1.0
/// cannot carry at all (other control characters, U+FFFE, U+FFFF) is written as `\xNN` per
/// byte, as `events::text` does for kernel bytes, so that every value is safe here whatever
/// its source.
pub fn escape(out: &mut String, s: &str) {
    escape_with(s, |piece| out.push_str(piece));
}

/// The length of `s` once escaped.
pub fn escaped_len(s: &str) -> usize {
    let mut n = 0;
    escape_with(s, |piece| n += piece.len());
    n
}

fn escape_with(s: &str, mut put: impl FnMut(&str)) {
    let bytes = s.as_bytes();
    let mut done = 0;
    let mut at = 0;
    // Every byte to escape is ASCII or 0xEF (a lead byte), so slicing at one never splits a
    // character.
    while let Some(i) = next_special(bytes, at) {
        let b = bytes[i];
        let rep = ESCAPES[b as usize];
        let hex = match (rep, b) {
            (HEX, 0xEF) if matches!(bytes.get(i + 1..i + 3), Some([0xBF, 0xBE | 0xBF])) => 3,
            (HEX, 0xEF) => {
                at = i + 1;
                continue;
            }
            (HEX, _) => 1,
            _ => 0,
        };
        put(&s[done..i]);
        if hex == 0 {
            put(rep);
            done = i + 1;
        } else {
            for b in &bytes[i..i + hex] {
                let digits = [
                    b'\\',
                    b'x',
                    HEX_DIGITS[(b >> 4) as usize],
                    HEX_DIGITS[(b & 15) as usize],
                ];
                put(std::str::from_utf8(&digits).unwrap_or_default());
            }
            done = i + hex;
        }
        at = done;
    }
    put(&s[done..]);
}

/// The first byte from `from` on that may need escaping. Most values need none: eight bytes
/// are looked at per branch.
fn next_special(bytes: &[u8], from: usize) -> Option<usize> {
    let rest = bytes.get(from..)?;
    let mut chunks = rest.chunks_exact(8);
    let mut base = from;
    for c in &mut chunks {
        let any = c.iter().fold(0u8, |m, b| m | SPECIAL[*b as usize]);
        if any != 0 {
            return c
                .iter()
                .position(|b| SPECIAL[*b as usize] != 0)
                .map(|i| base + i);
        }
        base += 8;
    }
    chunks
        .remainder()
        .iter()
        .position(|b| SPECIAL[*b as usize] != 0)
        .map(|i| base + i)
}

/// 1 for a byte with an entry in `ESCAPES`.
static SPECIAL: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut b = 0;
    while b < 256 {
        t[b] = !ESCAPES[b].is_empty() as u8;
        b += 1;
    }
    t
};

/// Marks a byte written as `\xNN`.
const HEX: &str = "\\x";
const HEX_DIGITS: &[u8; 16] = b"0123456789abcdef";

/// The replacement of each byte, or "" to keep it.
static ESCAPES: [&str; 256] = {
    let mut t = [""; 256];
    let mut b = 0;
    while b < 0x20 {
        t[b] = HEX;
        b += 1;
    }
    t[0xEF] = HEX; // only U+FFFE and U+FFFF, see escape_with
    t[b'<' as usize] = "&lt;";
    t[b'>' as usize] = "&gt;";
    t[b'&' as usize] = "&amp;";
    t[b'"' as usize] = "&quot;";
    t[b'\r' as usize] = "&#13;";
    t[b'\n' as usize] = "&#10;";
    t[b'\t' as usize] = "&#9;";
    t
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes() {
        let cases = [
            ("plain", "plain"),
            ("a<b>c", "a&lt;b&gt;c"),
            ("x & \"y\" 'z'", "x &amp; &quot;y&quot; 'z'"),
            ("l1\nl2\r\tend", "l1&#10;l2&#13;&#9;end"),
            ("café", "café"),
            ("bell\x07 nul\x00", "bell\\x07 nul\\x00"),
            ("a\u{FFFE}b\u{FFFF}", "a\\xef\\xbf\\xbeb\\xef\\xbf\\xbf"),
            ("\u{FFFD}\u{F000}\u{EFFF}", "\u{FFFD}\u{F000}\u{EFFF}"),
            // Longer than the 8 bytes looked at at once: specials in and across chunks.
            (
                "/usr/bin/python3 -c \"a<b\" && x\ty\u{F000}z\u{FFFF}",
                "/usr/bin/python3 -c &quot;a&lt;b&quot; &amp;&amp; x&#9;y\u{F000}z\\xef\\xbf\\xbf",
            ),
            ("01234567<", "01234567&lt;"),
            ("0123456\u{F000}89abcdef&", "0123456\u{F000}89abcdef&amp;"),
        ];
        for (input, want) in cases {
            let mut s = String::new();
            escape(&mut s, input);
            assert_eq!(s, want, "input {input:?}");
            assert_eq!(escaped_len(input), want.len(), "input {input:?}");
        }
    }

    #[test]
    fn render_within_cuts_an_event_to_the_budget() {
        use crate::events::schema;
        let kind = schema::by_id(schema::PROCESS_CREATE).unwrap();
        let quotes = "\"".repeat(32 * 1024);
        let mut ev = Event::new(kind);
        for f in kind.fields {
            ev.push(if f.ends_with("CommandLine") {
                &quotes
            } else {
                "x"
            });
        }
        let host = Host {
            computer: "h".into(),
            pid: 1,
            tid: 1,
            euid: 0,
        };
        for budget in [fit::BUDGET, 4096] {
            let mut e = ev.clone();
            let mut out = String::new();
            render_within(&mut out, &mut e, &host, 7, 0, budget);
            assert!(out.len() <= budget, "{} > {budget}", out.len());
            assert!(
                out.len() > budget - 64,
                "{} much less than {budget}",
                out.len()
            );
            for f in ["CommandLine", "ParentCommandLine"] {
                assert!(e.field(f).unwrap().ends_with("\"..."), "{f} cut and marked");
            }
        }
        // Small events are untouched.
        let mut e = ev.clone();
        e.set(kind.field_index("CommandLine").unwrap(), "ls");
        e.set(kind.field_index("ParentCommandLine").unwrap(), "sh");
        let (mut a, mut b) = (String::new(), String::new());
        render(&mut a, &e, &host, 7, 0);
        render_within(&mut b, &mut e, &host, 7, 0, fit::BUDGET);
        assert_eq!(a, b);
    }

    /// XML 1.0's `Char`: what a conforming parser accepts.
    fn xml_char(c: char) -> bool {
        matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
    }

    #[test]
    fn every_character_comes_out_as_xml_characters() {
        let mut out = String::new();
        for c in ('\0'..='\u{10FFFF}').filter(|c| (*c as u32) < 0x3_0000 || !xml_char(*c)) {
            out.clear();
            let mut buf = [0; 4];
            escape(&mut out, c.encode_utf8(&mut buf));
            assert!(out.chars().all(xml_char), "{c:?} gave {out:?}");
        }
    }
}
