//! Each account's access-token machinery: the store, the API client and
//! the token manager, built from the configuration.

use std::sync::Arc;
use std::time::Duration;

use super::StartupError;
use crate::clock::{Clock, SystemClock};
use crate::config::{AccountEntry, AccountKind, Config, StoreConfig};
use crate::platform::dingtalk::{DingTalkApi, DingTalkClient, DingTalkClientSettings};
use crate::platform::feishu::{FeishuApi, FeishuClient, FeishuClientSettings};
use crate::platform::wechat_api::{ClientSettings, TokenSource, WechatApi, WechatClient};
use crate::store::{MemoryStore, RedisStore, Store};
use crate::token::{IssuedToken, TokenManager, TokenSettings};

/// The access token machinery of one account, built from the config.
pub struct TokenParts {
    /// The shared store the tokens live in.
    pub store: Arc<dyn Store>,
    /// The token manager.
    pub tokens: TokenManager,
    /// The WeChat-family API with token handling.
    pub api: Option<WechatApi>,
    /// The Feishu API with token handling (Feishu accounts).
    pub feishu: Option<FeishuApi>,
    /// The DingTalk robot send API with token handling (DingTalk robots
    /// with an AppKey).
    pub dingtalk: Option<DingTalkApi>,
}

impl TokenParts {
    /// Builds the store, client and manager of the account `name` (the
    /// primary one when `None`); `None` when it has no app id and secret (no
    /// outbound calls, so no tokens). Does no I/O.
    pub fn from_config(
        config: &Config,
        name: Option<&str>,
        clock: Arc<dyn Clock>,
    ) -> Result<Option<TokenParts>, StartupError> {
        let entry = config.find_account(name).map_err(StartupError::NoAccount)?;
        let store = open_store(config)?;
        TokenParts::for_account(config, entry, store, clock)
    }

    pub(super) fn for_account(
        config: &Config,
        entry: &AccountEntry,
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
    ) -> Result<Option<TokenParts>, StartupError> {
        let account = &entry.account;
        let (Some(app_id), Some(app_secret)) = (&account.app_id, &account.app_secret) else {
            return Ok(None);
        };
        let t = &config.token;
        let settings = TokenSettings::new(
            Duration::from_secs(t.refresh_margin_secs),
            Duration::from_millis(t.lock_ttl_ms),
        );
        let namespace = config.store.namespace(&entry.namespace);
        if account.kind == AccountKind::DingTalk {
            // The robot send API's access token, behind the same manager.
            let client = DingTalkClient::new(DingTalkClientSettings {
                base_url: account
                    .robot_api_base_url
                    .clone()
                    .unwrap_or_else(|| crate::config::DINGTALK_ROBOT_API_BASE_URL.to_owned()),
                timeout: Duration::from_secs(t.timeout_secs),
                app_key: app_id.clone(),
                app_secret: app_secret.clone(),
            })
            .map_err(StartupError::DingTalkClient)?;
            let client = Arc::new(client);
            let tokens =
                TokenManager::new(client.clone(), store.clone(), &namespace, clock, settings);
            let dingtalk = DingTalkApi::new(client, tokens.clone());
            return Ok(Some(TokenParts {
                store,
                tokens,
                api: None,
                feishu: None,
                dingtalk: Some(dingtalk),
            }));
        }
        if let AccountKind::Feishu(_) = account.kind {
            // The tenant_access_token, behind the same manager.
            let client = FeishuClient::new(FeishuClientSettings {
                base_url: account.api_base_url.clone(),
                timeout: Duration::from_secs(t.timeout_secs),
                app_id: app_id.clone(),
                app_secret: app_secret.clone(),
            })
            .map_err(StartupError::FeishuClient)?;
            let client = Arc::new(client);
            let tokens =
                TokenManager::new(client.clone(), store.clone(), &namespace, clock, settings);
            let feishu = FeishuApi::new(client, tokens.clone());
            return Ok(Some(TokenParts {
                store,
                tokens,
                api: None,
                feishu: Some(feishu),
                dingtalk: None,
            }));
        }
        let token_source = if account.kind.is_wecom() {
            TokenSource::WeCom
        } else {
            t.source
        };
        let client = WechatClient::new(ClientSettings {
            base_url: account.api_base_url.clone(),
            timeout: Duration::from_secs(t.timeout_secs),
            app_id: app_id.clone(),
            app_secret: app_secret.clone(),
            token_source,
        })
        .map_err(StartupError::Client)?;
        let client = Arc::new(client);
        let tokens = TokenManager::new(client.clone(), store.clone(), &namespace, clock, settings);
        let api = WechatApi::new(client, tokens.clone());
        Ok(Some(TokenParts {
            store,
            tokens,
            api: Some(api),
            feishu: None,
            dingtalk: None,
        }))
    }
}

pub(super) fn open_store(config: &Config) -> Result<Arc<dyn Store>, StartupError> {
    Ok(match &config.store {
        StoreConfig::Memory => Arc::new(MemoryStore::new()),
        StoreConfig::Redis { settings, .. } => {
            Arc::new(RedisStore::open(settings).map_err(StartupError::Store)?)
        }
    })
}

/// Gets the account's current access token once, as `wxgate token` does:
/// from the shared store when another node put it there, else from WeChat.
pub async fn fetch_access_token(
    config: &Config,
    account: Option<&str>,
) -> Result<IssuedToken, StartupError> {
    let parts = TokenParts::from_config(config, account, Arc::new(SystemClock))?
        .ok_or(StartupError::NoCredentials)?;
    parts.tokens.token().await.map_err(StartupError::Token)
}
