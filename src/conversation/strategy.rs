//! How an answer that misses the passive budget reaches the user: the
//! delivery strategies, and the choice among them from what the platform
//! can do.

use std::time::Duration;

use crate::domain::Capabilities;

/// A delivery strategy. Every strategy answers passively when the answer
/// is ready within the budget; they differ in what happens when it is not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Strategy {
    /// The interim text (or `success`) is the only answer; a later result
    /// is logged and counted as expired. For platforms with no other way.
    Passive,
    /// Hold the push unanswered so that the platform pushes again, answer
    /// on whichever push is in flight when the answer is ready, and on the
    /// last push answer a marker and keep the answer for the next message.
    /// For Official Accounts without the customer-service API.
    RetryHold,
    /// The interim text now, the answer later through the platform's send
    /// API; what the API refuses (no permission, the 48 h window, the
    /// per-turn quota) waits for the next message.
    LateSend,
    /// The marker now; the answer waits for the user's next message.
    NextMessage,
}

impl Strategy {
    /// The name used in the config file, metrics and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Strategy::Passive => "passive",
            Strategy::RetryHold => "retry_hold",
            Strategy::LateSend => "late_send",
            Strategy::NextMessage => "next_message",
        }
    }

    /// The strategy for a platform with `caps`, when the config says `auto`:
    /// late send where the platform has a send API, else hold the retries
    /// where the platform re-pushes, else keep the answer for next time.
    pub fn auto(caps: &Capabilities) -> Strategy {
        if caps.can_send_late() {
            Strategy::LateSend
        } else if caps.retry_window().is_some() {
            Strategy::RetryHold
        } else {
            Strategy::NextMessage
        }
    }

    /// Why `self` cannot work on a platform with `caps`, if it cannot.
    pub fn unsupported(self, caps: &Capabilities) -> Option<&'static str> {
        match self {
            Strategy::LateSend if !caps.can_send_late() => {
                Some("needs a send API: set the account's API credentials")
            }
            Strategy::RetryHold if caps.retry_window().is_none() => {
                Some("needs a platform that re-pushes unanswered messages")
            }
            Strategy::Passive | Strategy::RetryHold if caps.passive_reply.is_none() => {
                Some("needs a platform that takes passive replies")
            }
            // A kept answer travels in the next message's passive reply.
            Strategy::NextMessage if caps.passive_reply.is_none() && caps.can_send_late() => {
                Some("needs a platform that takes passive replies")
            }
            _ => None,
        }
    }
}

impl std::str::FromStr for Strategy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "passive" => Ok(Strategy::Passive),
            "retry_hold" => Ok(Strategy::RetryHold),
            "late_send" => Ok(Strategy::LateSend),
            "next_message" => Ok(Strategy::NextMessage),
            other => Err(format!(
                "must be \"auto\", \"passive\", \"retry_hold\", \"late_send\" or \"next_message\", not {other:?}"
            )),
        }
    }
}

/// The platform's timing, as a held push sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PushTiming {
    /// The platform gives up on a push after this long.
    pub deadline: Duration,
    /// Pushes of one message in all.
    pub pushes: u32,
    /// Kept free before the deadline for proxies and the network.
    pub margin: Duration,
}

impl PushTiming {
    /// From the platform's capabilities (WeChat's 5 s and 3 pushes when
    /// the platform declares none).
    pub fn from_capabilities(caps: &Capabilities, margin: Duration) -> PushTiming {
        PushTiming {
            deadline: caps.passive_deadline().unwrap_or(Duration::from_secs(5)),
            pushes: caps.push_retries.map_or(1, |r| r.pushes.max(1)),
            margin,
        }
    }

    /// The longest a push may wait for the answer and still carry it.
    pub fn budget(&self) -> Duration {
        self.deadline.saturating_sub(self.margin)
    }

    /// How long to keep a held push open: past the platform's deadline, so
    /// that it gives up and pushes again.
    pub fn hold(&self) -> Duration {
        self.deadline + self.margin
    }
}

/// The `[agent]` delivery options, before they meet a platform.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConversationOptions {
    /// `None` for `auto`.
    pub delivery: Option<Strategy>,
    /// How long an answer waits for the user's next message.
    pub pending_ttl: Duration,
    /// Answered while the answer is kept for the next message.
    pub pending_marker: String,
    /// Ends a reply when more answers wait.
    pub more_marker: String,
    /// A text that only fetches pending answers.
    pub fetch_word: Option<String>,
    /// Answered to the fetch word when nothing waits.
    pub nothing_pending: String,
    /// Messages per user and minute, and the text beyond them.
    pub rate_limit: Option<(u32, String)>,
    /// Kept free before the platform's deadline.
    pub proxy_margin: Duration,
    /// Texts of one user arriving within this window become one turn
    /// (`None`: off).
    pub debounce: Option<Duration>,
}

