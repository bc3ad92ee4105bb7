//! A deliberately small XML reader for WeChat's flat `<xml>…</xml>` documents.

use quick_xml::events::Event as XmlEvent;
use quick_xml::Reader;
use thiserror::Error;

/// Deepest nesting WeChat uses is 4 (`xml/SendPicsInfo/PicList/item/PicMd5Sum`).
const MAX_DEPTH: usize = 8;
/// Upper bound on elements per document; WeChat's largest has a few dozen.
const MAX_ELEMENTS: usize = 1024;

/// Why a body is not a WeChat XML document.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum XmlError {
    /// The bytes are not UTF-8.
    #[error("body is not UTF-8")]
    NotUtf8,
    /// A `<!DOCTYPE>` was present: refused so that no entity is ever expanded.
    #[error("DOCTYPE declarations are not accepted")]
    Doctype,
    /// Not well-formed, or an undefined entity was used.
    #[error("malformed XML: {0}")]
    Malformed(String),
    /// The document root is not `<xml>`.
    #[error("root element must be <xml>, found <{0}>")]
    WrongRoot(String),
    /// No root element at all.
    #[error("empty document")]
    Empty,
    /// Nesting or element count beyond anything WeChat sends.
    #[error("document too deep or too large")]
    TooLarge,
}

/// One XML element: its name, its text (CDATA and text joined, entities
/// resolved) and its child elements in document order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Element {
    /// Element name, case preserved.
    pub name: String,
    /// Text content; empty for elements that only have children.
    pub text: String,
    /// Child elements in order.
    pub children: Vec<Element>,
}

impl Element {
    /// The first child with this exact name.
    pub fn child(&self, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.name == name)
    }

    /// The text of the first child with this exact name.
    pub fn child_text(&self, name: &str) -> Option<&str> {
        self.child(name).map(|c| c.text.as_str())
    }
}

/// Parses a WeChat XML document whose root must be `<xml>`.
pub fn parse(body: &[u8]) -> Result<Element, XmlError> {
    let text = std::str::from_utf8(body).map_err(|_| XmlError::NotUtf8)?;
    parse_str(text)
}

/// Parses a WeChat XML document from a string.
pub fn parse_str(text: &str) -> Result<Element, XmlError> {
    let mut reader = Reader::from_str(text);
    reader.config_mut().check_end_names = true;
    let mut stack: Vec<Element> = Vec::with_capacity(4);
    let mut root: Option<Element> = None;
    let mut count = 0usize;

    loop {
        let event = reader
            .read_event()
            .map_err(|e| XmlError::Malformed(e.to_string()))?;
        match event {
            XmlEvent::DocType(_) => return Err(XmlError::Doctype),
            XmlEvent::Start(start) => {
                if root.is_some() {
                    return Err(XmlError::Malformed("content after the root element".into()));
                }
                count += 1;
                if stack.len() >= MAX_DEPTH || count > MAX_ELEMENTS {
                    return Err(XmlError::TooLarge);
                }
                let name = utf8_name(start.name().as_ref())?;
                if stack.is_empty() && name != "xml" {
                    return Err(XmlError::WrongRoot(name));
                }
                stack.push(Element {
                    name,
                    ..Element::default()
                });
            }
            XmlEvent::Empty(start) => {
                if root.is_some() {
                    return Err(XmlError::Malformed("content after the root element".into()));
                }
                count += 1;
                if count > MAX_ELEMENTS {
                    return Err(XmlError::TooLarge);
                }
                let name = utf8_name(start.name().as_ref())?;
                let element = Element {
                    name,
                    ..Element::default()
                };
                match stack.last_mut() {
                    Some(parent) => parent.children.push(element),
                    None if element.name == "xml" => root = Some(element),
                    None => return Err(XmlError::WrongRoot(element.name)),
                }
            }
            XmlEvent::End(_) => {
                // check_end_names guarantees the names match.
                let Some(done) = stack.pop() else {
                    return Err(XmlError::Malformed("unbalanced end tag".into()));
                };
                match stack.last_mut() {
                    Some(parent) => parent.children.push(done),
                    None => root = Some(done),
                }
            }
            XmlEvent::Text(t) => {
                let Some(current) = stack.last_mut() else {
                    // Whitespace around the root is fine; anything else is not.
                    let raw = t.into_inner();
                    if raw.iter().all(u8::is_ascii_whitespace) {
                        continue;
                    }
                    return Err(XmlError::Malformed("text outside the root element".into()));
                };
                let unescaped = t
                    .unescape()
                    .map_err(|e| XmlError::Malformed(e.to_string()))?;
                current.text.push_str(&unescaped);
            }
            XmlEvent::CData(c) => {
                let Some(current) = stack.last_mut() else {
                    return Err(XmlError::Malformed("CDATA outside the root element".into()));
                };
                let raw = c.into_inner();
                let s = std::str::from_utf8(&raw).map_err(|_| XmlError::NotUtf8)?;
                current.text.push_str(s);
            }
            XmlEvent::Decl(_) | XmlEvent::Comment(_) | XmlEvent::PI(_) => {}
            XmlEvent::Eof => break,
        }
    }
    if !stack.is_empty() {
        return Err(XmlError::Malformed("unexpected end of document".into()));
    }
    let mut root = root.ok_or(XmlError::Empty)?;
    clear_mixed_whitespace(&mut root);
    Ok(root)
}

