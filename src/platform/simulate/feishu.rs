//! Feishu / Lark as a local platform: the `url_verification` challenge,
//! and a schema 2.0 `im.message.receive_v1` event (a direct text or
//! image), encrypted with the Encrypt Key and signed with `X-Lark-*`
//! headers when one is set. The codec is the bot's own
//! ([`crate::platform::feishu::crypto`]).

use std::time::Instant;

use serde_json::{json, Value};

use super::{exchange_diagnosed, http, now, now_ms, random_id, JsonReply, Kind, Parties, SimError};
use crate::config::{AccountConfig, AccountKind, Secret};
use crate::platform::feishu::crypto::{signature, EventCipher};
use crate::platform::feishu::event::MESSAGE_RECEIVE;

fn diagnose(status: u16, body: &str) -> Option<&'static str> {
    Some(match status {
        403 => "the Verification Token (token) or the Encrypt Key differ from the server's",
        400 if body.contains("Encrypt Key") || body.contains("encrypt_key") => {
            "the server and this config disagree on whether an Encrypt Key is set"
        }
        400 => "the server found the event malformed",
        503 => "the server is busy (delivery.max_in_flight) or not ready: Feishu would push the event again",
        _ => return None,
    })
}

/// The `content` and `message_type` of `kind`, as Feishu writes them.
fn content_of(kind: &Kind) -> Result<(&'static str, String), SimError> {
    match kind {
        Kind::Text(text) => Ok(("text", json!({ "text": text }).to_string())),
        Kind::Image { .. } => Ok((
            "image",
            json!({"image_key": "img_v2_wxgate_simulated"}).to_string(),
        )),
        other => Err(SimError::Unsupported(format!(
            "`{}` has no Feishu form here",
            other.name()
        ))),
    }
}

/// The event Feishu pushes for `kind` sent to the bot in a direct chat.
fn message_event(
    token: &str,
    app_id: &str,
    kind: &Kind,
    parties: &Parties,
    message_id: &str,
) -> Result<String, SimError> {
    let (message_type, content) = content_of(kind)?;
    let create_time = now_ms().to_string();
    Ok(json!({
        "schema": "2.0",
        "header": {
            "event_id": format!("wxgate-sim-{}", random_id()),
            "event_type": MESSAGE_RECEIVE,
            "create_time": create_time,
            "token": token,
            "app_id": app_id,
            "tenant_key": "wxgate-simulator",
        },
        "event": {
            "sender": {
                "sender_id": {"open_id": parties.from_user},
                "sender_type": "user",
                "tenant_key": "wxgate-simulator",
            },
            "message": {
                "message_id": message_id,
                "create_time": create_time,
                "chat_id": "oc_wxgate_simulator",
                "chat_type": "p2p",
                "message_type": message_type,
                "content": content,
            },
        },
    })
    .to_string())
}

/// `plain` as Feishu sends it: itself, or `{"encrypt"}` with the key.
fn envelope(encrypt_key: Option<&Secret>, plain: &str) -> String {
    match encrypt_key {
        Some(key) => json!({
            "encrypt": EventCipher::new(key).encrypt(plain, rand::random()),
        })
        .to_string(),
        None => plain.to_owned(),
    }
}

