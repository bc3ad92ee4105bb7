//! Upstream answers made fit for a WeChat text message: characters an XML
//! 1.0 document cannot hold removed, and markdown (what chat models answer
//! in) turned into readable plain text.
//!
//! Markdown is parsed with `pulldown-cmark` (CommonMark, with tables,
//! strikethrough and task lists), then written out block by block:
//! headings and paragraphs as lines of their own, emphasis without its
//! marks, lists with `•` or their numbers, quotes behind `> `, code as it
//! is, table rows as cells joined by ` | `, links as `text (url)` or, where
//! the platform renders them, `<a href="url">text</a>`, images as links.
//!
//! Pure: no I/O. Splitting the result into messages is `split`'s job and
//! happens after this.

use std::borrow::Cow;

use pulldown_cmark::{Event, Options, Parser, Tag, TagEnd};

/// What an upstream's text answers are written in (`format` of an upstream).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnswerFormat {
    /// Markdown, converted to plain text before it is sent.
    Markdown,
    /// Plain text, sent as it is.
    Plain,
}

impl AnswerFormat {
    /// The name used in the config file.
    pub fn as_str(self) -> &'static str {
        match self {
            AnswerFormat::Markdown => "markdown",
            AnswerFormat::Plain => "plain",
        }
    }
}

/// How links are written in a text message: decided by the platform.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkStyle {
    /// `text (url)`: the client turns the bare URL into a link, if at all.
    Text,
    /// `<a href="url">text</a>`: the client renders it as a link
    /// (Official Account text messages).
    Anchor,
    /// The platform renders markdown itself: markdown answers
    /// pass through unconverted, and a link is written `[text](url)`.
    /// Converting to plain text under this style writes links as `Text`.
    Markdown,
}

/// True for a character an XML 1.0 document may hold (`Char` of the
/// specification: tab, line feed, carriage return, and everything from
/// U+0020 on except U+FFFE and U+FFFF; Rust chars hold no surrogates).
pub fn is_xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r') || (c >= ' ' && c != '\u{FFFE}' && c != '\u{FFFF}')
}

/// `text` without the characters an XML 1.0 document cannot hold (NUL,
/// other C0 controls but tab and line breaks, U+FFFE, U+FFFF).
pub fn strip_xml_invalid(text: &str) -> Cow<'_, str> {
    if text.chars().all(is_xml_char) {
        Cow::Borrowed(text)
    } else {
        Cow::Owned(text.chars().filter(|&c| is_xml_char(c)).collect())
    }
}

/// Markdown as readable plain text, links written as `links` says.
pub fn to_plain(markdown: &str, links: LinkStyle) -> String {
    let options =
        Options::ENABLE_TABLES | Options::ENABLE_STRIKETHROUGH | Options::ENABLE_TASKLISTS;
    let mut w = Writer::new(links);
    for event in Parser::new_ext(markdown, options) {
        w.event(event);
    }
    w.finish()
}

/// A link or image being written: where its text starts, and its target.
struct Link {
    start: usize,
    url: String,
    image: bool,
}

/// A table being collected: rows of cells.
#[derive(Default)]
struct Table {
    rows: Vec<Vec<String>>,
    row: Vec<String>,
    cell: String,
}

struct Writer {
    out: String,
    links: LinkStyle,
    /// Line breaks owed before the next text (1: new line, 2: blank line).
    breaks: usize,
    /// Nothing written since the last line break.
    line_start: bool,
    /// Line breaks written since the last text.
    newlines: usize,
    /// Just after a list bullet: the item's first block starts on its line.
    fresh_item: bool,
    quote: usize,
    /// Per open list: the next number of an ordered one.
    lists: Vec<Option<u64>>,
    /// Per open item: how far its continuation lines are indented.
    indents: Vec<usize>,
    link: Vec<Link>,
    table: Option<Table>,
    code_block: bool,
}

