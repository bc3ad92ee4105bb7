//! Test configurations, built as TOML values (never as formatted text) and
//! validated by the library's own loader, `Config::from_toml`.
//!
//! ```ignore
//! let config = TestConfig::new()
//!     .account(AccountSpec::fixture("safe"))
//!     .rules(RULES)
//!     .redis(&redis.url())
//!     .set("delivery.dedup_window_secs", 2)
//!     .build();
//! ```

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use toml::{Table, Value};
use wxgate::config::ConfigError;
use wxgate::Config;

use super::fake_wechat::{FakeWechat, AGENT_ID, APP_ID, APP_SECRET};
use super::fixtures::ACCOUNT;

/// Rules exercising every match and reply kind; the fixture tests rely on them.
pub const RULES: &str = r#"
[default_reply]
type = "text"
content = "echo: {content}"

[[rules]]
name = "hello"
match = { text = "hello wxgate" }
reply = { type = "text", content = "hi {from_user}" }

[[rules]]
name = "weibo"
match = { text = "微博" }
reply = { type = "news", articles = [
  { title = "A1", description = "D1", url = "https://example.com/1", pic_url = "https://example.com/1.jpg" },
  { title = "A2", description = "D2", url = "https://example.com/2", pic_url = "https://example.com/2.jpg" },
] }

[[rules]]
name = "image"
match = { msg_type = "image" }
reply = { type = "image", media_id = "IMG_MEDIA" }

[[rules]]
name = "voice"
match = { msg_type = "voice" }
reply = { type = "voice", media_id = "VOICE_MEDIA" }

[[rules]]
name = "video"
match = { msg_type = "video" }
reply = { type = "video", media_id = "VIDEO_MEDIA", title = "T", description = "D" }

[[rules]]
name = "shortvideo"
match = { msg_type = "shortvideo" }
reply = { type = "music", thumb_media_id = "THUMB", title = "M", music_url = "https://example.com/a.mp3" }

[[rules]]
name = "location"
match = { msg_type = "location" }
reply = { type = "news", articles = [
  { title = "L1", url = "https://example.com/l1" },
  { title = "L2", url = "https://example.com/l2" },
  { title = "L3", url = "https://example.com/l3" },
] }

[[rules]]
name = "link"
match = { msg_type = "link" }
reply = { type = "transfer_customer_service" }

[[rules]]
name = "qr"
match = { event = "subscribe", key_prefix = "qrscene_" }
reply = { type = "text", content = "qr {event_key}" }

[[rules]]
name = "subscribe"
match = { event = "subscribe" }
reply = { type = "text", content = "welcome" }

[[rules]]
name = "click"
match = { event = "CLICK" }
reply = { type = "news", articles = [
  { title = "C1", url = "https://example.com/c1" },
  { title = "C2", url = "https://example.com/c2" },
] }

[[rules]]
name = "scan"
match = { event = "SCAN" }
reply = { type = "text", content = "scanned {event_key}" }
"#;

/// A TOML table from key/value pairs: `table([("text", "hello".into())])`.
pub fn table<const N: usize>(pairs: [(&str, Value); N]) -> Table {
    pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
}

/// One `[[rules]]` entry: `rule(table([("text", "hi".into())]), text_reply("hello"))`.
pub fn rule(matches: Table, reply: Table) -> Table {
    table([("match", matches.into()), ("reply", reply.into())])
}

/// A `{ type = "text", content = … }` reply.
pub fn text_reply(content: &str) -> Table {
    table([("type", "text".into()), ("content", content.into())])
}

/// Static TOML text (rules, default replies) as a table.
fn parse(text: &str) -> Table {
    text.parse::<Table>()
        .unwrap_or_else(|e| panic!("test TOML does not parse: {e}"))
}

/// Merges `from` into `into`: tables merge key by key, arrays are appended,
/// anything else is replaced.
fn merge(into: &mut Table, from: Table) {
    for (key, value) in from {
        match (into.get_mut(&key), value) {
            (Some(Value::Table(mine)), Value::Table(theirs)) => merge(mine, theirs),
            (Some(Value::Array(mine)), Value::Array(theirs)) => mine.extend(theirs),
            (_, value) => {
                into.insert(key, value);
            }
        }
    }
}

