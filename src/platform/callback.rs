//! The WeChat family's callback dialect, HTTP-free:
//! verify → decrypt → parse → (decide) → render → encrypt → sign.
//!
//! Official Accounts, WeCom apps and 微信客服 share WeChat's XML and AES
//! envelope; how each differs is its [`Dialect`], declared in its own
//! folder. This takes the query parameters and body as plain values and
//! knows no HTTP types, so the server, the simulator and the benchmarks all
//! drive the same code.

use std::sync::Arc;

use thiserror::Error;

use crate::clock::Clock;
use crate::config::{AccountConfig, Mode, Secret};
use crate::crypto::{self, CryptoError, MessageCrypto};
use crate::domain::{Message, Reply};
use crate::message::{envelope, MessageError, XmlError};
use crate::rules::{Decision, RuleSet};

/// The query string WeChat sends with every callback.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CallbackQuery {
    /// sha1(sort(token, timestamp, nonce)).
    pub signature: Option<String>,
    /// Unix seconds, as text.
    pub timestamp: Option<String>,
    /// Random string.
    pub nonce: Option<String>,
    /// URL verification only: echo this back.
    pub echostr: Option<String>,
    /// Sender OpenID (informative).
    pub openid: Option<String>,
    /// `aes` when the body is encrypted; `raw` or absent otherwise.
    pub encrypt_type: Option<String>,
    /// sha1(sort(token, timestamp, nonce, Encrypt)).
    pub msg_signature: Option<String>,
}

