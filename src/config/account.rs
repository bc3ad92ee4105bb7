//! Validation of `[account]` and `[[accounts]]`: Official Accounts, WeCom
//! self-built apps, WeChat Customer Service, Feishu/Lark bots and DingTalk
//! robots, each with
//! its own secrets, rules, path and store namespace.
//!
//! Kept in one file (about 700 lines) on purpose: every kind is validated
//! from the one raw section with the same environment lookups, and the
//! kinds' arms read best side by side.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use super::{Mode, Secret};
use crate::conversation::Strategy;
use crate::crypto::{AesKey, MessageCrypto};
use crate::rules::RuleSet;
use crate::rules::{ReplySpec, RuleSpec};

/// `[account]` and each `[[accounts]]` entry. `name`, `path`, `rules` and
/// `default_reply` only belong to `[[accounts]]` (the single account uses
/// `server.path` and the top-level rules); validation says so.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct AccountSection {
    /// How this account's slow answers are delivered (overrides `[agent]`).
    pub delivery: Option<String>,
    pub name: Option<String>,
    pub path: Option<String>,
    /// `official` (default), `wecom` (a WeCom self-built app), `kf`
    /// (WeChat Customer Service), `feishu` (a Feishu/Lark bot) or
    /// `dingtalk` (a DingTalk robot).
    pub kind: Option<String>,
    pub app_id: Option<String>,
    pub token: Option<String>,
    pub encoding_aes_key: Option<String>,
    /// The previous key, accepted while WeChat switches over after a rotation.
    pub previous_encoding_aes_key: Option<String>,
    pub app_secret: Option<String>,
    #[serde(default)]
    pub mode: Option<String>,
    pub corp_id: Option<String>,
    pub corp_secret: Option<String>,
    pub agent_id: Option<i64>,
    /// Where this account's outbound API lives (a fake in tests).
    pub api_base_url: Option<String>,
    /// DingTalk: where the robot send API and its access token live
    /// (`api.dingtalk.com`; the session webhooks are under `api_base_url`).
    pub robot_api_base_url: Option<String>,
    pub kf: Option<KfSection>,
    /// WeCom 智能机器人: the bot's id (`aibotid`), checked against every
    /// callback when set.
    pub bot_id: Option<String>,
    /// Feishu: the Encrypt Key of the event subscription (bodies encrypted
    /// and `X-Lark-Signature` checked when set).
    pub encrypt_key: Option<String>,
    /// Feishu: the bot lives on Lark (`open.larksuite.com`), not Feishu.
    pub lark: Option<bool>,
    pub feishu: Option<FeishuSection>,
    pub default_reply: Option<ReplySpec>,
    pub rules: Option<Vec<RuleSpec>>,
}

/// `[accounts.kf]`: how WeChat Customer Service messages are pulled.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct KfSection {
    pub max_message_age_secs: u64,
    pub sync_limit: u32,
    pub lock_ttl_secs: u64,
}

impl Default for KfSection {
    fn default() -> Self {
        KfSection {
            max_message_age_secs: 600,
            sync_limit: 100,
            lock_ttl_secs: 60,
        }
    }
}

/// `[accounts.feishu]`: which Feishu messages are answered.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct FeishuSection {
    pub require_mention: bool,
    pub bot_open_id: Option<String>,
}

impl Default for FeishuSection {
    fn default() -> Self {
        FeishuSection {
            require_mention: true,
            bot_open_id: None,
        }
    }
}

/// Where the Feishu open platform lives.
pub const FEISHU_BASE_URL: &str = "https://open.feishu.cn";

/// Where the Lark (international) open platform lives.
pub const LARK_BASE_URL: &str = "https://open.larksuite.com";

/// Where DingTalk's robot session webhooks live (`sessionWebhook` must be under it).
pub const DINGTALK_BASE_URL: &str = "https://oapi.dingtalk.com";

/// Where DingTalk's new-style open API lives: the access token
/// (`/v1.0/oauth2/accessToken`) and the robot send API (`/v1.0/robot/…`).
pub const DINGTALK_ROBOT_API_BASE_URL: &str = "https://api.dingtalk.com";

