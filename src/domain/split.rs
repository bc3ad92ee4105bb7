//! Splitting long text into customer-service messages WeChat accepts.

/// WeChat refuses text messages above about 2048 bytes (`45002`); this
/// leaves room for the JSON escaping WeChat may count.
pub const MAX_TEXT_BYTES: usize = 2000;

/// Sentence ends a part may be cut after when no line break is near.
const SENTENCE_ENDS: [char; 6] = ['。', '！', '？', '.', '!', '?'];

/// Splits `text` into parts of at most `max` bytes (at least 4), in order.
///
/// Each cut goes, in order of preference, at the last line break of the
/// window, after the last sentence end, or at the last char boundary; a
/// line break or sentence end counts only in the back half of the window,
/// so that no tiny parts are produced. The line break at a cut is dropped,
/// so is blank space around it; nothing else is lost.
pub fn split_text(text: &str, max: usize) -> Vec<&str> {
    let max = max.max(4);
    let mut parts = Vec::new();
    let mut rest = text;
    loop {
        rest = rest.trim_start_matches(['\n', '\r']);
        if rest.len() <= max {
            push(&mut parts, rest);
            return parts;
        }
        let window = &rest[..floor_char_boundary(rest, max)];
        let half = window.len() / 2;
        let newline = window.rfind('\n').filter(|&i| i >= half);
        let sentence = sentence_end(window, rest).filter(|&i| i >= half);
        let (end, next) = match (newline, sentence) {
            (Some(i), _) => (i, i + 1),
            (None, Some(i)) => (i, i),
            (None, None) => match (
                window.rfind('\n').filter(|&i| i > 0),
                sentence_end(window, rest),
            ) {
                (Some(i), _) => (i, i + 1),
                (None, Some(i)) => (i, i),
                (None, None) => (window.len(), window.len()),
            },
        };
        push(&mut parts, &rest[..end]);
        rest = &rest[next..];
    }
}

fn push<'a>(parts: &mut Vec<&'a str>, part: &'a str) {
    let part = part.trim_end_matches(['\n', '\r']);
    if !part.trim().is_empty() {
        parts.push(part);
    }
}

/// The byte index just after the last sentence end in `window` (a prefix
/// of `text`), if any. An ASCII `.`, `!` or `?` ends a sentence only when
/// blank space or the end of `text` follows it, so that URLs (`example.com`,
/// `?q=1`) and numbers (`3.14`) are never cut.
fn sentence_end(window: &str, text: &str) -> Option<usize> {
    window
        .char_indices()
        .rev()
        .filter(|(_, c)| SENTENCE_ENDS.contains(c))
        .map(|(i, c)| (c, i + c.len_utf8()))
        .find(|&(c, end)| {
            !c.is_ascii() || text[end..].chars().next().is_none_or(char::is_whitespace)
        })
        .map(|(_, end)| end)
}

/// How much of a markdown answer that is still arriving (streamed) can
/// go out now as one part: the byte index just after the last complete
/// block at or beyond `min` bytes, or `None` while nothing is complete.
///
/// A block is complete at a blank line outside a code fence. Without one,
/// a paragraph of at least three finished sentences (and no table or list
/// in it) may be cut after its last finished sentence. Nothing inside an
/// open code fence is ever cut, so each part converts on its own.
pub fn stream_cut(text: &str, min: usize) -> Option<usize> {
    let mut fenced = false;
    let mut last_break = None;
    let mut paragraph = 0;
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let complete = line.ends_with('\n');
        let trimmed = line.trim();
        if complete && (trimmed.starts_with("```") || trimmed.starts_with("~~~")) {
            fenced = !fenced;
        }
        offset += line.len();
        if complete && !fenced && trimmed.is_empty() {
            if offset >= min && !text[..offset].trim().is_empty() {
                last_break = Some(offset);
            }
            paragraph = offset;
        }
    }
    if fenced {
        return last_break;
    }
    if last_break.is_some() {
        return last_break;
    }
    // No complete block: a few finished sentences of one plain paragraph.
    let tail = &text[paragraph..];
    let structured = tail.lines().any(|l| {
        let l = l.trim_start();
        l.starts_with('|')
            || l.starts_with("- ")
            || l.starts_with("* ")
            || l.starts_with('#')
            || l.starts_with('>')
            || l.split_once(". ")
                .is_some_and(|(n, _)| n.bytes().all(|b| b.is_ascii_digit()) && !n.is_empty())
    });
    if structured {
        return None;
    }
    let ends: Vec<usize> = tail
        .char_indices()
        .filter(|(_, c)| SENTENCE_ENDS.contains(c))
        .map(|(i, c)| (c, i + c.len_utf8()))
        // Still arriving: an ASCII end counts only once blank space follows.
        .filter(|&(c, end)| {
            !c.is_ascii() || tail[end..].chars().next().is_some_and(char::is_whitespace)
        })
        .map(|(_, end)| paragraph + end)
        .collect();
    match ends.last() {
        Some(&end) if ends.len() >= 3 && end >= min => Some(end),
        _ => None,
    }
}

