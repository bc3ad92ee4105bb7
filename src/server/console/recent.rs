//! The recent messages and answers of each account, in memory, bounded
//! (`console.recent_messages` per account, the oldest dropped first): fed
//! by the callback handler once it has answered, read by the
//! conversations page. OpenIDs are kept shortened only (in the texts
//! too); texts are kept only with `console.show_content = true`.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use crate::domain::Reply;
use crate::telemetry::short_id;

/// One message and what became of it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Entry {
    /// When it was answered (Unix seconds, the app's clock).
    pub at: i64,
    /// The sender's OpenID, shortened (`oABC…WXYZ`).
    pub user: String,
    /// The MsgType (`text`, `event` …).
    pub msg_type: String,
    /// Its text (the transcript of a voice, the event and key), with
    /// `show_content` only.
    pub content: Option<String>,
    /// The outcome label of the metrics (`replied`, `deadline` …).
    pub outcome: &'static str,
    /// The delivery strategy that took over a slow answer, if one did.
    pub strategy: Option<&'static str>,
    /// The answer's type (`text`, `news` …; `success` for none).
    pub reply_type: Option<&'static str>,
    /// The answer's text, with `show_content` only.
    pub reply: Option<String>,
    /// Answer time in milliseconds.
    pub millis: u64,
}

/// What the handler reports of one answered message.
pub struct Observed<'a> {
    /// The account's name.
    pub account: &'a str,
    /// The message.
    pub message: &'a crate::domain::Message,
    /// The outcome label.
    pub outcome: &'static str,
    /// The strategy, when a slow answer went by one.
    pub strategy: Option<&'static str>,
    /// The reply rendered into the HTTP answer, if any.
    pub reply: Option<Reply>,
    /// Answer time in milliseconds.
    pub millis: u64,
}

/// The rings of every account.
pub struct Recent {
    capacity: usize,
    show_content: bool,
    rings: Mutex<HashMap<String, VecDeque<Entry>>>,
}

/// A reply's text for the page.
fn reply_text(reply: &Reply) -> Option<String> {
    match reply {
        Reply::Text { content } => Some(content.clone()),
        Reply::News { articles } => Some(
            articles
                .iter()
                .map(|a| a.title.as_str())
                .collect::<Vec<_>>()
                .join(" / "),
        ),
        _ => None,
    }
}

impl Recent {
    /// Rings of `capacity` entries.
    pub fn new(capacity: usize, show_content: bool) -> Self {
        Recent {
            capacity,
            show_content,
            rings: Mutex::new(HashMap::new()),
        }
    }

    /// Keeps one answered message.
    pub fn record(&self, at: i64, seen: Observed<'_>) {
        let message = seen.message;
        let content = self.show_content.then(|| match message.text() {
            Some(text) => text.to_owned(),
            None if message.event().is_some() => {
                format!("{} {}", message.event_name(), message.event_key())
                    .trim_end()
                    .to_owned()
            }
            None => String::new(),
        });
        // A text may quote the OpenID (`hi {from_user}`): shortened there too.
        let user = short_id(&message.from_user);
        let shorten = |text: String| {
            if message.from_user.is_empty() {
                text
            } else {
                text.replace(&message.from_user, &user)
            }
        };
        let content = content.map(shorten);
        let entry = Entry {
            at,
            user: user.clone(),
            msg_type: message.msg_type.clone(),
            content,
            outcome: seen.outcome,
            strategy: seen.strategy,
            reply_type: seen.reply.as_ref().and_then(Reply::msg_type),
            reply: if self.show_content {
                seen.reply.as_ref().and_then(reply_text).map(shorten)
            } else {
                None
            },
            millis: seen.millis,
        };
        let mut rings = self.rings.lock().unwrap_or_else(|p| p.into_inner());
        let ring = rings.entry(seen.account.to_owned()).or_default();
        if ring.len() >= self.capacity {
            ring.pop_front();
        }
        ring.push_back(entry);
    }

    /// `account`'s entries, newest first, those whose shortened user
    /// contains `user` when given.
    pub fn list(&self, account: &str, user: Option<&str>) -> Vec<Entry> {
        let rings = self.rings.lock().unwrap_or_else(|p| p.into_inner());
        rings
            .get(account)
            .into_iter()
            .flat_map(|r| r.iter().rev())
            .filter(|e| user.is_none_or(|u| e.user.contains(u)))
            .cloned()
            .collect()
    }
}
