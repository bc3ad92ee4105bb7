//! A WeCom 智能机器人 as a local platform: JSON callbacks in the WeCom
//! envelope with an empty receive id (`msg_signature`, `timestamp`,
//! `nonce` in the query, `{"encrypt"}` as the body), the encrypted stream
//! answer opened and checked, and the stream refreshed as WeCom does —
//! about once a second — until it is finished or the wait is over. The
//! codec is [`crate::crypto`]'s signed envelope.

use std::time::Instant;

use serde_json::{json, Value};

use super::{
    exchange_diagnosed, http, now, random_id, JsonReply, Kind, Parties, SimError, StreamSnapshot,
    Wait,
};
use crate::config::AccountConfig;
use crate::crypto::{CryptoError, MessageCrypto};

fn diagnose(status: u16, _body: &str) -> Option<&'static str> {
    Some(match status {
        403 => "signature or decryption failed: the token or EncodingAESKey differ from the server's, the clocks differ by more than server.timestamp_window_secs, or the server's bot_id (app_id) is another bot's",
        400 => "the server found the callback malformed",
        _ => return None,
    })
}

/// One bot's side of the conversation, as WeCom speaks it.
struct Bot<'a> {
    url: &'a str,
    token: &'a str,
    crypto: &'a MessageCrypto,
    bot_id: &'a str,
    user: &'a str,
}

impl Bot<'_> {
    /// The plaintext WeCom sends for `kind` in a direct chat.
    fn message(&self, kind: &Kind) -> Result<Value, SimError> {
        let mut message = json!({
            "msgid": format!("wxgate-sim-{}", random_id()),
            "aibotid": self.bot_id,
            "chattype": "single",
            "from": {"userid": self.user},
        });
        match kind {
            Kind::Text(text) => {
                message["msgtype"] = json!("text");
                message["text"] = json!({ "content": text });
            }
            Kind::Image { pic_url } => {
                message["msgtype"] = json!("image");
                message["image"] = json!({ "url": pic_url });
            }
            Kind::Event { name, .. } => {
                message["msgtype"] = json!("event");
                message["create_time"] = json!(now());
                message["event"] = json!({ "eventtype": name });
            }
            other => {
                return Err(SimError::Unsupported(format!(
                    "`{}` has no 智能机器人 callback form here",
                    other.name()
                )))
            }
        }
        Ok(message)
    }

    /// WeCom's "流式消息刷新" of stream `id`.
    fn refresh(&self, id: &str) -> Value {
        json!({
            "msgid": format!("wxgate-sim-{}", random_id()),
            "aibotid": self.bot_id,
            "chattype": "single",
            "from": {"userid": self.user},
            "msgtype": "stream",
            "stream": {"id": id},
        })
    }

    /// POSTs `plaintext` sealed; the decrypted answer, `None` for an empty body.
    async fn post(&self, plaintext: &Value) -> Result<Option<Value>, SimError> {
        let timestamp = now().to_string();
        let nonce = random_id();
        let sealed =
            self.crypto
                .seal_signed(self.token, &timestamp, &nonce, &plaintext.to_string());
        let request = http()
            .post(self.url)
            .query(&[
                ("msg_signature", sealed.signature.as_str()),
                ("timestamp", timestamp.as_str()),
                ("nonce", nonce.as_str()),
            ])
            .header("content-type", "application/json; charset=utf-8")
            .body(json!({ "encrypt": sealed.encrypt }).to_string());
        let body = exchange_diagnosed(self.url, request, diagnose).await?;
        if body.trim().is_empty() {
            return Ok(None);
        }
        self.open(&body).map(Some)
    }

    /// Checks an answer as WeCom does: `msgsignature` over the answer's own
    /// timestamp and nonce, `encrypt` opened with the empty receive id.
    fn open(&self, body: &str) -> Result<Value, SimError> {
        let v: Value = serde_json::from_str(body).unwrap_or(Value::Null);
        let text = |k: &str| match v.get(k) {
            Some(Value::String(s)) => Some(s.clone()),
            Some(Value::Number(n)) => Some(n.to_string()),
            _ => None,
        };
        let (Some(encrypt), Some(signature), Some(timestamp), Some(nonce)) = (
            text("encrypt"),
            text("msgsignature"),
            text("timestamp"),
            text("nonce"),
        ) else {
            return Err(SimError::BadReply(format!(
                "WeCom expects {{\"encrypt\",\"msgsignature\",\"timestamp\",\"nonce\"}}, got {:?}",
                body.chars().take(80).collect::<String>()
            )));
        };
        let plain = self
            .crypto
            .open_signed(self.token, &timestamp, &nonce, &encrypt, &signature)
            .map_err(|e| match e {
                CryptoError::BadSignature => SimError::BadReply(
                    "the answer's msgsignature does not hold: the server signs with another token"
                        .into(),
                ),
                other => SimError::BadReply(format!(
                    "cannot decrypt the answer ({other}): the server uses another EncodingAESKey"
                )),
            })?;
        serde_json::from_str(&plain).map_err(|_| {
            SimError::BadReply(format!(
                "the decrypted answer is not JSON: {:?}",
                plain.chars().take(80).collect::<String>()
            ))
        })
    }
}

