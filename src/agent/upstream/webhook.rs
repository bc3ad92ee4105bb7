//! `protocol = "webhook"`: wxgate POSTs the message as JSON, the upstream
//! answers the reply as JSON (`{"type": "text", "content": "…"}`, the same
//! shapes as a rule's `reply`), or `{"type": "success"}` / 204 for none.
//! An image, voice or video may also come by URL instead of `media_id`
//! (`{"type": "image", "url": "https://…"}`): wxgate uploads it (see
//! `agent::media`).

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use super::protocol::{Answer, CallFuture, Emit, Http, Protocol, UpstreamError};
use crate::agent::media::{MediaAnswer, MediaKind};
use crate::domain::{Message, MessageKind, Reply};
use crate::rules::{build_reply, ReplySpec};
use crate::secret::Secret;

/// The header carrying `sha256=<hex HMAC-SHA256 of the body>`.
pub const SIGNATURE_HEADER: &str = "X-Wxgate-Signature";

/// The JSON form of an inbound message.
#[derive(Debug, Serialize, PartialEq)]
pub struct WebhookMessage<'a> {
    /// The account's AppID (empty when not configured).
    pub app_id: &'a str,
    /// `MsgId` as a string (it does not fit a JSON number).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub msg_id: Option<String>,
    /// `MsgType` as received.
    pub msg_type: &'a str,
    /// The sender's OpenID.
    pub from_user: &'a str,
    /// The account's original id.
    pub to_user: &'a str,
    /// Unix seconds.
    pub create_time: i64,
    /// Text content (or recognised speech for voice).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content: Option<&'a str>,
    /// Media id of image, voice, video and short video.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub media_id: Option<&'a str>,
    /// Picture URL of an image.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pic_url: Option<&'a str>,
    /// Voice format.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub format: Option<&'a str>,
    /// Thumbnail of a video.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub thumb_media_id: Option<&'a str>,
    /// Location latitude.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latitude: Option<f64>,
    /// Location longitude.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub longitude: Option<f64>,
    /// Location label.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label: Option<&'a str>,
    /// Link title.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<&'a str>,
    /// Link description.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<&'a str>,
    /// Link URL.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<&'a str>,
    /// Event name, for events.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event: Option<&'a str>,
    /// EventKey, for events that carry one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_key: Option<&'a str>,
}

impl<'a> WebhookMessage<'a> {
    /// The JSON form of `message`.
    pub fn new(message: &'a Message, app_id: &'a str) -> Self {
        let mut m = WebhookMessage {
            app_id,
            msg_id: message.msg_id.map(|id| id.to_string()),
            msg_type: &message.msg_type,
            from_user: &message.from_user,
            to_user: &message.to_user,
            create_time: message.create_time,
            content: None,
            media_id: None,
            pic_url: None,
            format: None,
            thumb_media_id: None,
            latitude: None,
            longitude: None,
            label: None,
            title: None,
            description: None,
            url: None,
            event: None,
            event_key: None,
        };
        match &message.kind {
            MessageKind::Text { content, .. } => m.content = Some(content),
            MessageKind::Image { pic_url, media_id } => {
                m.pic_url = Some(pic_url);
                m.media_id = Some(media_id);
            }
            MessageKind::Voice {
                media_id,
                format,
                recognition,
            } => {
                m.media_id = Some(media_id);
                m.format = Some(format);
                m.content = recognition.as_deref();
            }
            MessageKind::Video {
                media_id,
                thumb_media_id,
            }
            | MessageKind::ShortVideo {
                media_id,
                thumb_media_id,
            } => {
                m.media_id = Some(media_id);
                m.thumb_media_id = Some(thumb_media_id);
            }
            MessageKind::Location {
                latitude,
                longitude,
                label,
                ..
            } => {
                m.latitude = Some(*latitude);
                m.longitude = Some(*longitude);
                m.label = Some(label);
            }
            MessageKind::Link {
                title,
                description,
                url,
            } => {
                m.title = Some(title);
                m.description = Some(description);
                m.url = Some(url);
            }
            MessageKind::Event(_) => {
                m.event = Some(message.event_name());
                m.event_key = Some(message.event_key()).filter(|k| !k.is_empty());
            }
            _ => {}
        }
        m
    }
}

