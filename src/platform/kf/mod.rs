//! WeChat Customer Service (微信客服): pull on notification, answer, move the
//! cursor (PROTOCOL §4 kf notification, §7 `kf/sync_msg`, `kf/send_msg`).
//!
//! Guarantees, across restarts and nodes sharing one store:
//! - one pull per `open_kfid` at a time: a lock in the store (owner-checked,
//!   renewed while the pull runs); another node's notification waits for it
//!   and then pulls from where it stopped;
//! - the cursor is written only after every message of its page is handled,
//!   so a node dying mid-page leaves the page to be pulled again;
//! - each answered message is marked done (by its `msgid`), so pulling a
//!   page again never answers a message twice;
//! - messages older than `max_message_age` (sent while wxgate was down) are
//!   not answered: an automatic answer hours late does more harm than good.

//!
//! Files: `puller.rs` (the pull, its lock, cursor and done marks),
//! `convert.rs` (pulled JSON messages into the domain, answers into what a
//! session takes), `responder.rs` (the callback side).

mod convert;
mod puller;
mod responder;

use std::time::Duration;

pub use puller::{KfError, KfParts, KfPuller, PullReport};
pub use responder::KfResponder;

use super::callback::Dialect;
use crate::domain::{Capabilities, LateSend};

/// 微信客服's callback speaks WeCom's dialect (it is a WeCom callback).
pub const DIALECT: Dialect = super::wecom::DIALECT;

/// What 微信客服 can do: nothing in the callback (it only says "there is
/// news"); `kf/send_msg` up to 5 messages within 48 h of the customer's
/// last message, text up to 2048 bytes (PROTOCOL §7).
pub fn capabilities() -> Capabilities {
    Capabilities {
        passive_reply: None,
        push_retries: None,
        late_send: Some(LateSend {
            max_text_bytes: crate::domain::split::MAX_TEXT_BYTES,
            messages_per_turn: Some(5),
            window: Some(Duration::from_secs(48 * 3600)),
        }),
        typing: false,
        media_upload: true,
        streaming: false,
        text_links: false,
        markdown: false,
    }
}
