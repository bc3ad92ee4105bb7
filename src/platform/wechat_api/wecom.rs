//! WeCom API bodies: app messages and WeChat Customer Service (PROTOCOL §7).

use serde::{Deserialize, Serialize};

use super::CustomBody;

/// `POST /cgi-bin/message/send`: a message from a WeCom self-built app.
/// The bodies are those of the Official Account custom send (text, image,
/// voice, video, news with up to 8 articles).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AppMessage {
    /// The member's user id.
    pub touser: String,
    /// The app's AgentID.
    pub agentid: i64,
    /// What to send.
    #[serde(flatten)]
    pub body: CustomBody,
}

/// `POST /cgi-bin/kf/sync_msg`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KfSyncRequest {
    /// Where the previous pull stopped; absent the first time.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
    /// The `Token` of the callback that announced the messages (10 minutes).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// At most this many messages (1..=1000).
    pub limit: u32,
    /// 0: voice as amr.
    pub voice_format: u32,
    /// The Customer Service account.
    pub open_kfid: String,
}

/// The answer of `kf/sync_msg`.
#[derive(Debug, Clone, Deserialize)]
pub struct KfSyncResponse {
    /// Where the next pull starts.
    #[serde(default)]
    pub next_cursor: String,
    /// 1 when more messages wait.
    #[serde(default)]
    pub has_more: i64,
    /// The messages, oldest first.
    #[serde(default)]
    pub msg_list: Vec<KfMessage>,
}

/// One message of a `kf/sync_msg` page. Only what wxgate uses is typed;
/// the rest stays in `rest`.
#[derive(Debug, Clone, Deserialize)]
pub struct KfMessage {
    /// Unique message id.
    pub msgid: String,
    /// The Customer Service account.
    #[serde(default)]
    pub open_kfid: String,
    /// The customer.
    #[serde(default)]
    pub external_userid: String,
    /// Unix seconds.
    #[serde(default)]
    pub send_time: i64,
    /// 3: the customer; 4: a system event; 5: a servicer in the WeCom client.
    #[serde(default)]
    pub origin: i64,
    /// `text`, `image`, `voice`, `video`, `file`, `location`, `link`, `event`, …
    #[serde(default)]
    pub msgtype: String,
    /// The type-specific objects (`text`, `image`, `event`, …).
    #[serde(flatten)]
    pub rest: serde_json::Map<String, serde_json::Value>,
}

/// `POST /cgi-bin/kf/send_msg`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KfSendRequest {
    /// The customer's external_userid.
    pub touser: String,
    /// The Customer Service account.
    pub open_kfid: String,
    /// Our id for the message (≤ 32 bytes of `[0-9a-zA-Z_-]`), echoed back.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub msgid: Option<String>,
    /// What to send.
    #[serde(flatten)]
    pub body: CustomBody,
}

/// The answer of `kf/send_msg`.
#[derive(Debug, Clone, Deserialize)]
pub(super) struct KfSendResponse {
    #[serde(default)]
    pub msgid: String,
}
