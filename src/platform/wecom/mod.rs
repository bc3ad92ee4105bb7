//! WeCom self-built apps (企业微信自建应用): the Official Account's XML and
//! crypto with the corp id as receive id, every push encrypted, the GET
//! echo encrypted too, "no reply" an empty body; answers that miss the
//! 5 seconds go out through the app message API (`/cgi-bin/message/send`).

mod late;

use std::time::Duration;

pub use late::AppDelivery;

use super::callback::Dialect;
use crate::agent::media::{MediaKind, MediaLimits};
use crate::domain::{Capabilities, LateSend, PassiveReply, PushRetries};

/// How WeCom's callbacks differ from the Official Account's.
pub const DIALECT: Dialect = Dialect {
    always_encrypted: true,
    encrypted_echo: true,
    no_reply_body: "",
};

/// What a WeCom app can do: a passive reply within 5 s (WeCom retries
/// three times), app messages at any time with no per-turn quota.
pub fn capabilities(can_send: bool) -> Capabilities {
    Capabilities {
        passive_reply: Some(PassiveReply {
            deadline: Duration::from_secs(5),
            max_articles_to_user: crate::domain::MAX_ARTICLES,
        }),
        push_retries: Some(PushRetries {
            pushes: 3,
            interval: Duration::from_secs(5),
        }),
        late_send: can_send.then_some(LateSend {
            max_text_bytes: crate::domain::split::MAX_TEXT_BYTES,
            messages_per_turn: None,
            window: None,
        }),
        typing: false,
        media_upload: can_send,
        streaming: false,
        text_links: false,
        markdown: false,
    }
}

/// What WeCom's temporary-media upload (`/cgi-bin/media/upload`, which
/// 微信客服 uses too) takes: pictures up to 10 MB (JPG, PNG), voice up to
/// 2 MB (AMR only), video up to 10 MB (MP4).
pub fn media_limits(kind: MediaKind) -> Option<MediaLimits> {
    const MB: usize = 1024 * 1024;
    Some(match kind {
        MediaKind::Image => MediaLimits {
            max_bytes: 10 * MB,
            content_types: &["image/jpeg", "image/jpg", "image/png"],
        },
        MediaKind::Voice => MediaLimits {
            max_bytes: 2 * MB,
            content_types: &["audio/amr"],
        },
        MediaKind::Video => MediaLimits {
            max_bytes: 10 * MB,
            content_types: &["video/mp4"],
        },
    })
}
