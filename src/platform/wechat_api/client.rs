//! The typed HTTP client: one method per endpoint.

use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::types::{IpListResponse, MediaUploadResponse, Status, TokenResponse};
use super::wecom::{AppMessage, KfSendRequest, KfSendResponse, KfSyncRequest, KfSyncResponse};
use super::{CustomMessage, ErrCode, TokenSource, TypingCommand, WechatError};
use crate::secret::Secret;
use crate::token::{
    AccessToken, FetchError, FetchErrorKind, FetchFuture, FetchedToken, TokenFetcher,
};

/// Where the Official Account API lives.
pub const DEFAULT_BASE_URL: &str = crate::config::WECHAT_BASE_URL;

/// WeChat answers are small JSON objects; anything bigger is not one of them.
const MAX_RESPONSE_BYTES: usize = 1024 * 1024;

const TOKEN: &str = "/cgi-bin/token";
const STABLE_TOKEN: &str = "/cgi-bin/stable_token";
const CALLBACK_IP: &str = "/cgi-bin/getcallbackip";
const CUSTOM_SEND: &str = "/cgi-bin/message/custom/send";
const CUSTOM_TYPING: &str = "/cgi-bin/message/custom/typing";
const WECOM_TOKEN: &str = "/cgi-bin/gettoken";
const APP_SEND: &str = "/cgi-bin/message/send";
const KF_SYNC: &str = "/cgi-bin/kf/sync_msg";
const KF_SEND: &str = "/cgi-bin/kf/send_msg";
const MEDIA_UPLOAD: &str = "/cgi-bin/media/upload";

/// One file for [`WechatClient::upload_media`].
#[derive(Debug, Clone, Copy)]
pub struct MediaFile<'a> {
    /// The bytes.
    pub bytes: &'a [u8],
    /// Its name, with the extension WeChat checks.
    pub filename: &'a str,
    /// Its content type.
    pub content_type: &'a str,
}

/// What the client needs to know.
#[derive(Debug, Clone)]
pub struct ClientSettings {
    /// `https://api.weixin.qq.com`, or a fake in tests. No trailing slash.
    pub base_url: String,
    /// Upper bound on every call, connecting included.
    pub timeout: Duration,
    /// AppID.
    pub app_id: String,
    /// AppSecret.
    pub app_secret: Secret,
    /// Which endpoint issues tokens.
    pub token_source: TokenSource,
}

/// A client for the Official Account API. Cheap to share (`Arc`), not to clone.
#[derive(Debug)]
pub struct WechatClient {
    http: reqwest::Client,
    settings: ClientSettings,
}

impl WechatClient {
    /// Builds the HTTP client (rustls, bounded in time, no redirects).
    pub fn new(mut settings: ClientSettings) -> Result<WechatClient, WechatError> {
        settings.base_url = settings.base_url.trim_end_matches('/').to_owned();
        let http =
            crate::outbound::client(settings.timeout).map_err(|e| WechatError::Transport {
                endpoint: "(client)",
                reason: e.to_string(),
            })?;
        Ok(WechatClient { http, settings })
    }

    /// The settings in force.
    pub fn settings(&self) -> &ClientSettings {
        &self.settings
    }

    /// `GET /cgi-bin/token`: a new token; the previous one stops working
    /// after a short overlap.
    pub async fn classic_token(&self) -> Result<FetchedToken, WechatError> {
        let s = &self.settings;
        let request = self.http.get(self.url(TOKEN)).query(&[
            ("grant_type", "client_credential"),
            ("appid", s.app_id.as_str()),
            ("secret", s.app_secret.expose()),
        ]);
        let answer: TokenResponse = self.send(TOKEN, request).await?;
        token_from(TOKEN, answer)
    }

