//! Media answers: an upstream answers a picture, voice or video by URL
//! (a webhook's `{"type": "image", "url": …}`, an `openai` upstream's lone
//! markdown image with `image_answers = true`), and wxgate turns it into a
//! reply by `media_id`.
//!
//! [`Media::reply`] looks the URL up in the account's cache (the store,
//! `media:<sha256 of kind and URL>`, kept [`CACHE_TTL`], a little under the
//! three days WeChat keeps temporary media); on a miss it downloads the
//! file under the guard and hands it to the platform's [`MediaUpload`].
//! The guard: http and https only; the host's addresses checked after DNS
//! resolution, every one of them, and the connection made to those checked
//! addresses only (no second lookup to rebind), so loopback, private,
//! link-local and other non-public addresses are refused unless
//! `[agent] allow_private_media` is set; redirects re-checked the same way
//! (three at most); no proxy; `[agent] media_timeout_ms` for the whole
//! download; the content type and size within what the platform takes for
//! that kind. Any refusal or failure — the account lacking the permission
//! (48001) or the platform the upload, included — answers the link as
//! text instead, logged and counted as `wxgate_agent_failures_total{kind="media"}`.
//!
//! The platform's side is the [`MediaUpload`] trait: the agent layer knows
//! no platform; `crate::platform::media` implements it and the account's
//! assembly hands it over.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use sha2::{Digest, Sha256};
use thiserror::Error;

use crate::domain::markdown::LinkStyle;
use crate::domain::Reply;
use crate::metrics::Metrics;
use crate::outbound::BoundedError;
use crate::store::{Namespace, Store};

/// How long an uploaded `media_id` is reused: WeChat keeps temporary
/// media three days; an hour less leaves room for clocks and slow sends.
pub const CACHE_TTL: Duration = Duration::from_secs(3 * 86_400 - 3600);

/// Most redirects a download follows, each checked like the first URL.
const MAX_REDIRECTS: usize = 3;

/// The kinds of media an upstream may answer by URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MediaKind {
    /// A picture.
    Image,
    /// A voice message.
    Voice,
    /// A video.
    Video,
}

impl MediaKind {
    /// The name WeChat's upload API and reply types use.
    pub fn as_str(self) -> &'static str {
        match self {
            MediaKind::Image => "image",
            MediaKind::Voice => "voice",
            MediaKind::Video => "video",
        }
    }
}

impl std::fmt::Display for MediaKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An upstream's answer of media by URL, to be uploaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaAnswer {
    /// What it is.
    pub kind: MediaKind,
    /// Where to download it (http or https).
    pub url: String,
    /// A video's title; for a picture its alt text. The fallback link's label.
    pub title: Option<String>,
    /// A video's description.
    pub description: Option<String>,
}

/// What a platform takes for one kind of media.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MediaLimits {
    /// Largest file, in bytes.
    pub max_bytes: usize,
    /// Accepted `Content-Type`s (lowercase, without parameters).
    pub content_types: &'static [&'static str],
}

/// One file to upload.
#[derive(Debug, Clone)]
pub struct Upload {
    /// What it is.
    pub kind: MediaKind,
    /// The file.
    pub bytes: Vec<u8>,
    /// Its content type, one of the platform's [`MediaLimits::content_types`].
    pub content_type: String,
    /// A file name with the extension the content type calls for.
    pub filename: String,
}

/// An upload's answer to come: the `media_id`.
pub type UploadFuture<'a> = Pin<Box<dyn Future<Output = Result<String, UploadError>> + Send + 'a>>;

/// A platform's temporary-media upload, as the agent layer sees it.
pub trait MediaUpload: Send + Sync {
    /// What the platform takes for `kind`; `None` when it takes none.
    fn limits(&self, kind: MediaKind) -> Option<MediaLimits>;

    /// Uploads `upload` as temporary media; its `media_id`.
    fn upload(&self, upload: Upload) -> UploadFuture<'_>;
}

/// Why an upload failed. Never carries a token.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum UploadError {
    /// The account lacks the media API's permission (errcode 48001).
    #[error("the account may not upload media (errcode 48001)")]
    Unauthorized,
    /// Anything else: WeChat's errcode, the transport, the token.
    #[error("{0}")]
    Failed(String),
}

