//! Configuration: read once, validated once, at start-up.
//!
//! The TOML file (see `config/wxgate.toml`) may leave secrets out; the
//! environment variables `WXGATE_TOKEN`, `WXGATE_ENCODING_AES_KEY`,
//! `WXGATE_APP_ID` and `WXGATE_APP_SECRET` override the file. Validation
//! reports every problem with the file name and the offending rule, and a
//! [`Config`] only exists once everything is valid.

mod account;
mod agent;
mod file;

pub use account::{
    env_prefix, AccountConfig, AccountEntry, AccountKind, KfSettings, PRIMARY_NAME,
    WECHAT_BASE_URL, WECOM_BASE_URL,
};

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use thiserror::Error;

use std::time::Duration;

use ipnet::IpNet;

use crate::agent::AgentSettings;
use crate::conversation::DeliverySettings;
use crate::domain::Reply;
use crate::rules::{compile_reply, ReplySpec, RuleSet};
pub use crate::secret::Secret;
use crate::security::{parse_net, AllowlistMode};
use crate::token::TokenSource;

/// How the account's messages are encrypted (the console's 消息加解密方式).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// 明文模式: plain XML, `signature` only.
    Plain,
    /// 兼容模式: plain and encrypted both accepted.
    Compatible,
    /// 安全模式: encrypted only.
    Safe,
}

impl Mode {
    /// The name used in the config file.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Plain => "plain",
            Mode::Compatible => "compatible",
            Mode::Safe => "safe",
        }
    }
}

impl std::str::FromStr for Mode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "plain" => Ok(Mode::Plain),
            "compatible" => Ok(Mode::Compatible),
            "safe" => Ok(Mode::Safe),
            other => Err(format!(
                "mode must be plain, compatible or safe, not {other:?}"
            )),
        }
    }
}

/// The HTTP server settings.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Address to bind.
    pub listen: SocketAddr,
    /// Callback path, e.g. `/weixin`.
    pub path: String,
    /// Bodies above this get 413.
    pub max_body_bytes: usize,
    /// Requests whose timestamp is further than this from now are refused.
    pub timestamp_window_secs: u64,
}

/// Where shared state lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreConfig {
    /// In this process only (one node).
    Memory,
    /// A Redis server shared by every node.
    Redis {
        /// `redis://…` URL.
        url: String,
    },
}

/// Access token settings (`[token]`).
#[derive(Debug, Clone)]
pub struct TokenConfig {
    /// Which endpoint issues tokens (`stable` by default).
    pub source: TokenSource,
    /// Refresh this many seconds before the token expires.
    pub refresh_margin_secs: u64,
    /// The WeChat API base URL, without a trailing slash.
    pub api_base_url: String,
    /// Upper bound on every outbound call.
    pub timeout_secs: u64,
    /// TTL of the cross-node refresh lock.
    pub lock_ttl_ms: u64,
    /// Bearer key of `GET /internal/access_token`; the route is off without it.
    pub internal_api_key: Option<Secret>,
}

/// Log output settings.
#[derive(Debug, Clone)]
pub struct LogConfig {
    /// `tracing` filter directive, e.g. `info` or `wxgate=debug`.
    pub level: String,
    /// JSON lines instead of text.
    pub json: bool,
}

/// Retry, deadline and overload settings (`[delivery]`).
#[derive(Debug, Clone)]
pub struct DeliveryConfig {
    /// Passed to the delivery machinery.
    pub settings: DeliverySettings,
    /// How long a message is remembered for dedup.
    pub dedup_window: Duration,
    /// At most this many messages remembered in memory.
    pub dedup_capacity: usize,
    /// After SIGTERM, requests in flight get this long to finish.
    pub shutdown_grace: Duration,
}

