//! One `<Event>…</Event>` document parsed in place.
//!
//! Our events (and SfL's) are one line of XML with a fixed, flat shape, so a small scanner
//! over the bytes is enough and several times faster than a general XML reader. It still
//! checks what matters for not printing garbage: every element is closed by its own name,
//! the document ends with `</Event>`, and EventID / EventRecordID are present. Values are
//! kept as raw (still escaped) byte ranges of the line; `text::decode` turns them into text
//! only when something prints or compares them, so parsing allocates nothing.

use memchr::memchr;
use std::ops::Range;

/// Why a line that looked like an event could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    /// The line ends before `</Event>` (cut by the syslog daemon, or a value with a raw
    /// newline split it).
    Truncated,
    /// Not well-formed in a way that is not explained by a cut.
    Malformed(&'static str),
    /// Well-formed, but no `EventID` or `EventRecordID`.
    MissingId,
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Truncated => f.write_str("truncated event (no </Event>)"),
            Error::Malformed(why) => write!(f, "malformed event ({why})"),
            Error::MissingId => f.write_str("event without EventID or EventRecordID"),
        }
    }
}

/// A `<Data Name="…">value</Data>` element: both as ranges into the line.
#[derive(Debug, Clone)]
struct Span {
    name: Range<usize>,
    value: Range<usize>,
}

/// Reusable parser state: the field list is kept between lines so parsing does not
/// allocate once it has grown to the widest event.
#[derive(Default)]
pub struct Parser {
    spans: Vec<Span>,
}

/// A parsed event borrowing the line it came from.
#[derive(Debug, Clone, Copy)]
pub struct Event<'a> {
    pub id: u32,
    pub record_id: u64,
    /// `TimeCreated/@SystemTime`, raw (empty if absent).
    pub system_time: &'a [u8],
    /// `Computer` text, raw (empty if absent).
    pub computer: &'a [u8],
    line: &'a [u8],
    spans: &'a [Span],
}

impl<'a> Event<'a> {
    /// `(Name, raw value)` of every Data element, in document order.
    pub fn fields(&self) -> impl Iterator<Item = (&'a [u8], &'a [u8])> + 'a {
        let line = self.line;
        self.spans
            .iter()
            .map(move |s| (&line[s.name.clone()], &line[s.value.clone()]))
    }

    /// The raw value of the first Data element called `name`.
    pub fn field(&self, name: &[u8]) -> Option<&'a [u8]> {
        self.fields().find(|(n, _)| *n == name).map(|(_, v)| v)
    }
}

const MAX_DEPTH: usize = 8;

