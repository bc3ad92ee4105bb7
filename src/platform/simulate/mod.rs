//! A local platform: builds messages as WeChat, WeCom, Feishu, DingTalk
//! or a WeCom 智能机器人 would push them, signs and encrypts them with the
//! account's settings, sends them to a running server, and checks what
//! comes back. This module owns what every platform shares (the message
//! kinds, the errors, the checked replies and their rendering, the HTTP
//! exchange); each platform family's wire format is in its own file:
//! `wechat.rs` (Official Accounts, WeCom apps, 微信客服: XML), `feishu.rs`,
//! `dingtalk.rs`, `wecom_bot.rs` (JSON), and `rules.rs` (the rules offline).
//!
//! Used by `wxgate simulate`, `wxgate verify-url`, `wxgate rules test` and
//! the console's URL check.

mod dingtalk;
mod feishu;
mod rules;
mod wechat;
mod wecom_bot;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use serde_json::Value;

use crate::config::{AccountConfig, AccountKind};

pub use rules::{test_rules, RuleTest, Verdict};
pub use wechat::{build_xml, open_reply, send};

/// A message kind to simulate, with its fields.
#[derive(Debug, Clone)]
pub enum Kind {
    /// Text message.
    Text(String),
    /// Image message.
    Image {
        /// Picture URL.
        pic_url: String,
    },
    /// Voice message, optionally with speech recognition.
    Voice {
        /// Recognition result.
        recognition: Option<String>,
    },
    /// Video message.
    Video,
    /// Short video message.
    ShortVideo,
    /// Location message.
    Location {
        /// Latitude.
        lat: f64,
        /// Longitude.
        lng: f64,
        /// Place label.
        label: String,
    },
    /// Link message.
    Link {
        /// Title.
        title: String,
        /// URL.
        url: String,
    },
    /// An event with an optional EventKey.
    Event {
        /// Event name as WeChat writes it (`subscribe`, `CLICK`, …).
        name: String,
        /// EventKey.
        key: Option<String>,
    },
    /// A recorded XML document, sent as is (CreateTime refreshed).
    Raw(String),
}

/// The sender and receiver of simulated messages.
#[derive(Debug, Clone)]
pub struct Parties {
    /// The user's OpenID.
    pub from_user: String,
    /// The account's original id.
    pub to_user: String,
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Why a simulation could not be completed, with a diagnosis for people.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// The server could not be reached.
    #[error("cannot reach {url}: {reason}\n  diagnosis: is wxgate running and listening there?")]
    Unreachable {
        /// URL.
        url: String,
        /// Cause.
        reason: String,
    },
    /// The server answered with an error status.
    #[error("the server answered {status}: {body}\n  diagnosis: {diagnosis}")]
    Refused {
        /// HTTP status.
        status: u16,
        /// Body text.
        body: String,
        /// Likely cause.
        diagnosis: &'static str,
    },
    /// The answer is not what the platform would accept.
    #[error("bad reply: {0}")]
    BadReply(String),
    /// Settings missing for the chosen mode.
    #[error("{0}")]
    Settings(String),
    /// The message kind has no form on the account's platform.
    #[error("{0}")]
    Unsupported(String),
}

fn diagnose(status: u16, body: &str) -> Option<&'static str> {
    Some(match status {
        403 => "signature or decryption failed: the token, EncodingAESKey or app_id differ from the server's, or the clocks differ by more than the timestamp window",
        400 if body.contains("mode") => "the server is configured for another encryption mode (use --mode)",
        400 => "the server found the request malformed",
        _ => return None,
    })
}

/// What a refusal means: the allowlist's refusal first, then the
/// platform's own diagnosis, then what holds on every platform's path.
fn diagnosis(own: Diagnose, status: u16, body: &str) -> &'static str {
    if status == 403 && body.contains("caller") {
        return "this address is not in the server's callback IP allowlist";
    }
    own(status, body).unwrap_or(match status {
        404 => "wrong path: check --url against the account's path",
        405 => "wrong method for this path",
        413 => "the message is larger than the server's max_body_bytes",
        503 => "the server is not ready (see /readyz)",
        _ => "unexpected status",
    })
}

/// The verified, decrypted reply.
#[derive(Debug, Clone, Serialize)]
pub struct SimReply {
    /// HTTP status.
    pub status: u16,
    /// Round-trip time in milliseconds.
    pub elapsed_ms: f64,
    /// Whether the reply was an encrypted envelope (its signature verified).
    pub encrypted: bool,
    /// `success` / empty: WeChat shows nothing.
    pub success: bool,
    /// Plaintext reply XML (empty for success).
    pub xml: String,
    /// Reply fields, flattened (`Articles.item.Title` …).
    pub fields: Vec<(String, String)>,
}

/// Sends a request; anything but a 200 becomes an error diagnosed as for
/// WeChat's paths.
async fn exchange(url: &str, request: reqwest::RequestBuilder) -> Result<String, SimError> {
    exchange_diagnosed(url, request, diagnose).await
}

/// What a refusal most likely means on one platform, by its status and
/// body; `None` leaves it to what holds on every path.
type Diagnose = fn(u16, &str) -> Option<&'static str>;