/// A query string that cannot be read: a parameter given twice.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("query parameter `{0}` is given more than once")]
pub struct QueryError(pub &'static str);

impl CallbackQuery {
    /// Reads the parameters WeChat sends from a raw query string
    /// (`application/x-www-form-urlencoded`: `+` is a space, `%XX` a byte,
    /// invalid UTF-8 replaced). Unknown parameters are ignored; a known one
    /// given twice is refused, since which of the two was signed is
    /// anybody's guess. Only the known values are copied.
    pub fn parse(raw: &str) -> Result<Self, QueryError> {
        let mut q = CallbackQuery::default();
        for pair in raw.split('&') {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let slot = if key.contains(['%', '+']) {
                q.slot(&decoded(key))
            } else {
                q.slot(key)
            };
            let Some((slot, name)) = slot else { continue };
            if slot.is_some() {
                return Err(QueryError(name));
            }
            // WeChat's values (hex, digits, ids) carry no escapes: copied as
            // they are, decoded only when they do.
            *slot = Some(if value.contains(['%', '+']) {
                decoded(value)
            } else {
                value.to_owned()
            });
        }
        Ok(q)
    }

    /// The field a parameter fills, with its name; `None` for the others.
    fn slot(&mut self, key: &str) -> Option<(&mut Option<String>, &'static str)> {
        Some(match key {
            "signature" => (&mut self.signature, "signature"),
            "timestamp" => (&mut self.timestamp, "timestamp"),
            "nonce" => (&mut self.nonce, "nonce"),
            "echostr" => (&mut self.echostr, "echostr"),
            "openid" => (&mut self.openid, "openid"),
            "encrypt_type" => (&mut self.encrypt_type, "encrypt_type"),
            "msg_signature" => (&mut self.msg_signature, "msg_signature"),
            _ => return None,
        })
    }
}

/// One form-encoded component (`+` a space, `%XX` a byte, invalid UTF-8
/// replaced), decoded by the `form_urlencoded` crate.
fn decoded(component: &str) -> String {
    let pair = format!("_={component}");
    form_urlencoded::parse(pair.as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

/// Why a callback request is refused. [`CallbackError::is_forbidden`] tells
/// the caller's fault that is about authenticity (403) from malformed input (400).
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum CallbackError {
    /// A required query parameter is absent or empty.
    #[error("missing query parameter `{0}`")]
    MissingParam(&'static str),
    /// `timestamp` is not a number.
    #[error("timestamp is not a number")]
    BadTimestamp,
    /// `timestamp` is outside the replay window.
    #[error("timestamp is {skew_secs} s away from now, outside the {window_secs} s window")]
    Stale {
        /// How far off.
        skew_secs: i64,
        /// The configured window.
        window_secs: u64,
    },
    /// The signature does not match.
    #[error("signature mismatch")]
    BadSignature,
    /// The ciphertext does not decrypt for this account.
    #[error("cannot decrypt: {0}")]
    Decrypt(CryptoError),
    /// The request is encrypted or plain when the configured mode says otherwise.
    #[error("{0}")]
    WrongMode(&'static str),
    /// The body is not XML WeChat would send.
    #[error("malformed body: {0}")]
    Xml(#[from] XmlError),
    /// The encrypted body has no `<Encrypt>`.
    #[error("encrypted request without <Encrypt>")]
    NoEncrypt,
    /// The (decrypted) message is incomplete.
    #[error("malformed message: {0}")]
    Message(#[from] MessageError),
}

impl CallbackError {
    /// True for failures of authenticity (signature, decryption, replay): 403.
    pub fn is_forbidden(&self) -> bool {
        matches!(
            self,
            CallbackError::BadSignature | CallbackError::Decrypt(_) | CallbackError::Stale { .. }
        )
    }

    /// A short stable label for logs and metrics.
    pub fn label(&self) -> &'static str {
        match self {
            CallbackError::MissingParam(_) => "missing_param",
            CallbackError::BadTimestamp => "bad_timestamp",
            CallbackError::Stale { .. } => "stale_timestamp",
            CallbackError::BadSignature => "bad_signature",
            CallbackError::Decrypt(_) => "decrypt_failed",
            CallbackError::WrongMode(_) => "wrong_mode",
            CallbackError::Xml(_) | CallbackError::NoEncrypt => "malformed_xml",
            CallbackError::Message(_) => "malformed_message",
        }
    }
}

/// A verified, decrypted, parsed inbound message and how to answer it.
#[derive(Debug, Clone)]
pub struct Inbound {
    /// The message (shared with tasks that outlive the request).
    pub message: Arc<Message>,
    /// Crypto to seal the reply with, when the request was encrypted.
    seal_with: Option<Arc<MessageCrypto>>,
}

impl Inbound {
    /// True when the request was encrypted (and the reply will be).
    pub fn encrypted(&self) -> bool {
        self.seal_with.is_some()
    }
}

/// What to send back for one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// The HTTP body: `success`, reply XML, or the encrypted envelope.
    pub body: String,
    /// The rule that matched, if any.
    pub rule: Option<String>,
    /// The reply's MsgType (`None` for `success`).
    pub reply_type: Option<&'static str>,
}

/// How one platform of the WeChat family speaks on its callback URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dialect {
    /// Every push is encrypted, with or without `encrypt_type=aes`.
    pub always_encrypted: bool,
    /// The GET verification's `echostr` is encrypted and signed with
    /// `msg_signature`; its plaintext is the answer.
    pub encrypted_echo: bool,
    /// The body that means "no reply" (`success`, or empty for WeCom).
    pub no_reply_body: &'static str,
}

/// One account's callback endpoint logic.
#[derive(Debug, Clone)]
pub struct Callback {
    token: Secret,
    mode: Mode,
    dialect: Dialect,
    crypto: Option<Arc<MessageCrypto>>,
    previous_crypto: Option<Arc<MessageCrypto>>,
    window_secs: u64,
    clock: Arc<dyn Clock>,
}

fn param<'a>(value: &'a Option<String>, name: &'static str) -> Result<&'a str, CallbackError> {
    match value.as_deref() {
        Some(v) if !v.is_empty() => Ok(v),
        _ => Err(CallbackError::MissingParam(name)),
    }
}

impl Callback {
    /// Builds the pipeline for an account, speaking its platform's dialect.
    pub fn new(account: &AccountConfig, window_secs: u64, clock: Arc<dyn Clock>) -> Self {
        Callback {
            token: account.token.clone(),
            mode: account.mode,
            dialect: super::dialect(&account.kind),
            crypto: account.crypto.clone().map(Arc::new),
            previous_crypto: account.previous_crypto.clone().map(Arc::new),
            window_secs,
            clock,
        }
    }

    /// The configured mode.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    fn check_timestamp(&self, timestamp: &str) -> Result<(), CallbackError> {
        let ts: i64 = timestamp
            .trim()
            .parse()
            .map_err(|_| CallbackError::BadTimestamp)?;
        let skew = self.clock.now_unix().saturating_sub(ts);
        if skew.unsigned_abs() > self.window_secs {
            return Err(CallbackError::Stale {
                skew_secs: skew,
                window_secs: self.window_secs,
            });
        }
        Ok(())
    }

    /// The platform dialect spoken.
    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// URL verification (GET): returns the `echostr` to send back, or for
    /// WeCom its decrypted plaintext (PROTOCOL §1.2).
    pub fn verify_url(&self, q: &CallbackQuery) -> Result<String, CallbackError> {
        if self.dialect.encrypted_echo {
            return self.verify_encrypted_echo(q);
        }
        let signature = param(&q.signature, "signature")?;
        let timestamp = param(&q.timestamp, "timestamp")?;
        let nonce = param(&q.nonce, "nonce")?;
        let echostr = param(&q.echostr, "echostr")?;
        crypto::verify_signature(self.token.expose(), timestamp, nonce, signature)
            .map_err(|_| CallbackError::BadSignature)?;
        self.check_timestamp(timestamp)?;
        Ok(echostr.to_owned())
    }

    /// WeCom's verification: `msg_signature` covers the encrypted `echostr`,
    /// whose decrypted message is the answer.
    fn verify_encrypted_echo(&self, q: &CallbackQuery) -> Result<String, CallbackError> {
        let msg_signature = param(&q.msg_signature, "msg_signature")?;
        let timestamp = param(&q.timestamp, "timestamp")?;
        let nonce = param(&q.nonce, "nonce")?;
        // Base64 has no spaces: a space is a `+` that a proxy form-decoded
        // (PROTOCOL §9 trap 18).
        let echostr = param(&q.echostr, "echostr")?.replace(' ', "+");
        crypto::verify_msg_signature(
            self.token.expose(),
            timestamp,
            nonce,
            &echostr,
            msg_signature,
        )
        .map_err(|_| CallbackError::BadSignature)?;
        self.check_timestamp(timestamp)?;
        let (plain, _) = self.decrypt(&echostr)?;
        Ok(plain)
    }

    /// Authenticates, decrypts and parses a POST.
    pub fn open(&self, q: &CallbackQuery, body: &[u8]) -> Result<Inbound, CallbackError> {
        let timestamp = param(&q.timestamp, "timestamp")?;
        let nonce = param(&q.nonce, "nonce")?;
        // WeCom sends no encrypt_type: its pushes are always encrypted.
        let encrypted = self.dialect.always_encrypted
            || q.encrypt_type
                .as_deref()
                .is_some_and(|t| t.eq_ignore_ascii_case("aes"));
        match (self.mode, encrypted) {
            (Mode::Plain, true) => {
                return Err(CallbackError::WrongMode(
                    "encrypted request, but the account is configured in plain mode (set mode = \"compatible\")",
                ))
            }
            (Mode::Safe, false) => {
                return Err(CallbackError::WrongMode(
                    "plain request, but the account is configured in safe mode",
                ))
            }
            _ => {}
        }
        if !encrypted {
            let signature = param(&q.signature, "signature")?;
            crypto::verify_signature(self.token.expose(), timestamp, nonce, signature)
                .map_err(|_| CallbackError::BadSignature)?;
            self.check_timestamp(timestamp)?;
            let message = Arc::new(Message::parse(body)?);
            return Ok(Inbound {
                message,
                seal_with: None,
            });
        }

        let msg_signature = param(&q.msg_signature, "msg_signature")?;
        let envelope = envelope::parse_encrypted(body)?.ok_or(CallbackError::NoEncrypt)?;
        crypto::verify_msg_signature(
            self.token.expose(),
            timestamp,
            nonce,
            &envelope.encrypt,
            msg_signature,
        )
        .map_err(|_| CallbackError::BadSignature)?;
        self.check_timestamp(timestamp)?;
        let (plain, crypto) = self.decrypt(&envelope.encrypt)?;
        let message = Arc::new(Message::parse_str(&plain)?);
        Ok(Inbound {
            message,
            seal_with: Some(Arc::clone(crypto)),
        })
    }

    /// Decrypts with the current key, falling back to the previous one.
    fn decrypt(&self, encrypt: &str) -> Result<(String, &Arc<MessageCrypto>), CallbackError> {
        let current = self.crypto.as_ref().ok_or(CallbackError::WrongMode(
            "encrypted request, but no EncodingAESKey is configured",
        ))?;
        match current.decrypt(encrypt) {
            Ok(plain) => Ok((plain, current)),
            Err(first) => match &self.previous_crypto {
                Some(previous) => previous
                    .decrypt(encrypt)
                    .map(|plain| (plain, previous))
                    .map_err(|_| CallbackError::Decrypt(first)),
                None => Err(CallbackError::Decrypt(first)),
            },
        }
    }

    /// Renders the plaintext reply XML (`None` for `success`), with the
    /// header swapped and WeChat's article limit applied.
    ///
    /// A push without a sender (WeCom's `kf_msg_or_event`, system events)
    /// cannot be answered: nothing is rendered.
    pub fn render(&self, inbound: &Inbound, reply: &Reply) -> Option<Arc<str>> {
        let message = &inbound.message;
        if message.from_user.is_empty() {
            return None;
        }
        let now = self.clock.now_unix();
        reply
            .render(
                &message.from_user,
                &message.to_user,
                now,
                message.max_articles(),
            )
            .map(Arc::from)
    }

    /// The HTTP body for a rendered reply: plain XML, or the encrypted and
    /// signed envelope when the request was encrypted. `success` is never
    /// encrypted (PROTOCOL §5); WeCom's "no reply" is an empty body (§2).
    /// Each call encrypts afresh (new random prefix, nonce and timestamp),
    /// so a replayed answer is a fresh envelope.
    pub fn seal_rendered(&self, inbound: &Inbound, xml: Option<&str>) -> String {
        let Some(xml) = xml else {
            return self.dialect.no_reply_body.to_owned();
        };
        match &inbound.seal_with {
            None => xml.to_owned(),
            Some(crypto) => {
                let encrypt = crypto.encrypt(xml);
                let timestamp = self.clock.now_unix().to_string();
                let nonce = rand::random::<u32>().to_string();
                let signature =
                    crypto::msg_signature(self.token.expose(), &timestamp, &nonce, &encrypt);
                envelope::render_encrypted(&encrypt, signature.as_str(), &timestamp, &nonce)
            }
        }
    }

    /// Renders and seals in one step.
    pub fn seal(&self, inbound: &Inbound, reply: &Reply) -> String {
        self.seal_rendered(inbound, self.render(inbound, reply).as_deref())
    }

    /// The whole pipeline against a rule set.
    pub fn handle(
        &self,
        q: &CallbackQuery,
        body: &[u8],
        rules: &RuleSet,
    ) -> Result<(Inbound, Outcome), CallbackError> {
        let inbound = self.open(q, body)?;
        let Decision { rule, reply, .. } = rules.evaluate(&inbound.message);
        let body = self.seal(&inbound, &reply);
        Ok((
            inbound,
            Outcome {
                body,
                rule,
                reply_type: reply.msg_type(),
            },
        ))
    }
}

#[cfg(test)]
mod query_tests {
    use super::{CallbackQuery, QueryError};

    #[test]
    fn reads_the_known_parameters_and_ignores_the_rest() {
        let q = CallbackQuery::parse(
            "signature=abc&timestamp=1700000000&nonce=n%201&openid=o_x&encrypt_type=aes&msg_signature=def&extra=1&echostr=a+b%2B",
        )
        .unwrap();
        assert_eq!(q.signature.as_deref(), Some("abc"));
        assert_eq!(q.timestamp.as_deref(), Some("1700000000"));
        assert_eq!(q.nonce.as_deref(), Some("n 1"));
        assert_eq!(q.openid.as_deref(), Some("o_x"));
        assert_eq!(q.encrypt_type.as_deref(), Some("aes"));
        assert_eq!(q.msg_signature.as_deref(), Some("def"));
        assert_eq!(q.echostr.as_deref(), Some("a b+"));
        // Base64 padding survives, escaped or not; escaped keys count.
        let q = CallbackQuery::parse("echostr=ab+c%3D%3D&n%6Fnce=x%3Dy=").unwrap();
        assert_eq!(q.echostr.as_deref(), Some("ab c=="));
        assert_eq!(q.nonce.as_deref(), Some("x=y="));
        assert_eq!(
            CallbackQuery::parse("nonce=1&n%6Fnce=2"),
            Err(QueryError("nonce"))
        );
        let q = CallbackQuery::parse("echostr=abc==").unwrap();
        assert_eq!(q.echostr.as_deref(), Some("abc=="));
        assert_eq!(CallbackQuery::parse("").unwrap(), CallbackQuery::default());
        // An empty value is given (and later refused as missing by the checks).
        assert_eq!(
            CallbackQuery::parse("nonce=&&=x&timestamp")
                .unwrap()
                .nonce
                .as_deref(),
            Some("")
        );
    }

    #[test]
    fn a_parameter_given_twice_is_refused() {
        assert_eq!(
            CallbackQuery::parse("nonce=1&timestamp=2&nonce=3"),
            Err(QueryError("nonce"))
        );
        // Unknown parameters may repeat.
        assert!(CallbackQuery::parse("x=1&x=2").is_ok());
    }

    #[test]
    fn invalid_utf8_is_replaced_not_refused() {
        let q = CallbackQuery::parse("nonce=%FF%FE").unwrap();
        assert_eq!(q.nonce.as_deref(), Some("\u{FFFD}\u{FFFD}"));
    }
}