impl Parser {
    /// Parses `xml`, which must start with `<Event>`. Anything after `</Event>` is ignored.
    pub fn parse<'a>(&'a mut self, xml: &'a [u8]) -> Result<Event<'a>, Error> {
        self.spans.clear();
        let mut id = None;
        let mut record_id = None;
        let mut system_time: &[u8] = b"";
        let mut computer: &[u8] = b"";
        // Open element names, innermost last; a fixed array because our documents are
        // three levels deep and anything deeper is not ours.
        let mut stack: [Range<usize>; MAX_DEPTH] = Default::default();
        let mut depth = 0;
        // Start of the text after the most recent start tag, and that tag's Name attribute.
        let mut text_start = 0;
        let mut data_name: Option<Range<usize>> = None;
        let mut pos = 0;
        loop {
            let lt = match memchr(b'<', &xml[pos..]) {
                Some(i) => pos + i,
                None => return Err(Error::Truncated),
            };
            let gt = match memchr(b'>', &xml[lt..]) {
                Some(i) => lt + i,
                None => return Err(Error::Truncated),
            };
            let tag = &xml[lt + 1..gt];
            pos = gt + 1;
            match tag.first() {
                Some(b'/') => {
                    let name = trim_end(&tag[1..]);
                    if depth == 0 {
                        return Err(Error::Malformed("close tag without open tag"));
                    }
                    depth -= 1;
                    if !same(&xml[stack[depth].clone()], name) {
                        return Err(Error::Malformed("mismatched close tag"));
                    }
                    // Event > System|EventData > leaf: the only texts we read.
                    if depth == 2 {
                        let text = text_start..lt;
                        match name {
                            b"Data" => {
                                if let Some(name) = data_name.take() {
                                    self.spans.push(Span { name, value: text });
                                }
                            }
                            b"EventID" => id = Some(number(&xml[text])?),
                            b"EventRecordID" => record_id = Some(number(&xml[text])?),
                            b"Computer" => computer = &xml[text],
                            _ => {}
                        }
                    }
                    if depth == 0 {
                        break;
                    }
                }
                Some(b'!') | Some(b'?') => {
                    return Err(Error::Malformed("comment, CDATA or processing instruction"));
                }
                Some(_) => {
                    let empty = tag.last() == Some(&b'/');
                    let body = if empty { &tag[..tag.len() - 1] } else { tag };
                    let name_len = body
                        .iter()
                        .position(|b| b.is_ascii_whitespace())
                        .unwrap_or(body.len());
                    let name = &body[..name_len];
                    if name.is_empty() {
                        return Err(Error::Malformed("empty tag name"));
                    }
                    if depth == 0 && name != b"Event" {
                        return Err(Error::Malformed("root element is not Event"));
                    }
                    let attrs_at = lt + 1 + name_len;
                    let attrs = &body[name_len..];
                    match name {
                        b"Data" => {
                            data_name = attr(attrs, b"Name")?.map(|r| shift(r, attrs_at));
                            if empty {
                                if let Some(name) = data_name.take() {
                                    self.spans.push(Span {
                                        name,
                                        value: gt..gt,
                                    });
                                }
                            }
                        }
                        b"TimeCreated" => {
                            if let Some(r) = attr(attrs, b"SystemTime")? {
                                system_time = &xml[shift(r, attrs_at)];
                            }
                        }
                        _ => check_attrs(attrs)?,
                    }
                    if !empty {
                        if depth == MAX_DEPTH {
                            return Err(Error::Malformed("nested too deep"));
                        }
                        stack[depth] = lt + 1..lt + 1 + name_len;
                        depth += 1;
                        text_start = pos;
                    }
                }
                None => return Err(Error::Malformed("empty tag")),
            }
        }
        match (id, record_id) {
            (Some(id), Some(record_id)) => Ok(Event {
                id: u32::try_from(id).map_err(|_| Error::Malformed("EventID too large"))?,
                record_id,
                system_time,
                computer,
                line: xml,
                spans: &self.spans,
            }),
            _ => Err(Error::MissingId),
        }
    }
}

/// Byte compare for tag names: a few bytes long, where a call to memcmp costs more than
/// the compare.
#[inline(always)]
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x == y)
}

fn shift(r: Range<usize>, by: usize) -> Range<usize> {
    r.start + by..r.end + by
}

fn trim_end(b: &[u8]) -> &[u8] {
    let n = b
        .iter()
        .rposition(|c| !c.is_ascii_whitespace())
        .map_or(0, |i| i + 1);
    &b[..n]
}

/// Finds attribute `want` in `attrs` (the part of a tag after its name) and returns the
/// range of its raw value within `attrs`. Checks the syntax of all attributes on the way.
fn attr(attrs: &[u8], want: &[u8]) -> Result<Option<Range<usize>>, Error> {
    let mut found = None;
    let mut i = 0;
    loop {
        while i < attrs.len() && attrs[i].is_ascii_whitespace() {
            i += 1;
        }
        if i == attrs.len() {
            return Ok(found);
        }
        let eq = memchr(b'=', &attrs[i..]).ok_or(Error::Malformed("attribute without value"))? + i;
        let name = trim_end(&attrs[i..eq]);
        let q = eq + 1;
        let quote = *attrs
            .get(q)
            .ok_or(Error::Malformed("attribute without value"))?;
        if quote != b'"' && quote != b'\'' {
            return Err(Error::Malformed("unquoted attribute"));
        }
        let end = memchr(quote, &attrs[q + 1..])
            .ok_or(Error::Malformed("unterminated attribute"))?
            + q
            + 1;
        if name == want && found.is_none() {
            found = Some(q + 1..end);
        }
        i = end + 1;
    }
}

