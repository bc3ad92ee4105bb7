//! DingTalk's encrypted event callbacks (事件订阅, HTTP push), HTTP-free:
//! the query's `signature` (or `msg_signature`), `timestamp` (or
//! `timeStamp`) and `nonce`, the body `{"encrypt": "…"}` in WeChat's AES
//! envelope addressed to the AppKey (or the CorpId), `check_url` and the
//! other events, and the encrypted `success` every push is answered with.
//! The codec is the WeChat one in [`crate::crypto`].

use std::sync::Arc;

use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use thiserror::Error;

use crate::config::{AccountConfig, AccountKind, Secret};
use crate::crypto::{CryptoError, MessageCrypto};
use crate::domain::{Event, Message, MessageKind};
use crate::platform::convert::Fields;

/// The plaintext every push is answered with, encrypted.
pub const SUCCESS: &str = "success";

/// Why an event push is refused.
#[derive(Debug, Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum EventError {
    /// `signature`, `timestamp` or `nonce` is missing: 403.
    #[error("missing query parameter `{0}`")]
    Missing(&'static str),
    /// The signature does not match: 403.
    #[error("signature mismatch")]
    BadSignature,
    /// The envelope is addressed to another app: 403.
    #[error("the envelope's receive id is not this app's")]
    WrongReceiver,
    /// The body is no `{"encrypt"}` object, or the plaintext is no event: 400.
    #[error("malformed event push: {0}")]
    Malformed(String),
    /// The ciphertext does not decrypt: 400.
    #[error("cannot decrypt: {0}")]
    Decrypt(CryptoError),
}

impl EventError {
    /// True for failures of authenticity: 403.
    pub fn is_forbidden(&self) -> bool {
        matches!(
            self,
            EventError::Missing(_) | EventError::BadSignature | EventError::WrongReceiver
        )
    }

    /// A short stable label for logs and metrics.
    pub fn label(&self) -> &'static str {
        match self {
            EventError::Missing(_) => "missing_param",
            EventError::BadSignature => "bad_signature",
            EventError::WrongReceiver => "wrong_receive_id",
            EventError::Malformed(_) => "malformed_message",
            EventError::Decrypt(_) => "decrypt_failed",
        }
    }

    /// The ciphertext itself was the problem (counted as a decrypt failure).
    pub fn is_decrypt(&self) -> bool {
        matches!(self, EventError::Decrypt(_))
    }
}

/// The query of a push, as sent.
#[derive(Debug, Clone, Copy, Default)]
pub struct Signed<'a> {
    /// `signature`, or `msg_signature`.
    pub signature: Option<&'a str>,
    /// `timestamp`, or `timeStamp` (milliseconds).
    pub timestamp: Option<&'a str>,
    /// `nonce`.
    pub nonce: Option<&'a str>,
}

/// An opened push.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Push {
    /// `{"EventType":"check_url"}`: the console's URL check.
    CheckUrl,
    /// Any other event.
    Event {
        /// Its `EventType`.
        event_type: String,
        /// What identifies it across re-pushes: its `EventId` (or
        /// `eventId`) when it has one, else the SHA-256 of its plaintext.
        id: String,
        /// The decrypted JSON.
        plaintext: String,
    },
}

/// The encrypted `success` answer of a push.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// `{"msg_signature","timeStamp","nonce","encrypt"}`.
    pub body: Value,
}

/// One DingTalk app's event callbacks: its token and envelope.
#[derive(Debug, Clone)]
pub struct DingTalkEvents {
    token: Secret,
    crypto: Arc<MessageCrypto>,
}

/// True when `body` is an event push (`{"encrypt": "…"}`) rather than a
/// robot message.
pub fn is_event_push(body: &[u8]) -> bool {
    serde_json::from_slice::<Value>(body)
        .ok()
        .is_some_and(|v| v.get("encrypt").is_some_and(Value::is_string))
}

fn present<'a>(v: Option<&'a str>, name: &'static str) -> Result<&'a str, EventError> {
    v.map(str::trim)
        .filter(|s| !s.is_empty())
        .ok_or(EventError::Missing(name))
}

impl DingTalkEvents {
    /// The event callbacks of a DingTalk account with a token and an
    /// EncodingAESKey; `None` otherwise.
    pub fn for_account(account: &AccountConfig) -> Option<Self> {
        if account.kind != AccountKind::DingTalk || account.token.expose().is_empty() {
            return None;
        }
        Some(DingTalkEvents {
            token: account.token.clone(),
            crypto: Arc::new(account.crypto.clone()?),
        })
    }

    /// From a token and an envelope (tests, the simulator).
    pub fn new(token: Secret, crypto: MessageCrypto) -> Self {
        DingTalkEvents {
            token,
            crypto: Arc::new(crypto),
        }
    }

