//! The recorded fixtures and crypto vectors under `tests/fixtures/`: the
//! accounts they were made for and their loaders.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::LazyLock;

use serde_json::Value;
use wxgate::crypto::{AesKey, MessageCrypto};

pub fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// The fixture account (tests/fixtures/account.json).
#[derive(Debug, Clone, serde::Deserialize)]
pub struct Account {
    pub token: String,
    pub encoding_aes_key: String,
    pub app_id: String,
    pub original_id: String,
    pub openid: String,
}

pub static ACCOUNT: LazyLock<Account> = LazyLock::new(|| {
    let text = std::fs::read_to_string(fixtures_dir().join("account.json"))
        .expect("tests/fixtures/account.json");
    serde_json::from_str(&text).expect("account.json parses")
});

/// The repository's vectors (`tests/fixtures/vectors/`, written by
/// `scripts/gen_vectors.py`), or another set of the same shape where
/// `WXGATE_VECTORS_DIR` points (CI runs the vector tests a second time over
/// the shared set that way).
fn vectors_dir() -> PathBuf {
    std::env::var_os("WXGATE_VECTORS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| fixtures_dir().join("vectors"))
}

/// The `vectors` array of a vector file; panics when it is missing (a
/// `WXGATE_VECTORS_DIR` that names no vector set fails, never skips).
pub fn load_vectors(file: &str) -> Vec<Value> {
    let path = vectors_dir().join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "test vectors not found at {} ({e}); set WXGATE_VECTORS_DIR",
            path.display()
        )
    });
    let json: Value = serde_json::from_str(&text).unwrap();
    json["vectors"].as_array().unwrap().clone()
}

/// The WeCom fixture account (tests/fixtures/wecom/account.json).
#[derive(Debug, Clone, serde::Deserialize)]
pub struct WecomAccount {
    pub token: String,
    pub encoding_aes_key: String,
    pub corp_id: String,
    pub agent_id: i64,
    pub user_id: String,
    pub open_kfid: String,
}

pub static WECOM_ACCOUNT: LazyLock<WecomAccount> = LazyLock::new(|| {
    serde_json::from_str(&read_wecom("account.json")).expect("wecom/account.json parses")
});

/// tests/fixtures/wecom/manifest.json.
#[derive(Debug, serde::Deserialize)]
pub struct WecomManifest {
    pub kinds: BTreeMap<String, WecomKind>,
    pub verify: WecomVerify,
}

/// One push: `plain/NAME.xml`, `encrypted/NAME.xml` and how it was sent.
#[derive(Debug, serde::Deserialize)]
pub struct WecomKind {
    pub create_time: i64,
    pub msg_type: String,
    pub event: Option<String>,
    pub msg_id: Option<String>,
    pub agent_id: Option<i64>,
    pub fields: BTreeMap<String, String>,
    pub query: WecomQuery,
    pub random16: String,
}

/// The POST query of a push.
#[derive(Debug, serde::Deserialize)]
pub struct WecomQuery {
    pub msg_signature: String,
    pub timestamp: String,
    pub nonce: String,
}

impl WecomQuery {
    /// `?msg_signature=…&timestamp=…&nonce=…` (nothing in it needs encoding).
    pub fn to_query_string(&self) -> String {
        format!(
            "msg_signature={}&timestamp={}&nonce={}",
            self.msg_signature, self.timestamp, self.nonce
        )
    }
}

/// The GET URL verification case.
#[derive(Debug, serde::Deserialize)]
pub struct WecomVerify {
    pub timestamp: String,
    pub nonce: String,
    pub echostr: String,
    pub msg_signature: String,
    pub random16: String,
    pub get_query: String,
    pub expected_response_body: String,
}

/// A file under tests/fixtures/wecom/; panics when it is missing.
pub fn read_wecom(rel: &str) -> String {
    let path = fixtures_dir().join("wecom").join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

pub fn wecom_manifest() -> WecomManifest {
    serde_json::from_str(&read_wecom("manifest.json")).expect("wecom/manifest.json parses")
}

/// The WeCom fixture account's crypto: receive id = corp id.
pub fn wecom_crypto() -> MessageCrypto {
    MessageCrypto::new(
        AesKey::from_encoding_aes_key(&WECOM_ACCOUNT.encoding_aes_key).unwrap(),
        WECOM_ACCOUNT.corp_id.clone(),
    )
}