/// The stream of a decrypted answer: its id and what it holds.
fn stream_of(answer: &Value, started: Instant) -> Result<(String, StreamSnapshot), SimError> {
    let id = answer
        .pointer("/stream/id")
        .and_then(Value::as_str)
        .filter(|id| !id.is_empty());
    let (Some("stream"), Some(id)) = (answer.get("msgtype").and_then(Value::as_str), id) else {
        return Err(SimError::BadReply(format!(
            "a 智能机器人 answers a message with {{\"msgtype\":\"stream\",\"stream\":{{\"id\",\"finish\",\"content\"}}}}, got {answer}"
        )));
    };
    Ok((
        id.to_owned(),
        StreamSnapshot {
            elapsed_ms: started.elapsed().as_secs_f64() * 1000.0,
            finish: answer
                .pointer("/stream/finish")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            content: answer
                .pointer("/stream/content")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
        },
    ))
}

/// Sends `kind` to the bot; a stream answer is refreshed every
/// `wait.every` until it is finished or `wait.wait` has passed, and
/// `on_refresh` sees each refresh that changed it.
pub(super) async fn send(
    account: &AccountConfig,
    url: &str,
    kind: &Kind,
    parties: &Parties,
    wait: Wait,
    on_refresh: &mut dyn FnMut(&StreamSnapshot),
) -> Result<JsonReply, SimError> {
    let crypto = account.crypto.as_ref().ok_or_else(|| {
        SimError::Settings("a 智能机器人 needs token and encoding_aes_key".into())
    })?;
    let bot = Bot {
        url,
        token: account.token.expose(),
        crypto,
        bot_id: account.app_id.as_deref().unwrap_or(&parties.to_user),
        user: &parties.from_user,
    };
    let message = bot.message(kind)?;
    let message_id = message["msgid"].as_str().unwrap_or_default().to_owned();
    let started = Instant::now();
    let first = bot.post(&message).await?;
    let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
    let Some(answer) = first else {
        return Ok(JsonReply {
            platform: "wecom_bot",
            message_id: message_id.clone(),
            status: 200,
            elapsed_ms,
            encrypted: true,
            answer: Value::Null,
            text: None,
            finished: true,
            note: Some("acknowledged with an empty 200: not answered (events are not)".into()),
            refreshes: Vec::new(),
        });
    };
    // An `enter_chat` the rules answer: a welcome text, not a stream.
    if answer.get("msgtype").and_then(Value::as_str) == Some("text")
        && matches!(kind, Kind::Event { .. })
    {
        let text = answer
            .pointer("/text/content")
            .and_then(Value::as_str)
            .map(str::to_owned);
        return Ok(JsonReply {
            platform: "wecom_bot",
            message_id,
            status: 200,
            elapsed_ms,
            encrypted: true,
            answer,
            text,
            finished: true,
            note: Some("a welcome text: WeCom shows it when the user opens the chat".into()),
            refreshes: Vec::new(),
        });
    }
    let (id, mut last) = stream_of(&answer, started)?;
    let mut refreshes = Vec::new();
    let mut pulls = 0;
    let deadline = Instant::now() + wait.wait;
    while !last.finish {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        // WeCom's own cadence: a refresh about once a second.
        tokio::time::sleep(wait.every.min(left)).await;
        let answer = bot.post(&bot.refresh(&id)).await?.ok_or_else(|| {
            SimError::BadReply("a stream refresh was answered with an empty body".into())
        })?;
        pulls += 1;
        let (again, now) = stream_of(&answer, started)?;
        if again != id {
            return Err(SimError::BadReply(format!(
                "the refresh of stream {id} was answered with stream {again}"
            )));
        }
        if now.content != last.content || now.finish != last.finish {
            on_refresh(&now);
            refreshes.push(now.clone());
        }
        last = now;
    }
    let note = if !last.finish {
        format!(
            "not finished within {} s: WeCom keeps refreshing for 6 minutes, and an answer finished after that goes through the message's response_url (simulate's message has none)",
            wait.wait.as_secs_f64()
        )
    } else if pulls == 0 {
        "the stream was finished in the first answer".to_owned()
    } else {
        format!("the stream was finished after {pulls} refreshes")
    };
    Ok(JsonReply {
        platform: "wecom_bot",
        message_id,
        status: 200,
        elapsed_ms,
        encrypted: true,
        answer,
        text: Some(last.content).filter(|c| !c.is_empty()),
        finished: last.finish,
        note: Some(note),
        refreshes,
    })
}

/// A 智能机器人's URL check is WeCom's: an encrypted `echostr` (its
/// envelope's receive id is empty), answered with the plaintext.
pub(super) async fn verify_url(account: &AccountConfig, url: &str) -> Result<String, SimError> {
    super::wechat::verify_echostr(account, url, true).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_stream_with_an_id_is_a_stream_answer() {
        let started = Instant::now();
        let good =
            json!({"msgtype": "stream", "stream": {"id": "s1", "finish": true, "content": "hi"}});
        let (id, snap) = stream_of(&good, started).unwrap();
        assert_eq!(
            (id.as_str(), snap.finish, snap.content.as_str()),
            ("s1", true, "hi")
        );
        let growing = json!({"msgtype": "stream", "stream": {"id": "s1"}});
        assert!(!stream_of(&growing, started).unwrap().1.finish);
        for bad in [
            json!({"msgtype": "text", "text": {"content": "hi"}}),
            json!({"msgtype": "stream", "stream": {"id": ""}}),
            json!(null),
        ] {
            assert!(
                matches!(stream_of(&bad, started), Err(SimError::BadReply(_))),
                "{bad}"
            );
        }
    }
}
