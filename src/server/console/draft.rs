//! One account's rules as a draft: cut out of the config file as TOML
//! (`default_reply` and `[[rules]]`, nothing else, so no secret of the
//! file reaches the page), and put back into it with every other line,
//! comments included, as written.
//!
//! An account reads its rules where a reload does (see
//! `reload::declares_rules`): its own `[[accounts]]` entry when the entry
//! has `rules` or `default_reply`, else the top level (shared by every
//! account that has none of its own).

use toml_edit::{DocumentMut, Item, Table};

/// Where an account's rules are written in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    /// The top-level `default_reply` and `[[rules]]`.
    Top,
    /// Its `[[accounts]]` entry (index in the array).
    Entry(usize),
}

/// The keys a draft may hold.
const KEYS: [&str; 2] = ["default_reply", "rules"];

/// Why a draft cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum DraftError {
    /// The draft is not TOML.
    #[error("draft:{line}:{column}: {message}")]
    Syntax {
        /// 1-based line in the draft.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What is wrong.
        message: String,
    },
    /// The draft holds something else than rules.
    #[error("the draft may hold only default_reply and [[rules]], not `{0}`")]
    Foreign(String),
    /// The config file itself cannot be read as TOML.
    #[error("the config file is not valid TOML: fix it on the server first")]
    File,
}

fn parse(text: &str) -> Result<DocumentMut, DraftError> {
    text.parse::<DocumentMut>().map_err(|e| {
        let (line, column) = e
            .span()
            .map(|span| line_col(text, span.start))
            .unwrap_or((1, 1));
        DraftError::Syntax {
            line,
            column,
            message: e.message().to_owned(),
        }
    })
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
    (line, column)
}

/// Where `account`'s rules are written in `doc`.
fn place_in(doc: &DocumentMut, account: &str) -> Place {
    let entries = doc
        .get("accounts")
        .and_then(Item::as_array_of_tables)
        .into_iter()
        .flat_map(|a| a.iter().enumerate());
    for (index, entry) in entries {
        if entry.get("name").and_then(|n| n.as_str()) == Some(account)
            && KEYS.iter().any(|k| entry.contains_key(k))
        {
            return Place::Entry(index);
        }
    }
    Place::Top
}

/// Where `account`'s rules are written in the file `text`.
pub fn place(text: &str, account: &str) -> Result<Place, DraftError> {
    let doc = text.parse::<DocumentMut>().map_err(|_| DraftError::File)?;
    Ok(place_in(&doc, account))
}

fn table_at(doc: &mut DocumentMut, place: Place) -> Option<&mut Table> {
    match place {
        Place::Top => Some(doc.as_table_mut()),
        Place::Entry(i) => doc
            .get_mut("accounts")
            .and_then(Item::as_array_of_tables_mut)
            .and_then(|a| a.get_mut(i)),
    }
}

/// `account`'s rules in the file `text`, as a draft.
pub fn extract(text: &str, account: &str) -> Result<String, DraftError> {
    let mut doc = text.parse::<DocumentMut>().map_err(|_| DraftError::File)?;
    let place = place_in(&doc, account);
    let table = table_at(&mut doc, place).ok_or(DraftError::File)?;
    let mut out = DocumentMut::new();
    for key in KEYS {
        if let Some(item) = table.get(key) {
            let mut item = item.clone();
            renumber(&mut item, 0);
            out.insert(key, item);
        }
    }
    let text = out.to_string();
    Ok(text.trim_start().to_owned())
}

