//! Reading events back from syslog lines with a standard XML parser.

use quick_xml::{Reader, events::Event as Xml};

#[derive(Debug, Clone)]
pub struct Event {
    /// `programname facility severity` as rsyslog saw them.
    pub syslog: String,
    pub id: u16,
    pub record_id: u64,
    /// The agent's pid (`Execution/@ProcessID`).
    pub agent_pid: u32,
    pub data: Vec<(String, String)>,
}

impl Event {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.data
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Every line holding an event; panics on one that is not well-formed XML 1.0 (quick-xml
/// does not check characters, so that is done here: a strict parser refuses U+FFFE).
pub fn parse_lines(lines: &[String]) -> Vec<Event> {
    lines
        .iter()
        .filter_map(|l| {
            let at = l.find("<Event>")?;
            if let Some(c) = l[at..].chars().find(|c| !xml_char(*c)) {
                panic!("{c:?} is not an XML 1.0 character: {l}");
            }
            Some(parse(l[..at].trim(), &l[at..]).unwrap_or_else(|e| panic!("bad XML ({e}): {l}")))
        })
        .collect()
}

/// XML 1.0's `Char` production.
pub fn xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
}

pub fn parse(prefix: &str, xml: &str) -> Result<Event, String> {
    let err = |e: &dyn std::fmt::Display| e.to_string();
    let mut r = Reader::from_str(xml);
    let mut ev = Event {
        syslog: prefix.to_string(),
        id: 0,
        record_id: 0,
        agent_pid: 0,
        data: vec![],
    };
    let mut name = String::new();
    let mut text = String::new();
    let mut depth = 0usize;
    loop {
        match r.read_event().map_err(|e| err(&e))? {
            x @ (Xml::Start(_) | Xml::Empty(_)) => {
                let (Xml::Start(s) | Xml::Empty(s)) = &x else {
                    unreachable!()
                };
                for a in s.attributes() {
                    let a = a.map_err(|e| err(&e))?;
                    let v = a.unescape_value().map_err(|e| err(&e))?.into_owned();
                    match (s.name().as_ref(), a.key.as_ref()) {
                        (b"Data", b"Name") => name = v,
                        (b"Execution", b"ProcessID") => ev.agent_pid = v.parse().unwrap_or(0),
                        _ => {}
                    }
                }
                text.clear();
                match x {
                    Xml::Empty(s) if s.name().as_ref() == b"Data" => {
                        ev.data.push((std::mem::take(&mut name), String::new()))
                    }
                    Xml::Start(_) => depth += 1,
                    _ => {}
                }
            }
            Xml::Text(t) => text.push_str(&t.decode().map_err(|e| err(&e))?),
            Xml::GeneralRef(g) => match g.resolve_char_ref().map_err(|e| err(&e))? {
                Some(c) => text.push(c),
                None => text.push(match g.as_ref() {
                    b"lt" => '<',
                    b"gt" => '>',
                    b"amp" => '&',
                    b"quot" => '"',
                    b"apos" => '\'',
                    other => {
                        return Err(format!("unknown entity {}", String::from_utf8_lossy(other)));
                    }
                }),
            },
            Xml::End(e) => {
                match e.name().as_ref() {
                    b"Data" => ev
                        .data
                        .push((std::mem::take(&mut name), std::mem::take(&mut text))),
                    b"EventID" => ev.id = text.parse().map_err(|_| format!("EventID {text}"))?,
                    b"EventRecordID" => ev.record_id = text.parse().map_err(|_| "EventRecordID")?,
                    _ => {}
                }
                text.clear();
                depth = depth.saturating_sub(1);
            }
            Xml::Eof if depth == 0 => break,
            Xml::Eof => return Err("truncated event".into()),
            _ => {}
        }
    }
    if ev.id == 0 {
        return Err("no EventID".into());
    }
    Ok(ev)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_back_escapes() {
        let xml = "<Event><System><EventID>1</EventID><EventRecordID>7</EventRecordID>\
                   <Execution ProcessID=\"9\" ThreadID=\"9\"/></System><EventData>\
                   <Data Name=\"A\">x &lt;&amp;&quot; y&#10;z</Data><Data Name=\"B\"/></EventData></Event>";
        let e = parse("sysmon user info", xml).unwrap();
        assert_eq!((e.id, e.record_id, e.agent_pid), (1, 7, 9));
        assert_eq!(e.get("A"), Some("x <&\" y\nz"));
        assert_eq!(e.get("B"), Some(""));
        assert!(parse("", "<Event><System><EventID>1</EventID>").is_err());
    }
}