    /// `POST /cgi-bin/stable_token`: the current token while it is valid;
    /// `force_refresh` invalidates it and issues a new one (WeChat allows
    /// that 20 times a day, 30 s apart), so pass it only for a token known
    /// to be invalid.
    pub async fn stable_token(&self, force_refresh: bool) -> Result<FetchedToken, WechatError> {
        #[derive(Serialize)]
        struct Body<'a> {
            grant_type: &'a str,
            appid: &'a str,
            secret: &'a str,
            force_refresh: bool,
        }
        let s = &self.settings;
        let request = self.http.post(self.url(STABLE_TOKEN)).json(&Body {
            grant_type: "client_credential",
            appid: &s.app_id,
            secret: s.app_secret.expose(),
            force_refresh,
        });
        let answer: TokenResponse = self.send(STABLE_TOKEN, request).await?;
        token_from(STABLE_TOKEN, answer)
    }

    /// WeCom's `GET /cgi-bin/gettoken`: the token of one app secret (the
    /// corp id is `app_id`, the secret `app_secret`).
    pub async fn wecom_token(&self) -> Result<FetchedToken, WechatError> {
        let s = &self.settings;
        let request = self.http.get(self.url(WECOM_TOKEN)).query(&[
            ("corpid", s.app_id.as_str()),
            ("corpsecret", s.app_secret.expose()),
        ]);
        let answer: TokenResponse = self.send(WECOM_TOKEN, request).await?;
        token_from(WECOM_TOKEN, answer)
    }

    /// WeCom `POST /cgi-bin/message/send`: a message from an app.
    pub async fn send_app_message(
        &self,
        token: &AccessToken,
        message: &AppMessage,
    ) -> Result<(), WechatError> {
        let request = self
            .http
            .post(self.url(APP_SEND))
            .query(&[("access_token", token.expose())])
            .json(message);
        self.send::<Status>(APP_SEND, request).await.map(drop)
    }

    /// WeCom `POST /cgi-bin/kf/sync_msg`: one page of Customer Service messages.
    pub async fn kf_sync_msg(
        &self,
        token: &AccessToken,
        request: &KfSyncRequest,
    ) -> Result<KfSyncResponse, WechatError> {
        let request = self
            .http
            .post(self.url(KF_SYNC))
            .query(&[("access_token", token.expose())])
            .json(request);
        self.send(KF_SYNC, request).await
    }

    /// WeCom `POST /cgi-bin/kf/send_msg`: answers a customer; returns the message id.
    pub async fn kf_send_msg(
        &self,
        token: &AccessToken,
        message: &KfSendRequest,
    ) -> Result<String, WechatError> {
        let request = self
            .http
            .post(self.url(KF_SEND))
            .query(&[("access_token", token.expose())])
            .json(message);
        let answer: KfSendResponse = self.send(KF_SEND, request).await?;
        Ok(answer.msgid)
    }

    /// `POST /cgi-bin/media/upload?type=…` (multipart, field `media`):
    /// temporary media, kept three days; its `media_id`. The Official
    /// Account and WeCom (微信客服 included) share the path and the answer
    /// `{"type", "media_id", "created_at"}`.
    pub async fn upload_media(
        &self,
        token: &AccessToken,
        kind: &str,
        file: MediaFile<'_>,
    ) -> Result<String, WechatError> {
        let decode = |reason: String| WechatError::Decode {
            endpoint: MEDIA_UPLOAD,
            reason,
        };
        let part = reqwest::multipart::Part::bytes(file.bytes.to_vec())
            .file_name(file.filename.to_owned())
            .mime_str(file.content_type)
            .map_err(|e| decode(format!("content type {:?}: {e}", file.content_type)))?;
        let form = reqwest::multipart::Form::new().part("media", part);
        let request = self
            .http
            .post(self.url(MEDIA_UPLOAD))
            .query(&[("access_token", token.expose()), ("type", kind)])
            .multipart(form);
        let answer: MediaUploadResponse = self.send(MEDIA_UPLOAD, request).await?;
        if answer.media_id.is_empty() {
            return Err(decode("empty media_id".into()));
        }
        Ok(answer.media_id)
    }

    /// `GET /cgi-bin/getcallbackip`: the addresses (IPs and CIDRs) WeChat
    /// sends callbacks from.
    pub async fn callback_ips(&self, token: &AccessToken) -> Result<Vec<String>, WechatError> {
        let request = self
            .http
            .get(self.url(CALLBACK_IP))
            .query(&[("access_token", token.expose())]);
        let answer: IpListResponse = self.send(CALLBACK_IP, request).await?;
        Ok(answer.ip_list)
    }

    /// `POST /cgi-bin/message/custom/send`.
    pub async fn send_custom(
        &self,
        token: &AccessToken,
        message: &CustomMessage,
    ) -> Result<(), WechatError> {
        let request = self
            .http
            .post(self.url(CUSTOM_SEND))
            .query(&[("access_token", token.expose())])
            .json(message);
        self.send::<Status>(CUSTOM_SEND, request).await.map(drop)
    }

    /// `POST /cgi-bin/message/custom/typing`.
    pub async fn typing(
        &self,
        token: &AccessToken,
        to: &str,
        command: TypingCommand,
    ) -> Result<(), WechatError> {
        #[derive(Serialize)]
        struct Body<'a> {
            touser: &'a str,
            command: TypingCommand,
        }
        let request = self
            .http
            .post(self.url(CUSTOM_TYPING))
            .query(&[("access_token", token.expose())])
            .json(&Body {
                touser: to,
                command,
            });
        self.send::<Status>(CUSTOM_TYPING, request).await.map(drop)
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.settings.base_url)
    }

    /// Sends, reads a bounded body, checks `errcode`, then decodes `T`.
    async fn send<T: DeserializeOwned>(
        &self,
        endpoint: &'static str,
        request: reqwest::RequestBuilder,
    ) -> Result<T, WechatError> {
        let transport = |e: reqwest::Error| {
            if e.is_timeout() {
                WechatError::Timeout {
                    endpoint,
                    after: self.settings.timeout,
                }
            } else {
                // The URL's query carries the secret or the token: drop it.
                WechatError::Transport {
                    endpoint,
                    reason: e.without_url().to_string(),
                }
            }
        };
        let (status, body) = crate::outbound::send_bounded(request, MAX_RESPONSE_BYTES)
            .await
            .map_err(|e| match e {
                crate::outbound::BoundedError::Transport(e) => transport(e),
                crate::outbound::BoundedError::TooLarge(max) => WechatError::Decode {
                    endpoint,
                    reason: format!("answer larger than {max} bytes"),
                },
            })?;
        // WeChat reports errors in the body, normally with HTTP 200.
        if let Ok(s) = serde_json::from_slice::<Status>(&body) {
            if s.errcode != 0 {
                return Err(WechatError::Api {
                    endpoint,
                    code: ErrCode::from_code(s.errcode),
                    message: s.errmsg,
                });
            }
        }
        if !status.is_success() {
            return Err(WechatError::Status {
                endpoint,
                status: status.as_u16(),
            });
        }
        serde_json::from_slice(&body).map_err(|e| WechatError::Decode {
            endpoint,
            reason: e.to_string(),
        })
    }
}

