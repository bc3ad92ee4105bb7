//! DingTalk as a local platform: a robot message (HTTP mode) signed with
//! the AppSecret (`timestamp` and `sign` headers), answered in the
//! response; and, for an app with event callbacks (`token` and
//! `encoding_aes_key`), an encrypted event push — `check_url` for the URL
//! check — answered with the encrypted `success`. The codecs are the
//! robot's own ([`crate::platform::dingtalk::sign`]) and the WeChat
//! envelope of [`crate::crypto`].

use std::time::Instant;

use serde_json::{json, Value};

use super::{exchange_diagnosed, http, now_ms, random_id, JsonReply, Kind, Parties, SimError};
use crate::config::AccountConfig;
use crate::crypto::{CryptoError, MessageCrypto};
use crate::platform::dingtalk::events::SUCCESS;
use crate::platform::dingtalk::sign;

fn diagnose_message(status: u16, _body: &str) -> Option<&'static str> {
    Some(match status {
        403 => "the signature failed: the AppSecret (app_secret) differs from the server's, or the clocks are more than an hour apart",
        400 => "the server found the robot message malformed",
        _ => return None,
    })
}

fn diagnose_event(status: u16, body: &str) -> Option<&'static str> {
    Some(match status {
        403 => "the event push was refused: the token or the receive id (corp_id, else app_id) differ from the server's",
        400 if body.contains("encoding_aes_key") => "the server's account has no event callbacks (token and encoding_aes_key)",
        400 => "the server could not decrypt the push (another encoding_aes_key?) or found it malformed",
        _ => return None,
    })
}

/// The robot message DingTalk posts for `kind`: a direct chat from
/// `parties.from_user` (as `senderId`). It carries no `sessionWebhook` and
/// no `senderStaffId`, so that a late answer cannot reach anyone.
fn robot_message(app_key: &str, kind: &Kind, parties: &Parties) -> Result<Value, SimError> {
    let mut message = json!({
        "conversationId": "cidwxgatesimulator",
        "conversationType": "1",
        "chatbotUserId": parties.to_user,
        "robotCode": app_key,
        "msgId": format!("msgwxgatesim{}", random_id()),
        "createAt": now_ms(),
        "senderId": parties.from_user,
        "senderNick": "wxgate simulator",
        "isInAtList": true,
    });
    match kind {
        Kind::Text(text) => {
            message["msgtype"] = json!("text");
            // DingTalk puts a space after the @ of the robot.
            message["text"] = json!({ "content": format!(" {text}") });
        }
        Kind::Image { .. } => {
            message["msgtype"] = json!("picture");
            message["content"] = json!({
                "downloadCode": "wxgate-simulated-download-code",
                "pictureDownloadCode": "wxgate-simulated-download-code",
            });
        }
        other => {
            return Err(SimError::Unsupported(format!(
                "`{}` has no DingTalk robot message form here",
                other.name()
            )))
        }
    }
    Ok(message)
}

/// What a robot answer shows: the markdown's or the text's content.
fn text_of(answer: &Value) -> Option<String> {
    answer
        .pointer("/markdown/text")
        .or_else(|| answer.pointer("/text/content"))
        .and_then(Value::as_str)
        .map(str::to_owned)
}