    /// Authenticates, decrypts and reads one push.
    pub fn open(&self, signed: Signed<'_>, body: &[u8]) -> Result<Push, EventError> {
        let signature = present(signed.signature, "signature")?;
        let timestamp = present(signed.timestamp, "timestamp")?;
        let nonce = present(signed.nonce, "nonce")?;
        let v: Value = serde_json::from_slice(body)
            .map_err(|_| EventError::Malformed("body is not JSON".into()))?;
        let encrypt = v
            .get("encrypt")
            .and_then(Value::as_str)
            .ok_or_else(|| EventError::Malformed("body has no encrypt".into()))?;
        let plaintext = self
            .crypto
            .open_signed(self.token.expose(), timestamp, nonce, encrypt, signature)
            .map_err(|e| match e {
                CryptoError::BadSignature => EventError::BadSignature,
                CryptoError::AppIdMismatch => EventError::WrongReceiver,
                other => EventError::Decrypt(other),
            })?;
        read(&plaintext)
    }

    /// The encrypted `success`, signed over the push's own `timestamp` and
    /// `nonce` (what DingTalk checks the answer's signature with).
    pub fn success(&self, timestamp: &str, nonce: &str) -> Answer {
        self.success_with_random(timestamp, nonce, &rand::random())
    }

    /// As [`DingTalkEvents::success`] with a chosen random prefix.
    pub fn success_with_random(&self, timestamp: &str, nonce: &str, random: &[u8; 16]) -> Answer {
        let sealed = self.crypto.seal_signed_with_random(
            self.token.expose(),
            timestamp,
            nonce,
            random,
            SUCCESS,
        );
        Answer {
            body: json!({
                "msg_signature": sealed.signature.as_str(),
                "timeStamp": timestamp,
                "nonce": nonce,
                "encrypt": sealed.encrypt,
            }),
        }
    }
}

/// A decrypted plaintext as a push.
fn read(plaintext: &str) -> Result<Push, EventError> {
    let v: Value = serde_json::from_str(plaintext)
        .map_err(|_| EventError::Malformed("the plaintext is not JSON".into()))?;
    let event_type = v
        .get("EventType")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| EventError::Malformed("the plaintext has no EventType".into()))?;
    if event_type == "check_url" {
        return Ok(Push::CheckUrl);
    }
    let id = ["EventId", "eventId"]
        .iter()
        .find_map(|k| v.get(*k).and_then(Value::as_str).filter(|s| !s.is_empty()))
        .map(str::to_owned)
        .unwrap_or_else(|| hex::encode(Sha256::digest(plaintext.as_bytes())));
    Ok(Push::Event {
        event_type: event_type.to_owned(),
        id,
        plaintext: plaintext.to_owned(),
    })
}