/// Sends `kind` as a direct message to the bot; the answer must be
/// `200 {}` (the reply itself goes through the reply API).
pub(super) async fn send(
    account: &AccountConfig,
    url: &str,
    kind: &Kind,
    parties: &Parties,
) -> Result<JsonReply, SimError> {
    let AccountKind::Feishu(settings) = &account.kind else {
        return Err(SimError::Settings("not a Feishu account".into()));
    };
    let app_id = account.app_id.as_deref().unwrap_or(&parties.to_user);
    let message_id = format!("om_wxgate_sim_{}", random_id());
    let event = message_event(account.token.expose(), app_id, kind, parties, &message_id)?;
    let key = settings.encrypt_key.as_ref();
    let body = envelope(key, &event);
    let mut request = http()
        .post(url)
        .header("content-type", "application/json; charset=utf-8");
    if let Some(key) = key {
        let ts = now().to_string();
        let nonce = random_id();
        let sig = signature(&ts, &nonce, key, body.as_bytes());
        request = request
            .header("X-Lark-Request-Timestamp", ts)
            .header("X-Lark-Request-Nonce", nonce)
            .header("X-Lark-Signature", sig);
    }
    let started = Instant::now();
    let answer = exchange_diagnosed(url, request.body(body), diagnose).await?;
    let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
    let answer: Value = serde_json::from_str(&answer).map_err(|_| {
        SimError::BadReply(format!(
            "Feishu expects a JSON acknowledgement, got {:?}",
            answer.chars().take(80).collect::<String>()
        ))
    })?;
    if !answer.is_object() {
        return Err(SimError::BadReply(format!(
            "Feishu expects a JSON object, got {answer}"
        )));
    }
    Ok(JsonReply {
        platform: "feishu",
        message_id: message_id.clone(),
        status: 200,
        elapsed_ms,
        encrypted: key.is_some(),
        answer,
        text: None,
        finished: true,
        note: Some(format!(
            "acknowledged; the answer goes out through the reply API (POST {}/open-apis/im/v1/messages/{message_id}/reply), which simulate cannot see: the real Feishu refuses the made-up message id (230001), the server's log shows the attempt",
            account.api_base_url.trim_end_matches('/')
        )),
        refreshes: Vec::new(),
    })
}

/// Feishu's URL check: `{"type":"url_verification","challenge","token"}`
/// POSTed (encrypted with the Encrypt Key when one is set, and unsigned, as
/// Feishu sends it); the answer must be `{"challenge": …}` with ours.
pub(super) async fn verify_url(
    encrypt_key: Option<&Secret>,
    token: &str,
    url: &str,
) -> Result<String, SimError> {
    let challenge = format!("wxgate{}", rand::random::<u64>());
    let check =
        json!({"challenge": challenge, "token": token, "type": "url_verification"}).to_string();
    let request = http()
        .post(url)
        .header("content-type", "application/json; charset=utf-8")
        .body(envelope(encrypt_key, &check));
    let answer = exchange_diagnosed(url, request, diagnose).await?;
    let echoed = serde_json::from_str::<Value>(&answer).ok().and_then(|v| {
        v.get("challenge")
            .and_then(|c| c.as_str())
            .map(str::to_owned)
    });
    if echoed.as_deref() != Some(challenge.as_str()) {
        return Err(SimError::BadReply(format!(
            "the body must be {{\"challenge\": …}} with the challenge sent, got {:?}",
            answer.chars().take(80).collect::<String>()
        )));
    }
    Ok(challenge)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::platform::feishu::event::{self, Body, Converted, MentionPolicy};

    #[test]
    fn the_event_is_one_the_bot_answers_and_its_envelope_opens() {
        let parties = Parties {
            from_user: "ou_1".into(),
            to_user: "unused".into(),
        };
        let plain = message_event(
            "vtoken",
            "cli_a",
            &Kind::Text("价格".into()),
            &parties,
            "om_x",
        )
        .unwrap();
        let key = Secret::new("ek");
        let sealed: Value = serde_json::from_str(&envelope(Some(&key), &plain)).unwrap();
        let opened = EventCipher::new(&key)
            .decrypt(sealed["encrypt"].as_str().unwrap())
            .unwrap();
        assert_eq!(opened, plain);
        let Body::Event(e) = event::parse(serde_json::from_str(&plain).unwrap()).unwrap() else {
            panic!("an event")
        };
        assert_eq!(e.header.token, "vtoken");
        let policy = MentionPolicy {
            require_mention: true,
            bot_open_id: None,
        };
        let Converted::Message(m) = event::to_message(&e, &policy).unwrap() else {
            panic!("answered")
        };
        assert_eq!((m.text(), m.from_user.as_str()), (Some("价格"), "ou_1"));
        assert_eq!(m.fields.child_text("MessageId"), Some("om_x"));
        assert_eq!(envelope(None, &plain), plain);
        assert!(message_event("t", "a", &Kind::Video, &parties, "om_y").is_err());
    }
}
