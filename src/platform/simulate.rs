//! A local WeChat: builds messages as WeChat would, signs and encrypts them
//! with the account's settings, sends them, and checks what comes back.
//!
//! Used by `wxgate simulate`, `wxgate verify-url` and `wxgate rules test`.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;

use crate::config::{AccountConfig, AccountKind, Mode};
use crate::crypto::{self, MessageCrypto};
use crate::message::envelope;
use crate::message::xml::{self, push_cdata_element, Element};

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

/// Builds the XML WeChat would push for `kind`.
pub fn build_xml(kind: &Kind, parties: &Parties, create_time: i64) -> String {
    if let Kind::Raw(text) = kind {
        return text.clone();
    }
    let msg_id: u64 = rand::random::<u64>() >> 1;
    let mut out = String::from("<xml>");
    push_cdata_element(&mut out, "ToUserName", &parties.to_user);
    push_cdata_element(&mut out, "FromUserName", &parties.from_user);
    out.push_str(&format!("<CreateTime>{create_time}</CreateTime>"));
    let msg_type = match kind {
        Kind::Text(_) => "text",
        Kind::Image { .. } => "image",
        Kind::Voice { .. } => "voice",
        Kind::Video => "video",
        Kind::ShortVideo => "shortvideo",
        Kind::Location { .. } => "location",
        Kind::Link { .. } => "link",
        Kind::Event { .. } => "event",
        Kind::Raw(_) => unreachable!("handled above"),
    };
    push_cdata_element(&mut out, "MsgType", msg_type);
    match kind {
        Kind::Text(content) => push_cdata_element(&mut out, "Content", content),
        Kind::Image { pic_url } => {
            push_cdata_element(&mut out, "PicUrl", pic_url);
            push_cdata_element(&mut out, "MediaId", "simulated_media_id");
        }
        Kind::Voice { recognition } => {
            push_cdata_element(&mut out, "MediaId", "simulated_media_id");
            push_cdata_element(&mut out, "Format", "amr");
            if let Some(r) = recognition {
                push_cdata_element(&mut out, "Recognition", r);
            }
        }
        Kind::Video | Kind::ShortVideo => {
            push_cdata_element(&mut out, "MediaId", "simulated_media_id");
            push_cdata_element(&mut out, "ThumbMediaId", "simulated_thumb_id");
        }
        Kind::Location { lat, lng, label } => {
            out.push_str(&format!(
                "<Location_X>{lat}</Location_X><Location_Y>{lng}</Location_Y><Scale>15</Scale>"
            ));
            push_cdata_element(&mut out, "Label", label);
        }
        Kind::Link { title, url } => {
            push_cdata_element(&mut out, "Title", title);
            push_cdata_element(&mut out, "Description", "");
            push_cdata_element(&mut out, "Url", url);
        }
        Kind::Event { name, key } => {
            push_cdata_element(&mut out, "Event", name);
            if let Some(k) = key {
                push_cdata_element(&mut out, "EventKey", k);
            }
            if name.eq_ignore_ascii_case("LOCATION") {
                out.push_str("<Latitude>23.137466</Latitude><Longitude>113.352425</Longitude><Precision>119.385040</Precision>");
            }
        }
        Kind::Raw(_) => {}
    }
    if !matches!(kind, Kind::Event { .. }) {
        out.push_str(&format!("<MsgId>{msg_id}</MsgId>"));
    }
    out.push_str("</xml>");
    out
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
    /// The reply is not what WeChat would accept.
    #[error("bad reply: {0}")]
    BadReply(String),
    /// Settings missing for the chosen mode.
    #[error("{0}")]
    Settings(String),
}

fn diagnose(status: u16, body: &str) -> &'static str {
    match status {
        403 if body.contains("caller") => "this address is not in the server's callback IP allowlist",
        403 => "signature or decryption failed: the token, EncodingAESKey or app_id differ from the server's, or the clocks differ by more than the timestamp window",
        400 if body.contains("mode") => "the server is configured for another encryption mode (use --mode)",
        400 => "the server found the request malformed",
        404 => "wrong path: check --url against server.path",
        405 => "wrong method for this path",
        413 => "the message is larger than the server's max_body_bytes",
        503 => "the server is not ready (see /readyz)",
        _ => "unexpected status",
    }
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

fn flatten(element: &Element, prefix: &str, out: &mut Vec<(String, String)>) {
    for child in &element.children {
        let name = if prefix.is_empty() {
            child.name.clone()
        } else {
            format!("{prefix}.{}", child.name)
        };
        if child.children.is_empty() {
            out.push((name, child.text.clone()));
        } else {
            flatten(child, &name, out);
        }
    }
}