/// Sets `a.b.c = value`, creating the tables on the way.
fn set_path(root: &mut Table, dotted: &str, value: Value) {
    let mut keys: Vec<&str> = dotted.split('.').collect();
    let last = keys.pop().expect("a key");
    let mut here = root;
    for key in keys {
        here = match here
            .entry(key.to_owned())
            .or_insert_with(|| Value::Table(Table::new()))
        {
            Value::Table(t) => t,
            other => panic!("{dotted}: {key} is not a table ({other})"),
        };
    }
    here.insert(last.to_owned(), value);
}

/// One account: `[account]` or an `[[accounts]]` entry.
#[derive(Debug, Clone)]
pub struct AccountSpec(Table);

impl AccountSpec {
    /// The fixture Official Account (tests/fixtures/account.json) in `mode`.
    pub fn fixture(mode: &str) -> AccountSpec {
        AccountSpec(table([
            ("app_id", ACCOUNT.app_id.as_str().into()),
            ("token", ACCOUNT.token.as_str().into()),
            ("encoding_aes_key", ACCOUNT.encoding_aes_key.as_str().into()),
            ("mode", mode.into()),
        ]))
    }

    /// An Official Account with the fake API's credentials and `token`
    /// (plain mode: no EncodingAESKey).
    pub fn official_api(token: &str) -> AccountSpec {
        AccountSpec(table([
            ("token", token.into()),
            ("app_id", APP_ID.into()),
            ("app_secret", APP_SECRET.into()),
        ]))
    }

    /// An Official Account with nothing but a token.
    pub fn token_only(token: &str) -> AccountSpec {
        AccountSpec(table([("token", token.into())]))
    }

    /// A WeCom self-built app (agent [`AGENT_ID`]) of `corp_id`.
    pub fn wecom(token: &str, encoding_aes_key: &str, corp_id: &str) -> AccountSpec {
        AccountSpec(table([
            ("kind", "wecom".into()),
            ("corp_id", corp_id.into()),
            ("agent_id", AGENT_ID.into()),
            ("token", token.into()),
            ("encoding_aes_key", encoding_aes_key.into()),
        ]))
    }

    /// A 微信客服 account of `corp_id` with its secret.
    pub fn kf(token: &str, encoding_aes_key: &str, corp_id: &str, secret: &str) -> AccountSpec {
        AccountSpec(table([
            ("kind", "kf".into()),
            ("corp_id", corp_id.into()),
            ("corp_secret", secret.into()),
            ("token", token.into()),
            ("encoding_aes_key", encoding_aes_key.into()),
        ]))
    }

    /// A Feishu bot with the fake's app id and secret and `token` as its
    /// Verification Token (no Encrypt Key: plain bodies).
    pub fn feishu(token: &str) -> AccountSpec {
        AccountSpec(table([
            ("kind", "feishu".into()),
            ("app_id", super::fake_feishu::FEISHU_APP_ID.into()),
            ("app_secret", super::fake_feishu::FEISHU_APP_SECRET.into()),
            ("token", token.into()),
        ]))
    }

    /// A DingTalk robot with the fake's AppKey and AppSecret.
    pub fn dingtalk() -> AccountSpec {
        AccountSpec(table([
            ("kind", "dingtalk".into()),
            ("app_id", super::fake_dingtalk::DINGTALK_APP_KEY.into()),
            (
                "app_secret",
                super::fake_dingtalk::DINGTALK_APP_SECRET.into(),
            ),
        ]))
    }

    /// A WeCom 智能机器人 with `token` and `encoding_aes_key`.
    pub fn wecom_bot(token: &str, encoding_aes_key: &str) -> AccountSpec {
        AccountSpec(table([
            ("kind", "wecom_bot".into()),
            ("token", token.into()),
            ("encoding_aes_key", encoding_aes_key.into()),
        ]))
    }

    /// The `[[accounts]]` name.
    pub fn name(self, name: &str) -> AccountSpec {
        self.set("name", name)
    }

    /// Outbound API calls go to the fake.
    pub fn api(self, wechat: &FakeWechat) -> AccountSpec {
        self.set("api_base_url", wechat.base_url())
    }

    /// Any account setting, dotted for sub-tables (`kf.lock_ttl_secs`).
    pub fn set(mut self, dotted: &str, value: impl Into<Value>) -> AccountSpec {
        set_path(&mut self.0, dotted, value.into());
        self
    }

    /// Static rules TOML (`[[rules]]`, `[default_reply]`) of this account.
    pub fn rules(mut self, text: &str) -> AccountSpec {
        merge(&mut self.0, parse(text));
        self
    }