/// `sha256=<hex>` of `body` under `secret`.
pub fn signature(secret: &str, body: &[u8]) -> String {
    // HMAC accepts keys of any length.
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// An image, voice or video answered by URL.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MediaUrl {
    #[serde(rename = "type")]
    kind: MediaKind,
    url: String,
    title: Option<String>,
    description: Option<String>,
}

/// Parses an upstream's answer: a reply description, media by URL, or
/// `success`.
pub fn parse_answer(status: u16, body: &[u8]) -> Result<Answer, UpstreamError> {
    if status == 204 {
        return Ok(Reply::Success.into());
    }
    let value: serde_json::Value = serde_json::from_slice(body)
        .map_err(|e| UpstreamError::Malformed(format!("not a reply description: {e}")))?;
    if value.get("url").is_some() && value.get("media_id").is_none() {
        let media: MediaUrl = serde_json::from_value(value)
            .map_err(|e| UpstreamError::Malformed(format!("not a media answer: {e}")))?;
        if media.url.trim().is_empty() {
            return Err(UpstreamError::Malformed("empty url".into()));
        }
        let (title, description) = match media.kind {
            MediaKind::Video => (media.title, media.description),
            _ if media.description.is_some() => {
                return Err(UpstreamError::Malformed(format!(
                    "description only applies to video, not {}",
                    media.kind
                )))
            }
            _ => (media.title, None),
        };
        return Ok(Answer::Media(MediaAnswer {
            kind: media.kind,
            url: media.url.trim().to_owned(),
            title,
            description,
        }));
    }
    let spec: ReplySpec = serde_json::from_value(value)
        .map_err(|e| UpstreamError::Malformed(format!("not a reply description: {e}")))?;
    build_reply(spec)
        .map(Answer::Reply)
        .map_err(UpstreamError::Malformed)
}

/// The webhook protocol, with its optional signing secret.
pub struct Webhook {
    secret: Option<Secret>,
}

impl Webhook {
    /// Signs bodies with `secret` when set.
    pub fn new(secret: Option<Secret>) -> Self {
        Webhook { secret }
    }

    async fn exchange(
        &self,
        http: &Http,
        message: &Message,
        app_id: &str,
    ) -> Result<Answer, UpstreamError> {
        let body = serde_json::to_vec(&WebhookMessage::new(message, app_id))
            .map_err(|e| UpstreamError::Transport(format!("cannot encode the message: {e}")))?;
        let mut request = http
            .post()
            .header(reqwest::header::CONTENT_TYPE, "application/json");
        if let Some(secret) = &self.secret {
            request = request.header(SIGNATURE_HEADER, signature(secret.expose(), &body));
        }
        let (status, answer) = http.send(request.body(body)).await?;
        parse_answer(status, &answer)
    }
}

