//! Feishu's callback pipeline, HTTP-free: decrypt (when an Encrypt Key is
//! set), check the signature and the Verification Token, read the body,
//! and say what to do: echo a challenge, answer a message, or acknowledge.

use std::sync::Arc;

use thiserror::Error;

use super::crypto::{verify_signature, EventCipher, FeishuCryptoError};
use super::event::{self, Body, Converted, EventError, MentionPolicy, MESSAGE_RECEIVE};
use crate::config::{AccountConfig, AccountKind, Secret};
use crate::domain::Message;

/// The signature headers of a push (`X-Lark-Request-Timestamp`,
/// `X-Lark-Request-Nonce`, `X-Lark-Signature`), when present.
#[derive(Debug, Default, Clone, Copy)]
pub struct SignedBy<'a> {
    /// `X-Lark-Request-Timestamp`.
    pub timestamp: Option<&'a str>,
    /// `X-Lark-Request-Nonce`.
    pub nonce: Option<&'a str>,
    /// `X-Lark-Signature`.
    pub signature: Option<&'a str>,
}

/// What to do with an authentic body.
#[derive(Debug, Clone)]
pub enum Opened {
    /// The URL check: answer `{"challenge": …}`.
    Challenge(String),
    /// A message to answer (through the reply API).
    Message(Arc<Message>),
    /// Acknowledged with 200 and not answered; why, for the log.
    Ignored(&'static str),
}

/// Why a push is refused. [`FeishuCallbackError::is_forbidden`] tells
/// authenticity failures (403) from malformed input (400).
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum FeishuCallbackError {
    /// The body does not decrypt with the Encrypt Key.
    #[error("cannot decrypt: {0}")]
    Decrypt(FeishuCryptoError),
    /// `X-Lark-Signature` does not match, or is missing on a signed push.
    #[error("signature mismatch or missing")]
    BadSignature,
    /// The Verification Token is not this account's.
    #[error("verification token mismatch")]
    BadToken,
    /// An encrypted body and no Encrypt Key configured, or the reverse.
    #[error("{0}")]
    WrongMode(&'static str),
    /// The body is not an event Feishu would send.
    #[error("malformed body: {0}")]
    Malformed(#[from] EventError),
}

impl FeishuCallbackError {
    /// True for failures of authenticity: 403.
    pub fn is_forbidden(&self) -> bool {
        matches!(
            self,
            FeishuCallbackError::Decrypt(_)
                | FeishuCallbackError::BadSignature
                | FeishuCallbackError::BadToken
        )
    }

    /// A short stable label for logs and metrics.
    pub fn label(&self) -> &'static str {
        match self {
            FeishuCallbackError::Decrypt(_) => "decrypt_failed",
            FeishuCallbackError::BadSignature => "bad_signature",
            FeishuCallbackError::BadToken => "bad_token",
            FeishuCallbackError::WrongMode(_) => "wrong_mode",
            FeishuCallbackError::Malformed(_) => "malformed_message",
        }
    }
}

/// One Feishu account's callback logic.
#[derive(Debug, Clone)]
pub struct FeishuCallback {
    token: Secret,
    encrypt_key: Option<Secret>,
    cipher: Option<EventCipher>,
    policy: MentionPolicy,
}

impl FeishuCallback {
    /// The pipeline of a Feishu account; `None` for other kinds.
    pub fn for_account(account: &AccountConfig) -> Option<Self> {
        let AccountKind::Feishu(settings) = &account.kind else {
            return None;
        };
        Some(FeishuCallback {
            token: account.token.clone(),
            cipher: settings.encrypt_key.as_ref().map(EventCipher::new),
            encrypt_key: settings.encrypt_key.clone(),
            policy: MentionPolicy {
                require_mention: settings.require_mention,
                bot_open_id: settings.bot_open_id.clone(),
            },
        })
    }

    /// True when bodies are encrypted (an Encrypt Key is set).
    pub fn encrypted(&self) -> bool {
        self.cipher.is_some()
    }

    /// Authenticates and reads one push.
    ///
    /// With an Encrypt Key every body must be encrypted, and every push
    /// but the URL check (which Feishu does not sign) must carry a valid
    /// `X-Lark-Signature` over the raw body. Without one, bodies are plain
    /// and only the Verification Token authenticates them. The token is
    /// checked in every case.
    pub fn open(&self, signed: SignedBy<'_>, body: &[u8]) -> Result<Opened, FeishuCallbackError> {
        let (value, encrypt) = event::envelope(body)?;
        let value = match (&self.cipher, encrypt) {
            (Some(cipher), Some(encrypt)) => {
                let plain = cipher
                    .decrypt(&encrypt)
                    .map_err(FeishuCallbackError::Decrypt)?;
                serde_json::from_str(&plain).map_err(|_| EventError::NotJson)?
            }
            (Some(_), None) => return Err(FeishuCallbackError::WrongMode(
                "plain body, but an Encrypt Key is configured (Feishu encrypts every push then)",
            )),
            (None, Some(_)) => {
                return Err(FeishuCallbackError::WrongMode(
                    "encrypted body, but no encrypt_key is configured",
                ))
            }
            (None, None) => value,
        };
        let parsed = event::parse(value)?;
        if let Some(key) = &self.encrypt_key {
            let is_check = matches!(parsed, Body::UrlVerification { .. });
            match (signed.timestamp, signed.nonce, signed.signature) {
                (Some(ts), Some(nonce), Some(sig)) => {
                    verify_signature(ts, nonce, key, body, sig)
                        .map_err(|_| FeishuCallbackError::BadSignature)?;
                }
                _ if is_check => {}
                _ => return Err(FeishuCallbackError::BadSignature),
            }
        }
        let given = parsed.token();
        if !bool::from(subtle::ConstantTimeEq::ct_eq(
            given.as_bytes(),
            self.token.expose().as_bytes(),
        )) {
            return Err(FeishuCallbackError::BadToken);
        }
        match parsed {
            Body::UrlVerification { challenge, .. } => Ok(Opened::Challenge(challenge)),
            Body::Other { .. } => Ok(Opened::Ignored("not a schema 2.0 event")),
            Body::Event(e) if e.header.event_type == MESSAGE_RECEIVE => {
                match event::to_message(&e, &self.policy)? {
                    Converted::Message(m) => Ok(Opened::Message(Arc::new(*m))),
                    Converted::Ignored(why) => Ok(Opened::Ignored(why)),
                }
            }
            Body::Event(_) => Ok(Opened::Ignored("an event type wxgate does not answer")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::platform::feishu::crypto::signature;

    fn gate(key: Option<&str>) -> FeishuCallback {
        FeishuCallback {
            token: Secret::new("vtoken"),
            encrypt_key: key.map(Secret::new),
            cipher: key.map(|k| EventCipher::new(&Secret::new(k))),
            policy: MentionPolicy::default(),
        }
    }

    const CHECK: &str = r#"{"type":"url_verification","challenge":"ch1","token":"vtoken"}"#;

    #[test]
    fn the_url_check_is_answered_plain_and_encrypted() {
        let plain = gate(None)
            .open(SignedBy::default(), CHECK.as_bytes())
            .unwrap();
        assert!(matches!(plain, Opened::Challenge(c) if c == "ch1"));
        let g = gate(Some("ek"));
        let body = format!(
            "{{\"encrypt\":\"{}\"}}",
            EventCipher::new(&Secret::new("ek")).encrypt(CHECK, [3; 16])
        );
        assert!(
            matches!(g.open(SignedBy::default(), body.as_bytes()).unwrap(), Opened::Challenge(c) if c == "ch1")
        );
        // Another token is refused.
        let wrong = CHECK.replace("vtoken", "other");
        assert!(matches!(
            gate(None).open(SignedBy::default(), wrong.as_bytes()),
            Err(FeishuCallbackError::BadToken)
        ));
        // Plain with a key, encrypted without one: refused.
        assert!(matches!(
            g.open(SignedBy::default(), CHECK.as_bytes()),
            Err(FeishuCallbackError::WrongMode(_))
        ));
        assert!(matches!(
            gate(None).open(SignedBy::default(), body.as_bytes()),
            Err(FeishuCallbackError::WrongMode(_))
        ));
    }

    #[test]
    fn an_encrypted_event_needs_its_signature() {
        let event = r#"{"schema":"2.0","header":{"event_id":"e","event_type":"im.message.receive_v1","token":"vtoken","app_id":"cli_a"},"event":{"sender":{"sender_id":{"open_id":"ou_1"}},"message":{"message_id":"om_1","chat_type":"p2p","message_type":"text","content":"{\"text\":\"hi\"}"}}}"#;
        let key = Secret::new("ek");
        let body = format!(
            "{{\"encrypt\":\"{}\"}}",
            EventCipher::new(&key).encrypt(event, [9; 16])
        );
        let sig = signature("1700000000", "n1", &key, body.as_bytes());
        let signed = SignedBy {
            timestamp: Some("1700000000"),
            nonce: Some("n1"),
            signature: Some(&sig),
        };
        let g = gate(Some("ek"));
        assert!(
            matches!(g.open(signed, body.as_bytes()).unwrap(), Opened::Message(m) if m.text() == Some("hi"))
        );
        assert!(matches!(
            g.open(SignedBy::default(), body.as_bytes()),
            Err(FeishuCallbackError::BadSignature)
        ));
        let bad = SignedBy {
            nonce: Some("n2"),
            ..signed
        };
        let err = g.open(bad, body.as_bytes()).unwrap_err();
        assert!(err.is_forbidden());
        assert_eq!(err.label(), "bad_signature");
        assert!(matches!(
            g.open(signed, b"{\"encrypt\":\"AAAA\"}"),
            Err(FeishuCallbackError::Decrypt(_))
        ));
        assert!(matches!(
            g.open(signed, b"nonsense"),
            Err(FeishuCallbackError::Malformed(_))
        ));
    }
}