/// Elements with children keep no text: pretty-printed documents put
/// newlines and indentation between children.
fn clear_mixed_whitespace(element: &mut Element) {
    if !element.children.is_empty() {
        if element.text.trim().is_empty() {
            element.text.clear();
        }
        for child in &mut element.children {
            clear_mixed_whitespace(child);
        }
    }
}

fn utf8_name(raw: &[u8]) -> Result<String, XmlError> {
    std::str::from_utf8(raw)
        .map(str::to_owned)
        .map_err(|_| XmlError::NotUtf8)
}

/// Appends `value` as CDATA, splitting any `]]>` so that it survives
/// (`a]]>b` becomes `<![CDATA[a]]]]><![CDATA[>b]]>`).
pub fn push_cdata(out: &mut String, value: &str) {
    out.push_str("<![CDATA[");
    let mut rest = value;
    while let Some(pos) = rest.find("]]>") {
        out.push_str(&rest[..pos]);
        out.push_str("]]]]><![CDATA[>");
        rest = &rest[pos + 3..];
    }
    out.push_str(rest);
    out.push_str("]]>");
}

/// Appends `<name><![CDATA[value]]></name>`.
pub fn push_cdata_element(out: &mut String, name: &str, value: &str) {
    out.push('<');
    out.push_str(name);
    out.push('>');
    push_cdata(out, value);
    out.push_str("</");
    out.push_str(name);
    out.push('>');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_cdata_and_plain_text() {
        let doc = parse(b"<xml><A><![CDATA[x<y]]></A><B>1&amp;2</B><C/></xml>").unwrap();
        assert_eq!(doc.child_text("A"), Some("x<y"));
        assert_eq!(doc.child_text("B"), Some("1&2"));
        assert_eq!(doc.child_text("C"), Some(""));
        assert_eq!(doc.child_text("D"), None);
    }

    #[test]
    fn split_cdata_survives_round_trip() {
        for value in ["a]]>b", "]]>", "]]>]]>", "x]]", "]]]>>", "plain", ""] {
            let mut xml = String::from("<xml>");
            push_cdata_element(&mut xml, "Content", value);
            xml.push_str("</xml>");
            assert_eq!(
                parse_str(&xml).unwrap().child_text("Content"),
                Some(value),
                "{xml}"
            );
        }
    }

    #[test]
    fn nested_and_pretty_printed() {
        let doc = parse_str(
            "<?xml version=\"1.0\"?>\n<xml>\n  <SendPicsInfo>\n    <Count>1</Count>\n    <PicList><item><PicMd5Sum><![CDATA[abc]]></PicMd5Sum></item></PicList>\n  </SendPicsInfo>\n</xml>\n",
        )
        .unwrap();
        let info = doc.child("SendPicsInfo").unwrap();
        assert_eq!(info.text, "");
        assert_eq!(info.child_text("Count"), Some("1"));
        assert_eq!(
            info.child("PicList").unwrap().children[0].child_text("PicMd5Sum"),
            Some("abc")
        );
    }

    #[test]
    fn refuses_doctype_and_entities() {
        let bomb = "<?xml version=\"1.0\"?><!DOCTYPE xml [<!ENTITY a \"aaaa\"><!ENTITY b \"&a;&a;&a;\">]><xml><A>&b;</A></xml>";
        assert_eq!(parse_str(bomb), Err(XmlError::Doctype));
        assert!(matches!(
            parse_str("<xml><A>&undefined;</A></xml>"),
            Err(XmlError::Malformed(_))
        ));
    }

    #[test]
    fn refuses_malformed_documents() {
        assert_eq!(parse_str(""), Err(XmlError::Empty));
        assert_eq!(parse_str("   "), Err(XmlError::Empty));
        assert!(matches!(parse_str("<root/>"), Err(XmlError::WrongRoot(_))));
        assert!(matches!(
            parse_str("<root></root>"),
            Err(XmlError::WrongRoot(_))
        ));
        assert!(parse_str("<xml><A></B></xml>").is_err());
        assert!(parse_str("<xml><A>").is_err());
        assert!(parse_str("<xml></xml><xml></xml>").is_err());
        assert!(parse_str("junk<xml></xml>").is_err());
        assert_eq!(parse(&[0xff, 0xfe]), Err(XmlError::NotUtf8));
        let deep = format!("<xml>{}{}</xml>", "<a>".repeat(20), "</a>".repeat(20));
        assert_eq!(parse_str(&deep), Err(XmlError::TooLarge));
    }
}