/// Why an upstream's media answer became a link instead.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum MediaError {
    /// The account cannot upload (no API credentials, or the platform has no upload).
    #[error("the account cannot upload media")]
    NoUpload,
    /// The platform takes no media of this kind.
    #[error("the platform takes no {0} uploads")]
    Unsupported(MediaKind),
    /// Not an http(s) URL, or its address is not allowed.
    #[error("refused URL: {0}")]
    Refused(String),
    /// The download failed (connection, status, timeout).
    #[error("download failed: {0}")]
    Download(String),
    /// The server sent something else than the kind takes.
    #[error("content type {0:?} is not one the platform takes for this kind")]
    ContentType(String),
    /// Larger than the platform takes.
    #[error("larger than {0} bytes")]
    TooLarge(usize),
    /// The platform refused the upload.
    #[error("upload failed: {0}")]
    Upload(#[from] UploadError),
}

impl MediaError {
    /// A short word for logs.
    pub fn kind(&self) -> &'static str {
        match self {
            MediaError::NoUpload => "no_upload",
            MediaError::Unsupported(_) => "unsupported",
            MediaError::Refused(_) => "refused",
            MediaError::Download(_) => "download",
            MediaError::ContentType(_) => "content_type",
            MediaError::TooLarge(_) => "too_large",
            MediaError::Upload(UploadError::Unauthorized) => "unauthorized",
            MediaError::Upload(_) => "upload",
        }
    }
}

/// `[agent]`'s media keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MediaSettings {
    /// Download from loopback, private and link-local addresses too.
    pub allow_private: bool,
    /// Upper bound on one download, connecting included.
    pub timeout: Duration,
}

impl Default for MediaSettings {
    fn default() -> Self {
        MediaSettings {
            allow_private: false,
            timeout: Duration::from_secs(10),
        }
    }
}

/// Turns media answers into media replies for one account.
pub struct Media {
    upload: Option<Arc<dyn MediaUpload>>,
    store: Arc<dyn Store>,
    namespace: Namespace,
    client: reqwest::Client,
    settings: MediaSettings,
    metrics: Arc<Metrics>,
}

impl Media {
    /// Uploads through `upload` (none: every media answer becomes a link),
    /// caching in `store` under the account's `namespace`. Does no I/O.
    pub fn new(
        upload: Option<Arc<dyn MediaUpload>>,
        store: Arc<dyn Store>,
        namespace: Namespace,
        settings: MediaSettings,
        metrics: Arc<Metrics>,
    ) -> Result<Media, reqwest::Error> {
        let allow_private = settings.allow_private;
        let client = reqwest::Client::builder()
            .timeout(settings.timeout)
            .connect_timeout(settings.timeout)
            .no_proxy()
            .dns_resolver(Arc::new(GuardedResolver { allow_private }))
            .redirect(reqwest::redirect::Policy::custom(move |attempt| {
                if attempt.previous().len() >= MAX_REDIRECTS {
                    attempt.error(format!("more than {MAX_REDIRECTS} redirects"))
                } else if let Err(e) = check_url(attempt.url(), allow_private) {
                    attempt.error(e)
                } else {
                    attempt.follow()
                }
            }))
            .user_agent(concat!("wxgate/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Media {
            upload,
            store,
            namespace,
            client,
            settings,
            metrics,
        })
    }

    /// The reply for `answer`: the media by its `media_id`, or, when it
    /// cannot be had, a text with the link (as the platform shows links).
    pub async fn reply(&self, answer: MediaAnswer, links: LinkStyle) -> Reply {
        match self.media_id(&answer).await {
            Ok(media_id) => match answer.kind {
                MediaKind::Image => Reply::Image { media_id },
                MediaKind::Voice => Reply::Voice { media_id },
                MediaKind::Video => Reply::Video {
                    media_id,
                    title: answer.title,
                    description: answer.description,
                },
            },
            Err(e) => {
                self.metrics.agent_failure("media");
                tracing::warn!(kind = %answer.kind, reason = e.kind(), error = %e, "media answer not uploaded; the link is sent as text");
                Reply::Text {
                    content: link_text(answer.title.as_deref(), &answer.url, links),
                }
            }
        }
    }