impl Writer {
    fn new(links: LinkStyle) -> Writer {
        Writer {
            out: String::new(),
            links,
            breaks: 0,
            line_start: true,
            newlines: 0,
            fresh_item: false,
            quote: 0,
            lists: Vec::new(),
            indents: Vec::new(),
            link: Vec::new(),
            table: None,
            code_block: false,
        }
    }

    /// The buffer text goes to: the table cell being collected, or the output.
    fn buf(&mut self) -> &mut String {
        match &mut self.table {
            Some(t) => &mut t.cell,
            None => &mut self.out,
        }
    }

    /// A new block: at least `n` line breaks before it (none at the start,
    /// none right after a list bullet).
    fn block(&mut self, n: usize) {
        if self.fresh_item || self.out.is_empty() {
            return;
        }
        self.breaks = self.breaks.max(n.saturating_sub(self.newlines));
    }

    /// What starts each line: the quote marks and the item indentation.
    fn prefix(&self) -> String {
        let mut p = "> ".repeat(self.quote);
        p.extend(std::iter::repeat_n(
            ' ',
            self.indents.last().copied().unwrap_or(0),
        ));
        p
    }

    fn flush_breaks(&mut self) {
        if self.breaks == 0 || self.out.is_empty() {
            self.breaks = 0;
            return;
        }
        let blank = ">".repeat(self.quote);
        for i in 0..self.breaks {
            if i > 0 {
                self.out.push_str(&blank);
            }
            self.out.push('\n');
        }
        self.newlines += self.breaks;
        self.breaks = 0;
        self.line_start = true;
    }

    /// Writes text, line by line, each line behind the prefix.
    fn write(&mut self, text: &str) {
        if text.is_empty() {
            return;
        }
        if let Some(t) = &mut self.table {
            t.cell.push_str(&text.replace('\n', " "));
            return;
        }
        self.fresh_item = false;
        self.flush_breaks();
        for (i, line) in text.split('\n').enumerate() {
            if i > 0 {
                self.out.push('\n');
                self.line_start = true;
                self.newlines += 1;
            }
            if line.is_empty() {
                continue;
            }
            self.newlines = 0;
            if self.line_start {
                let prefix = self.prefix();
                self.out.push_str(&prefix);
                self.line_start = false;
            }
            self.out.push_str(line);
        }
    }

    fn event(&mut self, event: Event<'_>) {
        match event {
            Event::Start(tag) => self.start(tag),
            Event::End(tag) => self.end(tag),
            Event::Text(t) => {
                let t = if self.code_block {
                    t.trim_end_matches('\n')
                } else {
                    &t
                };
                self.write(t)
            }
            Event::Code(t) => self.write(&t),
            Event::Html(t) | Event::InlineHtml(t) => {
                let t = t.trim_end_matches('\n');
                if ["<br>", "<br/>", "<br />"].contains(&t.trim()) {
                    self.write("\n");
                } else {
                    self.write(t);
                }
            }
            Event::SoftBreak | Event::HardBreak => {
                if self.table.is_some() {
                    self.write(" ");
                } else {
                    self.write("\n");
                }
            }
            Event::Rule => {
                self.block(2);
                self.write("————");
                self.block(2);
            }
            Event::TaskListMarker(done) => self.write(if done { "☑ " } else { "☐ " }),
            Event::FootnoteReference(_) | Event::InlineMath(_) | Event::DisplayMath(_) => {}
        }
    }