/// Caller restrictions (`[security]`).
#[derive(Debug, Clone)]
pub struct SecurityConfig {
    /// Peers whose `X-Forwarded-For` / `X-Real-IP` are believed.
    pub trusted_proxies: Vec<IpNet>,
    /// Callback IP allowlist mode.
    pub allowlist: AllowlistMode,
    /// Always allowed when the allowlist is on.
    pub extra_allowed_ips: Vec<IpNet>,
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where it was read from (for messages and reloads).
    pub source: PathBuf,
    /// HTTP server.
    pub server: ServerConfig,
    /// Every account: `[account]` first (at `server.path`), then
    /// `[[accounts]]` in file order. Never empty.
    pub accounts: Vec<AccountEntry>,
    /// Shared state.
    pub store: StoreConfig,
    /// Access tokens.
    pub token: TokenConfig,
    /// Logging.
    pub log: LogConfig,
    /// Delivery guarantees.
    pub delivery: DeliveryConfig,
    /// Caller restrictions.
    pub security: SecurityConfig,
    /// Bearer key for `/admin/*`; the admin routes are off without one.
    pub admin_api_key: Option<Secret>,
    /// Upstream agents and how their answers reach users.
    pub agent: AgentSettings,
}

/// Why the configuration cannot be used.
#[derive(Debug, Error)]
pub enum ConfigError {
    /// The file cannot be read.
    #[error("{path}: cannot read: {source}")]
    Io {
        /// File path.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// Not valid TOML, or a key that does not belong there.
    #[error("{path}: {message}")]
    Syntax {
        /// File path.
        path: PathBuf,
        /// The parser's message, with line and column.
        message: String,
    },
    /// Valid TOML with invalid values.
    #[error("{path}: {} problem(s):\n  - {}", problems.len(), problems.join("\n  - "))]
    Invalid {
        /// File path.
        path: PathBuf,
        /// Every problem found.
        problems: Vec<String>,
    },
}

/// The environment variables that may carry secrets.
pub const ENV_TOKEN: &str = "WXGATE_TOKEN";
/// See [`ENV_TOKEN`].
pub const ENV_ENCODING_AES_KEY: &str = "WXGATE_ENCODING_AES_KEY";
/// See [`ENV_TOKEN`].
pub const ENV_APP_ID: &str = "WXGATE_APP_ID";
/// See [`ENV_TOKEN`].
pub const ENV_APP_SECRET: &str = "WXGATE_APP_SECRET";
/// Bearer key for the admin endpoints.
pub const ENV_ADMIN_API_KEY: &str = "WXGATE_ADMIN_API_KEY";
/// Bearer key for `GET /internal/access_token`.
pub const ENV_INTERNAL_API_KEY: &str = "WXGATE_INTERNAL_API_KEY";

/// Shortest accepted `token.internal_api_key`.
const MIN_API_KEY_LEN: usize = 16;

impl Config {
    /// Reads and validates a config file, with secrets from the process environment.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            path: path.to_owned(),
            source,
        })?;
        Config::from_toml(&text, path, |name| std::env::var(name).ok())
    }

    /// Validates config text; `env` looks up environment overrides.
    pub fn from_toml(
        text: &str,
        path: &Path,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let raw: file::ConfigFile = toml::from_str(text).map_err(|e| ConfigError::Syntax {
            path: path.to_owned(),
            message: e.to_string().trim_end().to_owned(),
        })?;
        let mut problems = Vec::new();

        let listen = raw.server.listen.parse::<SocketAddr>().unwrap_or_else(|_| {
            problems.push(format!(
                "server.listen {:?} is not an address like 127.0.0.1:8080",
                raw.server.listen
            ));
            SocketAddr::from(([127, 0, 0, 1], 8080))
        });
        if !raw.server.path.starts_with('/') || raw.server.path.len() < 2 {
            problems.push(format!(
                "server.path {:?} must start with / and name a path",
                raw.server.path
            ));
        }
        if raw.server.max_body_bytes < 1024 {
            problems.push("server.max_body_bytes must be at least 1024".into());
        }

        let pick = |file_value: Option<String>, var: &str| {
            env(var).filter(|v| !v.is_empty()).or(file_value)
        };
        let admin_api_key = pick(raw.admin.api_key, ENV_ADMIN_API_KEY);
        if admin_api_key.as_ref().is_some_and(|k| k.len() < 16) {
            problems.push(format!(
                "admin.api_key must be at least 16 characters (or set {ENV_ADMIN_API_KEY})"
            ));
        }

        let store = match raw.store.backend.as_str() {
            "memory" => StoreConfig::Memory,
            "redis" => match raw.store.url {
                Some(url) if url.starts_with("redis://") || url.starts_with("rediss://") => {
                    StoreConfig::Redis { url }
                }
                _ => {
                    problems.push(
                        "store.url must be a redis:// URL when store.backend = \"redis\"".into(),
                    );
                    StoreConfig::Memory
                }
            },
            other => {
                problems.push(format!(
                    "store.backend must be \"memory\" or \"redis\", not {other:?}"
                ));
                StoreConfig::Memory
            }
        };
        let token_config =
            validate_token(raw.token, pick(None, ENV_INTERNAL_API_KEY), &mut problems);
        let json = match raw.log.format.as_str() {
            "text" => false,
            "json" => true,
            other => {
                problems.push(format!(
                    "log.format must be \"text\" or \"json\", not {other:?}"
                ));
                false
            }
        };
        if tracing_subscriber::EnvFilter::try_new(&raw.log.level).is_err() {
            problems.push(format!(
                "log.level {:?} is not a valid filter",
                raw.log.level
            ));
        }

        let mut fixed_reply = |spec: &ReplySpec, what: &str| -> Reply {
            match compile_reply(spec) {
                Ok((_, true)) => {
                    problems.push(format!("delivery.{what} cannot use placeholders"));
                    Reply::Success
                }
                Ok((reply, false)) => reply,
                Err(e) => {
                    problems.push(format!("delivery.{what}: {e}"));
                    Reply::Success
                }
            }
        };
        let d = &raw.delivery;
        let deadline_ms = d.deadline_ms;
        let fallback = fixed_reply(&d.fallback_reply, "fallback_reply");
        let overload = fixed_reply(&d.overload_reply, "overload_reply");
        if !(100..=4900).contains(&d.deadline_ms) {
            problems.push(
                "delivery.deadline_ms must be between 100 and 4900 (WeChat gives up at 5000)"
                    .into(),
            );
        }
        if d.max_in_flight == 0 {
            problems.push("delivery.max_in_flight must be at least 1".into());
        }
        if d.dedup_window_secs == 0 || d.dedup_capacity == 0 {
            problems.push("delivery.dedup_window_secs and dedup_capacity must be positive".into());
        }
        let delivery = DeliveryConfig {
            settings: DeliverySettings {
                deadline: Duration::from_millis(d.deadline_ms),
                fallback,
                overload,
                max_in_flight: d.max_in_flight,
            },
            dedup_window: Duration::from_secs(d.dedup_window_secs),
            dedup_capacity: d.dedup_capacity,
            shutdown_grace: Duration::from_secs(d.shutdown_grace_secs),
        };

        let mut nets = |list: &[String], what: &str| -> Vec<IpNet> {
            list.iter()
                .filter_map(|t| match parse_net(t) {
                    Ok(n) => Some(n),
                    Err(e) => {
                        problems.push(format!("security.{what}: {e}"));
                        None
                    }
                })
                .collect()
        };
        let trusted_proxies = nets(&raw.security.trusted_proxies, "trusted_proxies");
        let extra_allowed_ips = nets(&raw.security.extra_allowed_ips, "extra_allowed_ips");
        let allowlist = match raw.security.ip_allowlist.as_str() {
            "off" => AllowlistMode::Off,
            "static" => AllowlistMode::Static,
            "wechat" => AllowlistMode::Wechat,
            other => {
                problems.push(format!("security.ip_allowlist must be \"off\", \"static\" or \"wechat\", not {other:?}"));
                AllowlistMode::Off
            }
        };
        if allowlist == AllowlistMode::Static && extra_allowed_ips.is_empty() {
            problems.push("security.ip_allowlist = \"static\" needs extra_allowed_ips".into());
        }
        let security = SecurityConfig {
            trusted_proxies,
            allowlist,
            extra_allowed_ips,
        };

        let top_rules = match RuleSet::compile(&raw.rules, raw.default_reply.as_ref()) {
            Ok(r) => Some(Arc::new(r)),
            Err(errors) => {
                problems.extend(errors.iter().map(ToString::to_string));
                None
            }
        };
        let ctx = account::Context {
            server_path: &raw.server.path,
            default_api_base_url: &token_config.api_base_url,
            top_rules: top_rules.as_ref(),
            env: &env,
        };
        // Without [[accounts]], [account] is required (its absence is reported
        // as a missing token).
        let primary = match (raw.account, raw.accounts.is_empty()) {
            (Some(a), _) => Some(a),
            (None, true) => Some(file::AccountSection::default()),
            (None, false) => None,
        };
        let mut accounts = Vec::new();
        let mut accounts_ok = true;
        for (index, section) in primary.map(|a| (None, a)).into_iter().chain(
            raw.accounts
                .into_iter()
                .enumerate()
                .map(|(i, a)| (Some(i), a)),
        ) {
            match account::validate(section, index, &ctx, &mut problems) {
                Some(entry) => accounts.push(entry),
                None => accounts_ok = false,
            }
        }
        account::check_unique(&accounts, &mut problems);
        let primary_has_credentials = accounts
            .first()
            .is_some_and(|a| a.account.has_api_credentials());
        if token_config.internal_api_key.is_some() && accounts_ok && !primary_has_credentials {
            problems.push(
                "token.internal_api_key is set but there is no token to serve: set account.app_id and account.app_secret"
                    .into(),
            );
        }
        if allowlist == AllowlistMode::Wechat {
            for a in accounts.iter().filter(|a| !a.account.has_api_credentials()) {
                let (id, secret) = if a.account.kind.is_wecom() {
                    ("corp_id", "corp_secret")
                } else {
                    ("app_id", "app_secret")
                };
                problems.push(format!("security.ip_allowlist = \"wechat\" fetches each account's callback IPs and needs its {id} and {secret}: account {:?} has none", a.name));
            }
        }
        let rule_sets: Vec<(&str, &RuleSet)> = accounts
            .iter()
            .enumerate()
            .map(|(i, a)| (if i == 0 { "" } else { a.name.as_str() }, &*a.rules))
            .collect();
        let agent = agent::validate(
            raw.agent,
            raw.upstreams,
            &rule_sets,
            deadline_ms,
            &env,
            &mut problems,
        );

        drop(rule_sets);
        match top_rules {
            Some(_) if problems.is_empty() && accounts_ok => Ok(Config {
                source: path.to_owned(),
                server: ServerConfig {
                    listen,
                    path: raw.server.path,
                    max_body_bytes: raw.server.max_body_bytes,
                    timestamp_window_secs: raw.server.timestamp_window_secs,
                },
                accounts,
                store,
                token: token_config,
                log: LogConfig {
                    level: raw.log.level,
                    json,
                },
                delivery,
                security,
                admin_api_key: admin_api_key.map(Secret::new),
                agent,
            }),
            _ => Err(ConfigError::Invalid {
                path: path.to_owned(),
                problems,
            }),
        }
    }
}

