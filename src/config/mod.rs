//! Configuration: read once, validated once, at start-up.
//!
//! The TOML file (see `config/wxgate.toml`) may leave secrets out; the
//! environment variables `WXGATE_TOKEN`, `WXGATE_ENCODING_AES_KEY`,
//! `WXGATE_APP_ID` and `WXGATE_APP_SECRET` (and `WXGATE_{NAME}_…` for named
//! accounts) override the file. Each section has its own file, which reads
//! its part of the file and validates it into typed settings; [`Config`]
//! joins them and checks what spans sections. Validation reports every
//! problem with the file name and the offending rule, and a [`Config`] only
//! exists once everything is valid.

mod account;
mod agent;
mod console;
mod delivery;
mod file;
mod log;
mod mode;
mod security;
mod server;
mod store;
mod syntax;
mod token;

pub use account::{
    env_prefix, AccountConfig, AccountEntry, AccountKind, FeishuSettings, KfSettings,
    DINGTALK_BASE_URL, DINGTALK_ROBOT_API_BASE_URL, FEISHU_BASE_URL, LARK_BASE_URL, PRIMARY_NAME,
    WECHAT_BASE_URL, WECOM_BASE_URL,
};
pub use console::ConsoleConfig;
pub use delivery::DeliveryConfig;
pub use log::LogConfig;
pub use mode::Mode;
pub use security::SecurityConfig;
pub use server::{EdgeLimits, ServerConfig};
pub use store::StoreConfig;
pub use token::TokenConfig;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use thiserror::Error;

use crate::agent::AgentSettings;
use crate::rules::RuleSet;
pub use crate::secret::Secret;
use crate::security::AllowlistMode;

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
    /// `[admin] listen`: the operator routes (`/readyz`, `/metrics`,
    /// `/admin/*`, `/internal/*`) on a listener of their own; the public one
    /// then serves only the callbacks and `/healthz`.
    pub admin_listen: Option<std::net::SocketAddr>,
    /// Upstream agents and how their answers reach users.
    pub agent: AgentSettings,
    /// `[console]`, when enabled.
    pub console: Option<ConsoleConfig>,
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
    /// Not valid TOML, or a key that does not belong there. Never quotes
    /// the file: a line that may hold a secret is shown by its place and
    /// key only (see `config/syntax.rs`).
    #[error("{}{}: {message}{}", .path.display(), place(.line, .column), key_note(.key))]
    Syntax {
        /// File path.
        path: PathBuf,
        /// 1-based line of the error, when the parser knows it.
        line: Option<usize>,
        /// 1-based column (in characters) of the error.
        column: Option<usize>,
        /// The dotted key of that line (`account.app_secret`), if it has one.
        key: Option<String>,
        /// What is wrong, with any quoted piece removed on a secret's line.
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

/// `:line:column`, or nothing when the position is unknown.
fn place(line: &Option<usize>, column: &Option<usize>) -> String {
    match (*line, *column) {
        (Some(line), Some(column)) => format!(":{line}:{column}"),
        (Some(line), None) => format!(":{line}"),
        _ => String::new(),
    }
}

/// ` (key `name`)`, or nothing.
fn key_note(key: &Option<String>) -> String {
    key.as_ref()
        .map(|k| format!(" (key `{k}`)"))
        .unwrap_or_default()
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
        let raw: file::ConfigFile =
            toml::from_str(text).map_err(|e| syntax::syntax_error(path, text, &e))?;
        let mut problems = Vec::new();
        let pick = |file_value: Option<String>, var: &str| {
            env(var).filter(|v| !v.is_empty()).or(file_value)
        };
        let server_path = raw.server.path.clone();
        let server = server::validate(raw.server, &mut problems);
        let admin_api_key = pick(raw.admin.api_key, ENV_ADMIN_API_KEY);
        if admin_api_key
            .as_ref()
            .is_some_and(|k| k.len() < MIN_API_KEY_LEN)
        {
            problems.push(format!(
                "admin.api_key must be at least {MIN_API_KEY_LEN} characters (or set {ENV_ADMIN_API_KEY})"
            ));
        }
        let admin_listen = raw.admin.listen.as_deref().and_then(|l| {
            let parsed = l.parse::<std::net::SocketAddr>().ok();
            if parsed.is_none() {
                problems.push(format!(
                    "admin.listen {l:?} is not an address like 127.0.0.1:9091"
                ));
            }
            parsed
        });
        let console = console::validate(
            raw.console,
            admin_api_key.is_some(),
            admin_listen.is_some() || raw.admin.listen.is_some(),
            &mut problems,
        );
        let store = store::validate(raw.store, &mut problems);
        let token_config =
            token::validate(raw.token, pick(None, ENV_INTERNAL_API_KEY), &mut problems);
        let log = log::validate(raw.log, &mut problems);
        let deadline_ms = raw.delivery.deadline_ms;
        let delivery = delivery::validate(raw.delivery, &mut problems);
        let security = security::validate(raw.security, &mut problems);
        let allowlist = security.allowlist;

        let voice = agent::voice_options(&raw.agent, &mut problems);
        let top_rules = match RuleSet::compile(&raw.rules, raw.default_reply.as_ref()) {
            Ok(r) => Some(Arc::new(r.with_voice(voice.clone()))),
            Err(errors) => {
                problems.extend(errors.iter().map(ToString::to_string));
                None
            }
        };
        let ctx = account::Context {
            server_path: &server_path,
            default_api_base_url: &token_config.api_base_url,
            top_rules: top_rules.as_ref(),
            voice: &voice,
            env: &env,
        };
        let (accounts, accounts_ok) =
            account::validate_all(raw.account, raw.accounts, &ctx, &mut problems);
        cross_checks(
            &accounts,
            accounts_ok,
            &token_config,
            allowlist,
            &mut problems,
        );
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
                server,
                accounts,
                store,
                token: token_config,
                log,
                delivery,
                security,
                admin_api_key: admin_api_key.map(Secret::new),
                admin_listen,
                agent,
                console,
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

/// What spans sections: the internal token endpoint needs a token to serve;
/// the WeChat allowlist needs each account's API credentials.
fn cross_checks(
    accounts: &[AccountEntry],
    accounts_ok: bool,
    token_config: &TokenConfig,
    allowlist: AllowlistMode,
    problems: &mut Vec<String>,
) {
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
        for a in accounts.iter().filter(|a| !a.account.kind.is_wechat()) {
            problems.push(format!("security.ip_allowlist = \"wechat\" lists WeChat's callback addresses, which do not include {}'s: account {:?} would refuse every push (use \"off\" or extra_allowed_ips)", a.account.kind.as_str(), a.name));
        }
        for a in accounts
            .iter()
            .filter(|a| a.account.kind.is_wechat() && !a.account.has_api_credentials())
        {
            let (id, secret) = if a.account.kind.is_wecom() {
                ("corp_id", "corp_secret")
            } else {
                ("app_id", "app_secret")
            };
            problems.push(format!("security.ip_allowlist = \"wechat\" fetches each account's callback IPs and needs its {id} and {secret}: account {:?} has none", a.name));
        }
    }
}

#[cfg(test)]
mod reference;
#[cfg(test)]
mod tests;