    /// The cached or freshly uploaded `media_id` of `answer`.
    async fn media_id(&self, answer: &MediaAnswer) -> Result<String, MediaError> {
        let upload = self.upload.as_ref().ok_or(MediaError::NoUpload)?;
        let limits = upload
            .limits(answer.kind)
            .ok_or(MediaError::Unsupported(answer.kind))?;
        let url = reqwest::Url::parse(&answer.url)
            .map_err(|e| MediaError::Refused(format!("not a URL: {e}")))?;
        check_url(&url, self.settings.allow_private).map_err(MediaError::Refused)?;
        let key = self.cache_key(answer.kind, &answer.url);
        match self.store.get(&key).await {
            Ok(Some(id)) if !id.is_empty() => {
                if let Ok(id) = String::from_utf8(id) {
                    tracing::debug!(kind = %answer.kind, "media answer found in the cache");
                    return Ok(id);
                }
            }
            Ok(_) => {}
            Err(e) => {
                self.metrics.store_error("media_get");
                tracing::warn!(error = %e, "cannot read the media cache; uploading");
            }
        }
        let (bytes, content_type) = self.download(url, limits).await?;
        let filename = format!("{}.{}", answer.kind, extension(&content_type));
        let media_id = upload
            .upload(Upload {
                kind: answer.kind,
                bytes,
                content_type,
                filename,
            })
            .await?;
        if let Err(e) = self
            .store
            .set(&key, media_id.as_bytes(), Some(CACHE_TTL))
            .await
        {
            self.metrics.store_error("media_set");
            tracing::warn!(error = %e, "cannot cache the media id");
        }
        tracing::info!(kind = %answer.kind, "media answer uploaded");
        Ok(media_id)
    }

    /// The cache key of one kind and URL.
    pub fn cache_key(&self, kind: MediaKind, url: &str) -> String {
        let digest = Sha256::digest(format!("{kind}\n{url}").as_bytes());
        self.namespace
            .key(&format!("media:{}", hex::encode(digest)))
    }

    /// Downloads `url` within `limits`: the bytes and their content type.
    async fn download(
        &self,
        url: reqwest::Url,
        limits: MediaLimits,
    ) -> Result<(Vec<u8>, String), MediaError> {
        let timeout = self.settings.timeout;
        let failed = |e: reqwest::Error| {
            if e.is_timeout() {
                MediaError::Download(format!("no answer within {timeout:?}"))
            } else {
                MediaError::Download(chain(&e.without_url()))
            }
        };
        let response = self.client.get(url).send().await.map_err(failed)?;
        let status = response.status();
        if !status.is_success() {
            return Err(MediaError::Download(format!("HTTP status {status}")));
        }
        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .map(|v| v.trim().to_ascii_lowercase())
            .unwrap_or_default();
        if !limits.content_types.contains(&content_type.as_str()) {
            return Err(MediaError::ContentType(content_type));
        }
        if response
            .content_length()
            .is_some_and(|n| n > limits.max_bytes as u64)
        {
            return Err(MediaError::TooLarge(limits.max_bytes));
        }
        let bytes = crate::outbound::read_bounded(response, limits.max_bytes)
            .await
            .map_err(|e| match e {
                BoundedError::Transport(e) => failed(e),
                BoundedError::TooLarge(max) => MediaError::TooLarge(max),
            })?;
        if bytes.is_empty() {
            return Err(MediaError::Download("empty body".into()));
        }
        Ok((bytes, content_type))
    }
}

/// An error and its sources, for the log (the resolver's refusal is a source).
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

/// The text sent instead of media: the link as the platform shows links.
pub fn link_text(label: Option<&str>, url: &str, links: LinkStyle) -> String {
    let label = label.map(str::trim).filter(|l| !l.is_empty());
    // Only web links become anchors, as in converted markdown.
    let web = ["http://", "https://"].iter().any(|scheme| {
        url.get(..scheme.len())
            .is_some_and(|p| p.eq_ignore_ascii_case(scheme))
    });
    match (links, label) {
        (LinkStyle::Anchor, label) if web => format!(
            "<a href=\"{}\">{}</a>",
            url.replace('"', "%22"),
            label.unwrap_or(url)
        ),
        (LinkStyle::Markdown, label) if web => format!(
            "[{}]({})",
            label.unwrap_or(url).replace(['[', ']'], ""),
            url.replace(')', "%29").replace(' ', "%20")
        ),
        (_, Some(label)) if label != url => format!("{label} ({url})"),
        _ => url.to_owned(),
    }
}

/// The file extension WeChat expects for `content_type`.
fn extension(content_type: &str) -> &'static str {
    match content_type {
        "image/png" => "png",
        "image/gif" => "gif",
        "image/jpeg" | "image/jpg" => "jpg",
        "audio/amr" => "amr",
        "audio/mpeg" | "audio/mp3" => "mp3",
        "video/mp4" => "mp4",
        _ => "bin",
    }
}