/// Answered while an answer waits for the user's next message.
pub const DEFAULT_PENDING_MARKER: &str = "正在思考，请稍后回复任意文字获取回答。";
/// Ends a reply when more answers wait.
pub const DEFAULT_MORE_MARKER: &str = "（回复任意文字继续）";
/// The fetch word.
pub const DEFAULT_FETCH_WORD: &str = "继续";
/// Answered to the fetch word when nothing waits.
pub const DEFAULT_NOTHING_PENDING: &str = "没有待取的回答。";
/// Answered beyond the rate limit.
pub const DEFAULT_RATE_LIMITED: &str = "消息太频繁了，请稍后再试。";

impl Default for ConversationOptions {
    fn default() -> Self {
        ConversationOptions {
            delivery: None,
            pending_ttl: Duration::from_secs(48 * 3600),
            pending_marker: DEFAULT_PENDING_MARKER.to_owned(),
            more_marker: DEFAULT_MORE_MARKER.to_owned(),
            fetch_word: Some(DEFAULT_FETCH_WORD.to_owned()),
            nothing_pending: DEFAULT_NOTHING_PENDING.to_owned(),
            rate_limit: None,
            proxy_margin: Duration::from_millis(500),
            debounce: None,
        }
    }
}

impl ConversationOptions {
    /// The settings of an account on a platform with `caps`; `account`
    /// overrides `[agent] delivery` for that account. An explicit strategy
    /// the platform cannot carry falls back to `auto`, with a warning.
    pub fn resolve(
        &self,
        caps: &Capabilities,
        account: Option<Strategy>,
        max_text_bytes: usize,
    ) -> super::ConversationSettings {
        let auto = Strategy::auto(caps);
        let strategy = match account.or(self.delivery) {
            None => auto,
            Some(s) => match s.unsupported(caps) {
                None => s,
                Some(why) => {
                    tracing::warn!(
                        requested = s.as_str(),
                        chosen = auto.as_str(),
                        "delivery strategy {why}; using the automatic choice"
                    );
                    auto
                }
            },
        };
        // Without passive replies nothing waits for a next message to
        // carry it, so no word fetches anything.
        let passive = caps.passive_reply.is_some();
        super::ConversationSettings {
            strategy,
            timing: PushTiming::from_capabilities(caps, self.proxy_margin),
            passive,
            streaming: passive && caps.streaming,
            pending_ttl: self.pending_ttl,
            max_text_bytes,
            more_marker: self.more_marker.clone(),
            pending_marker: self.pending_marker.clone(),
            fetch_word: self.fetch_word.clone().filter(|_| passive),
            nothing_pending: self.nothing_pending.clone(),
            rate_limit: self.rate_limit.clone(),
            debounce: self.debounce,
            turn_patience: Duration::from_secs(120),
            refusal_recheck: Duration::from_secs(3600),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{LateSend, PassiveReply, PushRetries};

    fn caps(late: bool, retries: bool, passive: bool) -> Capabilities {
        Capabilities {
            passive_reply: passive.then_some(PassiveReply {
                deadline: Duration::from_secs(5),
                max_articles_to_user: 1,
            }),
            push_retries: retries.then_some(PushRetries {
                pushes: 3,
                interval: Duration::from_secs(5),
            }),
            late_send: late.then_some(LateSend {
                max_text_bytes: 2000,
                messages_per_turn: Some(5),
                window: None,
            }),
            typing: false,
            media_upload: false,
            streaming: false,
            text_links: false,
            markdown: false,
        }
    }

    #[test]
    fn auto_picks_the_best_channel_the_platform_has() {
        assert_eq!(Strategy::auto(&caps(true, true, true)), Strategy::LateSend);
        assert_eq!(
            Strategy::auto(&caps(false, true, true)),
            Strategy::RetryHold
        );
        assert_eq!(
            Strategy::auto(&caps(false, false, false)),
            Strategy::NextMessage
        );
        assert!(Strategy::LateSend
            .unsupported(&caps(false, true, true))
            .is_some());
        assert!(Strategy::RetryHold
            .unsupported(&caps(true, false, false))
            .is_some());
        assert!(Strategy::NextMessage
            .unsupported(&caps(false, false, false))
            .is_none());
        assert_eq!("retry_hold".parse::<Strategy>(), Ok(Strategy::RetryHold));
        assert!("sometimes".parse::<Strategy>().is_err());
    }

    #[test]
    fn a_held_push_outlives_the_deadline_and_a_budget_stays_within_it() {
        let t = PushTiming::from_capabilities(&caps(false, true, true), Duration::from_millis(500));
        assert_eq!(t.budget(), Duration::from_millis(4500));
        assert_eq!(t.hold(), Duration::from_millis(5500));
        assert_eq!(t.pushes, 3);
    }
}