/// The file `text` with `account`'s rules replaced by the `draft`.
pub fn splice(text: &str, account: &str, draft: &str) -> Result<String, DraftError> {
    let draft = parse(draft)?;
    if let Some((key, _)) = draft.iter().find(|(k, _)| !KEYS.contains(k)) {
        return Err(DraftError::Foreign(key.to_owned()));
    }
    let mut doc = text.parse::<DocumentMut>().map_err(|_| DraftError::File)?;
    let place = place_in(&doc, account);
    // New tables are written where the old ones were: after everything
    // else at the top level, inside the entry for an entry (a
    // `[[accounts.rules]]` header after the next `[[accounts]]` would
    // belong to that one).
    let position = match place {
        Place::Top => usize::MAX / 2,
        Place::Entry(_) => table_at(&mut doc, place)
            .and_then(|t| t.position())
            .unwrap_or(0),
    };
    let table = table_at(&mut doc, place).ok_or(DraftError::File)?;
    for key in KEYS {
        table.remove(key);
    }
    for (key, item) in draft.iter() {
        let mut item = item.clone();
        renumber(&mut item, position);
        table.insert(key, item);
    }
    Ok(doc.to_string())
}

/// Gives every table in `item` the document position `position` (their
/// order among themselves stays: the writer sorts stably).
fn renumber(item: &mut Item, position: usize) {
    match item {
        Item::Table(table) => renumber_table(table, position),
        Item::ArrayOfTables(array) => {
            for table in array.iter_mut() {
                renumber_table(table, position);
            }
        }
        _ => {}
    }
}

fn renumber_table(table: &mut Table, position: usize) {
    table.set_position(position);
    for (_, item) in table.iter_mut() {
        renumber(item, position);
    }
}

/// One row of the readable table of a draft's rules.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Row {
    /// The rule's name (`#N` when it has none), or `default_reply`.
    pub name: String,
    /// The `match` table, as one line of TOML.
    pub matches: String,
    /// The reply's type.
    pub reply_type: String,
    /// The reply's text, or what it holds (articles, media id …).
    pub reply: String,
}

/// The rules of a draft as rows (the draft is assumed valid; what does not
/// read is shown as it is).
pub fn rows(draft: &str) -> Vec<Row> {
    let Ok(value) = draft.parse::<toml::Table>() else {
        return Vec::new();
    };
    let mut rows = Vec::new();
    let rules = value
        .get("rules")
        .and_then(|r| r.as_array())
        .cloned()
        .unwrap_or_default();
    for (i, rule) in rules.iter().enumerate() {
        let name = rule
            .get("name")
            .and_then(|n| n.as_str())
            .map(str::to_owned)
            .unwrap_or_else(|| format!("#{}", i + 1));
        let matches = rule.get("match").map(inline).unwrap_or_default();
        let (reply_type, reply) = rule.get("reply").map(reply_of).unwrap_or_default();
        rows.push(Row {
            name,
            matches,
            reply_type,
            reply,
        });
    }
    if let Some(default) = value.get("default_reply") {
        let (reply_type, reply) = reply_of(default);
        rows.push(Row {
            name: "default_reply".into(),
            matches: "*".into(),
            reply_type,
            reply,
        });
    }
    rows
}

/// A value as one line of TOML.
fn inline(value: &toml::Value) -> String {
    match value {
        toml::Value::Table(t) => {
            let inner: Vec<String> = t
                .iter()
                .map(|(k, v)| format!("{k} = {}", inline(v)))
                .collect();
            format!("{{ {} }}", inner.join(", "))
        }
        other => other.to_string(),
    }
}

fn reply_of(reply: &toml::Value) -> (String, String) {
    let kind = reply
        .get("type")
        .and_then(|t| t.as_str())
        .unwrap_or("?")
        .to_owned();
    let text = if let Some(content) = reply.get("content").and_then(|c| c.as_str()) {
        content.to_owned()
    } else if let Some(articles) = reply.get("articles").and_then(|a| a.as_array()) {
        let titles: Vec<&str> = articles
            .iter()
            .filter_map(|a| a.get("title").and_then(|t| t.as_str()))
            .collect();
        format!("{} article(s): {}", articles.len(), titles.join(" / "))
    } else if let Some(upstream) = reply.get("upstream").and_then(|u| u.as_str()) {
        format!("→ {upstream}")
    } else if let Some(media) = reply.get("media_id").and_then(|m| m.as_str()) {
        media.to_owned()
    } else {
        String::new()
    };
    (kind, text)
}