/// Sends a request; anything but a 200 becomes an error diagnosed by `diagnose`.
async fn exchange_diagnosed(
    url: &str,
    request: reqwest::RequestBuilder,
    diagnose: Diagnose,
) -> Result<String, SimError> {
    let response = request.send().await.map_err(|e| SimError::Unreachable {
        url: url.to_owned(),
        reason: e.to_string(),
    })?;
    let status = response.status().as_u16();
    let body = response.text().await.unwrap_or_default();
    if status != 200 {
        return Err(SimError::Refused {
            status,
            diagnosis: diagnosis(diagnose, status, &body),
            body: body.trim().to_owned(),
        });
    }
    Ok(body)
}

/// Human-readable rendering of a reply.
pub fn describe(reply: &SimReply) -> String {
    let mut out = format!(
        "← {} in {:.1} ms, {}\n",
        reply.status,
        reply.elapsed_ms,
        if reply.success {
            "`success` (WeChat shows nothing)"
        } else if reply.encrypted {
            "encrypted reply (signature verified, decrypted)"
        } else {
            "plain reply"
        }
    );
    for (name, value) in &reply.fields {
        out.push_str(&format!("  {name}: {value}\n"));
    }
    out
}

/// How long a simulated push waits for an answer it cannot see at once:
/// a 智能机器人's stream is refreshed every `every` until it is finished
/// or `wait` has passed.
#[derive(Debug, Clone, Copy)]
pub struct Wait {
    /// The longest wait after the first answer.
    pub wait: Duration,
    /// The pause between two refreshes (WeCom: about a second).
    pub every: Duration,
}

impl Default for Wait {
    fn default() -> Self {
        Wait {
            wait: Duration::from_secs(10),
            every: Duration::from_secs(1),
        }
    }
}

/// A 智能机器人's stream as one refresh answered it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StreamSnapshot {
    /// Since the push, in milliseconds.
    pub elapsed_ms: f64,
    /// The answer is complete.
    pub finish: bool,
    /// The content so far (markdown).
    pub content: String,
}

/// What a JSON platform's path (Feishu, DingTalk, a 智能机器人) answered
/// a simulated push, checked as the platform would check it.
#[derive(Debug, Clone, Serialize)]
pub struct JsonReply {
    /// The account kind (`feishu`, `dingtalk`, `wecom_bot`).
    pub platform: &'static str,
    /// The simulated message's id on its platform: Feishu's `message_id`
    /// (what the reply API is called with), DingTalk's `msgId` or
    /// `EventId`, the bot's `msgid`.
    pub message_id: String,
    /// HTTP status.
    pub status: u16,
    /// Round-trip time of the push in milliseconds.
    pub elapsed_ms: f64,
    /// The push was encrypted, and an encrypted answer's signature held
    /// and it decrypted.
    pub encrypted: bool,
    /// The answer's JSON, decrypted (`null` for an empty body).
    pub answer: Value,
    /// What the user would be shown from this answer, when it shows anything.
    pub text: Option<String>,
    /// The answer is complete (a stream may still be growing when the
    /// wait ends).
    pub finished: bool,
    /// Where the answer (or the rest of it) goes when it is not in the
    /// response, and what simulate can and cannot see of it.
    pub note: Option<String>,
    /// A 智能机器人's stream as the refreshes saw it, in order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub refreshes: Vec<StreamSnapshot>,
}

/// Human-readable rendering of a JSON platform's answer.
pub fn describe_json(reply: &JsonReply) -> String {
    let mut out = format!(
        "← {} in {:.1} ms, {}\n",
        reply.status,
        reply.elapsed_ms,
        if reply.answer.is_null() {
            "empty answer"
        } else if reply.encrypted {
            "encrypted answer (signature verified, decrypted)"
        } else {
            "plain answer"
        }
    );
    if !reply.answer.is_null() {
        out.push_str(&format!("  answer: {}\n", reply.answer));
    }
    match &reply.text {
        Some(text) => out.push_str(&format!("  text: {text}\n")),
        None => out.push_str("  text: (nothing shown)\n"),
    }
    if !reply.finished {
        out.push_str("  not finished within the wait\n");
    }
    if let Some(note) = &reply.note {
        out.push_str(&format!("  note: {note}\n"));
    }
    out
}

/// Fails with a clear message when `kind` has no form on `account`'s
/// platform: which kinds it takes instead.
pub fn check_kind(account: &AccountKind, kind: &Kind) -> Result<(), SimError> {
    let (platform, available): (&str, &[&str]) = match account {
        AccountKind::Feishu(_) => ("Feishu", &["text", "image"]),
        AccountKind::DingTalk => ("DingTalk", &["text", "image", "event"]),
        AccountKind::WeComBot => ("智能机器人 (wecom_bot)", &["text", "image", "event"]),
        _ => return Ok(()),
    };
    if matches!(kind, Kind::Raw(_)) {
        return Err(SimError::Unsupported(format!(
            "--xml sends WeChat's XML; a {platform} account takes JSON: give a message kind ({})",
            available.join(", ")
        )));
    }
    if available.contains(&kind.name()) {
        return Ok(());
    }
    Err(SimError::Unsupported(format!(
        "`{}` messages are not available for a {platform} account: simulate sends it {}",
        kind.name(),
        available.join(", ")
    )))
}

