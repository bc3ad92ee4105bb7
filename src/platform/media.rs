//! Temporary-media upload for the agent's media answers: the agent layer's
//! [`MediaUpload`] over the account's WeChat API (`POST
//! /cgi-bin/media/upload`, the same path and answer on the Official Account
//! API and WeCom's, which 微信客服 uses), with the limits the platform
//! declares for each kind.

use std::sync::Arc;

use crate::agent::media::{MediaKind, MediaLimits, MediaUpload, Upload, UploadError, UploadFuture};
use crate::config::AccountKind;

use super::wechat_api::{CallError, ErrCode, MediaFile, WechatApi};

/// The account's upload, through `api`, within its platform's limits.
pub fn uploader(kind: &AccountKind, api: WechatApi) -> Arc<dyn MediaUpload> {
    let limits = match kind {
        AccountKind::Official => super::official::media_limits,
        AccountKind::WeCom { .. } | AccountKind::Kf(_) => super::wecom::media_limits,
        // Feishu, DingTalk and 智能机器人 declare no media upload; nothing
        // asks for theirs.
        AccountKind::Feishu(_) | AccountKind::DingTalk | AccountKind::WeComBot => |_| None,
    };
    Arc::new(WechatMedia { api, limits })
}

/// Uploads through one account's API.
struct WechatMedia {
    api: WechatApi,
    limits: fn(MediaKind) -> Option<MediaLimits>,
}

impl MediaUpload for WechatMedia {
    fn limits(&self, kind: MediaKind) -> Option<MediaLimits> {
        (self.limits)(kind)
    }

    fn upload(&self, upload: Upload) -> UploadFuture<'_> {
        Box::pin(async move {
            let file = MediaFile {
                bytes: &upload.bytes,
                filename: &upload.filename,
                content_type: &upload.content_type,
            };
            self.api
                .upload_media(upload.kind.as_str(), file)
                .await
                .map_err(|e| match &e {
                    CallError::Wechat(w) if w.code() == Some(ErrCode::ApiUnauthorized) => {
                        UploadError::Unauthorized
                    }
                    _ => UploadError::Failed(e.to_string()),
                })
        })
    }
}