    /// One more rule of this account.
    pub fn rule(mut self, rule: Table) -> AccountSpec {
        merge(
            &mut self.0,
            table([("rules", vec![Value::from(rule)].into())]),
        );
        self
    }
}

/// A whole configuration file, as a TOML table.
#[derive(Debug, Clone)]
pub struct TestConfig {
    root: Table,
    source: PathBuf,
    env: HashMap<String, String>,
}

impl Default for TestConfig {
    fn default() -> Self {
        TestConfig::new()
    }
}

impl TestConfig {
    /// `[server] listen = "127.0.0.1:0"` and nothing else.
    pub fn new() -> TestConfig {
        let mut root = Table::new();
        set_path(&mut root, "server.listen", "127.0.0.1:0".into());
        TestConfig {
            root,
            source: PathBuf::from("test.toml"),
            env: HashMap::new(),
        }
    }

    /// A configuration file as it is (e.g. a shipped example), to change
    /// with [`TestConfig::set`].
    pub fn from_file(path: &Path) -> TestConfig {
        let text =
            std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        TestConfig {
            root: parse(&text),
            source: path.to_owned(),
            env: HashMap::new(),
        }
    }

    /// The fixture account in `mode` with [`RULES`]: what most tests serve.
    pub fn fixture(mode: &str) -> TestConfig {
        TestConfig::new()
            .account(AccountSpec::fixture(mode))
            .rules(RULES)
    }

    /// `[account]`.
    pub fn account(mut self, account: AccountSpec) -> TestConfig {
        self.root.insert("account".into(), account.0.into());
        self
    }

    /// Appends an `[[accounts]]` entry.
    pub fn add_account(mut self, account: AccountSpec) -> TestConfig {
        assert!(account.0.contains_key("name"), "[[accounts]] need a name");
        merge(
            &mut self.root,
            table([("accounts", vec![Value::from(account.0)].into())]),
        );
        self
    }

    /// Any setting, dotted (`delivery.dedup_window_secs`, `server.listen`).
    pub fn set(mut self, dotted: &str, value: impl Into<Value>) -> TestConfig {
        set_path(&mut self.root, dotted, value.into());
        self
    }

    /// Static top-level TOML merged in (rules, default replies, sections).
    pub fn rules(mut self, text: &str) -> TestConfig {
        merge(&mut self.root, parse(text));
        self
    }

    /// One more top-level rule.
    pub fn rule(mut self, rule: Table) -> TestConfig {
        merge(
            &mut self.root,
            table([("rules", vec![Value::from(rule)].into())]),
        );
        self
    }

    /// `[store]` on a Redis at `url`.
    pub fn redis(self, url: &str) -> TestConfig {
        self.set("store.backend", "redis").set("store.url", url)
    }

    /// `[token] api_base_url`: the top-level accounts' API is the fake.
    pub fn token_api(self, wechat: &FakeWechat) -> TestConfig {
        self.set("token.api_base_url", wechat.base_url())
    }

    /// Appends an `[[upstreams]]` entry.
    pub fn upstream(mut self, upstream: Table) -> TestConfig {
        merge(
            &mut self.root,
            table([("upstreams", vec![Value::from(upstream)].into())]),
        );
        self
    }

    /// What the environment holds for `${…}`-style secret lookups.
    pub fn env(mut self, name: &str, value: &str) -> TestConfig {
        self.env.insert(name.to_owned(), value.to_owned());
        self
    }

    /// The file name the config reports (default `test.toml`).
    pub fn source(mut self, path: &str) -> TestConfig {
        self.source = PathBuf::from(path);
        self
    }

    /// The configuration as TOML text.
    pub fn to_toml(&self) -> String {
        toml::to_string(&self.root).expect("test config serializes")
    }

    /// Writes the TOML to `path` (for the real binary).
    pub fn write(&self, path: &Path) {
        std::fs::write(path, self.to_toml()).unwrap();
    }

    /// Validates it as wxgate would.
    pub fn try_build(&self) -> Result<Config, ConfigError> {
        Config::from_toml(&self.to_toml(), &self.source, |name| {
            self.env.get(name).cloned()
        })
    }

    /// Validates it; panics with wxgate's message when it is invalid.
    pub fn build(&self) -> Config {
        self.try_build().unwrap_or_else(|e| panic!("{e}"))
    }
}
