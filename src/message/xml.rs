//! A deliberately small XML reader for WeChat's flat `<xml>…</xml>` documents.

use std::borrow::Cow;
use std::sync::LazyLock;

use memchr::memmem;
use quick_xml::events::Event as XmlEvent;
use quick_xml::Reader;
use thiserror::Error;

/// Deepest nesting WeChat uses is 4 (`xml/SendPicsInfo/PicList/item/PicMd5Sum`).
const MAX_DEPTH: usize = 8;
/// Room made for the root's children: a text message has 6, a location 9.
const ROOT_CHILDREN: usize = 10;
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

pub use crate::domain::Element;

/// Parses a WeChat XML document whose root must be `<xml>`.
pub fn parse(body: &[u8]) -> Result<Element, XmlError> {
    let text = std::str::from_utf8(body).map_err(|_| XmlError::NotUtf8)?;
    parse_str(text)
}

/// Parses a WeChat XML document from a string.
pub fn parse_str(text: &str) -> Result<Element, XmlError> {
    // Each open element, with the length of the layout whitespace that
    // ends its text so far (see `push_text`).
    let mut stack: Vec<(Element, usize)> = Vec::with_capacity(4);
    let mut root: Option<Element> = None;
    walk(text, |node| match node {
        Node::Open { name, .. } => stack.push((
            Element {
                name: name.to_owned(),
                ..Element::default()
            },
            0,
        )),
        Node::Text { text, cdata } => {
            if let Some((current, trailing)) = stack.last_mut() {
                push_text(&mut current.text, trailing, text, cdata);
            }
        }
        Node::Close { .. } => {
            if let Some((mut done, trailing)) = stack.pop() {
                let has_children = !done.children.is_empty();
                finish_text(&mut done.text, trailing, has_children);
                let parent_is_root = stack.len() == 1;
                match stack.last_mut() {
                    Some((parent, _)) => {
                        if parent_is_root && parent.children.is_empty() {
                            // The root's fields: one allocation for a typical
                            // message rather than growing 4, 8, 16.
                            parent.children.reserve(ROOT_CHILDREN);
                        }
                        parent.children.push(done)
                    }
                    None => root = Some(done),
                }
            }
        }
    })?;
    root.ok_or(XmlError::Empty)
}

/// The texts of the root's first direct children named `names`, read in one
/// pass without building the element tree. The whole document is checked
/// exactly as [`parse`] checks it (UTF-8, no DOCTYPE, `<xml>` root, depth and
/// size limits, well-formedness), and each text is what
/// [`Element::child_text`] would return.
pub fn top_level_texts<const N: usize>(
    body: &[u8],
    names: [&str; N],
) -> Result<[Option<String>; N], XmlError> {
    let text = std::str::from_utf8(body).map_err(|_| XmlError::NotUtf8)?;
    let mut found: [Option<String>; N] = std::array::from_fn(|_| None);
    // The wanted child being read: its slot and whether it has children.
    let mut reading: Option<(usize, bool)> = None;
    // Layout whitespace ending the text being read (see `push_text`).
    let mut trailing = 0;
    let mut depth = 0;
    walk(text, |node| match node {
        Node::Open { name, depth: d } => {
            depth = d;
            if d == 2 {
                reading = names
                    .iter()
                    .position(|n| *n == name)
                    .filter(|&i| found[i].is_none())
                    .map(|i| (i, false));
                if let Some((i, _)) = reading {
                    found[i] = Some(String::new());
                    trailing = 0;
                }
            } else if let Some((_, has_children)) = &mut reading {
                *has_children = true;
            }
        }
        Node::Text { text, cdata } => {
            if let (2, Some((i, _))) = (depth, reading) {
                if let Some(value) = &mut found[i] {
                    push_text(value, &mut trailing, text, cdata);
                }
            }
        }
        Node::Close { depth: d } => {
            depth = d - 1;
            if d == 2 {
                if let Some((i, has_children)) = reading {
                    if let Some(value) = found[i].as_mut() {
                        finish_text(value, trailing, has_children);
                    }
                }
                reading = None;
            }
        }
    })?;
    Ok(found)
}

