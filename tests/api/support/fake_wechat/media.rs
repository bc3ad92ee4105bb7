//! `POST /cgi-bin/media/upload?access_token=…&type=…`, on both hosts (the
//! Official Account API and WeCom's, which 微信客服 uses): multipart with
//! the file in the field `media`. Checks the token as the host does (an
//! Official Account token, or a WeCom one), `type` (image, voice, video,
//! thumb; else 40004 invalid media type), the field (41005 media data
//! missing), and the documented size limits — Official Account: image and
//! voice 2 MB, video 10 MB, thumb 64 KB; WeCom: image 10 MB, voice 2 MB,
//! video 10 MB, at least 5 bytes — with the global errcodes 40009 (image),
//! 40010 (voice), 40011 (video), 40012 (thumb) and 40006 (file size).
//! Answers `{"type", "media_id", "created_at"}` with a fresh id; records
//! each accepted upload. [`FakeWechat::refuse_uploads`] makes every upload
//! answer an errcode (48001: the account lacks the permission).

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, Multipart, Query, State};
use axum::routing::post;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use super::{count_call, error, wecom_error, Fake, FakeWechat, Host, Inner};

const ENDPOINT: &str = "/cgi-bin/media/upload";
const MB: usize = 1024 * 1024;

/// One accepted upload.
#[derive(Debug, Clone)]
pub struct MediaUpload {
    /// `type` of the query.
    pub kind: String,
    /// The file's bytes.
    pub bytes: Vec<u8>,
    /// The part's file name.
    pub filename: String,
    /// The part's content type.
    pub content_type: String,
    /// The id handed out.
    pub media_id: String,
}

#[derive(Default)]
pub(super) struct Media {
    uploads: Vec<MediaUpload>,
    refuse: Option<i64>,
}

pub(super) fn routes() -> Router<Arc<Fake>> {
    Router::new()
        .route(ENDPOINT, post(upload))
        .layer(DefaultBodyLimit::max(24 * MB))
}

impl FakeWechat {
    /// The accepted uploads, in order.
    pub fn media_uploads(&self) -> Vec<MediaUpload> {
        self.with(|i| i.media.uploads.clone())
    }

    /// Every upload from now on answers `code` (48001: api unauthorized).
    pub fn refuse_uploads(&self, code: i64) {
        self.with(|i| i.media.refuse = Some(code));
    }
}

#[derive(Deserialize)]
struct UploadQuery {
    access_token: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
}

/// The host a token belongs to: WeCom's tokens are known by their secret.
fn host_of(i: &Inner, token: Option<&str>) -> Host {
    match token {
        Some(t) if i.token_secrets.contains_key(t) => Host::Wecom,
        _ => Host::Oa,
    }
}

/// The size limit and its errcode for `kind` on `host`.
fn limit(host: Host, kind: &str) -> (usize, i64) {
    match (host, kind) {
        (Host::Oa, "image") => (2 * MB, 40009),
        (Host::Wecom, "image") => (10 * MB, 40009),
        (_, "voice") => (2 * MB, 40010),
        (_, "video") => (10 * MB, 40011),
        _ => (64 * 1024, 40012),
    }
}

async fn upload(
    State(fake): State<Arc<Fake>>,
    Query(q): Query<UploadQuery>,
    mut form: Multipart,
) -> Json<Value> {
    let token = q.access_token.as_deref();
    let host = {
        let mut i = fake.inner.lock().unwrap();
        count_call(&mut i, ENDPOINT, token);
        let host = host_of(&i, token);
        if let Some(e) = super::authorize(&mut i, host, token) {
            return e;
        }
        host
    };
    let answer = |code| match host {
        Host::Oa => error(code),
        Host::Wecom => wecom_error(code),
    };
    let kind = q.kind.unwrap_or_default();
    if !matches!(kind.as_str(), "image" | "voice" | "video" | "thumb") {
        return answer(40004);
    }
    let mut file = None;
    while let Ok(Some(field)) = form.next_field().await {
        if field.name() == Some("media") {
            let filename = field.file_name().unwrap_or_default().to_owned();
            let content_type = field.content_type().unwrap_or_default().to_owned();
            match field.bytes().await {
                Ok(bytes) => file = Some((bytes.to_vec(), filename, content_type)),
                Err(_) => return answer(41005),
            }
        }
    }
    let Some((bytes, filename, content_type)) = file else {
        return answer(41005);
    };
    let (max, code) = limit(host, &kind);
    if bytes.len() > max {
        return answer(code);
    }
    if host == Host::Wecom && bytes.len() < 5 {
        return answer(40006);
    }
    let mut i = fake.inner.lock().unwrap();
    if let Some(code) = i.media.refuse {
        return answer(code);
    }
    let media_id = format!(
        "MEDIA_{}_{:04}",
        kind.to_uppercase(),
        i.media.uploads.len() + 1
    );
    i.media.uploads.push(MediaUpload {
        kind: kind.clone(),
        bytes,
        filename,
        content_type,
        media_id: media_id.clone(),
    });
    Json(json!({ "type": kind, "media_id": media_id, "created_at": 1_700_000_000 }))
}