/// Where the WeChat (Official Account) API lives.
pub const WECHAT_BASE_URL: &str = "https://api.weixin.qq.com";

/// Where the WeCom API lives (WeCom apps and WeChat Customer Service).
pub const WECOM_BASE_URL: &str = "https://qyapi.weixin.qq.com";

/// The name of the account configured with `[account]`.
pub const PRIMARY_NAME: &str = "default";

/// What kind of account, with what only that kind has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccountKind {
    /// An Official Account (公众号 / 服务号).
    Official,
    /// A WeCom self-built app (企业微信自建应用): pushes are always encrypted,
    /// the receive id is the corp id, late answers go through the app
    /// message API.
    WeCom {
        /// The app's AgentID.
        agent_id: i64,
    },
    /// WeChat Customer Service (微信客服): the callback only says "there is
    /// news"; messages are pulled with `kf/sync_msg` and answered with
    /// `kf/send_msg`.
    Kf(KfSettings),
    /// A Feishu/Lark bot (飞书机器人): JSON event callbacks answered with 200
    /// at once; every answer goes through the message reply API.
    Feishu(FeishuSettings),
    /// A DingTalk robot (钉钉机器人) in HTTP mode: JSON callbacks signed
    /// with the AppSecret; answers in the response or through the
    /// message's `sessionWebhook`.
    DingTalk,
    /// A WeCom 智能机器人 (smart bot): JSON callbacks in the WeCom AES
    /// envelope with an empty receive id, answered with a stream that
    /// WeCom pulls until it is finished.
    WeComBot,
}

impl AccountKind {
    /// The name used in the config file.
    pub fn as_str(&self) -> &'static str {
        match self {
            AccountKind::Official => "official",
            AccountKind::WeCom { .. } => "wecom",
            AccountKind::Kf(_) => "kf",
            AccountKind::Feishu(_) => "feishu",
            AccountKind::DingTalk => "dingtalk",
            AccountKind::WeComBot => "wecom_bot",
        }
    }

    /// WeCom and Customer Service accounts: always encrypted, corp id, WeCom API.
    pub fn is_wecom(&self) -> bool {
        matches!(self, AccountKind::WeCom { .. } | AccountKind::Kf(_))
    }

    /// Accounts of the WeChat family (XML callbacks, the WeChat codec).
    pub fn is_wechat(&self) -> bool {
        !matches!(
            self,
            AccountKind::Feishu(_) | AccountKind::DingTalk | AccountKind::WeComBot
        )
    }
}

/// What only a Feishu/Lark bot has (`encrypt_key`, `lark`, `[accounts.feishu]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeishuSettings {
    /// The Encrypt Key: bodies arrive encrypted and signed with it.
    pub encrypt_key: Option<Secret>,
    /// Lark rather than Feishu (only the default API base URL differs).
    pub lark: bool,
    /// Group messages are answered only when they mention the bot.
    pub require_mention: bool,
    /// The bot's own open_id: when set, only a mention of it counts (else
    /// any mention does; Feishu pushes bots only the group messages that
    /// mention them unless the app may read every group message).
    pub bot_open_id: Option<String>,
}

/// How Customer Service messages are pulled (`[accounts.kf]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KfSettings {
    /// Messages older than this (sent while wxgate was down) are not answered.
    pub max_message_age: Duration,
    /// `limit` of each `kf/sync_msg` call.
    pub sync_limit: u32,
    /// TTL of the per-`open_kfid` pull lock shared by the nodes; renewed while pulling.
    pub lock_ttl: Duration,
}