/// One step through a document, as far as [`walk`] has checked it.
enum Node<'e> {
    /// An element opens (`<name>` or `<name/>`); the root is at depth 1.
    Open { name: &'e str, depth: usize },
    /// Text (entities resolved) or CDATA of the innermost open element.
    Text { text: &'e str, cdata: bool },
    /// The innermost open element closes (right after `Open` for `<name/>`).
    Close { depth: usize },
}

/// Reads a WeChat document event by event, refusing what WeChat never
/// sends: a DOCTYPE (so no entity is ever expanded), a root other than
/// `<xml>`, more than [`MAX_DEPTH`] levels or [`MAX_ELEMENTS`] elements,
/// anything but whitespace around the root, and malformed XML. `visit` sees
/// the nodes in order; an error can come after some were visited. Texts
/// reach `visit` without the characters XML 1.0 forbids (see
/// [`without_forbidden`]).
fn walk(text: &str, mut visit: impl FnMut(Node<'_>)) -> Result<(), XmlError> {
    let mut reader = Reader::from_str(text);
    reader.config_mut().check_end_names = true;
    let mut depth = 0usize;
    let mut count = 0usize;
    let mut root_closed = false;

    loop {
        let event = reader
            .read_event()
            .map_err(|e| XmlError::Malformed(e.to_string()))?;
        match event {
            XmlEvent::DocType(_) => return Err(XmlError::Doctype),
            XmlEvent::Start(ref start) | XmlEvent::Empty(ref start) => {
                if root_closed {
                    return Err(XmlError::Malformed("content after the root element".into()));
                }
                let empty = matches!(event, XmlEvent::Empty(_));
                count += 1;
                if (!empty && depth >= MAX_DEPTH) || count > MAX_ELEMENTS {
                    return Err(XmlError::TooLarge);
                }
                let name = piece_of(text, start.name().into_inner())?;
                if depth == 0 && name != "xml" {
                    return Err(XmlError::WrongRoot(name.to_owned()));
                }
                visit(Node::Open {
                    name,
                    depth: depth + 1,
                });
                if empty {
                    visit(Node::Close { depth: depth + 1 });
                    root_closed = depth == 0;
                } else {
                    depth += 1;
                }
            }
            XmlEvent::End(_) => {
                // check_end_names guarantees the names match.
                if depth == 0 {
                    return Err(XmlError::Malformed("unbalanced end tag".into()));
                }
                visit(Node::Close { depth });
                depth -= 1;
                root_closed = depth == 0;
            }
            XmlEvent::Text(t) => {
                if depth == 0 {
                    // Whitespace around the root is fine; anything else is not.
                    if t.iter().all(u8::is_ascii_whitespace) {
                        continue;
                    }
                    return Err(XmlError::Malformed("text outside the root element".into()));
                }
                let raw = t.into_inner();
                let unescaped = quick_xml::escape::unescape(piece_of(text, &raw)?)
                    .map_err(|e| XmlError::Malformed(e.to_string()))?;
                visit(Node::Text {
                    text: &without_forbidden(&unescaped),
                    cdata: false,
                });
            }
            XmlEvent::CData(c) => {
                if depth == 0 {
                    return Err(XmlError::Malformed("CDATA outside the root element".into()));
                }
                let raw = c.into_inner();
                visit(Node::Text {
                    text: &without_forbidden(piece_of(text, &raw)?),
                    cdata: true,
                });
            }
            XmlEvent::Decl(_) | XmlEvent::Comment(_) | XmlEvent::PI(_) => {}
            XmlEvent::Eof => break,
        }
    }
    if depth != 0 {
        return Err(XmlError::Malformed("unexpected end of document".into()));
    }
    if !root_closed {
        return Err(XmlError::Empty);
    }
    Ok(())
}

/// Appends a piece of an element's text. Whitespace that only lays the
/// document out is dropped: plain text (not CDATA) loses its whitespace at
/// the start and end of the element, as wechatpy's parser does, so
/// `<ToUserName> <![CDATA[gh_1]]>\n</ToUserName>` reads `gh_1` (real
/// senders, WeChat's own card-event samples among them, indent CDATA) and
/// `<CreateTime> 1 </CreateTime>` reads `1`; what is inside CDATA is kept as
/// it is. `trailing` is the length of the plain whitespace ending `buf`,
/// which [`finish_text`] removes.
fn push_text(buf: &mut String, trailing: &mut usize, piece: &str, cdata: bool) {
    if cdata {
        buf.push_str(piece);
        *trailing = 0;
        return;
    }
    let piece = if buf.is_empty() {
        piece.trim_start()
    } else {
        piece
    };
    if piece.is_empty() {
        return;
    }
    let spaces = piece.len() - piece.trim_end().len();
    if spaces == piece.len() {
        *trailing += spaces;
    } else {
        *trailing = spaces;
    }
    buf.push_str(piece);
}

/// An element's text once it closes: without its trailing layout
/// whitespace, and empty when it has children and nothing but whitespace
/// (pretty-printed documents put newlines and indentation between them).
fn finish_text(buf: &mut String, trailing: usize, has_children: bool) {
    buf.truncate(buf.len() - trailing);
    if has_children && buf.trim().is_empty() {
        buf.clear();
    }
}

/// Whether XML 1.0 allows `c` in a document (`Char`, XML 1.0 §2.2): tab,
/// newline, carriage return, and everything from U+0020 except U+FFFE and
/// U+FFFF (a `char` is never a surrogate).
pub fn is_xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..='\u{10FFFF}')
}