fn check_attrs(attrs: &[u8]) -> Result<(), Error> {
    if attrs.is_empty() {
        return Ok(());
    }
    attr(attrs, b"").map(|_| ())
}

/// `strtoul(s, 0)` as Sysmon's viewer reads ids: decimal, or hex with `0x`.
fn number(s: &[u8]) -> Result<u64, Error> {
    let s = std::str::from_utf8(s).map_err(|_| Error::Malformed("bad number"))?;
    let s = s.trim();
    let parsed = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => s.parse(),
    };
    parsed.map_err(|_| Error::Malformed("bad number"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const EV3: &str = r#"<Event><System><Provider Name="Linux-Sysmon" Guid="{ff032593-a8d3-4f13-b0d6-01fc615a0f97}"/><EventID>3</EventID><Version>5</Version><TimeCreated SystemTime="2024-05-14T09:21:07.614877000Z"/><EventRecordID>1043</EventRecordID><Correlation/><Computer>web01</Computer></System><EventData><Data Name="RuleName">outbound-https</Data><Data Name="Image">/usr/bin/a&lt;b</Data><Data Name="Empty"></Data><Data Name="Short"/></EventData></Event>"#;

    #[test]
    fn parses_header_and_fields() {
        let mut p = Parser::default();
        let e = p.parse(EV3.as_bytes()).unwrap();
        assert_eq!(e.id, 3);
        assert_eq!(e.record_id, 1043);
        assert_eq!(e.system_time, b"2024-05-14T09:21:07.614877000Z");
        assert_eq!(e.computer, b"web01");
        let fields: Vec<_> = e.fields().collect();
        assert_eq!(
            fields,
            vec![
                (&b"RuleName"[..], &b"outbound-https"[..]),
                (b"Image", b"/usr/bin/a&lt;b"),
                (b"Empty", b""),
                (b"Short", b""),
            ]
        );
        assert_eq!(e.field(b"Image"), Some(&b"/usr/bin/a&lt;b"[..]));
    }

    #[test]
    fn errors() {
        let cut = &EV3[..EV3.len() - 20];
        let cases: &[(&str, Error)] = &[
            (cut, Error::Truncated),
            ("<Event><System>", Error::Truncated),
            (
                "<Event><System></Event>",
                Error::Malformed("mismatched close tag"),
            ),
            (
                "<Event><System><EventID>1</EventID></System></Event>",
                Error::MissingId,
            ),
            (
                "<Event><System><EventID>x</EventID><EventRecordID>1</EventRecordID></System></Event>",
                Error::Malformed("bad number"),
            ),
            (
                "<Event><Data Name=x>1</Data></Event>",
                Error::Malformed("unquoted attribute"),
            ),
            (
                "<Event><!-- c --></Event>",
                Error::Malformed("comment, CDATA or processing instruction"),
            ),
            ("<Foo></Foo>", Error::Malformed("root element is not Event")),
        ];
        let mut p = Parser::default();
        for (xml, want) in cases {
            assert_eq!(p.parse(xml.as_bytes()).unwrap_err(), *want, "{xml}");
        }
    }

    #[test]
    fn hex_ids_and_trailing_text() {
        let xml =
            b"<Event><System><EventID>0x10</EventID><EventRecordID> 7 </EventRecordID></System></Event>#012junk";
        let mut p = Parser::default();
        let e = p.parse(xml).unwrap();
        assert_eq!((e.id, e.record_id), (16, 7));
        assert_eq!(e.fields().count(), 0);
    }
}