/// Reads a reply body as WeChat would: verifies and decrypts envelopes.
pub fn open_reply(
    account: &AccountConfig,
    status: u16,
    body: &str,
    elapsed_ms: f64,
) -> Result<SimReply, SimError> {
    let trimmed = body.trim();
    if trimmed.is_empty() || trimmed == "success" {
        return Ok(SimReply {
            status,
            elapsed_ms,
            encrypted: false,
            success: true,
            xml: String::new(),
            fields: Vec::new(),
        });
    }
    let parsed = envelope::parse_encrypted_reply(trimmed.as_bytes()).map_err(|e| {
        SimError::BadReply(format!(
            "reply is not XML WeChat would accept ({e}): {trimmed}"
        ))
    })?;
    let (xml, encrypted) = match parsed {
        Some(env) => {
            crypto::verify_msg_signature(
                account.token.expose(),
                &env.timestamp,
                &env.nonce,
                &env.encrypt,
                &env.msg_signature,
            )
            .map_err(|_| {
                SimError::BadReply(
                    "the reply's MsgSignature does not verify: the server signs with another token"
                        .into(),
                )
            })?;
            let crypto = account.crypto.as_ref().ok_or_else(|| {
                SimError::Settings(
                    "the reply is encrypted but no encoding_aes_key is configured here".into(),
                )
            })?;
            let xml = crypto
                .decrypt(&env.encrypt)
                .map_err(|e| SimError::BadReply(format!("cannot decrypt the reply ({e}): the server uses another EncodingAESKey or app_id")))?;
            (xml, true)
        }
        None => (trimmed.to_owned(), false),
    };
    let xml: &str = &xml;
    let doc = xml::parse_str(xml)
        .map_err(|e| SimError::BadReply(format!("decrypted reply is not XML ({e})")))?;
    let mut fields = Vec::new();
    flatten(&doc, "", &mut fields);
    Ok(SimReply {
        status,
        elapsed_ms,
        encrypted,
        success: false,
        xml: xml.to_owned(),
        fields,
    })
}

/// Sends one simulated message and returns the checked reply. WeCom
/// accounts get WeCom's form: `msg_signature` only, always encrypted, with
/// `AgentID` beside the ciphertext.
pub async fn send(
    account: &AccountConfig,
    url: &str,
    mode: Mode,
    xml_text: &str,
) -> Result<SimReply, SimError> {
    let ts = now().to_string();
    let nonce = rand::random::<u32>().to_string();
    let token = account.token.expose();
    if account.kind == AccountKind::WeComBot {
        return Err(SimError::Settings(
            "simulate sends XML; a 智能机器人 takes JSON callbacks: check its URL with verify-url and send it a message from WeCom (docs/platforms/wecom_bot.md)".into(),
        ));
    }
    if account.kind.is_wecom() {
        return send_wecom(account, url, xml_text, &ts, &nonce).await;
    }
    let signature = crypto::signature(token, &ts, &nonce);
    let doc = xml::parse_str(xml_text).ok();
    let field = |name: &str| {
        doc.as_ref()
            .and_then(|d| d.child_text(name))
            .unwrap_or_default()
            .to_owned()
    };
    let openid = field("FromUserName");
    let mut query = vec![
        ("signature", signature.as_str().to_owned()),
        ("timestamp", ts.clone()),
        ("nonce", nonce.clone()),
        ("openid", openid),
    ];
    let body = match mode {
        Mode::Plain => xml_text.to_owned(),
        Mode::Compatible | Mode::Safe => {
            let crypto: &MessageCrypto = account.crypto.as_ref().ok_or_else(|| {
                SimError::Settings(format!(
                    "{} mode needs account.encoding_aes_key and app_id",
                    mode.as_str()
                ))
            })?;
            let encrypt = crypto.encrypt(xml_text);
            let msg_signature = crypto::msg_signature(token, &ts, &nonce, &encrypt);
            query.push(("encrypt_type", "aes".into()));
            query.push(("msg_signature", msg_signature.as_str().to_owned()));
            let mut wrapped = String::new();
            push_cdata_element(&mut wrapped, "Encrypt", &encrypt);
            if mode == Mode::Safe {
                let to = field("ToUserName");
                let mut head = String::from("<xml>");
                push_cdata_element(&mut head, "ToUserName", &to);
                format!("{head}{wrapped}</xml>")
            } else {
                // Compatible mode: the plain fields and the ciphertext side by side.
                xml_text.replacen("</xml>", &format!("{wrapped}</xml>"), 1)
            }
        }
    };
    let started = Instant::now();
    let request = reqwest::Client::new()
        .post(url)
        .query(&query)
        .header("content-type", "text/xml")
        .body(body);
    let text = exchange(url, request).await?;
    let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
    open_reply(account, 200, &text, elapsed_ms)
}

