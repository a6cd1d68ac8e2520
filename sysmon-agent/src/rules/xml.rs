//! A small element tree over quick-xml, keeping the byte offset of every element so that
//! errors can name a line and column. Configs are a few hundred elements; a tree keeps the
//! interpretation in `parse.rs` simple.

use quick_xml::Reader;
use quick_xml::events::{BytesStart, Event};

/// Deeper nesting than this is not a Sysmon config (the real shape is 5 levels); the limit
/// keeps hostile input from exhausting the stack.
const MAX_DEPTH: usize = 32;

#[derive(Debug, Default)]
pub(crate) struct Node {
    pub name: String,
    pub attrs: Vec<(String, String)>,
    pub children: Vec<Node>,
    /// Text and CDATA content with references resolved, untrimmed.
    pub text: String,
    /// Offset of the `<` that opens the element.
    pub pos: usize,
    /// Offset of the first non-blank text, if any (for "unexpected text" errors).
    pub text_pos: Option<usize>,
}

impl Node {
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Parses a whole document into its root element. Errors carry a byte offset.
pub(crate) fn parse(text: &str) -> Result<Node, (usize, String)> {
    let mut reader = Reader::from_str(text);
    reader.config_mut().check_comments = true;
    let mut stack: Vec<Node> = Vec::new();
    let mut root: Option<Node> = None;
    loop {
        let at = reader.buffer_position() as usize;
        let event = reader.read_event().map_err(|e| {
            (
                reader.error_position() as usize,
                format!("malformed XML: {e}"),
            )
        })?;
        match event {
            Event::Start(_) | Event::Empty(_) if stack.len() >= MAX_DEPTH => {
                return Err((
                    at,
                    format!("elements nested deeper than {MAX_DEPTH} levels"),
                ));
            }
            Event::Start(e) => stack.push(element(&e, at)?),
            Event::Empty(e) => {
                let node = element(&e, at)?;
                close(node, &mut stack, &mut root, at)?;
            }
            Event::End(_) => {
                let node = stack
                    .pop()
                    .ok_or((at, "unexpected closing tag".to_string()))?;
                close(node, &mut stack, &mut root, at)?;
            }
            Event::Text(t) => {
                let s = t
                    .xml_content()
                    .map_err(|e| (at, format!("bad text: {e}")))?;
                add_text(&mut stack, &s, at)?;
            }
            Event::CData(t) => {
                let s = t.decode().map_err(|e| (at, format!("bad CDATA: {e}")))?;
                add_text(&mut stack, &s, at)?;
            }
            Event::GeneralRef(r) => {
                let c = match r.resolve_char_ref() {
                    Ok(Some(c)) => c,
                    Ok(None) => {
                        let name = r.decode().map_err(|e| (at, e.to_string()))?;
                        predefined(&name).ok_or_else(|| {
                            (at, format!("unknown entity &{name}; expected one of &amp; &lt; &gt; &apos; &quot; or a character reference"))
                        })?
                    }
                    Err(e) => return Err((at, format!("bad character reference: {e}"))),
                };
                add_text(&mut stack, c.encode_utf8(&mut [0; 4]), at)?;
            }
            Event::Eof => break,
            // Declarations, comments, processing instructions and DOCTYPE carry nothing for us.
            _ => {}
        }
    }
    if let Some(open) = stack.last() {
        return Err((open.pos, format!("element <{}> is never closed", open.name)));
    }
    root.ok_or((
        text.len(),
        "no root element; expected <Sysmon schemaversion=\"…\">".to_string(),
    ))
}

fn element(e: &BytesStart<'_>, at: usize) -> Result<Node, (usize, String)> {
    let name = std::str::from_utf8(e.name().as_ref())
        .map_err(|e| (at, e.to_string()))?
        .to_string();
    let mut attrs = Vec::new();
    for a in e.attributes() {
        let a = a.map_err(|e| (at, format!("bad attribute in <{name}>: {e}")))?;
        let key = std::str::from_utf8(a.key.as_ref())
            .map_err(|e| (at, e.to_string()))?
            .to_string();
        let value = a
            .unescape_value()
            .map_err(|e| (at, format!("bad value of attribute {key} in <{name}>: {e}")))?;
        attrs.push((key, value.into_owned()));
    }
    Ok(Node {
        name,
        attrs,
        pos: at,
        ..Node::default()
    })
}

fn close(
    node: Node,
    stack: &mut [Node],
    root: &mut Option<Node>,
    at: usize,
) -> Result<(), (usize, String)> {
    match stack.last_mut() {
        Some(parent) => parent.children.push(node),
        None if root.is_none() => *root = Some(node),
        None => {
            return Err((
                at,
                format!("second root element <{}>; expected one <Sysmon>", node.name),
            ));
        }
    }
    Ok(())
}

fn add_text(stack: &mut [Node], s: &str, at: usize) -> Result<(), (usize, String)> {
    let blank = s.chars().all(char::is_whitespace);
    match stack.last_mut() {
        Some(node) => {
            if !blank && node.text_pos.is_none() {
                node.text_pos = Some(at + (s.len() - s.trim_start().len()));
            }
            node.text.push_str(s);
            Ok(())
        }
        None if blank => Ok(()),
        None => Err((at, "text outside the root element".to_string())),
    }
}

fn predefined(name: &str) -> Option<char> {
    Some(match name {
        "amp" => '&',
        "lt" => '<',
        "gt" => '>',
        "apos" => '\'',
        "quot" => '"',
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_tree_with_text_entities_and_offsets() {
        let doc = "<a x='1'>\n <b>p&amp;q&#x41;<![CDATA[<z>]]></b><c/></a>";
        let root = parse(doc).unwrap();
        assert_eq!(root.name, "a");
        assert_eq!(root.attr("x"), Some("1"));
        assert_eq!(root.children[0].text, "p&qA<z>");
        assert_eq!(root.children[0].pos, 11);
        assert_eq!(root.children[1].name, "c");
    }

    #[test]
    fn rejects_broken_documents() {
        for doc in [
            "<a>",
            "<a></b>",
            "<a/><b/>",
            "text",
            "",
            "<a>&nope;</a>",
            "<a x='1' x='2'/>",
        ] {
            assert!(parse(doc).is_err(), "{doc}");
        }
        let deep = "<a>".repeat(100) + &"</a>".repeat(100);
        assert!(parse(&deep).is_err());
    }
}