/// Sends `kind` to the robot: a signed robot message, or for `event` an
/// encrypted event push.
pub(super) async fn send(
    account: &AccountConfig,
    url: &str,
    kind: &Kind,
    parties: &Parties,
) -> Result<JsonReply, SimError> {
    if let Kind::Event { name, .. } = kind {
        return send_event(account, url, name).await;
    }
    let secret = account.app_secret.as_ref().ok_or_else(|| {
        SimError::Settings(
            "a DingTalk robot needs app_secret: its callbacks are signed with it".into(),
        )
    })?;
    let app_key = account.app_id.as_deref().unwrap_or_default();
    let message = robot_message(app_key, kind, parties)?;
    let message_id = message["msgId"].as_str().unwrap_or_default().to_owned();
    let body = message.to_string();
    let timestamp = now_ms().to_string();
    let request = http()
        .post(url)
        .header("content-type", "application/json; charset=utf-8")
        .header("timestamp", &timestamp)
        .header("sign", sign::sign(&timestamp, secret))
        .body(body);
    let started = Instant::now();
    let answer = exchange_diagnosed(url, request, diagnose_message).await?;
    let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
    let answer: Value = serde_json::from_str(&answer)
        .ok()
        .filter(Value::is_object)
        .ok_or_else(|| {
            SimError::BadReply(format!(
                "DingTalk expects a JSON robot message or {{}}, got {:?}",
                answer.chars().take(80).collect::<String>()
            ))
        })?;
    let text = text_of(&answer);
    let shape = answer.get("msgtype").and_then(Value::as_str);
    if shape.is_some() && text.is_none() {
        return Err(SimError::BadReply(format!(
            "the answer is not a text or markdown robot message DingTalk shows: {answer}"
        )));
    }
    let note = if text.is_some() {
        "answered in the response (a slow upstream's answer here is the interim text: the rest goes through the message's sessionWebhook or the robot send API; simulate's message has neither a sessionWebhook nor a senderStaffId, so the server cannot deliver it and logs why)"
    } else {
        "nothing in the response (`{}`): no rule answers, or the answer comes late (through the message's sessionWebhook or the robot send API; simulate's message has neither a sessionWebhook nor a senderStaffId, so the server cannot deliver it and logs why)"
    };
    Ok(JsonReply {
        platform: "dingtalk",
        message_id,
        status: 200,
        elapsed_ms,
        encrypted: false,
        answer,
        text,
        finished: true,
        note: Some(note.to_owned()),
        refreshes: Vec::new(),
    })
}

/// The account's event envelope, or why it has none.
fn event_crypto(account: &AccountConfig) -> Result<&MessageCrypto, SimError> {
    match &account.crypto {
        Some(crypto) if !account.token.expose().is_empty() => Ok(crypto),
        _ => Err(SimError::Settings(
            "DingTalk robots have no URL check in HTTP mode, and this account has no event callbacks (token and encoding_aes_key): send the robot a message instead (wxgate simulate … text, docs/platforms/dingtalk.md)".into(),
        )),
    }
}

/// Pushes `plaintext` as an encrypted event, as DingTalk does, and checks
/// the answer is the encrypted `success` for this app; the round trip.
async fn push_event(account: &AccountConfig, url: &str, plaintext: &str) -> Result<f64, SimError> {
    let crypto = event_crypto(account)?;
    let token = account.token.expose();
    let timestamp = now_ms().to_string();
    let nonce = random_id();
    let sealed = crypto.seal_signed(token, &timestamp, &nonce, plaintext);
    let request = http()
        .post(url)
        .query(&[
            ("signature", sealed.signature.as_str()),
            ("msg_signature", sealed.signature.as_str()),
            ("timestamp", timestamp.as_str()),
            ("nonce", nonce.as_str()),
        ])
        .header("content-type", "application/json; charset=utf-8")
        .body(json!({ "encrypt": sealed.encrypt }).to_string());
    let started = Instant::now();
    let answer = exchange_diagnosed(url, request, diagnose_event).await?;
    let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
    open_success(crypto, token, &timestamp, &nonce, &answer)?;
    Ok(elapsed_ms)
}

/// Checks an event push's answer as DingTalk does: its `msg_signature`
/// over the push's own timestamp and nonce, and that `encrypt` decrypts,
/// for this app's receive id, to `success`.
fn open_success(
    crypto: &MessageCrypto,
    token: &str,
    timestamp: &str,
    nonce: &str,
    answer: &str,
) -> Result<(), SimError> {
    let v: Value = serde_json::from_str(answer).unwrap_or(Value::Null);
    let field = |k: &str| v.get(k).and_then(Value::as_str);
    let (Some(signature), Some(encrypt)) = (field("msg_signature"), field("encrypt")) else {
        return Err(SimError::BadReply(format!(
            "DingTalk expects {{\"msg_signature\",\"timeStamp\",\"nonce\",\"encrypt\"}}, got {:?}",
            answer.chars().take(80).collect::<String>()
        )));
    };
    let plain = crypto
        .open_signed(token, timestamp, nonce, encrypt, signature)
        .map_err(|e| match e {
            CryptoError::BadSignature => SimError::BadReply(
                "the answer's msg_signature does not hold over the push's timestamp and nonce: the server signs with another token".into(),
            ),
            CryptoError::AppIdMismatch => SimError::BadReply(
                "the answer decrypts for another receive id: the server's corp_id / app_id differ from this config's".into(),
            ),
            other => SimError::BadReply(format!(
                "cannot decrypt the answer ({other}): the server uses another encoding_aes_key"
            )),
        })?;
    if plain != SUCCESS {
        return Err(SimError::BadReply(format!(
            "the answer must decrypt to `success`, got {:?}",
            plain.chars().take(80).collect::<String>()
        )));
    }
    Ok(())
}

