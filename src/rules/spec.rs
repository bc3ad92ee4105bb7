//! The TOML schema of rules and replies, exactly as written by account owners.

use serde::Deserialize;

/// One or several strings: `text = "hi"` or `text = ["hi", "hello"]`.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum OneOrMany {
    /// A single string.
    One(String),
    /// A list of strings.
    Many(Vec<String>),
}

impl OneOrMany {
    /// The strings, in order.
    pub fn items(&self) -> &[String] {
        match self {
            OneOrMany::One(s) => std::slice::from_ref(s),
            OneOrMany::Many(v) => v,
        }
    }
}

/// A `[[rules]]` entry.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RuleSpec {
    /// Name shown in logs, metrics and `wxgate rules test`.
    #[serde(default)]
    pub name: Option<String>,
    /// What the rule matches.
    #[serde(rename = "match")]
    pub matcher: MatchSpec,
    /// What it answers.
    pub reply: ReplySpec,
}

/// The `match = { … }` table. Exactly one of `text`, `contains`, `prefix`,
/// `regex`, `msg_type`, `event` must be set.
#[derive(Debug, Clone, Deserialize, Default, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct MatchSpec {
    /// Whole text equals one of these.
    pub text: Option<OneOrMany>,
    /// Text contains one of these.
    pub contains: Option<OneOrMany>,
    /// Text starts with one of these.
    pub prefix: Option<OneOrMany>,
    /// Text matches this regular expression (Rust `regex` syntax).
    pub regex: Option<String>,
    /// Compare text case-insensitively.
    #[serde(default)]
    pub ignore_case: bool,
    /// Message type: image, voice, video, shortvideo, location, link, text, event, …
    pub msg_type: Option<String>,
    /// Event name (subscribe, CLICK, …), case-insensitive.
    pub event: Option<String>,
    /// With `event`: EventKey equals this.
    pub key: Option<String>,
    /// With `event`: EventKey starts with this (e.g. `qrscene_`).
    pub key_prefix: Option<String>,
}

/// One article of a news reply.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ArticleSpec {
    /// Title.
    pub title: String,
    /// Summary.
    #[serde(default)]
    pub description: String,
    /// Link opened on tap.
    pub url: String,
    /// Cover picture.
    #[serde(default)]
    pub pic_url: String,
}

/// The `reply = { type = "…", … }` table.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ReplySpec {
    /// Answer `success` (nothing shown).
    Success,
    /// Text.
    Text {
        /// The text; placeholders allowed.
        content: String,
    },
    /// Image by media id.
    Image {
        /// Media id.
        media_id: String,
    },
    /// Voice by media id.
    Voice {
        /// Media id.
        media_id: String,
    },
    /// Video by media id.
    Video {
        /// Media id.
        media_id: String,
        /// Title.
        title: Option<String>,
        /// Description.
        description: Option<String>,
    },
    /// Music.
    Music {
        /// Thumbnail media id.
        thumb_media_id: String,
        /// Title.
        title: Option<String>,
        /// Description.
        description: Option<String>,
        /// URL.
        music_url: Option<String>,
        /// High-quality URL.
        hq_music_url: Option<String>,
    },
    /// News articles (1 to 8; one is sent in answer to a user message).
    News {
        /// The articles.
        articles: Vec<ArticleSpec>,
    },
    /// Transfer to customer service.
    TransferCustomerService {
        /// A specific agent.
        kf_account: Option<String>,
    },
    /// Hand the message to an `[[upstreams]]` entry (an agent); its answer
    /// is the reply. Only rules and `default_reply` may use it.
    Upstream {
        /// The upstream's `name`.
        upstream: String,
    },
}
