//! The exact XML of one event, as Sysmon for Linux writes it: one line, no declaration,
//! `<X/>` empties, fields in schema order.

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
    use std::fmt::Write;
    let _ = write!(out, "{n}");
}

/// libxml2's escapes (`<`, `>`, `&`, `"`, CR), plus LF and TAB as character references so
/// that one event stays one syslog line and syslog daemons do not rewrite them.
pub fn escape(out: &mut String, s: &str) {
    let bytes = s.as_bytes();
    let mut done = 0;
    // Every byte to escape is ASCII, so slicing at one never splits a character.
    for (i, b) in bytes.iter().enumerate() {
        let rep = ESCAPES[*b as usize];
        if !rep.is_empty() {
            out.push_str(&s[done..i]);
            out.push_str(rep);
            done = i + 1;
        }
    }
    out.push_str(&s[done..]);
}

/// The replacement of each byte, or "" to keep it.
static ESCAPES: [&str; 256] = {
    let mut t = [""; 256];
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
        ];
        for (input, want) in cases {
            let mut s = String::new();
            escape(&mut s, input);
            assert_eq!(s, want, "input {input:?}");
        }
    }
}