impl Config {
    /// The account of `[account]`, or the first of `[[accounts]]`.
    pub fn primary(&self) -> &AccountEntry {
        &self.accounts[0]
    }

    /// The account named `name`, or the primary one when `None`.
    pub fn find_account(&self, name: Option<&str>) -> Result<&AccountEntry, String> {
        match name {
            None => Ok(self.primary()),
            Some(n) => self.accounts.iter().find(|a| a.name == n).ok_or_else(|| {
                let names: Vec<&str> = self.accounts.iter().map(|a| a.name.as_str()).collect();
                format!("no account named {n:?} (configured: {})", names.join(", "))
            }),
        }
    }

    /// Outbound API calls (and so access tokens) are possible for the
    /// primary account: it has both an app id and an app secret.
    pub fn has_api_credentials(&self) -> bool {
        self.primary().account.has_api_credentials()
    }
}

/// An `http(s)://host…` base URL without query or fragment.
fn valid_base_url(base: &str) -> bool {
    (base.starts_with("https://") || base.starts_with("http://"))
        && base
            .split_once("://")
            .is_some_and(|(_, rest)| !rest.is_empty())
        && !base.contains(['?', '#', ' '])
}

/// Checks `[token]`; `env_key` is `WXGATE_INTERNAL_API_KEY`, which overrides the file.
fn validate_token(
    raw: file::TokenSection,
    env_key: Option<String>,
    problems: &mut Vec<String>,
) -> TokenConfig {
    let source = raw.source.parse::<TokenSource>().unwrap_or_else(|e| {
        problems.push(format!("token.source {e}"));
        TokenSource::Stable
    });
    if !(1..=3600).contains(&raw.refresh_margin_secs) {
        problems.push(format!(
            "token.refresh_margin_secs must be between 1 and 3600 (tokens live 7200 s), not {}",
            raw.refresh_margin_secs
        ));
    }
    if !(1..=60).contains(&raw.timeout_secs) {
        problems.push(format!(
            "token.timeout_secs must be between 1 and 60, not {}",
            raw.timeout_secs
        ));
    }
    // The lock must outlive a fetch, or a second node could fetch while the first still is.
    if raw.lock_ttl_ms <= raw.timeout_secs.saturating_mul(1000) || raw.lock_ttl_ms > 300_000 {
        problems.push(format!(
            "token.lock_ttl_ms must exceed token.timeout_secs ({} ms) and be at most 300000, not {}",
            raw.timeout_secs.saturating_mul(1000),
            raw.lock_ttl_ms
        ));
    }
    let base = raw.api_base_url.trim_end_matches('/').to_owned();
    if !valid_base_url(&base) {
        problems.push(format!(
            "token.api_base_url {:?} is not an http(s) URL like https://api.weixin.qq.com",
            raw.api_base_url
        ));
    }
    let key = env_key.or(raw.internal_api_key).filter(|k| !k.is_empty());
    if let Some(k) = &key {
        if k.len() < MIN_API_KEY_LEN || k.chars().any(|c| c.is_whitespace() || c.is_control()) {
            problems.push(format!(
                "token.internal_api_key (or {ENV_INTERNAL_API_KEY}) must be at least {MIN_API_KEY_LEN} characters without spaces"
            ));
        }
    }
    TokenConfig {
        source,
        refresh_margin_secs: raw.refresh_margin_secs,
        api_base_url: base,
        timeout_secs: raw.timeout_secs,
        lock_ttl_ms: raw.lock_ttl_ms,
        internal_api_key: key.map(Secret::new),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<Config, ConfigError> {
        Config::from_toml(text, Path::new("test.toml"), |_| None)
    }

    #[test]
    fn minimal_plain_config() {
        let c = load("[account]\ntoken = \"abc\"\n").unwrap();
        assert_eq!(c.primary().account.mode, Mode::Plain);
        assert_eq!(c.server.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(c.server.path, "/weixin");
        assert_eq!(c.server.max_body_bytes, 65536);
        assert_eq!(c.store, StoreConfig::Memory);
        assert!(c.primary().rules.is_empty());
    }

    #[test]
    fn environment_overrides_the_file() {
        let c = Config::from_toml(
            "[account]\ntoken = \"file\"\nmode = \"safe\"\n",
            Path::new("t.toml"),
            |name| match name {
                ENV_TOKEN => Some("fromenv".into()),
                ENV_ENCODING_AES_KEY => Some("abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG".into()),
                ENV_APP_ID => Some("wx0123456789abcdef".into()),
                _ => None,
            },
        )
        .unwrap();
        assert_eq!(c.primary().account.token.expose(), "fromenv");
        assert_eq!(
            c.primary().account.crypto.clone().unwrap().receive_id(),
            "wx0123456789abcdef"
        );
    }

    #[test]
    fn secrets_never_show_in_debug() {
        let c = load("[account]\ntoken = \"supersecret\"\napp_secret = \"alsosecret\"\nencoding_aes_key = \"abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG\"\napp_id = \"wx1\"\n").unwrap();
        let dbg = format!("{c:?}");
        assert!(
            !dbg.contains("supersecret")
                && !dbg.contains("alsosecret")
                && !dbg.contains("abcdefghij"),
            "{dbg}"
        );
    }

    #[test]
    fn every_problem_is_listed_with_the_file() {
        let err = load(
            "[server]\nlisten = \"nowhere\"\n[account]\nmode = \"safe\"\n[[rules]]\nname = \"r\"\nmatch = { regex = \"[\" }\nreply = { type = \"text\", content = \"x\" }\n",
        )
        .unwrap_err()
        .to_string();
        assert!(err.starts_with("test.toml: "), "{err}");
        for needle in [
            "server.listen",
            "account.token is missing",
            "encoding_aes_key is required",
            "app_id is required",
            "rule #1 \"r\": invalid regex",
        ] {
            assert!(err.contains(needle), "missing {needle:?} in {err}");
        }
    }

    #[test]
    fn unknown_keys_and_bad_keys() {
        let err = load("[account]\ntoken = \"a\"\ntokne = \"b\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown field `tokne`"), "{err}");
        let err = load("[account]\ntoken = \"a\"\nencoding_aes_key = \"short\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("43 characters"), "{err}");
        let err = load("[store]\nbackend = \"redis\"\n[account]\ntoken = \"a\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("store.url"), "{err}");
    }

    #[test]
    fn token_defaults_and_overrides() {
        let c = load("[account]\ntoken = \"a\"\n").unwrap();
        assert_eq!(c.token.source, TokenSource::Stable);
        assert_eq!(c.token.refresh_margin_secs, 300);
        assert_eq!(c.token.api_base_url, "https://api.weixin.qq.com");
        assert_eq!(c.token.timeout_secs, 5);
        assert!(c.token.internal_api_key.is_none());
        assert!(!c.has_api_credentials());

        let c = Config::from_toml(
            "[account]\ntoken = \"a\"\napp_id = \"wx1\"\napp_secret = \"s\"\n[store]\nbackend = \"redis\"\nurl = \"redis://127.0.0.1:6379\"\n[token]\nsource = \"classic\"\napi_base_url = \"http://127.0.0.1:9/\"\nlock_ttl_ms = 6000\n",
            Path::new("t.toml"),
            |name| (name == ENV_INTERNAL_API_KEY).then(|| "k".repeat(32)),
        )
        .unwrap();
        assert_eq!(c.token.source, TokenSource::Classic);
        assert_eq!(c.token.api_base_url, "http://127.0.0.1:9");
        assert_eq!(
            c.token.internal_api_key.as_ref().unwrap().expose(),
            "k".repeat(32)
        );
        assert!(c.has_api_credentials());
        assert!(!format!("{c:?}").contains("kkkk"));
    }

    #[test]
    fn token_problems_are_listed() {
        let err = load(
            "[account]\ntoken = \"a\"\napp_secret = \"s\"\n[token]\nsource = \"fast\"\nrefresh_margin_secs = 0\ntimeout_secs = 5\nlock_ttl_ms = 5000\napi_base_url = \"ftp://x\"\ninternal_api_key = \"short\"\n",
        )
        .unwrap_err()
        .to_string();
        for needle in [
            "token.source must be \"stable\" or \"classic\"",
            "token.refresh_margin_secs",
            "token.lock_ttl_ms must exceed",
            "token.api_base_url",
            "token.internal_api_key (or WXGATE_INTERNAL_API_KEY) must be at least 16",
            "account.app_secret is set but app_id is missing",
        ] {
            assert!(err.contains(needle), "missing {needle:?} in {err}");
        }
        let err = load(&format!(
            "[account]\ntoken = \"a\"\n[token]\ninternal_api_key = \"{}\"\n",
            "k".repeat(32)
        ))
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("internal_api_key is set but there is no token to serve"),
            "{err}"
        );
    }

    #[test]
    fn upstreams_are_validated_with_defaults() {
        let c = Config::from_toml(
            r#"
[account]
token = "a"
[agent]
interim_text = "正在思考…"
[[upstreams]]
name = "hook"
url = "http://127.0.0.1:9000/wx"
protocol = "webhook"
secret_env = "HOOK_SECRET"
[[upstreams]]
name = "llm"
url = "http://127.0.0.1:11434/v1/"
protocol = "openai"
model = "qwen2.5"
fallback_text = "稍后再试"
[[rules]]
match = { prefix = "hook " }
reply = { type = "upstream", upstream = "hook" }
[default_reply]
type = "upstream"
upstream = "llm"
"#,
            Path::new("t.toml"),
            |name| (name == "HOOK_SECRET").then(|| "s3cret".to_owned()),
        )
        .unwrap();
        let a = &c.agent;
        assert_eq!(a.passive_budget, Duration::from_millis(4000));
        assert_eq!(a.interim_text.as_deref(), Some("正在思考…"));
        assert!(a.typing);
        let [hook, llm] = &a.upstreams[..] else {
            panic!("two upstreams expected: {a:?}")
        };
        assert_eq!(hook.protocol.as_str(), "webhook");
        assert_eq!(hook.fallback_text, crate::agent::DEFAULT_FALLBACK_TEXT);
        assert_eq!(
            (hook.max_concurrency, hook.timeout),
            (16, Duration::from_secs(30))
        );
        assert_eq!(llm.url, "http://127.0.0.1:11434/v1/chat/completions");
        assert_eq!(llm.fallback_text, "稍后再试");
        let crate::agent::ProtocolSettings::OpenAi(o) = &llm.protocol else {
            panic!("openai expected")
        };
        assert_eq!(
            (o.history_turns, o.history_ttl, o.reset_command.as_str()),
            (10, Duration::from_secs(1800), "/reset")
        );
        assert!(!format!("{c:?}").contains("s3cret"));
    }

    #[test]
    fn upstream_problems_name_the_rule_and_the_upstream() {
        let err = load(
            r#"
[account]
token = "a"
[delivery]
deadline_ms = 3000
[agent]
passive_budget_ms = 3000
[[upstreams]]
name = "hook"
url = "ftp://example.com"
protocol = "webhook"
model = "x"
secret_env = "UNSET_SECRET"
[[upstreams]]
name = "llm"
url = "http://127.0.0.1:11434/v1"
protocol = "openai"
[[upstreams]]
url = "http://127.0.0.1:1"
protocol = "grpc"
[[rules]]
name = "ask"
match = { prefix = "ask " }
reply = { type = "upstream", upstream = "agnet" }
[delivery.fallback_reply]
type = "upstream"
upstream = "hook"
"#,
        )
        .unwrap_err()
        .to_string();
        for needle in [
            "agent.passive_budget_ms must be at least 50 and below delivery.deadline_ms (3000)",
            "upstreams[0] \"hook\": url \"ftp://example.com\" must be an http:// or https:// URL",
            "upstreams[0] \"hook\": model only applies to protocol = \"openai\"",
            "upstreams[0] \"hook\": secret_env names the environment variable UNSET_SECRET, which is not set",
            "upstreams[1] \"llm\": model is missing",
            "upstreams[2]: name is missing",
            "upstreams[2]: protocol must be \"webhook\" or \"openai\", not \"grpc\"",
            "rule #1 \"ask\": unknown upstream \"agnet\"",
            "delivery.fallback_reply: an upstream reply is only allowed in rules and default_reply",
        ] {
            assert!(err.contains(needle), "missing {needle:?} in {err}");
        }
    }

    const KEY: &str = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG";

    #[test]
    fn accounts_side_by_side_with_the_single_account() {
        let c = Config::from_toml(
            &format!(
                r#"
[account]
token = "oa"
[[rules]]
match = {{ text = "hi" }}
reply = {{ type = "text", content = "top" }}

[[accounts]]
name = "corp-app"
kind = "wecom"
corp_id = "ww5d3c1b9a7e2f4086"
agent_id = 1000002
token = "wc"
encoding_aes_key = "{KEY}"
[[accounts.rules]]
match = {{ text = "hi" }}
reply = {{ type = "text", content = "own" }}

[[accounts]]
name = "service"
kind = "kf"
path = "/kf"
corp_id = "ww5d3c1b9a7e2f4086"
token = "kf"
encoding_aes_key = "{KEY}"
[accounts.kf]
max_message_age_secs = 120
"#
            ),
            Path::new("t.toml"),
            |name| (name == "WXGATE_SERVICE_CORP_SECRET").then(|| "kfsecret".to_owned()),
        )
        .unwrap();
        let [oa, app, kf] = &c.accounts[..] else {
            panic!("three accounts expected")
        };
        assert_eq!((oa.name.as_str(), oa.path.as_str()), ("default", "/weixin"));
        assert_eq!(oa.account.kind, AccountKind::Official);
        assert_eq!(app.path, "/weixin/corp-app");
        assert_eq!(app.account.kind, AccountKind::WeCom { agent_id: 1000002 });
        assert_eq!(app.account.mode, Mode::Safe);
        assert_eq!(app.account.api_base_url, WECOM_BASE_URL);
        assert_eq!(
            app.account.crypto.as_ref().unwrap().receive_id(),
            "ww5d3c1b9a7e2f4086"
        );
        assert_eq!(app.namespace, "ww5d3c1b9a7e2f4086.1000002");
        assert_eq!(kf.path, "/kf");
        assert_eq!(kf.namespace, "ww5d3c1b9a7e2f4086.kf");
        assert_eq!(kf.account.app_secret.as_ref().unwrap().expose(), "kfsecret");
        let AccountKind::Kf(settings) = &kf.account.kind else {
            panic!("kf expected")
        };
        assert_eq!(settings.max_message_age, Duration::from_secs(120));
        assert_eq!(settings.sync_limit, 100);
        // Own rules replace the top-level ones; no own rules inherit them.
        let rule_names = |a: &AccountEntry| a.rules.len();
        assert_eq!((rule_names(oa), rule_names(app), rule_names(kf)), (1, 1, 1));
        assert!(!format!("{c:?}").contains("kfsecret"));
        assert_eq!(c.find_account(Some("service")).unwrap().name, "service");
        assert!(c
            .find_account(Some("nope"))
            .unwrap_err()
            .contains("default, corp-app, service"));
    }

    #[test]
    fn accounts_alone_need_no_single_account() {
        let c = load(&format!(
            "[[accounts]]\nname = \"a\"\ntoken = \"t\"\n[[accounts]]\nname = \"b\"\nkind = \"wecom\"\ncorp_id = \"ww1\"\nagent_id = 2\ntoken = \"t\"\nencoding_aes_key = \"{KEY}\"\n"
        ))
        .unwrap();
        assert_eq!(c.primary().name, "a");
        assert_eq!(c.primary().path, "/weixin/a");
    }

    #[test]
    fn account_problems_name_the_account() {
        let err = load(&format!(
            r#"
[account]
token = "a"
agent_id = 3
[[accounts]]
name = "Bad Name"
token = "t"
[[accounts]]
name = "app"
kind = "wecom"
app_id = "wx1"
token = "t"
mode = "plain"
[[accounts]]
name = "svc"
kind = "kf"
corp_id = "ww1"
agent_id = 1
token = "t"
encoding_aes_key = "{KEY}"
[accounts.kf]
sync_limit = 5000
[[accounts]]
name = "svc"
kind = "chat"
token = "t"
[[accounts.rules]]
match = {{ regex = "[" }}
reply = {{ type = "text", content = "x" }}
"#
        ))
        .unwrap_err()
        .to_string();
        for needle in [
            "account.agent_id only applies to kind = \"wecom\" or \"kf\"",
            "accounts[0] \"Bad Name\".name \"Bad Name\" must be 1–32 characters",
            "accounts[1] \"app\".app_id does not apply to kind = \"wecom\" (use corp_id)",
            "accounts[1] \"app\".WeCom pushes are always encrypted",
            "accounts[1] \"app\".corp_id is required for kind = \"wecom\" (or set WXGATE_APP_CORP_ID)",
            "accounts[1] \"app\".encoding_aes_key is required",
            "accounts[1] \"app\".agent_id is required",
            "accounts[2] \"svc\".agent_id does not apply to kind = \"kf\"",
            "accounts[2] \"svc\".corp_secret (the Customer Service secret) is required",
            "accounts[2] \"svc\".kf.sync_limit must be between 1 and 1000",
            "accounts[3] \"svc\".kind must be \"official\", \"wecom\" or \"kf\"",
            "rule #1",
        ] {
            assert!(err.contains(needle), "missing {needle:?} in {err}");
        }
    }

    #[test]
    fn accounts_must_not_collide() {
        let err = load(
            "[account]\ntoken = \"a\"\napp_id = \"wx1\"\n[[accounts]]\nname = \"x\"\npath = \"/weixin\"\ntoken = \"b\"\napp_id = \"wx1\"\n",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("the path \"/weixin\" is used twice"), "{err}");
        assert!(
            err.contains("same WeChat account as another one (wx1)"),
            "{err}"
        );
    }
}