/// The names of the accounts that read the top-level rules, for the page
/// to say who else a change there reaches.
pub fn sharing_top(text: &str, accounts: &[String]) -> Vec<String> {
    let Ok(doc) = text.parse::<DocumentMut>() else {
        return Vec::new();
    };
    accounts
        .iter()
        .filter(|a| place_in(&doc, a) == Place::Top)
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = r#"# the server
[server]
listen = "127.0.0.1:8080"

[account]
token = "secret-token" # never in a draft

[default_reply]
type = "text"
content = "echo"

[[rules]]
name = "hello"
match = { text = "hello" }
reply = { type = "text", content = "hi" }

[[accounts]]
name = "shop"
token = "shop-token"
[[accounts.rules]]
name = "buy"
match = { text = "buy" }
reply = { type = "text", content = "ok" }

[[accounts]]
name = "shares"
token = "t3"
"#;

    #[test]
    fn a_draft_holds_the_rules_only() {
        let draft = extract(FILE, "default").unwrap();
        assert!(
            draft.contains("[[rules]]") && draft.contains("hello"),
            "{draft}"
        );
        assert!(draft.contains("[default_reply]"), "{draft}");
        assert!(!draft.contains("token"), "{draft}");
        let shop = extract(FILE, "shop").unwrap();
        assert!(shop.contains("buy") && !shop.contains("hello"), "{shop}");
        assert!(!shop.contains("token"), "{shop}");
        assert_eq!(place(FILE, "shares").unwrap(), Place::Top);
        assert_eq!(place(FILE, "shop").unwrap(), Place::Entry(0));
    }

    #[test]
    fn splicing_keeps_the_rest_of_the_file() {
        let draft = "[[rules]]\nname = \"new\"\nmatch = { text = \"n\" }\nreply = { type = \"text\", content = \"N\" }\n";
        let out = splice(FILE, "default", draft).unwrap();
        assert!(out.starts_with("# the server\n"), "{out}");
        assert!(out.contains("# never in a draft"), "{out}");
        assert!(!out.contains("\"hello\""), "{out}");
        assert!(!out.contains("[default_reply]"), "{out}");
        let parsed: toml::Table = out.parse().unwrap();
        assert_eq!(parsed["rules"][0]["name"].as_str(), Some("new"));
        assert_eq!(
            parsed["accounts"][0]["rules"][0]["name"].as_str(),
            Some("buy")
        );

        let shop = splice(FILE, "shop", draft).unwrap();
        let parsed: toml::Table = shop.parse().unwrap();
        assert_eq!(
            parsed["accounts"][0]["rules"][0]["name"].as_str(),
            Some("new")
        );
        assert!(parsed["accounts"][1].get("rules").is_none(), "{shop}");
        assert_eq!(parsed["rules"][0]["name"].as_str(), Some("hello"));
    }

    #[test]
    fn foreign_keys_and_bad_toml_are_refused_with_the_place() {
        assert!(matches!(
            splice(FILE, "default", "[account]\ntoken = \"x\"\n"),
            Err(DraftError::Foreign(k)) if k == "account"
        ));
        match splice(FILE, "default", "[[rules]]\nname = \n") {
            Err(DraftError::Syntax { line, .. }) => assert_eq!(line, 2),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn rows_read_match_and_reply() {
        let rows = rows(&extract(FILE, "default").unwrap());
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].name, "hello");
        assert_eq!(rows[0].matches, "{ text = \"hello\" }");
        assert_eq!(
            (rows[0].reply_type.as_str(), rows[0].reply.as_str()),
            ("text", "hi")
        );
        assert_eq!(rows[1].name, "default_reply");
    }
}