/// Sends one simulated message to a JSON platform's path (Feishu,
/// DingTalk, a 智能机器人) and checks the answer; `on_refresh` sees each
/// stream refresh whose content grew. WeChat kinds use [`send`].
pub async fn send_json(
    account: &AccountConfig,
    url: &str,
    kind: &Kind,
    parties: &Parties,
    wait: Wait,
    on_refresh: &mut dyn FnMut(&StreamSnapshot),
) -> Result<JsonReply, SimError> {
    check_kind(&account.kind, kind)?;
    match &account.kind {
        AccountKind::Feishu(_) => feishu::send(account, url, kind, parties).await,
        AccountKind::DingTalk => dingtalk::send(account, url, kind, parties).await,
        AccountKind::WeComBot => {
            wecom_bot::send(account, url, kind, parties, wait, on_refresh).await
        }
        other => Err(SimError::Settings(format!(
            "a {} account speaks WeChat's XML: use simulate::send",
            other.as_str()
        ))),
    }
}

/// Performs the account's URL check against `url` as its platform would:
/// WeChat's GET with `echostr` (WeCom's and a 智能机器人's with an encrypted
/// one), Feishu's `url_verification` challenge, DingTalk's encrypted
/// `check_url` event. `Ok` with what was echoed when it would pass.
pub async fn verify_url(account: &AccountConfig, url: &str) -> Result<String, SimError> {
    match &account.kind {
        AccountKind::Feishu(settings) => {
            feishu::verify_url(settings.encrypt_key.as_ref(), account.token.expose(), url).await
        }
        AccountKind::DingTalk => dingtalk::verify_url(account, url).await,
        AccountKind::WeComBot => wecom_bot::verify_url(account, url).await,
        _ => wechat::verify_url(account, url).await,
    }
}

/// How long one request may take before simulate gives up on it.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// The HTTP client of one request, bounded in time.
fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .build()
        .unwrap_or_default()
}

fn random_id() -> String {
    format!("{:016x}", rand::random::<u64>())
}

impl Kind {
    /// The kind's name on the command line (`text`, `image`, `event`, …).
    pub fn name(&self) -> &'static str {
        match self {
            Kind::Text(_) => "text",
            Kind::Image { .. } => "image",
            Kind::Voice { .. } => "voice",
            Kind::Video => "video",
            Kind::ShortVideo => "shortvideo",
            Kind::Location { .. } => "location",
            Kind::Link { .. } => "link",
            Kind::Event { .. } => "event",
            Kind::Raw(_) => "xml",
        }
    }

    /// An event as WeChat writes its name: `CLICK`, `VIEW`, `SCAN`,
    /// `LOCATION`, `TEMPLATESENDJOBFINISH`, `MASSSENDJOBFINISH` in upper
    /// case, the rest (`subscribe` …) in lower case, whatever was typed.
    pub fn event(name: &str, key: Option<String>) -> Kind {
        const UPPER: &[&str] = &[
            "click",
            "view",
            "scan",
            "location",
            "templatesendjobfinish",
            "masssendjobfinish",
        ];
        let lower = name.to_ascii_lowercase();
        let name = if UPPER.contains(&lower.as_str()) {
            lower.to_ascii_uppercase()
        } else {
            lower
        };
        Kind::Event { name, key }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::FeishuSettings;

    #[test]
    fn each_platform_takes_its_kinds_and_names_them_otherwise() {
        let feishu = AccountKind::Feishu(FeishuSettings {
            encrypt_key: None,
            lark: false,
            require_mention: true,
            bot_open_id: None,
        });
        let text = Kind::Text("hi".into());
        let image = Kind::Image {
            pic_url: "http://x/y.jpg".into(),
        };
        let event = Kind::event("enter_chat", None);
        for kind in [&feishu, &AccountKind::DingTalk, &AccountKind::WeComBot] {
            assert!(check_kind(kind, &text).is_ok());
            assert!(check_kind(kind, &image).is_ok());
            let err = check_kind(kind, &Kind::Video).unwrap_err();
            assert!(matches!(err, SimError::Unsupported(_)));
            assert!(err.to_string().contains("`video`"), "{err}");
            let err = check_kind(kind, &Kind::Raw("<xml/>".into())).unwrap_err();
            assert!(err.to_string().contains("--xml"), "{err}");
        }
        assert!(check_kind(&feishu, &event).is_err());
        assert!(check_kind(&AccountKind::DingTalk, &event).is_ok());
        assert!(check_kind(&AccountKind::WeComBot, &event).is_ok());
        // WeChat kinds take every kind, XML included.
        assert!(check_kind(&AccountKind::Official, &Kind::Video).is_ok());
        assert!(check_kind(&AccountKind::Official, &Kind::Raw("<xml/>".into())).is_ok());
    }
}
