//! A TOML error as an operator may see it: file, line, column and the key,
//! never the text of a line that may hold a secret.
//!
//! The TOML parser's own message quotes the offending line (and serde's
//! type errors quote the value: ``invalid type: string "…"``). Both end up
//! in the ERROR log and the `/admin/reload` 422 body, so neither is passed
//! on as it is: the line is never quoted, and on a line whose key names a
//! secret every quoted piece of the message is replaced by `…`.

use std::path::Path;

use super::ConfigError;

/// Parts of key names that say the value is (or may contain) a secret:
/// `app_secret`, `corp_secret`, `token`, `encoding_aes_key`, `api_key`,
/// `internal_api_key`, passwords, and URLs (which may carry credentials).
const SECRET_MARKERS: &[&str] = &[
    "secret",
    "token",
    "key",
    "password",
    "passwd",
    "credential",
    "auth",
    "url",
    // `store.cluster`: the nodes' URLs.
    "cluster",
];

/// Whether a value under `key` (dotted or bare) may be a secret.
pub fn is_secret_key(key: &str) -> bool {
    let last = key.rsplit('.').next().unwrap_or(key).to_ascii_lowercase();
    SECRET_MARKERS.iter().any(|m| last.contains(m))
}

/// The [`ConfigError::Syntax`] for `error` in `text` read from `path`.
pub(super) fn syntax_error(path: &Path, text: &str, error: &toml::de::Error) -> ConfigError {
    let message = error.message().trim().to_owned();
    let Some(span) = error.span() else {
        // No position: the message alone, quoted pieces removed (it cannot
        // be told which key it is about).
        return ConfigError::Syntax {
            path: path.to_owned(),
            line: None,
            column: None,
            key: None,
            message: redact_quoted(&message),
        };
    };
    let at = span.start.min(text.len());
    let before = &text[..floor_char_boundary(text, at)];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    let key = key_at(text, line_start);
    let secret = key.as_deref().is_none_or(is_secret_key) || line_mentions_secret(text, line_start);
    ConfigError::Syntax {
        path: path.to_owned(),
        line: Some(line),
        column: Some(column),
        key,
        message: if secret {
            redact_quoted(&message)
        } else {
            message
        },
    }
}

/// The dotted key of the line starting at `line_start`: the table header
/// above it and the key before its `=`; the header itself on a header line.
fn key_at(text: &str, line_start: usize) -> Option<String> {
    let line = text[line_start..].lines().next().unwrap_or("").trim();
    if let Some(header) = header_name(line) {
        return Some(header);
    }
    let bare = line
        .split('=')
        .next()
        .filter(|_| line.contains('='))?
        .trim();
    let bare = bare.trim_matches(|c| c == '"' || c == '\'');
    if bare.is_empty() {
        return None;
    }
    let table = text[..line_start]
        .lines()
        .rev()
        .find_map(|l| header_name(l.trim()));
    Some(match table {
        Some(table) => format!("{table}.{bare}"),
        None => bare.to_owned(),
    })
}

/// `account` for `[account]`, `accounts` for `[[accounts]]`.
fn header_name(line: &str) -> Option<String> {
    let inner = line.strip_prefix('[')?;
    let end = inner.find(']')?;
    Some(inner[..end].trim_matches(['[', ']', ' ']).to_owned())
}

/// A line that names a secret anywhere (an inline table such as
/// `account = { token = "…" }`) counts as a secret line.
fn line_mentions_secret(text: &str, line_start: usize) -> bool {
    let line = text[line_start..].lines().next().unwrap_or("");
    line.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .any(|word| !word.is_empty() && is_secret_key(word))
}

/// `message` with every `"…"`, `'…'` and `` `…` `` piece replaced by `…`.
fn redact_quoted(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut quote: Option<char> = None;
    for c in message.chars() {
        match quote {
            Some(q) if c == q => {
                out.push('…');
                out.push(c);
                quote = None;
            }
            Some(_) => {}
            None => {
                out.push(c);
                if matches!(c, '"' | '\'' | '`') {
                    quote = Some(c);
                }
            }
        }
    }
    if quote.is_some() {
        out.push('…');
    }
    out
}

/// The largest char boundary at or below `at`.
fn floor_char_boundary(text: &str, mut at: usize) -> usize {
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    at
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(text: &str) -> ConfigError {
        let e = toml::from_str::<toml::Table>(text).unwrap_err();
        syntax_error(Path::new("wxgate.toml"), text, &e)
    }

    #[test]
    fn a_broken_secret_line_gives_its_place_and_key_but_not_its_text() {
        let secret = "Sup3rS3cretValue0123456789";
        for key in [
            "app_secret",
            "corp_secret",
            "token",
            "encoding_aes_key",
            "api_key",
        ] {
            for broken in [
                format!("{key} = \"{secret}\n"),
                format!("{key} = {secret}\n"),
                format!("{key} = \"{secret}\" x\n"),
                format!("{key} = '{secret}\n"),
            ] {
                let text = format!(
                    "[server]\nlisten = \"0.0.0.0:80\"\n\n[account]\n{broken}mode = \"plain\"\n"
                );
                let shown = error(&text).to_string();
                assert!(!shown.contains(secret), "{shown}");
                assert!(!shown.contains(&secret[..8]), "{shown}");
                assert!(shown.starts_with("wxgate.toml:5:"), "{shown}");
                assert!(shown.contains(&format!("`account.{key}`")), "{shown}");
            }
        }
    }

    #[test]
    fn a_value_of_the_wrong_type_on_a_secret_line_is_not_quoted() {
        // serde quotes the value in type errors: "invalid type: integer `…`".
        let secret = "98765432109876543";
        for key in ["app_secret", "token", "encoding_aes_key"] {
            let text = format!("[account]\nmode = \"plain\"\n{key} = {secret}\n");
            let e = crate::config::Config::from_toml(&text, Path::new("wxgate.toml"), |_| None)
                .unwrap_err()
                .to_string();
            assert!(!e.contains(&secret[..8]), "{e}");
            assert!(e.starts_with("wxgate.toml:3:"), "{e}");
            assert!(e.contains(&format!("`account.{key}`")), "{e}");
        }
    }

    #[test]
    fn a_broken_ordinary_line_keeps_the_parser_message() {
        let shown = error("[server]\nlisten = 80 80\n").to_string();
        assert!(shown.starts_with("wxgate.toml:2:"), "{shown}");
        assert!(shown.contains("`server.listen`"), "{shown}");
    }

    #[test]
    fn secret_keys_and_redaction() {
        for key in [
            "app_secret",
            "account.token",
            "internal_api_key",
            "store.url",
            "store.cluster",
            "store.sentinel.urls",
            "store.sentinel.password",
        ] {
            assert!(is_secret_key(key), "{key}");
        }
        for key in ["listen", "server.path", "mode", "dedup_window_secs"] {
            assert!(!is_secret_key(key), "{key}");
        }
        assert_eq!(
            redact_quoted("invalid type: string \"abc\", expected `u64`"),
            "invalid type: string \"…\", expected `…`"
        );
        assert_eq!(redact_quoted("open \"abc"), "open \"…");
    }
}