/// `value` without the characters XML 1.0 forbids (C0 controls other than
/// tab, newline and carriage return; U+FFFE, U+FFFF). Such characters are
/// removed rather than refused: WeChat retries a refused push, and a user's
/// pasted text is still worth answering; removed on the way in and again on
/// the way out, so no reply is ever ill-formed whatever a rule, a template or
/// an upstream put in it. Borrowed (no copy) when there is nothing to remove.
pub fn without_forbidden(value: &str) -> Cow<'_, str> {
    if !has_forbidden(value.as_bytes()) {
        return Cow::Borrowed(value);
    }
    Cow::Owned(value.chars().filter(|&c| is_xml_char(c)).collect())
}

/// Whether UTF-8 `bytes` hold a character XML 1.0 forbids. Bytes only, and
/// without branches per byte: this runs over every text read and written,
/// ciphertexts included. A C0 control is one byte below 0x20 (a fold over
/// fixed chunks, which the compiler vectorises); U+FFFE and U+FFFF are
/// `EF BF BE` and `EF BF BF` (a SIMD search for `EF BF`; fullwidth
/// punctuation, common in Chinese text, starts with `EF BC`).
fn has_forbidden(bytes: &[u8]) -> bool {
    static NONCHAR: LazyLock<memmem::Finder<'static>> =
        LazyLock::new(|| memmem::Finder::new(b"\xEF\xBF"));
    let control = bytes.chunks(32).any(|chunk| {
        chunk.iter().fold(false, |found, &b| {
            found | ((b < 0x20) & (b != b'\t') & (b != b'\n') & (b != b'\r'))
        })
    });
    control
        || NONCHAR
            .find_iter(bytes)
            .any(|at| matches!(bytes.get(at + 2), Some(0xBE | 0xBF)))
}

/// `raw` as text. The reader hands out pieces of `text`, which is UTF-8
/// already: such a piece is found in `text` by its address rather than
/// checked again (that check is most of the cost of parsing a long message).
/// Anything else is checked.
fn piece_of<'a>(text: &'a str, raw: &'a [u8]) -> Result<&'a str, XmlError> {
    let start = (raw.as_ptr() as usize).wrapping_sub(text.as_ptr() as usize);
    match text.get(start..start.wrapping_add(raw.len())) {
        Some(piece) if piece.as_ptr() == raw.as_ptr() => Ok(piece),
        _ => std::str::from_utf8(raw).map_err(|_| XmlError::NotUtf8),
    }
}

