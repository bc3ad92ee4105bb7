//! What a platform (or one account of it) can do to reach a user: the
//! facts a delivery strategy is chosen from. Each platform declares its own
//! in `crate::platform`; nothing else hard-codes them.

use std::time::Duration;

/// A platform's means of answering, as declared by the platform.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Capabilities {
    /// The push may be answered in its own HTTP response.
    pub passive_reply: Option<PassiveReply>,
    /// How the platform re-pushes a message it got no answer to.
    pub push_retries: Option<PushRetries>,
    /// A message can be sent to the user later (customer-service, app or
    /// 微信客服 send), within these limits.
    pub late_send: Option<LateSend>,
    /// A "typing…" indicator can be shown while the user waits.
    pub typing: bool,
    /// Media (images, voice) can be uploaded to get an id to answer with.
    pub media_upload: bool,
    /// An answer can be shown while it is still being written.
    pub streaming: bool,
    /// Text messages render `<a href="…">…</a>` as a link, so converted
    /// markdown links are written that way (else as `text (url)`).
    pub text_links: bool,
    /// The platform renders markdown in the text wxgate sends (e.g. in a
    /// rich-text element): a markdown upstream's answer passes through as it is
    /// instead of being flattened, and links are written `[text](url)`.
    pub markdown: bool,
}

impl Capabilities {
    /// How converted markdown writes links in this platform's text.
    pub fn link_style(&self) -> super::markdown::LinkStyle {
        if self.markdown {
            super::markdown::LinkStyle::Markdown
        } else if self.text_links {
            super::markdown::LinkStyle::Anchor
        } else {
            super::markdown::LinkStyle::Text
        }
    }
}

/// Answering in the push's own response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PassiveReply {
    /// The platform gives up on the response after this long.
    pub deadline: Duration,
    /// Most news articles one passive reply to a user message may carry.
    pub max_articles_to_user: usize,
}

/// The platform's own re-pushes of an unanswered message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PushRetries {
    /// Pushes of one message in all, the first included.
    pub pushes: u32,
    /// About how long after one push the next comes.
    pub interval: Duration,
}

/// Sending to the user after the push was answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LateSend {
    /// Longest text one message may carry, in bytes.
    pub max_text_bytes: usize,
    /// Most messages per user turn (`None`: no documented limit).
    pub messages_per_turn: Option<u32>,
    /// How long after the user's last message sending stays possible
    /// (`None`: no window).
    pub window: Option<Duration>,
}

impl Capabilities {
    /// The longest the platform waits for a passive reply, if it takes one.
    pub fn passive_deadline(&self) -> Option<Duration> {
        self.passive_reply.map(|p| p.deadline)
    }

    /// True when an answer can be sent after the push was answered.
    pub fn can_send_late(&self) -> bool {
        self.late_send.is_some()
    }

    /// How long the platform keeps re-pushing one message: the window in
    /// which a held push can still carry the answer.
    pub fn retry_window(&self) -> Option<Duration> {
        let passive = self.passive_reply?;
        let retries = self.push_retries?;
        Some(retries.interval * retries.pushes.saturating_sub(1) + passive.deadline)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_retry_window_spans_every_push() {
        let caps = Capabilities {
            passive_reply: Some(PassiveReply {
                deadline: Duration::from_secs(5),
                max_articles_to_user: 1,
            }),
            push_retries: Some(PushRetries {
                pushes: 3,
                interval: Duration::from_secs(5),
            }),
            late_send: None,
            typing: false,
            media_upload: false,
            streaming: false,
            text_links: false,
            markdown: false,
        };
        assert_eq!(caps.retry_window(), Some(Duration::from_secs(15)));
        assert!(!caps.can_send_late());
        let no_passive = Capabilities {
            passive_reply: None,
            ..caps
        };
        assert_eq!(no_passive.retry_window(), None);
        assert_eq!(no_passive.passive_deadline(), None);
    }
}