    fn start(&mut self, tag: Tag<'_>) {
        match tag {
            Tag::Paragraph | Tag::Heading { .. } | Tag::HtmlBlock => self.block(2),
            Tag::BlockQuote(_) => {
                // The blank line before the quote is outside it.
                self.block(2);
                self.flush_breaks();
                self.quote += 1;
            }
            Tag::CodeBlock(_) => {
                self.block(2);
                self.code_block = true;
            }
            Tag::List(first) => {
                self.block(if self.lists.is_empty() { 2 } else { 1 });
                self.fresh_item = false;
                self.lists.push(first);
            }
            Tag::Item => {
                self.block(1);
                let bullet = match self.lists.last_mut() {
                    Some(Some(n)) => {
                        let b = format!("{n}. ");
                        *n += 1;
                        b
                    }
                    _ => "• ".to_owned(),
                };
                self.write(&bullet);
                let base = self.indents.last().copied().unwrap_or(0);
                self.indents.push(base + bullet.chars().count());
                self.fresh_item = true;
            }
            Tag::Table(_) => {
                self.block(2);
                self.table = Some(Table::default());
            }
            Tag::TableHead | Tag::TableRow | Tag::TableCell => {}
            Tag::Link { dest_url, .. } => self.open_link(dest_url.into_string(), false),
            Tag::Image { dest_url, .. } => self.open_link(dest_url.into_string(), true),
            Tag::Emphasis
            | Tag::Strong
            | Tag::Strikethrough
            | Tag::Superscript
            | Tag::Subscript
            | Tag::FootnoteDefinition(_)
            | Tag::DefinitionList
            | Tag::DefinitionListTitle
            | Tag::DefinitionListDefinition
            | Tag::MetadataBlock(_) => {}
        }
    }

    fn end(&mut self, tag: TagEnd) {
        match tag {
            TagEnd::Paragraph | TagEnd::Heading(_) | TagEnd::HtmlBlock => self.block(2),
            TagEnd::BlockQuote(_) => {
                self.quote = self.quote.saturating_sub(1);
                self.block(2);
            }
            TagEnd::CodeBlock => {
                self.code_block = false;
                self.block(2);
            }
            TagEnd::List(_) => {
                self.lists.pop();
                self.block(if self.lists.is_empty() { 2 } else { 1 });
            }
            TagEnd::Item => {
                self.indents.pop();
                self.fresh_item = false;
                self.block(1);
            }
            TagEnd::TableCell => {
                if let Some(t) = &mut self.table {
                    let cell = std::mem::take(&mut t.cell);
                    t.row.push(cell.trim().to_owned());
                }
            }
            TagEnd::TableHead | TagEnd::TableRow => {
                if let Some(t) = &mut self.table {
                    let row = std::mem::take(&mut t.row);
                    t.rows.push(row);
                }
            }
            TagEnd::Table => {
                if let Some(t) = self.table.take() {
                    let lines: Vec<String> = t.rows.iter().map(|r| r.join(" | ")).collect();
                    self.write(&lines.join("\n"));
                }
                self.block(2);
            }
            TagEnd::Link | TagEnd::Image => {
                if let Some(link) = self.link.pop() {
                    self.close_link(link);
                }
            }
            _ => {}
        }
    }

    /// A link or image starts: its text is written, then rewritten at its end.
    fn open_link(&mut self, url: String, image: bool) {
        let start = self.buf().len();
        self.link.push(Link { start, url, image });
    }

    /// Rewrites a link's (or image's) text, already written, as the link.
    fn close_link(&mut self, link: Link) {
        let style = self.links;
        let buf = self.buf();
        let text = buf.split_off(link.start.min(buf.len()));
        let label = text.trim();
        let url = link.url.trim();
        let web = ["http://", "https://"].iter().any(|scheme| {
            url.get(..scheme.len())
                .is_some_and(|p| p.eq_ignore_ascii_case(scheme))
        });
        let written = match style {
            _ if url.is_empty() => label.to_owned(),
            // Only web links become anchors; `javascript:` and the rest stay text.
            LinkStyle::Anchor if web => {
                let label = match label {
                    "" if link.image => "图片",
                    "" => url,
                    l => l,
                };
                format!("<a href=\"{}\">{label}</a>", url.replace('"', "%22"))
            }
            _ if label.is_empty() || label == url => url.to_owned(),
            _ => format!("{label} ({url})"),
        };
        buf.push_str(&written);
    }