/// Appends `value` as CDATA, splitting any `]]>` so that it survives
/// (`a]]>b` becomes `<![CDATA[a]]]]><![CDATA[>b]]>`) and leaving out the
/// characters XML 1.0 forbids, so that the output is always well-formed.
pub fn push_cdata(out: &mut String, value: &str) {
    // A SIMD substring search: this runs over every ciphertext sent back.
    static END: LazyLock<memmem::Finder<'static>> = LazyLock::new(|| memmem::Finder::new("]]>"));
    let value = without_forbidden(value);
    out.push_str("<![CDATA[");
    let mut rest: &str = &value;
    while let Some(pos) = END.find(rest.as_bytes()) {
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

    #[test]
    fn top_level_texts_agree_with_the_tree() {
        let docs = [
            "<xml><ToUserName>gh</ToUserName><Encrypt><![CDATA[QUJD]]></Encrypt></xml>",
            "<xml><Encrypt>a&amp;b<![CDATA[c]]></Encrypt><Encrypt>second</Encrypt></xml>",
            "<xml><Encrypt>\n  <Inner>x</Inner>\n</Encrypt><ToUserName/></xml>",
            "<xml><Encrypt> t <Inner>x</Inner></Encrypt></xml>",
            "<xml><Other><Encrypt>nested</Encrypt></Other><ToUserName>a</ToUserName></xml>",
            "<?xml version=\"1.0\"?>\n<xml>\n <Encrypt>e</Encrypt>\n</xml>\n",
            "<xml/>",
            "<xml><!-- c --><Encrypt/></xml>",
        ];
        for doc in docs {
            let tree = parse_str(doc).unwrap();
            let [encrypt, to_user] =
                top_level_texts(doc.as_bytes(), ["Encrypt", "ToUserName"]).unwrap();
            assert_eq!(encrypt.as_deref(), tree.child_text("Encrypt"), "{doc}");
            assert_eq!(to_user.as_deref(), tree.child_text("ToUserName"), "{doc}");
        }
    }

    #[test]
    fn top_level_texts_refuse_what_parse_refuses() {
        let deep = format!("<xml>{}{}</xml>", "<a>".repeat(20), "</a>".repeat(20));
        let many = format!("<xml>{}</xml>", "<a/>".repeat(MAX_ELEMENTS + 1));
        let docs = [
            "<!DOCTYPE xml [<!ENTITY a \"aaaa\">]><xml><Encrypt>&a;</Encrypt></xml>",
            "<xml><Encrypt>&undefined;</Encrypt></xml>",
            "",
            "  ",
            "<root/>",
            "<root><Encrypt>x</Encrypt></root>",
            "<xml><Encrypt></B></xml>",
            "<xml><Encrypt>x</Encrypt>",
            "<xml></xml><xml></xml>",
            "<xml></xml>junk",
            "junk<xml></xml>",
            &deep,
            &many,
        ];
        for doc in docs {
            assert_eq!(
                top_level_texts(doc.as_bytes(), ["Encrypt"]).unwrap_err(),
                parse_str(doc).unwrap_err(),
                "{doc}"
            );
        }
        assert_eq!(
            top_level_texts(&[0xff, 0xfe], ["Encrypt"]),
            Err(XmlError::NotUtf8)
        );
    }

    #[test]
    fn layout_whitespace_around_cdata_is_dropped() {
        let doc = "<xml>\n <ToUserName> <![CDATA[gh_1]]>\n </ToUserName>\n <FromUserName>\t<![CDATA[o_1]]> </FromUserName>\n <Content>  a <![CDATA[ b ]]> c  </Content>\n <Label><![CDATA[ kept ]]></Label>\n <Info>\n  <Key> k </Key>\n </Info>\n</xml>";
        let tree = parse_str(doc).unwrap();
        assert_eq!(tree.child_text("ToUserName"), Some("gh_1"));
        assert_eq!(tree.child_text("FromUserName"), Some("o_1"));
        assert_eq!(tree.child_text("Content"), Some("a  b  c"));
        assert_eq!(
            tree.child_text("Label"),
            Some(" kept "),
            "CDATA is kept as it is"
        );
        assert_eq!(tree.child("Info").unwrap().child_text("Key"), Some("k"));
        let names = ["ToUserName", "FromUserName", "Content", "Label"];
        let found = top_level_texts(doc.as_bytes(), names).unwrap();
        for (name, value) in names.iter().zip(found) {
            assert_eq!(value.as_deref(), tree.child_text(name), "{name}");
        }
    }

    #[test]
    fn characters_xml_forbids_are_removed_on_the_way_in() {
        let doc = "<xml><A><![CDATA[a\u{0}b\u{1}\u{1b}c\u{fffe}\u{ffff}d]]></A><B>x\u{8}y&#1;z</B><C>\t\u{e000}\u{10ffff}</C></xml>";
        let tree = parse_str(doc).unwrap();
        assert_eq!(tree.child_text("A"), Some("abcd"));
        assert_eq!(tree.child_text("B"), Some("xyz"));
        assert_eq!(tree.child_text("C"), Some("\u{e000}\u{10ffff}"));
        let [a] = top_level_texts(doc.as_bytes(), ["A"]).unwrap();
        assert_eq!(a.as_deref(), Some("abcd"));
    }

    #[test]
    fn written_cdata_is_always_well_formed() {
        let mut out = String::from("<xml>");
        push_cdata_element(
            &mut out,
            "Content",
            "bell\u{7} esc\u{1b} nul\u{0} ok\r\n\u{ffff}]]>",
        );
        out.push_str("</xml>");
        assert!(out.chars().all(is_xml_char), "{out:?}");
        assert_eq!(
            parse_str(&out).unwrap().child_text("Content"),
            Some("bell esc nul ok\r\n]]>")
        );
        // Nothing to remove: no copy.
        assert!(matches!(
            without_forbidden("你好 👋\t\u{ef}"),
            Cow::Borrowed(_)
        ));
    }

    #[test]
    fn the_byte_scan_finds_exactly_the_forbidden_characters() {
        // Everywhere in a long text, on either side of a chunk boundary.
        let base = "欢迎关注！回复“微博”获取最新文章。￥5 ".repeat(8);
        for at in [0, 1, 31, 32, 33, 63, base.len()] {
            for bad in ['\u{0}', '\u{1f}', '\u{b}', '\u{fffe}', '\u{ffff}'] {
                let mut text = base.clone();
                let at = (0..=at.min(text.len()))
                    .rev()
                    .find(|&i| text.is_char_boundary(i))
                    .unwrap();
                text.insert(at, bad);
                assert!(has_forbidden(text.as_bytes()), "{bad:?} at {at}");
                assert_eq!(without_forbidden(&text), base);
            }
        }
        // Fullwidth punctuation (EF BC …), ￥ (EF BF A5), tab, CR and LF are fine.
        assert!(!has_forbidden(format!("{base}\t\r\n\u{fffd}").as_bytes()));
    }

    #[test]
    fn pieces_are_found_in_the_text_or_checked() {
        let text = "<xml>长文本</xml>";
        assert_eq!(piece_of(text, &text.as_bytes()[5..14]), Ok("长文本"));
        // Not a piece of `text` (a copy): checked instead.
        let copy = text.as_bytes()[5..14].to_vec();
        assert_eq!(piece_of(text, &copy), Ok("长文本"));
        assert_eq!(piece_of(text, &[0xe9, 0x95]), Err(XmlError::NotUtf8));
        // A piece that would split a character is not taken as text.
        assert_eq!(
            piece_of(text, &text.as_bytes()[6..8]),
            Err(XmlError::NotUtf8)
        );
    }
}