/// One account's credentials.
#[derive(Debug, Clone)]
pub struct AccountConfig {
    /// Official Account, WeCom app, or Customer Service.
    pub kind: AccountKind,
    /// The AppID, or the CorpID of WeCom and Customer Service accounts: the
    /// receive id of encrypted payloads.
    pub app_id: Option<String>,
    /// The callback token from the console.
    pub token: Secret,
    /// Current message crypto (compatible and safe mode; always for WeCom).
    pub crypto: Option<MessageCrypto>,
    /// The EncodingAESKey as configured (43 characters), for the console's
    /// reveal: its last character carries bits the key does not use, so
    /// it cannot be rebuilt from [`AccountConfig::crypto`].
    pub encoding_aes_key: Option<Secret>,
    /// Crypto with the previous EncodingAESKey, tried when the current fails.
    pub previous_crypto: Option<MessageCrypto>,
    /// AppSecret, or the WeCom app's / Customer Service's secret.
    pub app_secret: Option<Secret>,
    /// The configured mode (`Safe` for WeCom and Customer Service).
    pub mode: Mode,
    /// The outbound API base URL for this account, without a trailing slash.
    pub api_base_url: String,
    /// DingTalk: the robot send API's base URL (`https://api.dingtalk.com`),
    /// without a trailing slash; `None` for other kinds.
    pub robot_api_base_url: Option<String>,
}

impl AccountConfig {
    /// Outbound API calls (and so access tokens) are possible.
    pub fn has_api_credentials(&self) -> bool {
        self.app_id.is_some() && self.app_secret.is_some()
    }
}

/// An account with where it is served and what answers it.
#[derive(Debug, Clone)]
pub struct AccountEntry {
    /// `default` for `[account]`, else the `[[accounts]]` name.
    pub name: String,
    /// The callback path.
    pub path: String,
    /// Credentials.
    pub account: AccountConfig,
    /// Its rules.
    pub rules: Arc<RuleSet>,
    /// `delivery` of this account (`None`: `[agent] delivery`, or `auto`).
    pub delivery: Option<Strategy>,
    /// The store namespace id: every node serving this account derives the
    /// same one, and no two accounts share one.
    pub namespace: String,
}

/// What every account is checked against.
pub(super) struct Context<'a> {
    pub server_path: &'a str,
    pub default_api_base_url: &'a str,
    /// The top-level rules, compiled; `None` when they have errors (already reported).
    pub top_rules: Option<&'a Arc<RuleSet>>,
    /// How every rule set reads voice messages (`[agent] voice_as_text`).
    pub voice: &'a crate::rules::VoiceOptions,
    pub env: &'a dyn Fn(&str) -> Option<String>,
}

