//! The agent bridge: rules hand messages to upstream agents (`[[upstreams]]`),
//! and their answers reach the user in time or late.
//!
//! - [`AgentResponder`]: a [`Responder`] that follows the rules and, when a
//!   rule says `type = "upstream"`, calls that upstream under its
//!   concurrency cap and returns [`Response::Deferred`]: the delivery
//!   machinery answers passively when the call beats `passive_budget_ms`,
//!   else with the interim text, and the result goes to the late hook.
//! - Protocols: [`webhook`] (wxgate's JSON, optional HMAC) and [`openai`]
//!   (chat completions with per-user history in the shared store).
//! - [`media`]: answers of media by URL, downloaded under a guard and
//!   uploaded through the platform's [`MediaUpload`] inside the upstream's
//!   future, so they go passively when they fit the budget and late if not.
//!
//! Depends on the domain, the rules, the conversation layer's traits, the
//! store and metrics; knows nothing of platforms, HTTP or crypto. Answers
//! that miss the passive budget go to the platform's late channel.

mod history;
pub mod media;
mod moderation;
mod settings;

mod upstream;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use tracing::Instrument;

use crate::conversation::{Deferred, Parts, PartsSender, Responder, Response, SharedRules};
use crate::domain::markdown::{strip_xml_invalid, to_plain, LinkStyle};
use crate::domain::{Message, Reply};
use crate::metrics::{Metrics, UpstreamLabel};
use crate::store::{Namespace, Store};

pub use history::{ChatMessage, History};
pub use media::{Media, MediaUpload};
pub use moderation::Moderation;
pub use settings::{
    AgentSettings, AnswerFormat, MediaSettings, ModerationSettings, OpenAiSettings,
    ProtocolSettings, UpstreamSettings, DEFAULT_FALLBACK_TEXT, DEFAULT_RESET_REPLY,
    DEFAULT_STREAM_CUT_TEXT, DEFAULT_VISION_PROMPT,
};
pub use upstream::{
    openai, webhook, Answer, CallFuture, Emit, Http, LocalFuture, Protocol, Upstream, UpstreamError,
};

/// What the responder needs besides the rules.
pub struct AgentParts {
    /// `[agent]` and `[[upstreams]]`.
    pub settings: AgentSettings,
    /// The rules in force.
    pub rules: SharedRules,
    /// Where conversation history lives.
    pub store: Arc<dyn Store>,
    /// The account's key namespace.
    pub namespace: Namespace,
    /// The account's AppID, sent to webhooks (empty when unset).
    pub app_id: String,
    /// Answered when an upstream is at its concurrency cap.
    pub overload: Reply,
    /// How the platform's text shows links converted from markdown.
    pub links: LinkStyle,
    /// The platform's media upload, when the account has one (else media
    /// answers become links).
    pub media: Option<Arc<dyn MediaUpload>>,
    /// Where to count.
    pub metrics: Arc<Metrics>,
}

/// Answers from the rules, handing messages to upstreams where they say so.
pub struct AgentResponder {
    rules: SharedRules,
    upstreams: HashMap<Arc<str>, Arc<Upstream>>,
    shared: Arc<Shared>,
}

/// What every upstream call shares.
struct Shared {
    app_id: String,
    settings: AgentSettings,
    interim: Reply,
    overload: Reply,
    links: LinkStyle,
    moderation: Option<Moderation>,
    media: Media,
    metrics: Arc<Metrics>,
}

impl AgentResponder {
    /// Builds a client per upstream. Does no I/O.
    pub fn new(parts: AgentParts) -> Result<AgentResponder, reqwest::Error> {
        let history = History::new(
            parts.store.clone(),
            parts.namespace.clone(),
            parts.metrics.clone(),
        );
        let media = Media::new(
            parts.media,
            parts.store,
            parts.namespace,
            parts.settings.media,
            parts.metrics.clone(),
        )?;
        let mut upstreams = HashMap::new();
        for u in &parts.settings.upstreams {
            upstreams.insert(
                u.name.clone(),
                Arc::new(Upstream::new(u.clone(), history.clone())?),
            );
        }
        let moderation = parts
            .settings
            .moderation
            .clone()
            .map(Moderation::new)
            .transpose()?;
        let interim = match &parts.settings.interim_text {
            Some(content) => Reply::Text {
                content: content.clone(),
            },
            None => Reply::Success,
        };
        Ok(AgentResponder {
            rules: parts.rules,
            upstreams,
            shared: Arc::new(Shared {
                app_id: parts.app_id,
                settings: parts.settings,
                interim,
                overload: parts.overload,
                links: parts.links,
                moderation,
                media,
                metrics: parts.metrics,
            }),
        })
    }

    fn deferred(
        &self,
        future: impl std::future::Future<Output = Reply> + Send + 'static,
        parts: Option<Parts>,
    ) -> Response {
        Response::Deferred(Deferred {
            future: Box::pin(future.instrument(tracing::Span::current())),
            budget: self.shared.settings.passive_budget,
            interim: self.shared.interim.clone(),
            parts,
        })
    }
}

