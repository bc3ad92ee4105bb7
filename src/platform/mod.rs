//! The platforms wxgate speaks to, each a folder that owns its dialect (how
//! its callback is verified, opened and sealed), its conversion to and from
//! the domain, its outbound API, its late channel, and that declares its
//! [`Capabilities`]:
//!
//! - [`official`]: Official Accounts (公众号 / 服务号);
//! - [`wecom`]: WeCom self-built apps (企业微信自建应用);
//! - [`kf`]: WeChat Customer Service (微信客服), pulled on notification;
//! - [`feishu`]: Feishu / Lark bots (飞书机器人), JSON events answered
//!   through the reply API;
//! - [`dingtalk`]: DingTalk robots (钉钉机器人), JSON callbacks answered in
//!   the response or through the message's `sessionWebhook`;
//! - [`wecom_bot`]: WeCom 智能机器人, JSON callbacks in the WeCom envelope
//!   answered with a stream WeCom pulls until it is finished.
//!
//! Shared by the WeChat family: [`callback`] (the XML + AES dialect),
//! [`wechat_api`] (the outbound client and token fetcher), [`send`] (ordered
//! sends with bounded retries), [`callback_ips`] (the callback IP list),
//! [`media`] (temporary-media upload for the agent's media answers); and
//! for every platform [`simulate`] (a client that speaks like each account
//! kind's platform, for `wxgate simulate`, `verify-url` and the tests).
//!
//! Adding a platform: a folder here declaring its dialect and capabilities,
//! and one arm in [`dialect`] and [`capabilities`] (plus its account kind in
//! `crate::config`). Depends on the layers below it; nothing below knows it.

pub mod callback;
pub mod callback_ips;
pub mod convert;
pub mod dingtalk;
pub mod feishu;
pub mod kf;
pub mod media;
pub mod official;
pub mod send;
pub mod simulate;
pub mod wechat_api;
pub mod wecom;
pub mod wecom_bot;

use crate::config::{AccountConfig, AccountKind};
use crate::domain::Capabilities;
pub use callback::{Callback, CallbackError, CallbackQuery, Dialect, Inbound};

pub use convert::numeric_id;

/// The callback dialect of an account's platform.
pub fn dialect(kind: &AccountKind) -> Dialect {
    match kind {
        AccountKind::Official => official::DIALECT,
        AccountKind::WeCom { .. } => wecom::DIALECT,
        AccountKind::Kf(_) => kf::DIALECT,
        AccountKind::Feishu(_) => feishu::DIALECT,
        AccountKind::DingTalk => dingtalk::DIALECT,
        AccountKind::WeComBot => wecom_bot::DIALECT,
    }
}

/// What an account can do, from its platform and its credentials (no
/// credentials, no outbound API). `typing` is `[agent] typing`.
pub fn capabilities(account: &AccountConfig, typing: bool) -> Capabilities {
    let can_send = account.has_api_credentials();
    match account.kind {
        AccountKind::Official => official::capabilities(can_send, typing),
        AccountKind::WeCom { .. } => wecom::capabilities(can_send),
        AccountKind::Kf(_) => kf::capabilities(),
        AccountKind::Feishu(_) => feishu::capabilities(),
        AccountKind::DingTalk => dingtalk::capabilities(),
        AccountKind::WeComBot => wecom_bot::capabilities(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_platform_declares_its_dialect_and_means() {
        assert_eq!(official::DIALECT.no_reply_body, "success");
        assert_eq!(wecom::DIALECT.no_reply_body, "");
        assert_eq!(kf::DIALECT, wecom::DIALECT);
        // An Official Account without credentials can only answer passively.
        let bare = official::capabilities(false, true);
        assert!(!bare.can_send_late() && !bare.typing);
        assert_eq!(
            bare.retry_window(),
            Some(std::time::Duration::from_secs(15))
        );
        let full = official::capabilities(true, true);
        assert_eq!(full.late_send.and_then(|l| l.messages_per_turn), Some(5));
        // 微信客服 never answers in the callback: its messages are pulled.
        assert!(kf::capabilities().passive_reply.is_none());
        assert!(kf::capabilities().can_send_late());
        // Official Account text renders <a href> links, with or without the API.
        use crate::domain::markdown::LinkStyle;
        assert_eq!(bare.link_style(), LinkStyle::Anchor);
        assert_eq!(full.link_style(), LinkStyle::Anchor);
        assert_eq!(wecom::capabilities(true).link_style(), LinkStyle::Text);
        assert_eq!(kf::capabilities().link_style(), LinkStyle::Text);
        // Feishu takes no answer in the callback and renders markdown.
        let feishu = feishu::capabilities();
        assert!(feishu.passive_reply.is_none() && feishu.can_send_late());
        assert_eq!(feishu.link_style(), LinkStyle::Markdown);
        // A 智能机器人 streams, renders markdown and has one late push.
        let bot = wecom_bot::capabilities();
        assert!(bot.streaming && bot.markdown && bot.can_send_late());
        assert_eq!(bot.link_style(), LinkStyle::Markdown);
    }
}