/// An event as a domain message for the rules: `MsgType` `event`, `Event`
/// its `EventType`, from the event's `UserId` (the first when a list) or
/// `StaffId` when it names one, else the app; the decrypted JSON in
/// `EventJson`. Its answer has nowhere to go: the route logs and drops it.
///
/// A re-push comes in a fresh envelope with a new query timestamp, so the
/// message's time is the event's own `TimeStamp` (ms or s) when it has
/// one, else 0 — never the push's — and its id is in `Token`: the dedup
/// key of an event is then the same for every push of it.
pub fn to_message(event_type: &str, id: &str, plaintext: &str, app: &str) -> Message {
    let v: Value = serde_json::from_str(plaintext).unwrap_or(Value::Null);
    let now = ["TimeStamp", "timeStamp", "timestamp"]
        .iter()
        .find_map(|k| match v.get(*k) {
            Some(Value::String(s)) => s.trim().parse::<i64>().ok(),
            Some(Value::Number(n)) => n.as_i64(),
            _ => None,
        })
        .map_or(0, |t| if t > 100_000_000_000 { t / 1000 } else { t });
    let user = ["UserId", "StaffId", "userId", "staffId"]
        .iter()
        .find_map(|k| match v.get(*k) {
            Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
            Some(Value::Array(a)) => a.first().and_then(Value::as_str).map(str::to_owned),
            _ => None,
        })
        .unwrap_or_else(|| app.to_owned());
    let numeric = crate::platform::numeric_id(id);
    let mut fields = Fields::addressed(app, &user, now);
    for (name, text) in [
        ("MsgType", "event"),
        ("Event", event_type),
        ("MsgId", &numeric.to_string()),
        ("DingTalkEventId", id),
        ("Token", id),
        ("EventJson", plaintext),
    ] {
        fields.push(name, text);
    }
    Message {
        to_user: app.to_owned(),
        from_user: user,
        create_time: now,
        msg_type: "event".to_owned(),
        msg_id: Some(numeric),
        kind: MessageKind::Event(Event::Unknown),
        fields: fields.into_element(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::{msg_signature, AesKey};

    const VECTORS: &str = include_str!("../../../tests/fixtures/dingtalk/vectors.json");

    fn events_of(case: &Value) -> DingTalkEvents {
        let key =
            AesKey::from_encoding_aes_key(case["encoding_aes_key"].as_str().unwrap()).unwrap();
        DingTalkEvents::new(
            Secret::new(case["token"].as_str().unwrap()),
            MessageCrypto::new(key, case["receive_id"].as_str().unwrap()),
        )
    }

    fn random_of(case: &Value) -> [u8; 16] {
        case["random"]
            .as_str()
            .unwrap()
            .as_bytes()
            .try_into()
            .unwrap()
    }

    #[test]
    fn the_recorded_pushes_and_answers_hold() {
        let all: Value = serde_json::from_str(VECTORS).unwrap();
        let cases = all["events"].as_array().unwrap();
        assert!(cases.len() >= 3);
        for case in cases {
            let events = events_of(case);
            let (ts, nonce) = (
                case["timestamp"].as_str().unwrap(),
                case["nonce"].as_str().unwrap(),
            );
            let plaintext = case["plaintext"].as_str().unwrap();
            // Reproduce the envelope and the signature byte for byte.
            let sealed = events.crypto.seal_signed_with_random(
                case["token"].as_str().unwrap(),
                ts,
                nonce,
                &random_of(case),
                plaintext,
            );
            assert_eq!(
                sealed.encrypt,
                case["encrypt"].as_str().unwrap(),
                "{}",
                case["what"]
            );
            assert_eq!(
                sealed.signature.as_str(),
                case["signature"].as_str().unwrap()
            );
            let body = json!({"encrypt": case["encrypt"]}).to_string();
            assert!(is_event_push(body.as_bytes()));
            let signed = Signed {
                signature: case["signature"].as_str(),
                timestamp: Some(ts),
                nonce: Some(nonce),
            };
            match case["kind"].as_str().unwrap() {
                "check_url" => assert_eq!(events.open(signed, body.as_bytes()), Ok(Push::CheckUrl)),
                "event" => assert!(matches!(
                    events.open(signed, body.as_bytes()),
                    Ok(Push::Event { event_type, .. }) if event_type == case["event_type"].as_str().unwrap()
                )),
                "success" => {
                    let answer = events.success_with_random(ts, nonce, &random_of(case));
                    assert_eq!(answer.body["encrypt"], case["encrypt"]);
                    assert_eq!(answer.body["msg_signature"], case["signature"]);
                    assert_eq!(answer.body["timeStamp"], ts);
                }
                other => panic!("unknown vector kind {other}"),
            }
        }
    }

    #[test]
    fn refusals_are_typed() {
        let key = AesKey::from_encoding_aes_key(&"k".repeat(43)).unwrap();
        let ours = DingTalkEvents::new(
            Secret::new("tok"),
            MessageCrypto::new(key.clone(), "dingapp"),
        );
        let theirs = MessageCrypto::new(key, "dingother");
        let enc = theirs.encrypt(r#"{"EventType":"check_url"}"#);
        let sig = msg_signature("tok", "1", "n", &enc);
        let body = json!({"encrypt": enc}).to_string();
        fn signed(s: &str) -> Signed<'_> {
            Signed {
                signature: Some(s),
                timestamp: Some("1"),
                nonce: Some("n"),
            }
        }
        let good_sig = sig.to_string();
        assert_eq!(
            ours.open(signed(&good_sig), body.as_bytes()),
            Err(EventError::WrongReceiver)
        );
        assert_eq!(
            ours.open(signed(&"0".repeat(40)), body.as_bytes()),
            Err(EventError::BadSignature)
        );
        assert_eq!(
            ours.open(Signed::default(), body.as_bytes()),
            Err(EventError::Missing("signature"))
        );
        assert!(matches!(
            ours.open(signed(&good_sig), b"[]"),
            Err(EventError::Malformed(_))
        ));
        let junk = json!({"encrypt": "!!"}).to_string();
        let junk_sig = msg_signature("tok", "1", "n", "!!").to_string();
        assert!(matches!(
            ours.open(signed(&junk_sig), junk.as_bytes()),
            Err(EventError::Decrypt(_))
        ));
        assert!(!is_event_push(b"{\"msgId\":\"m\"}"));
    }

    #[test]
    fn events_without_an_id_are_named_by_their_plaintext() {
        let a = read(r#"{"EventType":"user_add_org","UserId":["u1"]}"#).unwrap();
        let b = read(r#"{"EventType":"user_add_org","UserId":["u2"]}"#).unwrap();
        let (Push::Event { id: ia, .. }, Push::Event { id: ib, .. }) = (&a, &b) else {
            panic!("events")
        };
        assert_ne!(ia, ib);
        let with_id = read(r#"{"EventType":"x","EventId":"e1"}"#).unwrap();
        assert!(matches!(with_id, Push::Event { id, .. } if id == "e1"));
        let m = to_message("user_add_org", ia, r#"{"UserId":["u1"]}"#, "dingapp");
        assert_eq!((m.from_user.as_str(), m.msg_type.as_str()), ("u1", "event"));
        assert_eq!(
            (m.create_time, m.fields.child_text("Token")),
            (0, Some(ia.as_str()))
        );
        let timed = r#"{"UserId":["u1"],"TimeStamp":"1700000000123"}"#;
        assert_eq!(
            to_message("x", "e1", timed, "dingapp").create_time,
            1_700_000_000
        );
        assert!(matches!(read("{}"), Err(EventError::Malformed(_))));
    }
}
