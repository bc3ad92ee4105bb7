//! Request and response bodies, as the endpoints document them.

use serde::{Deserialize, Serialize};

/// A customer-service message (`/cgi-bin/message/custom/send`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CustomMessage {
    /// The user's OpenID.
    pub touser: String,
    /// What to send.
    #[serde(flatten)]
    pub body: CustomBody,
}

/// The kinds of custom message wxgate sends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "msgtype", rename_all = "lowercase")]
#[non_exhaustive]
pub enum CustomBody {
    /// Plain text.
    Text {
        /// `{"content": …}`.
        text: TextContent,
    },
    /// One link card (WeChat shows one article).
    News {
        /// `{"articles": [ … ]}`.
        news: NewsContent,
    },
    /// A picture.
    Image {
        /// `{"media_id": …}`.
        image: MediaContent,
    },
    /// A voice message.
    Voice {
        /// `{"media_id": …}`.
        voice: MediaContent,
    },
    /// A video.
    Video {
        /// `{"media_id": …, "thumb_media_id": …, "title": …, "description": …}`.
        video: VideoContent,
    },
    /// Music.
    Music {
        /// `{"title": …, "musicurl": …, "thumb_media_id": …, …}`.
        music: MusicContent,
    },
}

/// The `image` and `voice` objects.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MediaContent {
    /// Media id from the material API.
    pub media_id: String,
}

/// The `video` object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VideoContent {
    /// Media id.
    pub media_id: String,
    /// Thumbnail media id (optional here; WeChat shows a default).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub thumb_media_id: Option<String>,
    /// Title.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// Description.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// The `music` object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MusicContent {
    /// Title.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// Description.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Music URL.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub musicurl: Option<String>,
    /// High-quality URL.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hqmusicurl: Option<String>,
    /// Thumbnail media id.
    pub thumb_media_id: String,
}

/// The `text` object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TextContent {
    /// The text (WeChat limits it to about 2048 bytes).
    pub content: String,
}

/// The `news` object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NewsContent {
    /// The articles; send one.
    pub articles: Vec<Article>,
}

/// One link card.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Article {
    /// Title.
    pub title: String,
    /// Description.
    pub description: String,
    /// Link.
    pub url: String,
    /// Picture.
    pub picurl: String,
}

impl CustomMessage {
    /// A text message.
    pub fn text(to: impl Into<String>, content: impl Into<String>) -> Self {
        CustomMessage {
            touser: to.into(),
            body: CustomBody::Text {
                text: TextContent {
                    content: content.into(),
                },
            },
        }
    }

    /// A one-article news message.
    pub fn news(to: impl Into<String>, article: Article) -> Self {
        CustomMessage {
            touser: to.into(),
            body: CustomBody::News {
                news: NewsContent {
                    articles: vec![article],
                },
            },
        }
    }
}

/// The typing indicator (`/cgi-bin/message/custom/typing`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum TypingCommand {
    /// Show "typing…" (for up to 15 s).
    Typing,
    /// Hide it.
    CancelTyping,
}

/// `{"access_token": …, "expires_in": …}` from both token endpoints.
#[derive(Deserialize)]
pub(super) struct TokenResponse {
    pub access_token: String,
    pub expires_in: i64,
}

/// `{"ip_list": [ … ]}`.
#[derive(Deserialize)]
pub(super) struct IpListResponse {
    pub ip_list: Vec<String>,
}

/// `media/upload`'s answer (`type` and `created_at` are not needed).
#[derive(Deserialize)]
pub(super) struct MediaUploadResponse {
    #[serde(default)]
    pub media_id: String,
}

/// The part every answer may carry.
#[derive(Deserialize)]
pub(super) struct Status {
    #[serde(default)]
    pub errcode: i64,
    #[serde(default)]
    pub errmsg: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn custom_messages_serialise_as_documented() {
        let text = serde_json::to_value(CustomMessage::text("OPENID", "Hello World")).unwrap();
        assert_eq!(
            text,
            serde_json::json!({"touser":"OPENID","msgtype":"text","text":{"content":"Hello World"}})
        );
        let news = CustomMessage::news(
            "OPENID",
            Article {
                title: "Happy Day".into(),
                description: "Is Really A Happy Day".into(),
                url: "URL".into(),
                picurl: "PIC_URL".into(),
            },
        );
        assert_eq!(
            serde_json::to_value(news).unwrap(),
            serde_json::json!({"touser":"OPENID","msgtype":"news","news":{"articles":[
                {"title":"Happy Day","description":"Is Really A Happy Day","url":"URL","picurl":"PIC_URL"}]}})
        );
        let image = CustomMessage {
            touser: "OPENID".into(),
            body: CustomBody::Image {
                image: MediaContent {
                    media_id: "MEDIA_ID".into(),
                },
            },
        };
        assert_eq!(
            serde_json::to_value(image).unwrap(),
            serde_json::json!({"touser":"OPENID","msgtype":"image","image":{"media_id":"MEDIA_ID"}})
        );
        let music = CustomMessage {
            touser: "OPENID".into(),
            body: CustomBody::Music {
                music: MusicContent {
                    title: Some("T".into()),
                    description: None,
                    musicurl: Some("MUSIC_URL".into()),
                    hqmusicurl: None,
                    thumb_media_id: "THUMB".into(),
                },
            },
        };
        assert_eq!(
            serde_json::to_value(music).unwrap(),
            serde_json::json!({"touser":"OPENID","msgtype":"music","music":{"title":"T","musicurl":"MUSIC_URL","thumb_media_id":"THUMB"}})
        );
        assert_eq!(
            serde_json::to_value(TypingCommand::CancelTyping).unwrap(),
            "CancelTyping"
        );
    }
}
