//! The validated `[agent]` and `[[upstreams]]` settings.

use std::sync::Arc;
use std::time::Duration;

pub use super::media::MediaSettings;
pub use crate::domain::markdown::AnswerFormat;
use crate::secret::Secret;

/// Answered when an upstream fails and no `fallback_text` is configured.
pub const DEFAULT_FALLBACK_TEXT: &str = "抱歉，暂时无法回答，请稍后再试。";
/// Ends a streamed answer the upstream broke off, when no
/// `stream_cut_text` is configured.
pub const DEFAULT_STREAM_CUT_TEXT: &str = "（回答中断了，后面的部分没能生成，请再问一次。）";
/// The text sent with a picture to a `vision` upstream when no
/// `vision_prompt` is configured.
pub const DEFAULT_VISION_PROMPT: &str = "请描述这张图片。";
/// Answered to the reset command when no `reset_reply` is configured.
pub const DEFAULT_RESET_REPLY: &str = "好的，我们重新开始吧。";

/// `[agent]`: how upstream answers reach the user.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentSettings {
    /// How long WeChat's request waits for an upstream before it is
    /// answered with `interim` (the real answer then follows through the
    /// customer-service API). Always below `delivery.deadline_ms`.
    pub passive_budget: Duration,
    /// Answered instead of `success` when the answer will come late.
    pub interim_text: Option<String>,
    /// Answered when an upstream fails and it has no `fallback_text` of its own.
    pub fallback_text: String,
    /// Show "typing…" once while the late answer is computed.
    pub typing: bool,
    /// Screens upstream text before it is sent.
    pub moderation: Option<ModerationSettings>,
    /// The upstreams, in file order.
    pub upstreams: Vec<UpstreamSettings>,
    /// How media answered by URL are downloaded.
    pub media: MediaSettings,
    /// How slow answers reach the user (`delivery`, the pending queue, the
    /// fetch word, the rate limit).
    pub conversation: crate::conversation::ConversationOptions,
}

/// `[agent] moderation_url`: `{"input": text}` in, `{"flagged": bool}` out.
#[derive(Debug, Clone, PartialEq)]
pub struct ModerationSettings {
    /// Where to POST.
    pub url: String,
    /// Sent instead of a flagged answer (also when the check fails).
    pub template: String,
    /// Upper bound on one check.
    pub timeout: Duration,
}

/// One `[[upstreams]]` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct UpstreamSettings {
    /// The name rules refer to.
    pub name: Arc<str>,
    /// Where to POST (for `openai`, the full `…/chat/completions` URL).
    pub url: String,
    /// Upper bound on one call, connecting included.
    pub timeout: Duration,
    /// Calls in flight at most; beyond it the overload reply applies at once.
    pub max_concurrency: usize,
    /// Answered when this upstream fails.
    pub fallback_text: String,
    /// What its text answers are written in: markdown is turned into
    /// WeChat text before it is sent.
    pub format: AnswerFormat,
    /// How to talk to it.
    pub protocol: ProtocolSettings,
}

/// The wire protocol of an upstream, with its own settings.
#[derive(Debug, Clone, PartialEq)]
pub enum ProtocolSettings {
    /// wxgate's JSON message in, a reply description out.
    Webhook {
        /// Signs each body (`X-Wxgate-Signature: sha256=<hex>`) when set.
        secret: Option<Secret>,
    },
    /// An OpenAI-compatible chat-completions endpoint.
    OpenAi(OpenAiSettings),
}

impl ProtocolSettings {
    /// The name used in the config file.
    pub fn as_str(&self) -> &'static str {
        match self {
            ProtocolSettings::Webhook { .. } => "webhook",
            ProtocolSettings::OpenAi(_) => "openai",
        }
    }
}

/// Settings of an `openai` upstream.
#[derive(Debug, Clone, PartialEq)]
pub struct OpenAiSettings {
    /// `model` of the request.
    pub model: String,
    /// Sent first, as the `system` message.
    pub system_prompt: Option<String>,
    /// Sampling temperature; the server's default when unset.
    pub temperature: Option<f64>,
    /// Sent as `Authorization: Bearer …` when set.
    pub api_key: Option<Secret>,
    /// Question/answer pairs remembered per user.
    pub history_turns: usize,
    /// A user's history is forgotten after this long without a message.
    pub history_ttl: Duration,
    /// A text equal to this clears the user's history.
    pub reset_command: String,
    /// Answered to the reset command.
    pub reset_reply: String,
    /// Voice transcripts are sent as the user's text (`[agent] voice_as_text`).
    pub voice_as_text: bool,
    /// Ask for the answer as server-sent events and hand on complete
    /// parts as they arrive.
    pub stream: bool,
    /// Ends what a stream broke off mid-answer delivered.
    pub stream_cut_text: String,
    /// An answer that is one markdown image becomes an image reply.
    pub image_answers: bool,
    /// Pictures are sent to the model as image inputs.
    pub vision: bool,
    /// The text sent with a picture (history keeps it after a placeholder).
    pub vision_prompt: String,
}