    fn finish(self) -> String {
        let lines: Vec<&str> = self.out.lines().map(str::trim_end).collect();
        lines.join("\n").trim().to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markdown_becomes_readable_plain_text() {
        let cases: &[(&str, &str)] = &[
            ("# 标题\n\n正文", "标题\n\n正文"),
            (
                "## Price\nIt is **cheap** and *good*.",
                "Price\n\nIt is cheap and good.",
            ),
            ("~~old~~ new `code`", "old new code"),
            (
                "- 一\n- 二\n  - 二点一\n- 三",
                "• 一\n• 二\n  • 二点一\n• 三",
            ),
            ("Steps:\n\n1. open\n2. close", "Steps:\n\n1. open\n2. close"),
            ("3. three\n4. four", "3. three\n4. four"),
            ("- [x] done\n- [ ] todo", "• ☑ done\n• ☐ todo"),
            ("> quoted\n> still\n\nafter", "> quoted\n> still\n\nafter"),
            ("> one\n>\n> two", "> one\n>\n> two"),
            ("| a |\n|---|\n| b |\n\n> q", "a\nb\n\n> q"),
            ("- item\n\n> q\n\n1. x", "• item\n\n> q\n\n1. x"),
            ("> - a\n> - b", "> • a\n> • b"),
            (
                "```rust\nfn main() {\n    println!(\"*hi*\");\n}\n```\ndone",
                "fn main() {\n    println!(\"*hi*\");\n}\n\ndone",
            ),
            (
                "| 名称 | 价格 |\n|---|---:|\n| 苹果 | **5** 元 |\n| 梨 | 3 元 |",
                "名称 | 价格\n苹果 | 5 元\n梨 | 3 元",
            ),
            (
                "see [the docs](https://example.com/d) now",
                "see the docs (https://example.com/d) now",
            ),
            ("<https://example.com>", "https://example.com"),
            (
                "![a cat](https://example.com/cat.png)",
                "a cat (https://example.com/cat.png)",
            ),
            (
                "![](https://example.com/cat.png)",
                "https://example.com/cat.png",
            ),
            ("a\n\n---\n\nb", "a\n\n————\n\nb"),
            ("line one\nline two", "line one\nline two"),
            ("plain text, nothing to do。", "plain text, nothing to do。"),
            ("snake_case_name stays", "snake_case_name stays"),
            ("1 < 2 and 3 > 2", "1 < 2 and 3 > 2"),
        ];
        for (markdown, plain) in cases {
            assert_eq!(&to_plain(markdown, LinkStyle::Text), plain, "{markdown:?}");
        }
    }

    #[test]
    fn links_become_anchors_where_the_platform_renders_them() {
        let cases: &[(&str, &str)] = &[
            (
                "see [the docs](https://example.com/d)",
                "see <a href=\"https://example.com/d\">the docs</a>",
            ),
            (
                "![](https://example.com/cat.png)",
                "<a href=\"https://example.com/cat.png\">图片</a>",
            ),
            (
                "<https://example.com>",
                "<a href=\"https://example.com\">https://example.com</a>",
            ),
            ("[x](javascript:alert(1))", "x (javascript:alert(1))"),
            (
                "[q](HTTPS://example.com/?a=\"b\")",
                "<a href=\"HTTPS://example.com/?a=%22b%22\">q</a>",
            ),
        ];
        for (markdown, want) in cases {
            assert_eq!(&to_plain(markdown, LinkStyle::Anchor), want, "{markdown:?}");
        }
    }

    #[test]
    fn characters_xml_cannot_hold_are_removed() {
        assert_eq!(strip_xml_invalid("a\u{0}b\u{1b}[0mc\u{FFFF}d"), "ab[0mcd");
        assert_eq!(
            strip_xml_invalid("tab\tand\r\nlines 你好 👋"),
            "tab\tand\r\nlines 你好 👋"
        );
        assert!(matches!(strip_xml_invalid("clean"), Cow::Borrowed(_)));
    }
}