impl Responder for AgentResponder {
    fn respond(&self, message: &Arc<Message>) -> Response {
        let decision = self.rules.load().evaluate(message);
        tracing::debug!(
            rule = decision.rule.as_deref().unwrap_or("-"),
            upstream = decision.upstream.as_deref().unwrap_or("-"),
            "rule decision"
        );
        let Some(name) = decision.upstream else {
            return Response::Ready(decision.reply);
        };
        let Some(upstream) = self.upstreams.get(&name).cloned() else {
            // Only a reload can name an upstream this process did not start with.
            tracing::error!(upstream = %name, "rule names an upstream that is not running; restart wxgate to start it");
            self.shared.metrics.agent_failure("error");
            return Response::Ready(Reply::Text {
                content: self.shared.settings.fallback_text.clone(),
            });
        };
        if let Some(local) = upstream.intercept(message) {
            return self.deferred(local, None);
        }
        let Ok(permit) = upstream.permits.clone().try_acquire_owned() else {
            self.shared.metrics.agent_failure("overload");
            tracing::warn!(upstream = %name, max_concurrency = upstream.settings.max_concurrency, "upstream at its concurrency cap; overload reply sent");
            return Response::Ready(self.shared.overload.clone());
        };
        let shared = self.shared.clone();
        let message = message.clone();
        // A streamed answer's parts go out early, each made fit for WeChat
        // on its own; with moderation on, an answer is checked whole first.
        let (sender, parts) = match upstream.streams() && shared.moderation.is_none() {
            true => {
                let (sender, parts) = tokio::sync::mpsc::unbounded_channel();
                (Some(sender), Some(parts))
            }
            false => (None, None),
        };
        let future = async move {
            let _permit = permit;
            let started = Instant::now();
            let (format, links) = (upstream.settings.format, shared.links);
            let emit_part = sender.map(|sender: PartsSender| {
                move |raw: String| {
                    // The engine may have stopped listening (a sweep): the part is then in the whole answer anyway.
                    let _ = sender.send(shape_answer(Reply::Text { content: raw }, format, links));
                }
            });
            let emit: Emit<'_> = emit_part
                .as_ref()
                .map(|f| f as &(dyn Fn(String) + Send + Sync));
            let result = upstream.call(&message, &shared.app_id, emit).await;
            shared
                .metrics
                .upstream_latency
                .get_or_create(&UpstreamLabel {
                    upstream: upstream.name().to_owned(),
                })
                .observe(started.elapsed().as_secs_f64());
            match result {
                Ok(Answer::Reply(reply)) => {
                    let reply = shape_answer(reply, upstream.settings.format, shared.links);
                    shared.moderate(reply).await
                }
                // The upload runs here, inside the deferred future: within
                // the passive budget it is the passive reply, else it goes late.
                Ok(Answer::Media(answer)) => {
                    let reply = shared.media.reply(answer, shared.links).await;
                    let reply = shape_answer(reply, AnswerFormat::Plain, shared.links);
                    shared.moderate(reply).await
                }
                Err(e) => {
                    shared.metrics.agent_failure(e.kind());
                    tracing::warn!(upstream = %upstream.name(), kind = e.kind(), error = %e, "upstream failed; fallback text answered");
                    Reply::Text {
                        content: upstream.settings.fallback_text.clone(),
                    }
                }
            }
        };
        self.deferred(future, parts)
    }
}

/// An upstream's answer made fit for WeChat, before it is rendered or
/// split: the characters an XML 1.0 document cannot hold removed from every
/// string of it, then, for a `markdown` upstream, a text answer converted
/// to plain text (links as the platform shows them) unless the platform
/// renders markdown itself ([`LinkStyle::Markdown`]).
pub fn shape_answer(reply: Reply, format: AnswerFormat, links: LinkStyle) -> Reply {
    let reply = reply.map_strings(|s| match strip_xml_invalid(&s) {
        std::borrow::Cow::Borrowed(_) => s,
        std::borrow::Cow::Owned(clean) => clean,
    });
    match (format, reply) {
        (AnswerFormat::Markdown, reply) if links == LinkStyle::Markdown => reply,
        (AnswerFormat::Markdown, Reply::Text { content }) => {
            let plain = to_plain(&content, links);
            // Markdown with no text in it (an HTML comment, say): keep what came.
            let content = if plain.trim().is_empty() {
                content
            } else {
                plain
            };
            Reply::Text { content }
        }
        (_, reply) => reply,
    }
}

impl Shared {
    /// Replaces text the moderation hook flags (or cannot check).
    async fn moderate(&self, reply: Reply) -> Reply {
        let (Some(moderation), Reply::Text { content }) = (&self.moderation, &reply) else {
            return reply;
        };
        let flagged = match moderation.flagged(content).await {
            Ok(flagged) => flagged,
            Err(e) => {
                self.metrics.agent_failure("moderation_error");
                tracing::warn!(error = %e, "moderation check failed; the template is sent instead");
                true
            }
        };
        if flagged {
            tracing::info!("answer flagged by moderation; the template is sent instead");
            return Reply::Text {
                content: moderation.template().to_owned(),
            };
        }
        reply
    }
}
