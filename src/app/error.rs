//! Why the application could not be built.

use std::net::SocketAddr;

use crate::platform::wechat_api::WechatError;
use crate::store::StoreError;
use crate::token::TokenError;

/// Why the application could not be built.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// The listen address cannot be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// Address.
        addr: SocketAddr,
        /// Cause.
        source: std::io::Error,
    },
    /// The configured store cannot be used (a URL Redis does not accept).
    #[error("store: {0}")]
    Store(StoreError),
    /// The outbound API client cannot be built.
    #[error("WeChat API client: {0}")]
    Client(WechatError),
    /// The Feishu API client cannot be built.
    #[error("Feishu API client: {0}")]
    FeishuClient(crate::platform::feishu::FeishuError),
    /// The DingTalk API client cannot be built.
    #[error("DingTalk API client: {0}")]
    DingTalkClient(crate::platform::dingtalk::DingTalkError),
    /// WeChat refused the account's credentials (40013, 40125, 40001 on a
    /// token request): the configuration is wrong.
    #[error("invalid configuration: {0}")]
    Credentials(TokenError),
    /// An upstream's HTTP client cannot be built.
    #[error("agent upstream client: {0}")]
    Upstream(String),
    /// No access token could be had (`wxgate token`).
    #[error("{0}")]
    Token(TokenError),
    /// Access tokens need `account.app_id` and `account.app_secret`.
    #[error("no access token: the account's app_id and app_secret (corp_id and corp_secret for WeCom) are not set")]
    NoCredentials,
    /// `--account` names no configured account.
    #[error("{0}")]
    NoAccount(String),
}

impl StartupError {
    /// The configuration is at fault (exit code 78 rather than 1).
    pub fn is_config(&self) -> bool {
        match self {
            StartupError::Credentials(_)
            | StartupError::NoCredentials
            | StartupError::NoAccount(_)
            | StartupError::Store(_) => true,
            StartupError::Token(e) => e.is_config(),
            _ => false,
        }
    }
}