/// An event push (`EventType` = `name`), answered with the encrypted `success`.
async fn send_event(account: &AccountConfig, url: &str, name: &str) -> Result<JsonReply, SimError> {
    let event_id = format!("wxgate-sim-{}", random_id());
    let plaintext = json!({
        "EventType": name,
        "EventId": event_id,
        "TimeStamp": now_ms().to_string(),
    })
    .to_string();
    let elapsed_ms = push_event(account, url, &plaintext).await?;
    Ok(JsonReply {
        platform: "dingtalk",
        message_id: event_id,
        status: 200,
        elapsed_ms,
        encrypted: true,
        answer: json!(SUCCESS),
        text: None,
        finished: true,
        note: Some(
            "the event was acknowledged with the encrypted `success`; the rules see it after, and an answer to an event has nowhere to go (the server drops and counts it)".into(),
        ),
        refreshes: Vec::new(),
    })
}

/// DingTalk's URL check of an app with event callbacks: the encrypted
/// `{"EventType":"check_url"}`, answered with the encrypted `success`.
pub(super) async fn verify_url(account: &AccountConfig, url: &str) -> Result<String, SimError> {
    push_event(account, url, r#"{"EventType":"check_url"}"#).await?;
    Ok(SUCCESS.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;
    use crate::crypto::AesKey;
    use crate::platform::dingtalk::DingTalkEvents;

    const KEY: &str = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG";

    fn crypto(receive_id: &str) -> MessageCrypto {
        MessageCrypto::new(AesKey::from_encoding_aes_key(KEY).unwrap(), receive_id)
    }

    /// The server's own answer (`DingTalkEvents::success`) passes; another
    /// token, receive id, push or plaintext does not.
    #[test]
    fn the_servers_success_opens_and_forgeries_do_not() {
        let server = DingTalkEvents::new(Secret::new("tok"), crypto("dingapp"));
        let answer = server.success("1700000000000", "n1").body.to_string();
        let ours = crypto("dingapp");
        assert!(open_success(&ours, "tok", "1700000000000", "n1", &answer).is_ok());
        let bad = |token: &str, ts: &str, c: &MessageCrypto, body: &str| {
            open_success(c, token, ts, "n1", body)
                .unwrap_err()
                .to_string()
        };
        assert!(bad("other", "1700000000000", &ours, &answer).contains("another token"));
        // Signed over another push's timestamp.
        assert!(bad("tok", "1700000000001", &ours, &answer).contains("msg_signature"));
        let theirs = crypto("dingother");
        assert!(bad("tok", "1700000000000", &theirs, &answer).contains("receive id"));
        let sealed = ours.seal_signed("tok", "1700000000000", "n1", "fail");
        let not_success =
            json!({"msg_signature": sealed.signature.as_str(), "encrypt": sealed.encrypt})
                .to_string();
        assert!(bad("tok", "1700000000000", &ours, &not_success).contains("`success`"));
        assert!(bad("tok", "1700000000000", &ours, "success").contains("expects"));
    }

    #[test]
    fn a_robot_message_is_one_the_server_reads() {
        let parties = Parties {
            from_user: "u1".into(),
            to_user: "$:bot".into(),
        };
        let body = robot_message("dingapp", &Kind::Text("价格".into()), &parties).unwrap();
        let m = crate::platform::dingtalk::event::to_message(body.to_string().as_bytes()).unwrap();
        assert_eq!((m.text(), m.from_user.as_str()), (Some("价格"), "u1"));
        // Nobody to send a late answer to.
        assert_eq!(m.fields.child_text("SessionWebhook"), Some(""));
        assert_eq!(m.fields.child_text("SenderStaffId"), Some(""));
        let pic = robot_message(
            "dingapp",
            &Kind::Image {
                pic_url: String::new(),
            },
            &parties,
        );
        assert_eq!(pic.unwrap()["msgtype"], "picture");
        assert!(robot_message("dingapp", &Kind::Video, &parties).is_err());
    }
}
