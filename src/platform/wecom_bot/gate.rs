//! A 智能机器人's callback pipeline, HTTP-free: the `msg_signature` over
//! the token, timestamp, nonce and ciphertext, the WeCom envelope opened
//! with an empty receive id, and answers sealed as WeCom's encrypted JSON
//! reply (`encrypt`, `msgsignature`, `timestamp`, `nonce`).

use std::sync::Arc;

use serde_json::{json, Value};
use thiserror::Error;

use super::event::{self, BotPush, WeComBotEventError};
use crate::clock::Clock;
use crate::config::{AccountConfig, AccountKind, Secret};
use crate::crypto::{msg_signature, verify_msg_signature, CryptoError, MessageCrypto};
use crate::platform::callback::CallbackQuery;

/// Why a 智能机器人 callback is refused.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum WeComBotCallbackError {
    /// `msg_signature`, `timestamp` or `nonce` (or `echostr`) is missing: 400.
    #[error("missing query parameter {0}")]
    Missing(&'static str),
    /// The timestamp is not a number: 400.
    #[error("timestamp is not a number")]
    BadTimestamp,
    /// The timestamp is outside the accepted window: 403.
    #[error("timestamp {skew_secs}s off (window {window_secs}s)")]
    Stale {
        /// How far off.
        skew_secs: i64,
        /// The accepted window.
        window_secs: u64,
    },
    /// The signature does not match: 403.
    #[error("msg_signature does not match")]
    BadSignature,
    /// The ciphertext does not open with the account's key, or its receive
    /// id is not empty: 403.
    #[error("cannot decrypt: {0}")]
    Decrypt(CryptoError),
    /// The callback is for another bot (`aibotid` ≠ `bot_id`): 403.
    #[error("callback for another bot")]
    OtherBot,
    /// The body is not `{"encrypt": …}`: 400.
    #[error("body is not {{\"encrypt\": …}}")]
    BadBody,
    /// The plaintext is not a callback: 400.
    #[error("malformed callback: {0}")]
    Malformed(#[from] WeComBotEventError),
}

impl WeComBotCallbackError {
    /// True for failures of authenticity: 403.
    pub fn is_forbidden(&self) -> bool {
        matches!(
            self,
            WeComBotCallbackError::Stale { .. }
                | WeComBotCallbackError::BadSignature
                | WeComBotCallbackError::Decrypt(_)
                | WeComBotCallbackError::OtherBot
        )
    }

    /// True when the ciphertext did not open.
    pub fn is_decrypt(&self) -> bool {
        matches!(self, WeComBotCallbackError::Decrypt(_))
    }

    /// A short stable label for logs and metrics.
    pub fn label(&self) -> &'static str {
        match self {
            WeComBotCallbackError::Missing(_) | WeComBotCallbackError::BadTimestamp => {
                "missing_param"
            }
            WeComBotCallbackError::Stale { .. } => "stale_timestamp",
            WeComBotCallbackError::BadSignature | WeComBotCallbackError::OtherBot => {
                "bad_signature"
            }
            WeComBotCallbackError::Decrypt(_) => "decrypt_failed",
            WeComBotCallbackError::BadBody | WeComBotCallbackError::Malformed(_) => {
                "malformed_message"
            }
        }
    }
}

/// One 智能机器人's callback logic.
#[derive(Debug, Clone)]
pub struct WeComBotCallback {
    token: Secret,
    crypto: MessageCrypto,
    previous: Option<MessageCrypto>,
    bot_id: Option<String>,
    window_secs: u64,
    clock: Arc<dyn Clock>,
}

impl WeComBotCallback {
    /// The pipeline of a 智能机器人 account; `None` for other kinds.
    pub fn for_account(
        account: &AccountConfig,
        window_secs: u64,
        clock: Arc<dyn Clock>,
    ) -> Option<Self> {
        if account.kind != AccountKind::WeComBot {
            return None;
        }
        Some(WeComBotCallback {
            token: account.token.clone(),
            crypto: account.crypto.clone()?,
            previous: account.previous_crypto.clone(),
            bot_id: account.app_id.clone(),
            window_secs,
            clock,
        })
    }

    fn check(&self, q: &CallbackQuery, encrypt: &str) -> Result<(), WeComBotCallbackError> {
        let signature = q
            .msg_signature
            .as_deref()
            .ok_or(WeComBotCallbackError::Missing("msg_signature"))?;
        let timestamp = q
            .timestamp
            .as_deref()
            .ok_or(WeComBotCallbackError::Missing("timestamp"))?;
        let nonce = q
            .nonce
            .as_deref()
            .ok_or(WeComBotCallbackError::Missing("nonce"))?;
        let ts: i64 = timestamp
            .trim()
            .parse()
            .map_err(|_| WeComBotCallbackError::BadTimestamp)?;
        let skew = self.clock.now_unix().saturating_sub(ts);
        if skew.unsigned_abs() > self.window_secs {
            return Err(WeComBotCallbackError::Stale {
                skew_secs: skew,
                window_secs: self.window_secs,
            });
        }
        verify_msg_signature(self.token.expose(), timestamp, nonce, encrypt, signature)
            .map_err(|_| WeComBotCallbackError::BadSignature)
    }

