//! The one WeChat client of the tests: signs and encrypts callback requests
//! as each platform does, and opens the replies.
//!
//! - Official Account, plain mode: `signature` over token, timestamp, nonce.
//! - Official Account, compatible and safe mode: `signature` and
//!   `msg_signature`, `encrypt_type=aes`, the ciphertext in `<Encrypt>`
//!   beside `<ToUserName>`.
//! - WeCom apps and 微信客服: `msg_signature` only, always encrypted, the
//!   `AgentID` beside the ciphertext when the account has one (never for
//!   微信客服 notifications).
//!
//! A client is made from an account as the library validated it
//! (`AccountConfig`), so it signs with exactly what the server checks, and
//! replies are opened with `wxgate::platform::simulate::open_reply`, the code behind
//! `wxgate simulate`.

use std::sync::LazyLock;

use wxgate::config::{AccountConfig, AccountEntry, AccountKind};
use wxgate::crypto::{self, MessageCrypto};
use wxgate::message::envelope;
use wxgate::message::xml::{self, push_cdata_element};

use super::config::{AccountSpec, TestConfig};
use super::fake_wechat::KF_SECRET;

/// The nonces of the requests (fixed, so queries can be edited in tests).
const PLAIN_NONCE: &str = "31415926";
const ENCRYPTED_NONCE: &str = "16180339";
const VERIFY_NONCE: &str = "2718";
const WECOM_NONCE: &str = "2718281828";

#[derive(Debug, Clone)]
pub struct CallbackClient {
    account: AccountConfig,
    path: String,
}

static FIXTURE_SAFE: LazyLock<CallbackClient> = LazyLock::new(|| CallbackClient::fixture("safe"));

impl CallbackClient {
    /// Speaks for `account`, at `path`.
    pub fn new(account: AccountConfig, path: &str) -> CallbackClient {
        CallbackClient {
            account,
            path: path.to_owned(),
        }
    }

    /// Speaks for a configured account, at its path.
    pub fn for_entry(entry: &AccountEntry) -> CallbackClient {
        CallbackClient::new(entry.account.clone(), &entry.path)
    }

    /// The fixture Official Account in `mode`, at `/weixin`.
    pub fn fixture(mode: &str) -> CallbackClient {
        CallbackClient::for_entry(TestConfig::fixture(mode).build().primary())
    }

    /// A WeCom app of `corp_id`, at `/weixin`.
    pub fn wecom(token: &str, encoding_aes_key: &str, corp_id: &str) -> CallbackClient {
        let config = TestConfig::new()
            .account(AccountSpec::wecom(token, encoding_aes_key, corp_id))
            .build();
        CallbackClient::for_entry(config.primary())
    }

    /// A 微信客服 account of `corp_id`, at `/kf`: its notifications carry
    /// no AgentID.
    pub fn kf(token: &str, encoding_aes_key: &str, corp_id: &str) -> CallbackClient {
        let config = TestConfig::new()
            .account(AccountSpec::token_only("unused"))
            .add_account(
                AccountSpec::kf(token, encoding_aes_key, corp_id, KF_SECRET)
                    .name("service")
                    .set("path", "/kf"),
            )
            .build();
        CallbackClient::for_entry(config.find_account(Some("service")).unwrap())
    }

    /// The same account at another path.
    pub fn at(mut self, path: &str) -> CallbackClient {
        self.path = path.to_owned();
        self
    }

    pub fn token(&self) -> &str {
        self.account.token.expose()
    }

    /// The message crypto (compatible and safe mode; always for WeCom).
    pub fn crypto(&self) -> &MessageCrypto {
        self.account
            .crypto
            .as_ref()
            .expect("the account has an EncodingAESKey")
    }

    fn agent_id(&self) -> Option<i64> {
        match self.account.kind {
            AccountKind::WeCom { agent_id } => Some(agent_id),
            _ => None,
        }
    }

    /// A URL verification query (Official Account form) at `now`.
    pub fn verify_query(&self, now: i64, echostr: &str) -> String {
        let ts = now.to_string();
        let sig = crypto::signature(self.token(), &ts, VERIFY_NONCE);
        format!(
            "{}?signature={sig}&timestamp={ts}&nonce={VERIFY_NONCE}&echostr={echostr}",
            self.path
        )
    }

