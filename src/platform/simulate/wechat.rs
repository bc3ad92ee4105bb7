//! WeChat's XML family: Official Accounts (plain, compatible and safe
//! mode), WeCom apps and 微信客服 (always encrypted, `msg_signature`): the
//! pushed XML, its signature and envelope, the reply read as WeChat reads
//! it, and the GET URL check with an `echostr`.

use std::time::Instant;

use super::{exchange, http, now, Kind, Parties, SimError, SimReply};
use crate::config::{AccountConfig, AccountKind, Mode};
use crate::crypto::{self, MessageCrypto};
use crate::message::envelope;
use crate::message::xml::{self, push_cdata_element, Element};

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
    // Its command-line name is WeChat's MsgType (a recorded XML returned above).
    let msg_type = kind.name();
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
    if !account.kind.is_wechat() {
        return Err(SimError::Settings(format!(
            "simulate::send speaks WeChat's XML; a {} account takes JSON: use simulate::send_json",
            account.kind.as_str()
        )));
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
    let request = http()
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
    let request = http()
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

/// Performs WeChat's URL verification (WeCom's, with an encrypted echostr,
/// for WeCom accounts); `Ok` with the echostr when it would pass.
pub(super) async fn verify_url(account: &AccountConfig, url: &str) -> Result<String, SimError> {
    verify_echostr(account, url, account.kind.is_wecom()).await
}

/// The GET check with an `echostr`: plain and signed with `signature`
/// (WeChat), or encrypted and signed with `msg_signature` (WeCom and a
/// 智能机器人, whose envelope's receive id is empty); the answer must be
/// the plaintext echostr exactly.
pub(super) async fn verify_echostr(
    account: &AccountConfig,
    url: &str,
    encrypted: bool,
) -> Result<String, SimError> {
    let ts = now().to_string();
    let nonce = rand::random::<u32>().to_string();
    let echostr = format!("wxgate{}", rand::random::<u64>());
    let token = account.token.expose();
    let request = if encrypted {
        let crypto = account.crypto.as_ref().ok_or_else(|| {
            SimError::Settings("WeCom accounts need encoding_aes_key and corp_id".into())
        })?;
        let encrypted = crypto.encrypt(&echostr);
        let msg_signature = crypto::msg_signature(token, &ts, &nonce, &encrypted);
        http().get(url).query(&[
            ("msg_signature", msg_signature.as_str()),
            ("timestamp", ts.as_str()),
            ("nonce", nonce.as_str()),
            ("echostr", encrypted.as_str()),
        ])
    } else {
        let signature = crypto::signature(token, &ts, &nonce);
        http().get(url).query(&[
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