async fn send_wecom(
    account: &AccountConfig,
    url: &str,
    xml_text: &str,
    ts: &str,
    nonce: &str,
) -> Result<SimReply, SimError> {
    let crypto: &MessageCrypto = account.crypto.as_ref().ok_or_else(|| {
        SimError::Settings("WeCom accounts need encoding_aes_key and corp_id".into())
    })?;
    let doc = xml::parse_str(xml_text).ok();
    let agent_id = match &account.kind {
        AccountKind::WeCom { agent_id } => Some(agent_id.to_string()),
        _ => None,
    };
    // The pushed XML carries AgentID inside the ciphertext too.
    let has_agent = doc.as_ref().is_some_and(|d| d.child("AgentID").is_some());
    let plain = match (&agent_id, has_agent) {
        (Some(id), false) => {
            xml_text.replacen("</xml>", &format!("<AgentID>{id}</AgentID></xml>"), 1)
        }
        _ => xml_text.to_owned(),
    };
    let encrypt = crypto.encrypt(&plain);
    let token = account.token.expose();
    let msg_signature = crypto::msg_signature(token, ts, nonce, &encrypt);
    let mut body = String::from("<xml>");
    push_cdata_element(&mut body, "ToUserName", crypto.receive_id());
    push_cdata_element(&mut body, "Encrypt", &encrypt);
    if let Some(id) = &agent_id {
        push_cdata_element(&mut body, "AgentID", id);
    }
    body.push_str("</xml>");
    let started = Instant::now();
    let request = reqwest::Client::new()
        .post(url)
        .query(&[
            ("msg_signature", msg_signature.as_str()),
            ("timestamp", ts),
            ("nonce", nonce),
        ])
        .header("content-type", "text/xml")
        .body(body);
    let text = exchange(url, request).await?;
    let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
    open_reply(account, 200, &text, elapsed_ms)
}

/// Sends a request; anything but a 200 becomes a diagnosed error.
async fn exchange(url: &str, request: reqwest::RequestBuilder) -> Result<String, SimError> {
    let response = request.send().await.map_err(|e| SimError::Unreachable {
        url: url.to_owned(),
        reason: e.to_string(),
    })?;
    let status = response.status().as_u16();
    let body = response.text().await.unwrap_or_default();
    if status != 200 {
        return Err(SimError::Refused {
            status,
            diagnosis: diagnose(status, &body),
            body: body.trim().to_owned(),
        });
    }
    Ok(body)
}

/// Performs WeChat's URL verification (WeCom's, with an encrypted echostr,
/// for WeCom accounts); `Ok` when it would pass.
pub async fn verify_url(account: &AccountConfig, url: &str) -> Result<String, SimError> {
    let ts = now().to_string();
    let nonce = rand::random::<u32>().to_string();
    let echostr = format!("wxgate{}", rand::random::<u64>());
    let token = account.token.expose();
    match &account.kind {
        AccountKind::Feishu(settings) => {
            return verify_feishu(settings.encrypt_key.as_ref(), token, url, &echostr).await;
        }
        AccountKind::DingTalk => {
            return Err(SimError::Settings(
                "DingTalk robots have no URL check in HTTP mode: send the robot a message instead (docs/platforms/dingtalk.md)".into(),
            ));
        }
        _ => {}
    }
    // A 智能机器人's URL check is WeCom's: an encrypted echostr (its
    // envelope's receive id is empty), answered with the plaintext.
    let request = if account.kind.is_wecom() || account.kind == AccountKind::WeComBot {
        let crypto = account.crypto.as_ref().ok_or_else(|| {
            SimError::Settings("WeCom accounts need encoding_aes_key and corp_id".into())
        })?;
        let encrypted = crypto.encrypt(&echostr);
        let msg_signature = crypto::msg_signature(token, &ts, &nonce, &encrypted);
        reqwest::Client::new().get(url).query(&[
            ("msg_signature", msg_signature.as_str()),
            ("timestamp", ts.as_str()),
            ("nonce", nonce.as_str()),
            ("echostr", encrypted.as_str()),
        ])
    } else {
        let signature = crypto::signature(token, &ts, &nonce);
        reqwest::Client::new().get(url).query(&[
            ("signature", signature.as_str()),
            ("timestamp", ts.as_str()),
            ("nonce", nonce.as_str()),
            ("echostr", echostr.as_str()),
        ])
    };
    let body = exchange(url, request).await?;
    if body != echostr {
        return Err(SimError::BadReply(format!(
            "the body must be the echostr exactly ({} bytes), got {} bytes: {:?}",
            echostr.len(),
            body.len(),
            body.chars().take(80).collect::<String>()
        )));
    }
    Ok(echostr)
}

