//! The outbound WeChat API: a typed client and the call wrapper around it.
//!
//! - [`WechatClient`]: one method per endpoint wxgate needs (`/cgi-bin/token`,
//!   `/cgi-bin/stable_token`, `/cgi-bin/getcallbackip`, custom send, typing;
//!   for WeCom `/cgi-bin/gettoken`, app message send, `kf/sync_msg`, `kf/send_msg`).
//!   Every answer is checked for `errcode`; every call is bounded in time; the
//!   base URL is a setting so tests point it at a local fake. It implements
//!   [`TokenFetcher`](crate::token::TokenFetcher), so the token manager
//!   refreshes through it without knowing HTTP.
//! - [`WechatApi`]: calls with the shared access token, refreshing it once and
//!   retrying once when WeChat says it is invalid or expired, and backing off
//!   (with jitter, never in a loop) when WeChat throttles.
//! - [`WechatError`] and [`ErrCode`]: WeChat's error codes as values with
//!   their documented meaning and remedy.
//!
//! Knows nothing of axum, callbacks or rules.

mod api;
mod client;
mod error;
mod types;
mod wecom;

pub use self::api::{CallError, RetryPolicy, WechatApi};
pub use self::client::{ClientSettings, MediaFile, WechatClient, DEFAULT_BASE_URL};
pub use self::error::{ErrCode, Remedy, WechatError};
pub use self::types::{
    Article, CustomBody, CustomMessage, MediaContent, MusicContent, NewsContent, TextContent,
    TypingCommand, VideoContent,
};
pub use self::wecom::{AppMessage, KfMessage, KfSendRequest, KfSyncRequest, KfSyncResponse};
pub use crate::token::TokenSource;