/// The largest char boundary not above `index`.
fn floor_char_boundary(s: &str, index: usize) -> usize {
    (0..=index.min(s.len()))
        .rev()
        .find(|&i| s.is_char_boundary(i))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streamed_text_is_cut_after_complete_blocks() {
        // Nothing complete yet.
        assert_eq!(stream_cut("# 标题\n\n第一段还没", 12), None);
        // A complete paragraph beyond the minimum: cut after its blank line.
        let text = "第一段已经完整了。\n\n第二段还在";
        let cut = stream_cut(text, 12).unwrap();
        assert_eq!(&text[..cut], "第一段已经完整了。\n\n");
        // The last complete block is taken, not the first.
        let text = "one paragraph.\n\ntwo paragraph.\n\nthree";
        assert_eq!(
            &text[..stream_cut(text, 4).unwrap()],
            "one paragraph.\n\ntwo paragraph.\n\n"
        );
        // A heading alone is below the minimum.
        assert_eq!(stream_cut("# Title\n\nbody", 40), None);
    }

    #[test]
    fn streamed_text_is_never_cut_inside_a_code_fence() {
        let open = "intro text here.\n\n```rust\nfn main() {}\n\nlet x = 1;\n";
        // Only the intro before the fence is complete.
        assert_eq!(
            &open[..stream_cut(open, 4).unwrap()],
            "intro text here.\n\n"
        );
        let closed = format!("{open}```\n\nafter");
        assert_eq!(
            &closed[..stream_cut(&closed, 4).unwrap()],
            &closed[..closed.len() - 5]
        );
    }

    #[test]
    fn three_finished_sentences_make_a_part() {
        let text = "第一句。第二句！第三句？第四";
        assert_eq!(
            &text[..stream_cut(text, 4).unwrap()],
            "第一句。第二句！第三句？"
        );
        assert_eq!(stream_cut("第一句。第二句！第三", 4), None);
        // An ASCII end counts once a space follows it (example.com is no end).
        assert_eq!(stream_cut("One. Two. See example.com", 4), None);
        let text = "One. Two. Three. Fo";
        assert_eq!(&text[..stream_cut(text, 4).unwrap()], "One. Two. Three.");
        // Not inside a list or a table.
        assert_eq!(stream_cut("1. One. Two. Three. x", 4), None);
        assert_eq!(stream_cut("| a. b. c. | d", 4), None);
    }

    #[test]
    fn urls_and_numbers_are_not_sentence_ends() {
        let url = "see https://example.com/a.b?c=d.e for 3.14";
        let text = format!("{} {url}", "x".repeat(30));
        for part in split_text(&text, 40) {
            assert!(!part.ends_with('.') && !part.ends_with('?'), "{part:?}");
        }
        // A real sentence end still is one.
        assert_eq!(
            split_text("First sentence here. Second one is longer", 30),
            ["First sentence here.", " Second one is longer"]
        );
    }

    #[test]
    fn short_text_is_one_part() {
        assert_eq!(split_text("你好", MAX_TEXT_BYTES), ["你好"]);
        assert!(split_text("", MAX_TEXT_BYTES).is_empty());
    }

    #[test]
    fn prefers_line_breaks_then_sentences_then_char_boundaries() {
        // A line break in the back half wins over a later sentence end.
        assert_eq!(split_text("aaaaaa\nbb. cc", 10), ["aaaaaa", "bb. cc"]);
        // No line break: after the last sentence end.
        assert_eq!(
            split_text("第一句。第二句！第三句", 24),
            ["第一句。第二句！", "第三句"]
        );
        // Neither: a hard cut that never splits a character.
        let parts = split_text("一二三四五六七", 10);
        assert_eq!(parts, ["一二三", "四五六", "七"]);
    }

    #[test]
    fn every_part_fits_and_nothing_is_lost() {
        let sentence = "这是一个比较长的句子，用来测试分段。It has ASCII too! ";
        let text = sentence.repeat(200);
        let parts = split_text(&text, MAX_TEXT_BYTES);
        assert!(parts.len() > 1);
        assert!(parts
            .iter()
            .all(|p| p.len() <= MAX_TEXT_BYTES && !p.is_empty()));
        assert_eq!(parts.concat(), text);
        // Cuts after sentence ends, not in the middle of one.
        assert!(parts[..parts.len() - 1]
            .iter()
            .all(|p| p.ends_with('。') || p.ends_with('!')));
    }

    #[test]
    fn emoji_and_four_byte_characters_survive() {
        let text = "😀".repeat(1000);
        let parts = split_text(&text, MAX_TEXT_BYTES);
        assert_eq!(parts.len(), 2);
        assert_eq!(parts.concat(), text);
    }

    #[test]
    fn line_breaks_at_cuts_are_dropped() {
        let text = format!("{}\n\n{}", "a".repeat(1500), "b".repeat(1500));
        assert_eq!(
            split_text(&text, MAX_TEXT_BYTES),
            ["a".repeat(1500), "b".repeat(1500)]
        );
    }
}