    fn decrypt(&self, encrypt: &str) -> Result<String, WeComBotCallbackError> {
        match self.crypto.decrypt(encrypt) {
            Ok(plain) => Ok(plain),
            Err(e) => match &self.previous {
                Some(previous) => previous
                    .decrypt(encrypt)
                    .map_err(WeComBotCallbackError::Decrypt),
                None => Err(WeComBotCallbackError::Decrypt(e)),
            },
        }
    }

    /// URL verification: the plaintext of `echostr` when the signature holds.
    pub fn verify_url(&self, q: &CallbackQuery) -> Result<String, WeComBotCallbackError> {
        let echostr = q
            .echostr
            .as_deref()
            .ok_or(WeComBotCallbackError::Missing("echostr"))?;
        self.check(q, echostr)?;
        self.decrypt(echostr)
    }

    /// Authenticates and reads one callback (`{"encrypt": …}`).
    pub fn open(&self, q: &CallbackQuery, body: &[u8]) -> Result<BotPush, WeComBotCallbackError> {
        let v: Value = serde_json::from_slice(body).map_err(|_| WeComBotCallbackError::BadBody)?;
        let encrypt = v
            .get("encrypt")
            .and_then(Value::as_str)
            .ok_or(WeComBotCallbackError::BadBody)?;
        self.check(q, encrypt)?;
        let push = event::read(&self.decrypt(encrypt)?)?;
        let bot = match &push {
            BotPush::Message(m) => m.to_user.as_str(),
            BotPush::Refresh { bot_id, .. } | BotPush::Event { bot_id, .. } => bot_id.as_str(),
        };
        if self.bot_id.as_deref().is_some_and(|id| id != bot) {
            return Err(WeComBotCallbackError::OtherBot);
        }
        Ok(push)
    }