fn token_from(endpoint: &'static str, answer: TokenResponse) -> Result<FetchedToken, WechatError> {
    if answer.access_token.is_empty() || answer.expires_in <= 0 {
        return Err(WechatError::Decode {
            endpoint,
            reason: format!(
                "empty token or non-positive expires_in ({})",
                answer.expires_in
            ),
        });
    }
    Ok(FetchedToken {
        access_token: AccessToken::new(answer.access_token),
        expires_in: Duration::from_secs(answer.expires_in.unsigned_abs()),
    })
}

impl TokenFetcher for WechatClient {
    fn fetch(&self, force_refresh: bool) -> FetchFuture<'_> {
        Box::pin(async move {
            let result = match self.settings.token_source {
                TokenSource::Stable => self.stable_token(force_refresh).await,
                // Every classic call issues a new token; there is nothing to force.
                TokenSource::Classic => self.classic_token().await,
                TokenSource::WeCom => self.wecom_token().await,
            };
            result.map_err(|e| {
                let kind = match e.code() {
                    // On a token request 40001 means a wrong secret, not a stale token.
                    Some(
                        ErrCode::InvalidCredential
                        | ErrCode::InvalidAppId
                        | ErrCode::InvalidAppSecret
                        | ErrCode::InvalidGrantType,
                    ) => FetchErrorKind::Credentials,
                    Some(ErrCode::IpNotWhitelisted | ErrCode::IpNotConfirmed(_)) => {
                        FetchErrorKind::NotAllowed
                    }
                    Some(ErrCode::QuotaExceeded | ErrCode::SystemBusy) => FetchErrorKind::Throttled,
                    _ => FetchErrorKind::Unavailable,
                };
                FetchError::new(kind, e)
            })
        })
    }
}