/// An http(s) URL whose host, when it is an address, may be downloaded from.
/// Host names are checked after resolution, by [`GuardedResolver`].
fn check_url(url: &reqwest::Url, allow_private: bool) -> Result<(), String> {
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("scheme {:?} is not http or https", url.scheme()));
    }
    let host = url.host_str().ok_or("no host")?;
    let literal = host.trim_start_matches('[').trim_end_matches(']');
    match literal.parse::<IpAddr>() {
        Ok(ip) if !allow_private && !is_public(ip) => Err(format!(
            "{ip} is not a public address (set agent.allow_private_media to allow it)"
        )),
        _ => Ok(()),
    }
}

/// True for addresses on the public internet: not loopback, private,
/// link-local, shared (CGNAT), unspecified, broadcast, multicast or
/// documentation ranges, nor an IPv6 form of one of them.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || a == 0
                || (a == 100 && (64..128).contains(&b))
                || (a == 192 && b == 0)
                || (a == 198 && (18..20).contains(&b))
                || a >= 240)
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
                || (first == 0x2001 && v6.segments()[1] == 0x0db8)
                || (first == 0x64 && v6.segments()[1] == 0xff9b))
        }
    }
}

/// DNS for downloads: every address a name resolves to must be public
/// (unless private ones are allowed), and the connection goes to those
/// addresses, so a second lookup cannot rebind the name.
struct GuardedResolver {
    allow_private: bool,
}

/// A name that resolves to an address downloads may not reach.
#[derive(Debug, Error)]
#[error("{host} resolves to {ip}, which is not a public address (set agent.allow_private_media to allow it)")]
struct PrivateAddress {
    host: String,
    ip: IpAddr,
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let allow_private = self.allow_private;
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let addrs: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            if !allow_private {
                if let Some(bad) = addrs.iter().find(|a| !is_public(a.ip())) {
                    return Err(Box::new(PrivateAddress { host, ip: bad.ip() })
                        as Box<dyn std::error::Error + Send + Sync>);
                }
            }
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_public_addresses_are_public() {
        for private in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "224.0.0.1",
            "::1",
            "::",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
        ] {
            assert!(!is_public(private.parse().unwrap()), "{private}");
        }
        for public in [
            "1.1.1.1",
            "203.0.114.1",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
        ] {
            assert!(is_public(public.parse().unwrap()), "{public}");
        }
    }

    #[tokio::test]
    async fn names_are_checked_after_resolution() {
        use reqwest::dns::Resolve;
        let name = |n: &str| n.parse::<reqwest::dns::Name>().unwrap();
        let guarded = GuardedResolver {
            allow_private: false,
        };
        let err = guarded
            .resolve(name("localhost"))
            .await
            .err()
            .expect("localhost is refused");
        assert!(err.to_string().contains("not a public address"), "{err}");
        let open = GuardedResolver {
            allow_private: true,
        };
        let addrs: Vec<SocketAddr> = open.resolve(name("localhost")).await.unwrap().collect();
        assert!(!addrs.is_empty() && addrs.iter().all(|a| a.ip().is_loopback()));
    }

    #[test]
    fn urls_are_checked_by_scheme_and_address() {
        let check = |u: &str, allow| check_url(&reqwest::Url::parse(u).unwrap(), allow);
        assert!(check("https://example.com/a.png", false).is_ok());
        assert!(check("ftp://example.com/a.png", false).is_err());
        assert!(check("file:///etc/passwd", true).is_err());
        assert!(check("http://127.0.0.1:8080/a.png", false).is_err());
        assert!(check("http://[::1]/a.png", false).is_err());
        assert!(check("http://169.254.169.254/latest", false).is_err());
        assert!(check("http://127.0.0.1:8080/a.png", true).is_ok());
    }

    #[test]
    fn the_fallback_link_follows_the_platform() {
        let url = "https://e.com/cat.png";
        assert_eq!(
            link_text(Some("猫"), url, LinkStyle::Anchor),
            "<a href=\"https://e.com/cat.png\">猫</a>"
        );
        assert_eq!(
            link_text(None, url, LinkStyle::Anchor),
            "<a href=\"https://e.com/cat.png\">https://e.com/cat.png</a>"
        );
        assert_eq!(
            link_text(Some("猫"), url, LinkStyle::Text),
            "猫 (https://e.com/cat.png)"
        );
        assert_eq!(link_text(Some(" "), url, LinkStyle::Text), url);
        assert_eq!(
            link_text(Some("x"), "javascript:alert(1)", LinkStyle::Anchor),
            "x (javascript:alert(1))"
        );
    }
}
