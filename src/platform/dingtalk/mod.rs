//! DingTalk robots (钉钉机器人), HTTP mode: JSON callbacks signed with the
//! AppSecret (`timestamp` and `sign` headers), answered in the response
//! body when the answer is ready in time, else through the message's
//! `sessionWebhook` before it expires (docs/platforms/dingtalk.md).
//!
//! The late channel falls back to the robot send API (`batchSend`, group
//! send) with an access token once the webhook cannot carry an answer; the
//! app's encrypted event callbacks (事件订阅) come to the same path.
//!
//! Files: `sign.rs` (the signature, pure), `event.rs` (robot messages into
//! the domain, pure), `events.rs` (the encrypted event callbacks, pure),
//! `gate.rs` (the callback pipeline), `api.rs` (the access token and the
//! robot send API), `reply.rs` (answers as robot messages, and the late
//! channel).

pub mod api;
pub mod event;
pub mod events;
mod gate;
mod reply;
pub mod sign;

use std::time::Duration;

pub use api::{DingTalkApi, DingTalkClient, DingTalkClientSettings, DingTalkError};
pub use events::DingTalkEvents;
pub use gate::{DingTalkCallback, DingTalkCallbackError};
pub use reply::{messages, RobotDelivery};

use super::callback::Dialect;
use crate::domain::{Capabilities, LateSend, PassiveReply};

/// Not used: DingTalk's callbacks are JSON; declared only so that every
/// account kind has a WeChat-family dialect.
pub const DIALECT: Dialect = Dialect {
    always_encrypted: false,
    encrypted_echo: false,
    no_reply_body: "",
};

/// What a DingTalk robot can do: answer in the callback's response (wxgate
/// keeps to 3 s; the pages read do not state DingTalk's timeout), send
/// through the message's `sessionWebhook` while it lives and through the
/// robot send API after, and render markdown.
pub fn capabilities() -> Capabilities {
    Capabilities {
        passive_reply: Some(PassiveReply {
            deadline: Duration::from_secs(3),
            max_articles_to_user: crate::domain::MAX_ARTICLES,
        }),
        push_retries: None,
        late_send: Some(LateSend {
            max_text_bytes: reply::MAX_MARKDOWN_BYTES,
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