/// The environment variable prefix of an account: `WXGATE_` for `[account]`,
/// `WXGATE_{NAME}_` for a named one (upper case, `-` as `_`).
pub fn env_prefix(name: Option<&str>) -> String {
    match name {
        None => "WXGATE_".to_owned(),
        Some(n) => format!("WXGATE_{}_", n.to_ascii_uppercase().replace('-', "_")),
    }
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 32
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Checks `[account]` and every `[[accounts]]` entry, then that no two
/// collide. `false` when an account could not be built (already reported).
pub(super) fn validate_all(
    single: Option<AccountSection>,
    sections: Vec<AccountSection>,
    ctx: &Context<'_>,
    problems: &mut Vec<String>,
) -> (Vec<AccountEntry>, bool) {
    // Without [[accounts]], [account] is required (its absence is reported
    // as a missing token).
    let primary = match (single, sections.is_empty()) {
        (Some(a), _) => Some(a),
        (None, true) => Some(AccountSection::default()),
        (None, false) => None,
    };
    let mut accounts = Vec::new();
    let mut accounts_ok = true;
    for (index, section) in primary
        .map(|a| (None, a))
        .into_iter()
        .chain(sections.into_iter().enumerate().map(|(i, a)| (Some(i), a)))
    {
        match validate(section, index, ctx, problems) {
            Some(entry) => accounts.push(entry),
            None => accounts_ok = false,
        }
    }
    check_unique(&accounts, problems);
    (accounts, accounts_ok)
}

/// Validates `[account]` (`index = None`) or `accounts[index]`.
pub(super) fn validate(
    raw: AccountSection,
    index: Option<usize>,
    ctx: &Context<'_>,
    problems: &mut Vec<String>,
) -> Option<AccountEntry> {
    let label = match (index, &raw.name) {
        (None, _) => "account".to_owned(),
        (Some(i), Some(n)) => format!("accounts[{i}] \"{n}\""),
        (Some(i), None) => format!("accounts[{i}]"),
    };
    let mut errors: Vec<String> = Vec::new();
    let delivery = match raw.delivery.as_deref() {
        None | Some("auto") => None,
        Some(other) => other
            .parse::<Strategy>()
            .map_err(|e| errors.push(format!("delivery {e}")))
            .ok(),
    };
    let name = match (index, &raw.name) {
        (None, None) => PRIMARY_NAME.to_owned(),
        (None, Some(_)) => {
            errors.push("name only applies to [[accounts]] entries".into());
            PRIMARY_NAME.to_owned()
        }
        (Some(_), Some(n)) if valid_name(n) => n.clone(),
        (Some(_), Some(n)) => {
            errors.push(format!(
                "name {n:?} must be 1–32 characters of a-z, 0-9, - and _"
            ));
            n.clone()
        }
        (Some(_), None) => {
            errors.push("name is missing".into());
            String::new()
        }
    };
    let path = match (index, raw.path) {
        (None, None) => ctx.server_path.to_owned(),
        (None, Some(_)) => {
            errors.push("path only applies to [[accounts]] entries (use server.path)".into());
            ctx.server_path.to_owned()
        }
        (Some(_), Some(p)) => p,
        (Some(_), None) => format!("{}/{name}", ctx.server_path.trim_end_matches('/')),
    };
    if !path.starts_with('/') || path.len() < 2 || path.contains(['?', '#', ' ', '{', '}', '*']) {
        errors.push(format!("path {path:?} must start with / and name a path"));
    }
    if index.is_none() && (raw.rules.is_some() || raw.default_reply.is_some()) {
        errors.push(
            "rules and default_reply of the single account are written at the top level".into(),
        );
    }

    let prefix = env_prefix(index.map(|_| name.as_str()));
    let pick = |file_value: Option<String>, var: &str| {
        (ctx.env)(&format!("{prefix}{var}"))
            .filter(|v| !v.is_empty())
            .or(file_value)
    };
    let kind_name = raw.kind.as_deref().unwrap_or("official");
    let token = pick(raw.token, "TOKEN");
    let token_given = token.is_some();
    // A DingTalk robot's event envelope is addressed to its AppKey or CorpId.
    let mut dingtalk_receive_id: Option<String> = None;
    let aes_key = pick(raw.encoding_aes_key, "ENCODING_AES_KEY");
    let token = match token {
        // The console asks for 3–32 letters and digits; any printable ASCII
        // is accepted so that test and legacy tokens keep working.
        Some(t) if !t.is_empty() && t.len() <= 128 && t.bytes().all(|b| b.is_ascii_graphic()) => {
            Secret::new(t)
        }
        Some(_) => {
            errors.push("token must be printable ASCII without spaces".into());
            Secret::new("")
        }
        // DingTalk robots authenticate by their AppSecret alone.
        None if kind_name == "dingtalk" => Secret::new(""),
        None => {
            errors.push(format!(
                "token is missing (set it in the file or in {prefix}TOKEN)"
            ));
            Secret::new("")
        }
    };

    if kind_name != "wecom_bot" && raw.bot_id.is_some() {
        errors.push("bot_id only applies to kind = \"wecom_bot\"".into());
    }
    if kind_name != "feishu" {
        for (set, key) in [
            (raw.encrypt_key.is_some(), "encrypt_key"),
            (raw.lark.is_some(), "lark"),
            (raw.feishu.is_some(), "feishu"),
        ] {
            if set {
                errors.push(format!("{key} only applies to kind = \"feishu\""));
            }
        }
    }
    let (kind, app_id, app_secret, mode) = match kind_name {
        "official" => {
            for (set, key) in [
                (raw.corp_id.is_some(), "corp_id"),
                (raw.corp_secret.is_some(), "corp_secret"),
                (raw.agent_id.is_some(), "agent_id"),
                (raw.kf.is_some(), "kf"),
            ] {
                if set {
                    errors.push(format!(
                        "{key} only applies to kind = \"wecom\" or \"kf\" (this is an Official Account)"
                    ));
                }
            }
            let app_id = pick(raw.app_id, "APP_ID");
            let app_secret = pick(raw.app_secret, "APP_SECRET");
            let mode = match raw.mode.as_deref().unwrap_or("plain").parse::<Mode>() {
                Ok(m) => m,
                Err(e) => {
                    errors.push(e);
                    Mode::Plain
                }
            };
            if let Some(id) = &app_id {
                if !valid_id(id) {
                    errors.push(format!("app_id {id:?} is not an app id"));
                }
            }
            if mode != Mode::Plain {
                if aes_key.is_none() {
                    errors.push(format!(
                        "encoding_aes_key is required in {} mode (or set {prefix}ENCODING_AES_KEY)",
                        mode.as_str()
                    ));
                }
                if app_id.is_none() {
                    errors.push(format!(
                        "app_id is required in {} mode (or set {prefix}APP_ID)",
                        mode.as_str()
                    ));
                }
            }
            if app_secret.is_some() && app_id.is_none() {
                errors.push(format!(
                    "app_secret is set but app_id is missing (or set {prefix}APP_ID)"
                ));
            }
            (AccountKind::Official, app_id, app_secret, mode)
        }
        "wecom" | "kf" => {
            for (set, key, instead) in [
                (raw.app_id.is_some(), "app_id", "corp_id"),
                (raw.app_secret.is_some(), "app_secret", "corp_secret"),
            ] {
                if set {
                    errors.push(format!(
                        "{key} does not apply to kind = \"{kind_name}\" (use {instead})"
                    ));
                }
            }
            if raw.mode.as_deref().is_some_and(|m| m != "safe") {
                errors.push(format!(
                    "WeCom pushes are always encrypted: leave mode out for kind = \"{kind_name}\""
                ));
            }
            let corp_id = pick(raw.corp_id, "CORP_ID");
            let corp_secret = pick(raw.corp_secret, "CORP_SECRET");
            match &corp_id {
                Some(id) if !valid_id(id) => {
                    errors.push(format!("corp_id {id:?} is not a corp id"));
                }
                Some(_) => {}
                None => errors.push(format!(
                    "corp_id is required for kind = \"{kind_name}\" (or set {prefix}CORP_ID)"
                )),
            }
            if aes_key.is_none() {
                errors.push(format!(
                    "encoding_aes_key is required: WeCom pushes are always encrypted (or set {prefix}ENCODING_AES_KEY)"
                ));
            }
            let kind = if kind_name == "wecom" {
                if raw.kf.is_some() {
                    errors.push("kf only applies to kind = \"kf\"".into());
                }
                match raw.agent_id {
                    Some(id) if id > 0 => AccountKind::WeCom { agent_id: id },
                    Some(id) => {
                        errors.push(format!("agent_id must be a positive number, not {id}"));
                        AccountKind::WeCom { agent_id: 0 }
                    }
                    None => {
                        errors.push("agent_id is required for kind = \"wecom\"".into());
                        AccountKind::WeCom { agent_id: 0 }
                    }
                }
            } else {
                if raw.agent_id.is_some() {
                    errors.push(
                        "agent_id does not apply to kind = \"kf\" (Customer Service has none)"
                            .into(),
                    );
                }
                if corp_secret.is_none() {
                    errors.push(format!(
                        "corp_secret (the Customer Service secret) is required for kind = \"kf\": messages are pulled with it (or set {prefix}CORP_SECRET)"
                    ));
                }
                AccountKind::Kf(kf_settings(raw.kf.unwrap_or_default(), &mut errors))
            };
            (kind, corp_id, corp_secret, Mode::Safe)
        }
        "feishu" => {
            refuse_keys(
                &mut errors,
                "feishu",
                "Feishu has app_id, app_secret, token and encrypt_key",
                &[
                    (raw.corp_id.is_some(), "corp_id"),
                    (raw.corp_secret.is_some(), "corp_secret"),
                    (raw.agent_id.is_some(), "agent_id"),
                    (raw.kf.is_some(), "kf"),
                    (raw.mode.is_some(), "mode"),
                    (aes_key.is_some(), "encoding_aes_key"),
                    (
                        raw.previous_encoding_aes_key.is_some(),
                        "previous_encoding_aes_key",
                    ),
                ],
            );
            let app_id = pick(raw.app_id, "APP_ID");
            let app_secret = pick(raw.app_secret, "APP_SECRET");
            match &app_id {
                Some(id) if !valid_id(id) => {
                    errors.push(format!("app_id {id:?} is not an app id (cli_…)"));
                }
                Some(_) => {}
                None => errors.push(format!(
                    "app_id is required for kind = \"feishu\" (or set {prefix}APP_ID)"
                )),
            }
            if app_secret.is_none() {
                errors.push(format!(
                    "app_secret is required for kind = \"feishu\": every answer goes through the reply API (or set {prefix}APP_SECRET)"
                ));
            }
            let encrypt_key = match pick(raw.encrypt_key, "ENCRYPT_KEY") {
                Some(k)
                    if k.is_empty()
                        || k.len() > 256
                        || !k.bytes().all(|b| b.is_ascii_graphic()) =>
                {
                    errors.push("encrypt_key must be printable ASCII without spaces".into());
                    None
                }
                k => k.map(Secret::new),
            };
            let section = raw.feishu.unwrap_or_default();
            if let Some(id) = &section.bot_open_id {
                if !valid_id(id) {
                    errors.push(format!(
                        "feishu.bot_open_id {id:?} is not an open_id (ou_…)"
                    ));
                }
            }
            let mode = if encrypt_key.is_some() {
                Mode::Safe
            } else {
                Mode::Plain
            };
            let settings = FeishuSettings {
                encrypt_key,
                lark: raw.lark.unwrap_or(false),
                require_mention: section.require_mention,
                bot_open_id: section.bot_open_id,
            };
            (AccountKind::Feishu(settings), app_id, app_secret, mode)
        }
        "dingtalk" => {
            refuse_keys(
                &mut errors,
                "dingtalk",
                "a robot has app_id and app_secret; its event subscription token, encoding_aes_key and corp_id",
                &[
                    (raw.corp_secret.is_some(), "corp_secret"),
                    (raw.agent_id.is_some(), "agent_id"),
                    (raw.kf.is_some(), "kf"),
                    (raw.mode.is_some(), "mode"),
                    (
                        raw.previous_encoding_aes_key.is_some(),
                        "previous_encoding_aes_key",
                    ),
                ],
            );
            let app_id = pick(raw.app_id, "APP_ID");
            let app_secret = pick(raw.app_secret, "APP_SECRET");
            if let Some(id) = &app_id {
                if !valid_id(id) {
                    errors.push(format!("app_id {id:?} is not an AppKey"));
                }
            }
            // The encrypted event callbacks (事件订阅): a token and an
            // EncodingAESKey together, the envelope's receive id the corp
            // id when given (older enterprise apps), else the AppKey.
            let corp_id = pick(raw.corp_id, "CORP_ID");
            if let Some(id) = &corp_id {
                if !valid_id(id) {
                    errors.push(format!("corp_id {id:?} is not a CorpId"));
                }
            }
            dingtalk_receive_id = corp_id.or_else(|| app_id.clone());
            match (token_given, aes_key.is_some()) {
                (true, false) => errors.push(format!(
                    "token is set but encoding_aes_key is missing: DingTalk's event callbacks need both (or set {prefix}ENCODING_AES_KEY)"
                )),
                (false, true) => errors.push(format!(
                    "encoding_aes_key is set but token is missing: DingTalk's event callbacks need both (or set {prefix}TOKEN)"
                )),
                _ => {}
            }
            if aes_key.is_some() && dingtalk_receive_id.is_none() {
                errors.push(format!(
                    "app_id (the AppKey, the events' receive id) is required with encoding_aes_key (or set {prefix}APP_ID)"
                ));
            }
            if app_secret.is_none() {
                errors.push(format!(
                    "app_secret is required for kind = \"dingtalk\": every callback is signed with it (or set {prefix}APP_SECRET)"
                ));
            }
            (AccountKind::DingTalk, app_id, app_secret, Mode::Plain)
        }
        "wecom_bot" => {
            refuse_keys(
                &mut errors,
                "wecom_bot",
                "a 智能机器人 has token, encoding_aes_key and bot_id",
                &[
                    (raw.app_id.is_some(), "app_id"),
                    (raw.app_secret.is_some(), "app_secret"),
                    (raw.corp_id.is_some(), "corp_id"),
                    (raw.corp_secret.is_some(), "corp_secret"),
                    (raw.agent_id.is_some(), "agent_id"),
                    (raw.kf.is_some(), "kf"),
                ],
            );
            if raw.mode.as_deref().is_some_and(|m| m != "safe") {
                errors.push(
                    "智能机器人 callbacks are always encrypted: leave mode out for kind = \"wecom_bot\""
                        .into(),
                );
            }
            if aes_key.is_none() {
                errors.push(format!(
                    "encoding_aes_key is required: 智能机器人 callbacks are always encrypted (or set {prefix}ENCODING_AES_KEY)"
                ));
            }
            let bot_id = pick(raw.bot_id, "BOT_ID");
            if let Some(id) = &bot_id {
                if !valid_id(id) {
                    errors.push(format!("bot_id {id:?} is not a bot id"));
                }
            }
            (AccountKind::WeComBot, bot_id, None, Mode::Safe)
        }
        other => {
            errors.push(format!(
                "kind must be \"official\", \"wecom\", \"kf\", \"feishu\", \"dingtalk\" or \"wecom_bot\", not {other:?}"
            ));
            (AccountKind::Official, None, None, Mode::Plain)
        }
    };

    let mut make_crypto = |key: Option<String>, what: &str| -> Option<MessageCrypto> {
        let key = key?;
        match AesKey::from_encoding_aes_key(&key) {
            // A 智能机器人's envelope carries an empty receive id.
            Ok(k) if kind == AccountKind::WeComBot => Some(MessageCrypto::new(k, "")),
            Ok(k) if kind == AccountKind::DingTalk => Some(MessageCrypto::new(
                k,
                dingtalk_receive_id.clone().unwrap_or_default(),
            )),
            Ok(k) => Some(MessageCrypto::new(k, app_id.clone().unwrap_or_default())),
            Err(e) => {
                errors.push(format!("{what}: {e}"));
                None
            }
        }
    };
    let configured_key = aes_key.clone().map(Secret::new);
    let crypto = make_crypto(aes_key, "encoding_aes_key");
    let previous_crypto = make_crypto(raw.previous_encoding_aes_key, "previous_encoding_aes_key");

    let api_base_url = match raw.api_base_url {
        Some(url) => {
            let base = url.trim_end_matches('/').to_owned();
            if !super::token::valid_base_url(&base) {
                errors.push(format!(
                    "api_base_url {url:?} is not an http(s) URL like {WECOM_BASE_URL}"
                ));
            }
            base
        }
        None if kind.is_wecom() => WECOM_BASE_URL.to_owned(),
        None => match &kind {
            AccountKind::Feishu(f) if f.lark => LARK_BASE_URL.to_owned(),
            AccountKind::Feishu(_) => FEISHU_BASE_URL.to_owned(),
            AccountKind::DingTalk => DINGTALK_BASE_URL.to_owned(),
            AccountKind::WeComBot => WECOM_BASE_URL.to_owned(),
            _ => ctx.default_api_base_url.to_owned(),
        },
    };

    let robot_api_base_url = if kind == AccountKind::DingTalk {
        let url = pick(raw.robot_api_base_url, "ROBOT_API_BASE_URL")
            .unwrap_or_else(|| DINGTALK_ROBOT_API_BASE_URL.to_owned());
        let base = url.trim_end_matches('/').to_owned();
        if !super::token::valid_base_url(&base) {
            errors.push(format!(
                "robot_api_base_url {url:?} is not an http(s) URL like {DINGTALK_ROBOT_API_BASE_URL}"
            ));
        }
        Some(base)
    } else {
        if raw.robot_api_base_url.is_some() {
            errors.push("robot_api_base_url only applies to kind = \"dingtalk\"".into());
        }
        None
    };

    let namespace = match (&kind, &app_id) {
        (AccountKind::WeCom { agent_id }, Some(corp)) => format!("{corp}.{agent_id}"),
        (AccountKind::Kf(_), Some(corp)) => format!("{corp}.kf"),
        (AccountKind::Feishu(_), Some(app_id)) => format!("feishu.{app_id}"),
        (AccountKind::DingTalk, Some(app_id)) => format!("dingtalk.{app_id}"),
        (AccountKind::DingTalk, None) => format!("dingtalk.{name}"),
        (AccountKind::WeComBot, Some(bot_id)) => format!("wecom_bot.{bot_id}"),
        (AccountKind::WeComBot, None) => format!("wecom_bot.{name}"),
        (_, Some(app_id)) => app_id.clone(),
        (_, None) => name.clone(),
    };

    // An account with rules or a default reply of its own uses only those;
    // otherwise it answers with the top-level ones.
    let rules = match (raw.rules, raw.default_reply) {
        (None, None) => ctx.top_rules.cloned(),
        (rules, default) => match RuleSet::compile(&rules.unwrap_or_default(), default.as_ref()) {
            Ok(r) => Some(Arc::new(r.with_voice(ctx.voice.clone()))),
            Err(rule_errors) => {
                errors.extend(rule_errors.iter().map(ToString::to_string));
                None
            }
        },
    };

    let failed = !errors.is_empty();
    problems.extend(errors.into_iter().map(|e| format!("{label}.{e}")));
    if failed {
        return None;
    }
    Some(AccountEntry {
        name,
        path,
        account: AccountConfig {
            kind,
            app_id,
            token,
            encoding_aes_key: configured_key.filter(|_| crypto.is_some()),
            crypto,
            previous_crypto,
            app_secret: app_secret.map(Secret::new),
            mode,
            api_base_url,
            robot_api_base_url,
        },
        rules: rules?,
        delivery,
        namespace,
    })
}

fn kf_settings(raw: KfSection, errors: &mut Vec<String>) -> KfSettings {
    if !(60..=3 * 86_400).contains(&raw.max_message_age_secs) {
        errors.push(format!(
            "kf.max_message_age_secs must be between 60 and 259200 (sync_msg keeps 3 days), not {}",
            raw.max_message_age_secs
        ));
    }
    if !(1..=1000).contains(&raw.sync_limit) {
        errors.push(format!(
            "kf.sync_limit must be between 1 and 1000, not {}",
            raw.sync_limit
        ));
    }
    if !(5..=600).contains(&raw.lock_ttl_secs) {
        errors.push(format!(
            "kf.lock_ttl_secs must be between 5 and 600, not {}",
            raw.lock_ttl_secs
        ));
    }
    KfSettings {
        max_message_age: Duration::from_secs(raw.max_message_age_secs),
        sync_limit: raw.sync_limit,
        lock_ttl: Duration::from_secs(raw.lock_ttl_secs),
    }
}

/// Paths, names and namespaces must not be shared between accounts.
pub(super) fn check_unique(accounts: &[AccountEntry], problems: &mut Vec<String>) {
    let mut names = HashSet::new();
    let mut paths = HashSet::new();
    let mut namespaces = HashSet::new();
    for a in accounts {
        if !names.insert(a.name.as_str()) {
            problems.push(format!("accounts: the name {:?} is used twice", a.name));
        }
        if !paths.insert(a.path.as_str()) {
            problems.push(format!(
                "accounts: the path {:?} is used twice (account {:?})",
                a.path, a.name
            ));
        }
        if !namespaces.insert(a.namespace.as_str()) {
            problems.push(format!(
                "accounts: account {:?} is the same WeChat account as another one ({})",
                a.name, a.namespace
            ));
        }
    }
}

/// Refuses each key that is set (`true`) but does not apply to `kind`;
/// `has` says what the kind does have.
fn refuse_keys(errors: &mut Vec<String>, kind: &str, has: &str, keys: &[(bool, &str)]) {
    for (_, key) in keys.iter().filter(|(set, _)| *set) {
        errors.push(format!("{key} does not apply to kind = \"{kind}\" ({has})"));
    }
}