    /// `plaintext` (a JSON answer) as WeCom's encrypted JSON reply.
    pub fn seal(&self, plaintext: &str) -> String {
        let encrypt = self.crypto.encrypt(plaintext);
        let timestamp = self.clock.now_unix();
        let nonce = format!("{:016x}", rand::random::<u64>());
        let signature = msg_signature(
            self.token.expose(),
            &timestamp.to_string(),
            &nonce,
            &encrypt,
        );
        json!({
            "encrypt": encrypt,
            "msgsignature": signature.as_str(),
            "timestamp": timestamp,
            "nonce": nonce,
        })
        .to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::AesKey;

    #[derive(Debug)]
    struct At(i64);
    impl Clock for At {
        fn now_unix(&self) -> i64 {
            self.0
        }
    }

    const KEY: &str = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG";

    fn gate(bot_id: Option<&str>) -> WeComBotCallback {
        WeComBotCallback {
            token: Secret::new("tok"),
            crypto: MessageCrypto::new(AesKey::from_encoding_aes_key(KEY).unwrap(), ""),
            previous: None,
            bot_id: bot_id.map(str::to_owned),
            window_secs: 300,
            clock: Arc::new(At(1_700_000_000)),
        }
    }

    fn query(encrypt: &str, ts: &str) -> CallbackQuery {
        CallbackQuery {
            msg_signature: Some(msg_signature("tok", ts, "n1", encrypt).to_string()),
            timestamp: Some(ts.into()),
            nonce: Some("n1".into()),
            echostr: Some(encrypt.into()),
            ..CallbackQuery::default()
        }
    }

    #[test]
    fn verifies_opens_and_seals() {
        let g = gate(Some("B"));
        let echo = g.crypto.encrypt("12345");
        assert_eq!(g.verify_url(&query(&echo, "1700000000")).unwrap(), "12345");
        let plain = r#"{"msgid":"m","aibotid":"B","msgtype":"stream","stream":{"id":"s"}}"#;
        let enc = g.crypto.encrypt(plain);
        let body = json!({ "encrypt": enc }).to_string();
        assert!(matches!(
            g.open(&query(&enc, "1700000000"), body.as_bytes()).unwrap(),
            BotPush::Refresh { .. }
        ));
        // Another bot, a stale timestamp, a wrong signature, a foreign receive id.
        let other = gate(Some("C"));
        assert!(matches!(
            other.open(&query(&enc, "1700000000"), body.as_bytes()),
            Err(WeComBotCallbackError::OtherBot)
        ));
        assert!(g
            .open(&query(&enc, "1699990000"), body.as_bytes())
            .unwrap_err()
            .is_forbidden());
        let mut bad = query(&enc, "1700000000");
        bad.msg_signature = Some("0".repeat(40));
        assert!(matches!(
            g.open(&bad, body.as_bytes()),
            Err(WeComBotCallbackError::BadSignature)
        ));
        let foreign =
            MessageCrypto::new(AesKey::from_encoding_aes_key(KEY).unwrap(), "corp").encrypt(plain);
        let fbody = json!({ "encrypt": foreign }).to_string();
        assert!(g
            .open(&query(&foreign, "1700000000"), fbody.as_bytes())
            .unwrap_err()
            .is_decrypt());
        assert!(matches!(
            g.open(&query(&enc, "1700000000"), b"junk"),
            Err(WeComBotCallbackError::BadBody)
        ));
        // The sealed answer opens with the same key and carries a valid signature.
        let sealed: Value = serde_json::from_str(&g.seal("{\"a\":1}")).unwrap();
        let enc = sealed["encrypt"].as_str().unwrap();
        let ts = sealed["timestamp"].as_i64().unwrap().to_string();
        let nonce = sealed["nonce"].as_str().unwrap();
        assert!(
            msg_signature("tok", &ts, nonce, enc).matches(sealed["msgsignature"].as_str().unwrap())
        );
        assert_eq!(g.crypto.decrypt(enc).unwrap(), "{\"a\":1}");
    }

    const VECTORS: &str = include_str!("../../../tests/fixtures/wecom_bot/vectors.json");

    /// The recorded callbacks (scripts/gen_wecom_bot_vectors.py, checked
    /// there with wechatpy) open to what they carry, through the gate.
    #[test]
    fn the_recorded_callbacks_verify_open_and_reencrypt() {
        let v: Value = serde_json::from_str(VECTORS).unwrap();
        let str_of = |c: &Value, k: &str| c[k].as_str().unwrap().to_owned();
        let g = WeComBotCallback {
            token: Secret::new(v["token"].as_str().unwrap()),
            crypto: MessageCrypto::new(
                AesKey::from_encoding_aes_key(v["encoding_aes_key"].as_str().unwrap()).unwrap(),
                "",
            ),
            previous: None,
            bot_id: Some(str_of(&v, "bot_id")),
            window_secs: 300,
            clock: Arc::new(At(1_760_000_000)),
        };
        let cases = v["cases"].as_array().unwrap();
        assert_eq!(cases.len(), 6);
        for c in cases {
            let (what, enc) = (str_of(c, "what"), str_of(c, "encrypt"));
            let random: [u8; 16] = str_of(c, "random").as_bytes().try_into().unwrap();
            assert_eq!(
                g.crypto
                    .encrypt_with_random(&random, &str_of(c, "plaintext")),
                enc,
                "{what}: the same bytes"
            );
            let q = CallbackQuery {
                msg_signature: Some(str_of(c, "msg_signature")),
                timestamp: Some(str_of(c, "timestamp")),
                nonce: Some(str_of(c, "nonce")),
                echostr: Some(enc.clone()),
                ..CallbackQuery::default()
            };
            let body = json!({ "encrypt": enc }).to_string();
            match c["kind"].as_str().unwrap() {
                "url_check" => assert_eq!(g.verify_url(&q).unwrap(), str_of(c, "plaintext")),
                "message" => match g.open(&q, body.as_bytes()).unwrap() {
                    BotPush::Message(m) => {
                        assert_eq!(m.text(), Some(str_of(c, "content").as_str()), "{what}");
                        assert_eq!(m.from_user, str_of(c, "user"), "{what}");
                    }
                    other => panic!("{what}: {other:?}"),
                },
                "refresh" => match g.open(&q, body.as_bytes()).unwrap() {
                    BotPush::Refresh { stream_id, .. } => {
                        assert_eq!(stream_id, str_of(c, "stream_id"))
                    }
                    other => panic!("{what}: {other:?}"),
                },
                "event" => match g.open(&q, body.as_bytes()).unwrap() {
                    BotPush::Event { event_type, .. } => {
                        assert_eq!(event_type, str_of(c, "event_type"))
                    }
                    other => panic!("{what}: {other:?}"),
                },
                "answer" => {
                    assert_eq!(g.crypto.decrypt(&enc).unwrap(), str_of(c, "plaintext"));
                    verify_msg_signature(
                        g.token.expose(),
                        &str_of(c, "timestamp"),
                        &str_of(c, "nonce"),
                        &enc,
                        &str_of(c, "msg_signature"),
                    )
                    .unwrap();
                }
                other => panic!("unknown kind {other}"),
            }
        }
    }
}