impl Protocol for Webhook {
    fn name(&self) -> &'static str {
        "webhook"
    }

    fn call<'a>(
        &'a self,
        http: &'a Http,
        message: &'a Message,
        app_id: &'a str,
        _emit: Emit<'a>,
    ) -> CallFuture<'a> {
        Box::pin(self.exchange(http, message, app_id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Article;

    #[test]
    fn signature_is_the_hex_hmac_sha256_of_the_body() {
        // RFC 4231 test case 2.
        assert_eq!(
            signature("Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn answers_of_every_kind_parse() {
        let parse_answer = |status, body| match parse_answer(status, body) {
            Ok(Answer::Reply(r)) => Ok(r),
            Ok(other) => panic!("not a reply: {other:?}"),
            Err(e) => Err(e),
        };
        assert_eq!(
            parse_answer(200, br#"{"type":"text","content":"hi {there}"}"#).unwrap(),
            Reply::Text {
                content: "hi {there}".into()
            }
        );
        assert_eq!(
            parse_answer(200, br#"{"type":"image","media_id":"M"}"#).unwrap(),
            Reply::Image {
                media_id: "M".into()
            }
        );
        assert_eq!(
            parse_answer(
                200,
                br#"{"type":"news","articles":[{"title":"T","url":"https://e.com/a"}]}"#
            )
            .unwrap(),
            Reply::News {
                articles: vec![Article {
                    title: "T".into(),
                    url: "https://e.com/a".into(),
                    ..Article::default()
                }]
            }
        );
        assert_eq!(
            parse_answer(200, br#"{"type":"success"}"#).unwrap(),
            Reply::Success
        );
        assert_eq!(parse_answer(204, b"").unwrap(), Reply::Success);
    }

    #[test]
    fn media_may_come_by_url() {
        assert_eq!(
            parse_answer(
                200,
                br#"{"type":"image","url":" https://e.com/a.png ","title":"cat"}"#
            )
            .unwrap(),
            Answer::Media(MediaAnswer {
                kind: MediaKind::Image,
                url: "https://e.com/a.png".into(),
                title: Some("cat".into()),
                description: None,
            })
        );
        assert_eq!(
            parse_answer(
                200,
                br#"{"type":"video","url":"https://e.com/v.mp4","title":"T","description":"D"}"#
            )
            .unwrap(),
            Answer::Media(MediaAnswer {
                kind: MediaKind::Video,
                url: "https://e.com/v.mp4".into(),
                title: Some("T".into()),
                description: Some("D".into()),
            })
        );
        for body in [
            &br#"{"type":"text","url":"https://e.com/a.png"}"#[..],
            br#"{"type":"image","url":""}"#,
            br#"{"type":"image","url":"https://e.com/a.png","media_id":"M"}"#,
            br#"{"type":"voice","url":"https://e.com/a.mp3","description":"D"}"#,
            br#"{"type":"image","url":"https://e.com/a.png","extra":1}"#,
        ] {
            let e = parse_answer(200, body).unwrap_err();
            assert_eq!(e.kind(), "malformed", "{}", String::from_utf8_lossy(body));
        }
    }

    #[test]
    fn malformed_answers_are_refused() {
        for body in [
            &b"not json"[..],
            b"",
            br#"{"type":"text"}"#,
            br#"{"type":"upstream","upstream":"loop"}"#,
            br#"{"type":"news","articles":[]}"#,
            br#"{"reply":"hi"}"#,
        ] {
            let e = parse_answer(200, body).unwrap_err();
            assert_eq!(e.kind(), "malformed", "{}", String::from_utf8_lossy(body));
        }
    }

    #[test]
    fn messages_serialise_with_the_id_as_a_string() {
        let m = Message::parse(
            b"<xml><ToUserName>gh_1</ToUserName><FromUserName>o_2</FromUserName><CreateTime>7</CreateTime><MsgType>text</MsgType><Content>hi</Content><MsgId>4561255354251345929</MsgId></xml>",
        )
        .unwrap();
        assert_eq!(
            serde_json::to_value(WebhookMessage::new(&m, "wx1")).unwrap(),
            serde_json::json!({"app_id":"wx1","msg_id":"4561255354251345929","msg_type":"text",
                "from_user":"o_2","to_user":"gh_1","create_time":7,"content":"hi"})
        );
        let e = Message::parse(
            b"<xml><ToUserName>gh_1</ToUserName><FromUserName>o_2</FromUserName><CreateTime>7</CreateTime><MsgType>event</MsgType><Event>CLICK</Event><EventKey>K1</EventKey></xml>",
        )
        .unwrap();
        let v = serde_json::to_value(WebhookMessage::new(&e, "")).unwrap();
        assert_eq!(
            (&v["event"], &v["event_key"]),
            (&"CLICK".into(), &"K1".into())
        );
    }
}