/// Feishu's URL check: `{"type":"url_verification","challenge","token"}`
/// POSTed (encrypted with the Encrypt Key when one is set, and unsigned, as
/// Feishu sends it); the answer must be `{"challenge": …}` with ours.
async fn verify_feishu(
    encrypt_key: Option<&crate::config::Secret>,
    token: &str,
    url: &str,
    challenge: &str,
) -> Result<String, SimError> {
    let check =
        serde_json::json!({"challenge": challenge, "token": token, "type": "url_verification"})
            .to_string();
    let body = match encrypt_key {
        Some(key) => serde_json::json!({
            "encrypt": super::feishu::crypto::EventCipher::new(key).encrypt(&check, rand::random()),
        })
        .to_string(),
        None => check,
    };
    let request = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json; charset=utf-8")
        .body(body);
    let answer = exchange(url, request).await?;
    let echoed = serde_json::from_str::<serde_json::Value>(&answer)
        .ok()
        .and_then(|v| {
            v.get("challenge")
                .and_then(|c| c.as_str())
                .map(str::to_owned)
        });
    if echoed.as_deref() != Some(challenge) {
        return Err(SimError::BadReply(format!(
            "the body must be {{\"challenge\": …}} with the challenge sent, got {:?}",
            answer.chars().take(80).collect::<String>()
        )));
    }
    Ok(challenge.to_owned())
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

/// How a rule set answered a sample message ([`test_rules`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// A rule matched.
    Rule,
    /// A rule (or the default reply) hands the message to an upstream.
    Upstream,
    /// A voice without transcript: `agent.voice_fallback_text` applies.
    VoiceFallback,
    /// No rule matched: the default reply applies.
    DefaultReply,
    /// No rule matched and there is no default reply: `success`.
    Nothing,
}

/// What a rule set answers to a sample message, offline: `wxgate rules
/// test` prints it, the console shows it.
#[derive(Debug, Clone, Serialize)]
pub struct RuleTest {
    /// Which way the answer was chosen.
    pub verdict: Verdict,
    /// The matching rule's name (`None` for the default reply or no match).
    pub rule: Option<String>,
    /// The upstream the message goes to, for [`Verdict::Upstream`].
    pub upstream: Option<String>,
    /// The rendered reply as WeChat reads it (`None` when it is `success`
    /// or an upstream answers).
    pub reply: Option<SimReply>,
}

/// Which rule of `rules` answers `kind` sent by `parties`, and the reply
/// it renders, read back as WeChat would for `account`.
pub fn test_rules(
    account: &AccountConfig,
    rules: &crate::rules::RuleSet,
    kind: &Kind,
    parties: &Parties,
) -> Result<RuleTest, String> {
    use crate::domain::{Message, MessageKind};
    let xml = build_xml(kind, parties, 0);
    let message = Message::parse(xml.as_bytes()).map_err(|e| e.to_string())?;
    let decision = rules.evaluate(&message);
    if let Some(upstream) = &decision.upstream {
        return Ok(RuleTest {
            verdict: Verdict::Upstream,
            rule: decision.rule.clone(),
            upstream: Some(upstream.to_string()),
            reply: None,
        });
    }
    let untranscribed = rules.voice().as_text
        && matches!(message.kind, MessageKind::Voice { .. })
        && message.text().is_none();
    let verdict = match &decision.rule {
        Some(_) => Verdict::Rule,
        None if untranscribed && decision.reply == rules.voice().fallback => Verdict::VoiceFallback,
        None if decision.reply.msg_type().is_some() => Verdict::DefaultReply,
        None => Verdict::Nothing,
    };
    let reply = decision
        .reply
        .render(
            &message.from_user,
            &message.to_user,
            0,
            message.max_articles(),
        )
        .and_then(|xml| open_reply(account, 200, &xml, 0.0).ok());
    Ok(RuleTest {
        verdict,
        rule: decision.rule.clone(),
        upstream: None,
        reply,
    })
}

impl Kind {
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
