//! WeCom 智能机器人 (smart bots): JSON callbacks in the WeCom AES envelope
//! with an empty receive id, answered with a *stream* that WeCom pulls
//! ("流式消息刷新") about once a second until it is finished, and a
//! `response_url` for one late push (docs/platforms/wecom_bot.md).
//!
//! Files: `event.rs` (the decrypted JSON into the domain, pure), `gate.rs`
//! (signature, envelope and the encrypted JSON answer), `stream.rs` (the
//! stream state in the store, how the engine's answers render into it,
//! and the late channel that fills it and makes the `response_url` push).
//! The turns themselves are the conversation engine's, as on every
//! platform.

pub mod event;
mod gate;
mod stream;

use std::time::Duration;

pub use event::{BotPush, WeComBotEventError};
pub use gate::{WeComBotCallback, WeComBotCallbackError};
pub use stream::{
    BotRender, StreamAnswer, StreamDelivery, StreamState, Streams, WelcomeRender, STREAM_WINDOW,
};

use super::callback::Dialect;
use crate::domain::{Capabilities, LateSend, PassiveReply};

/// Not used: 智能机器人 callbacks are JSON; declared only so that every
/// account kind has a WeChat-family dialect.
pub const DIALECT: Dialect = Dialect {
    always_encrypted: true,
    encrypted_echo: true,
    no_reply_body: "",
};

/// Longest stream content (WeCom takes 20 480 bytes of UTF-8).
pub const MAX_STREAM_BYTES: usize = 20_480;

/// What a 智能机器人 can do: answer in the callback (a stream WeCom then
/// refreshes), render markdown, show an answer while it is being written,
/// and take one late push through the message's `response_url` within an
/// hour.
pub fn capabilities() -> Capabilities {
    Capabilities {
        passive_reply: Some(PassiveReply {
            deadline: Duration::from_secs(5),
            max_articles_to_user: crate::domain::MAX_ARTICLES,
        }),
        push_retries: None,
        late_send: Some(LateSend {
            max_text_bytes: MAX_STREAM_BYTES,
            messages_per_turn: Some(1),
            window: Some(Duration::from_secs(3600)),
        }),
        typing: false,
        media_upload: false,
        streaming: true,
        text_links: false,
        markdown: true,
    }
}
