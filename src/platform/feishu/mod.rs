//! Feishu / Lark bots (飞书机器人): JSON event callbacks on their own path,
//! answered with HTTP 200 at once; every answer goes through the message
//! reply API with the app's `tenant_access_token` (docs/platforms/feishu.md).
//! The platform only declares this ([`capabilities`]: no passive reply, a
//! late channel); the conversation engine runs every answer as a turn and
//! hands it to [`FeishuDelivery`].
//!
//! Files: `crypto.rs` (the AES envelope and `X-Lark-Signature`, pure),
//! `event.rs` (bodies and `im.message.receive_v1` into the domain, pure),
//! `gate.rs` (the callback pipeline: decrypt, authenticate, read), `api.rs`
//! (the token fetcher and the reply API), `reply.rs` (answers as Feishu
//! replies, and the late channel the conversation engine sends them by).

pub mod api;
pub mod crypto;
pub mod event;
mod gate;
mod reply;

use std::time::Duration;

pub use api::{FeishuApi, FeishuClient, FeishuClientSettings, FeishuCode, FeishuError};
pub use gate::{FeishuCallback, FeishuCallbackError, Opened, SignedBy};
pub use reply::{markdown_of, reply_bodies, FeishuDelivery};

use super::callback::Dialect;
use crate::domain::{Capabilities, LateSend};

/// Feishu re-pushes an event it got no 200 for after 15 s, 5 min, 1 h and
/// 6 h: a message is remembered for longer than that.
pub const DEDUP_HORIZON: Duration = Duration::from_secs(7 * 3600 + 12 * 60);

/// Not used: Feishu's callbacks are JSON, opened by [`FeishuCallback`];
/// declared only so that every account kind has a WeChat-family dialect.
pub const DIALECT: Dialect = Dialect {
    always_encrypted: false,
    encrypted_echo: false,
    no_reply_body: "",
};

/// What a Feishu bot can do: nothing in the callback's response (it is
/// only acknowledged), replies at any time with no per-turn quota, posts
/// rendering markdown.
pub fn capabilities() -> Capabilities {
    Capabilities {
        passive_reply: None,
        push_retries: None,
        late_send: Some(LateSend {
            max_text_bytes: reply::MAX_POST_BYTES,
            messages_per_turn: None,
            window: None,
        }),
        typing: false,
        media_upload: false,
        streaming: false,
        text_links: false,
        markdown: true,
    }
}
