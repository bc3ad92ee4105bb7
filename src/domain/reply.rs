//! What to answer with: a text, media, articles, a transfer to human
//! agents, or nothing. Each platform renders it in its own form.

use serde::{Deserialize, Serialize};

use thiserror::Error;

/// Most articles a news reply may carry (to events; user messages get one).
pub const MAX_ARTICLES: usize = 8;

/// A reply that cannot be sent as built.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ReplyError {
    /// A news reply needs between 1 and [`MAX_ARTICLES`] articles.
    #[error("a news reply needs 1 to {MAX_ARTICLES} articles, got {0}")]
    ArticleCount(usize),
}

/// One article of a news reply.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Article {
    /// Title.
    pub title: String,
    /// Summary.
    pub description: String,
    /// Cover picture URL.
    pub pic_url: String,
    /// Link opened on tap.
    pub url: String,
}

/// What to answer WeChat with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Reply {
    /// The literal `success`: WeChat shows nothing and does not retry.
    Success,
    /// A text message.
    Text {
        /// The text.
        content: String,
    },
    /// A picture (media id from the material API).
    Image {
        /// Media id.
        media_id: String,
    },
    /// A voice message.
    Voice {
        /// Media id.
        media_id: String,
    },
    /// A video.
    Video {
        /// Media id.
        media_id: String,
        /// Optional title.
        title: Option<String>,
        /// Optional description.
        description: Option<String>,
    },
    /// Music.
    Music {
        /// Title.
        title: Option<String>,
        /// Description.
        description: Option<String>,
        /// Music URL.
        music_url: Option<String>,
        /// High-quality URL (Wi-Fi).
        hq_music_url: Option<String>,
        /// Thumbnail media id (required by WeChat).
        thumb_media_id: String,
    },
    /// Articles. Build with [`Reply::news`] to enforce the count limit.
    News {
        /// 1..=[`MAX_ARTICLES`] articles.
        articles: Vec<Article>,
    },
    /// Hand the conversation to the customer-service system.
    TransferCustomerService {
        /// A specific agent (`name@account`), or any.
        kf_account: Option<String>,
    },
}

impl Reply {
    /// A news reply, checking WeChat's article count limit.
    pub fn news(articles: Vec<Article>) -> Result<Reply, ReplyError> {
        if articles.is_empty() || articles.len() > MAX_ARTICLES {
            return Err(ReplyError::ArticleCount(articles.len()));
        }
        Ok(Reply::News { articles })
    }

    /// The same reply with every string in it (text, titles, URLs, media
    /// ids) passed through `f`.
    pub fn map_strings(self, mut f: impl FnMut(String) -> String) -> Reply {
        match self {
            Reply::Success => Reply::Success,
            Reply::Text { content } => Reply::Text {
                content: f(content),
            },
            Reply::Image { media_id } => Reply::Image {
                media_id: f(media_id),
            },
            Reply::Voice { media_id } => Reply::Voice {
                media_id: f(media_id),
            },
            Reply::Video {
                media_id,
                title,
                description,
            } => Reply::Video {
                media_id: f(media_id),
                title: title.map(&mut f),
                description: description.map(&mut f),
            },
            Reply::Music {
                title,
                description,
                music_url,
                hq_music_url,
                thumb_media_id,
            } => Reply::Music {
                title: title.map(&mut f),
                description: description.map(&mut f),
                music_url: music_url.map(&mut f),
                hq_music_url: hq_music_url.map(&mut f),
                thumb_media_id: f(thumb_media_id),
            },
            Reply::News { articles } => Reply::News {
                articles: articles
                    .into_iter()
                    .map(|a| Article {
                        title: f(a.title),
                        description: f(a.description),
                        pic_url: f(a.pic_url),
                        url: f(a.url),
                    })
                    .collect(),
            },
            Reply::TransferCustomerService { kf_account } => Reply::TransferCustomerService {
                kf_account: kf_account.map(&mut f),
            },
        }
    }

    /// The `MsgType` this reply renders, or `None` for `success`.
    pub fn msg_type(&self) -> Option<&'static str> {
        Some(match self {
            Reply::Success => return None,
            Reply::Text { .. } => "text",
            Reply::Image { .. } => "image",
            Reply::Voice { .. } => "voice",
            Reply::Video { .. } => "video",
            Reply::Music { .. } => "music",
            Reply::News { .. } => "news",
            Reply::TransferCustomerService { .. } => "transfer_customer_service",
        })
    }
}
