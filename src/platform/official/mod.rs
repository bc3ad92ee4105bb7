//! Official Accounts (公众号 / 服务号): XML pushes, plain or in AES safe
//! mode, answered passively within 5 s; later answers through the
//! customer-service API where the account has it.

mod late;

use std::time::Duration;

pub use late::{custom_messages, CustomServiceDelivery};

use super::callback::Dialect;
use crate::agent::media::{MediaKind, MediaLimits};
use crate::domain::{Capabilities, LateSend, PassiveReply, PushRetries};

/// The Official Account's callback rules: encryption as the mode says, the
/// GET echo in the clear, "no reply" the literal `success`.
pub const DIALECT: Dialect = Dialect {
    always_encrypted: false,
    encrypted_echo: false,
    no_reply_body: "success",
};

/// What an Official Account can do. Passive replies always (5 s, three
/// pushes about 5 s apart, one news article to a user message); the
/// customer-service API only with API credentials (and, on WeChat's side,
/// a verified account): 5 messages per user message within 48 h, text up
/// to about 2048 bytes, the typing indicator (PROTOCOL §7). Text messages,
/// passive and customer-service alike, render `<a href>` links.
pub fn capabilities(can_send: bool, typing: bool) -> Capabilities {
    Capabilities {
        passive_reply: Some(PassiveReply {
            deadline: Duration::from_secs(5),
            max_articles_to_user: 1,
        }),
        push_retries: Some(PushRetries {
            pushes: 3,
            interval: Duration::from_secs(5),
        }),
        late_send: can_send.then_some(LateSend {
            max_text_bytes: crate::domain::split::MAX_TEXT_BYTES,
            messages_per_turn: Some(5),
            window: Some(Duration::from_secs(48 * 3600)),
        }),
        typing: can_send && typing,
        media_upload: can_send,
        streaming: false,
        text_links: true,
        markdown: false,
    }
}

/// What the Official Account's temporary-media upload takes: pictures up to
/// 2 MB (PNG, JPEG, GIF), voice up to 2 MB (AMR, MP3), video up to 10 MB
/// (MP4). WeChat's pages differ on the picture size (2 MB and 10 MB both
/// appear); the smaller is kept, so nothing is downloaded to be refused.
pub fn media_limits(kind: MediaKind) -> Option<MediaLimits> {
    const MB: usize = 1024 * 1024;
    Some(match kind {
        MediaKind::Image => MediaLimits {
            max_bytes: 2 * MB,
            content_types: &["image/jpeg", "image/jpg", "image/png", "image/gif"],
        },
        MediaKind::Voice => MediaLimits {
            max_bytes: 2 * MB,
            content_types: &["audio/amr", "audio/mpeg", "audio/mp3"],
        },
        MediaKind::Video => MediaLimits {
            max_bytes: 10 * MB,
            content_types: &["video/mp4"],
        },
    })
}