    /// `{path}?signature=…&timestamp=…&nonce=…` at `now` (Official Account).
    pub fn signed_query(&self, now: i64) -> String {
        let ts = now.to_string();
        let sig = crypto::signature(self.token(), &ts, PLAIN_NONCE);
        format!(
            "{}?signature={sig}&timestamp={ts}&nonce={PLAIN_NONCE}",
            self.path
        )
    }

    /// Query and body of a signed plaintext request (Official Account).
    pub fn plain(&self, xml: &str, now: i64) -> (String, String) {
        let [openid] = fields(xml, ["FromUserName"]);
        (
            format!("{}&openid={openid}", self.signed_query(now)),
            xml.to_owned(),
        )
    }

    /// Query and body carrying the ciphertext `encrypt` as is, correctly
    /// signed (Official Account safe form, `<Encrypt>` alone in the body):
    /// for ciphertexts the client would never make.
    pub fn seal(&self, encrypt: &str, now: i64) -> (String, String) {
        let ts = now.to_string();
        let sig = crypto::signature(self.token(), &ts, ENCRYPTED_NONCE);
        let msg_sig = crypto::msg_signature(self.token(), &ts, ENCRYPTED_NONCE, encrypt);
        let mut body = String::from("<xml>");
        push_cdata_element(&mut body, "Encrypt", encrypt);
        body.push_str("</xml>");
        (
            format!(
                "{}?signature={sig}&timestamp={ts}&nonce={ENCRYPTED_NONCE}&encrypt_type=aes&msg_signature={msg_sig}",
                self.path
            ),
            body,
        )
    }

    /// Query and body of an encrypted request: the Official Account's safe
    /// form, or WeCom's.
    pub fn encrypted(&self, xml: &str, now: i64) -> (String, String) {
        let encrypt = self.crypto().encrypt(xml);
        let ts = now.to_string();
        if self.account.kind.is_wecom() {
            let sig = crypto::msg_signature(self.token(), &ts, WECOM_NONCE, &encrypt);
            let mut body = String::from("<xml>");
            push_cdata_element(&mut body, "ToUserName", self.crypto().receive_id());
            push_cdata_element(&mut body, "Encrypt", &encrypt);
            if let Some(id) = self.agent_id() {
                push_cdata_element(&mut body, "AgentID", &id.to_string());
            }
            body.push_str("</xml>");
            let query = format!(
                "{}?msg_signature={sig}&timestamp={ts}&nonce={WECOM_NONCE}",
                self.path
            );
            return (query, body);
        }
        let msg_sig = crypto::msg_signature(self.token(), &ts, ENCRYPTED_NONCE, &encrypt);
        let sig = crypto::signature(self.token(), &ts, ENCRYPTED_NONCE);
        let [openid, to_user] = fields(xml, ["FromUserName", "ToUserName"]);
        let mut body = String::from("<xml>");
        push_cdata_element(&mut body, "ToUserName", &to_user);
        push_cdata_element(&mut body, "Encrypt", &encrypt);
        body.push_str("</xml>");
        (
            format!(
                "{}?signature={sig}&timestamp={ts}&nonce={ENCRYPTED_NONCE}&openid={openid}&encrypt_type=aes&msg_signature={msg_sig}",
                self.path
            ),
            body,
        )
    }

    /// Checks an encrypted reply's signature and decrypts it (panics on
    /// anything else, `success` included).
    pub fn open_reply(&self, body: &str) -> String {
        envelope::parse_encrypted_reply(body.as_bytes())
            .expect("reply is XML")
            .unwrap_or_else(|| panic!("not an encrypted envelope: {body:?}"));
        wxgate::platform::simulate::open_reply(&self.account, 200, body, 0.0)
            .unwrap_or_else(|e| panic!("the reply does not open: {e}"))
            .xml
    }

    /// The `Content` of an encrypted reply.
    pub fn content(&self, body: &str) -> String {
        xml::parse_str(&self.open_reply(body))
            .unwrap()
            .child_text("Content")
            .unwrap_or_default()
            .to_owned()
    }
}

/// Top-level texts of `xml` (empty when absent or not XML).
fn fields<const N: usize>(xml: &str, names: [&str; N]) -> [String; N] {
    let found =
        xml::top_level_texts(xml.as_bytes(), names).unwrap_or_else(|_| [(); N].map(|_| None));
    found.map(Option::unwrap_or_default)
}

/// The `Content` of a reply encrypted for the fixture account.
pub fn content_of(body: &str) -> String {
    FIXTURE_SAFE.content(body)
}
