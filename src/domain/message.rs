//! The inbound message: who wrote, to which account, and what — a text,
//! a voice with its transcript, a picture, a place, a link, an event, or
//! something unfamiliar kept field by field.
//!
//! The vocabulary was born of the Official Account's XML (its field names
//! are WeChat's), and every platform's dialect converts into it: WeCom's
//! XML is the same, and 微信客服's JSON messages are built into it
//! directly. Parsing lives in the wire codec (`crate::message`).

use serde::{Deserialize, Serialize};

use super::fields::Element;

/// One message or event pushed by WeChat.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    /// `ToUserName`: the account's original id (gh_…) or WeCom corp id.
    pub to_user: String,
    /// `FromUserName`: the sender's OpenID (or WeCom user id).
    pub from_user: String,
    /// `CreateTime`, Unix seconds.
    pub create_time: i64,
    /// `MsgType` as received (case preserved).
    pub msg_type: String,
    /// `MsgId` for user messages (`MsgID` for job-finish events).
    pub msg_id: Option<u64>,
    /// The typed content.
    pub kind: MessageKind,
    /// Every field as received, so nothing of an unfamiliar message is lost.
    pub fields: Element,
}

/// What the message is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum MessageKind {
    /// `text`
    Text {
        /// The text the user sent.
        content: String,
        /// Set when the text came from a customer-service menu tap.
        biz_msg_menu_id: Option<String>,
    },
    /// `image`
    Image {
        /// Picture URL.
        pic_url: String,
        /// Media id.
        media_id: String,
    },
    /// `voice`
    Voice {
        /// Media id.
        media_id: String,
        /// Audio format (amr, speex).
        format: String,
        /// Speech recognition result, when enabled.
        recognition: Option<String>,
    },
    /// `video`
    Video {
        /// Media id.
        media_id: String,
        /// Thumbnail media id.
        thumb_media_id: String,
    },
    /// `shortvideo`
    ShortVideo {
        /// Media id.
        media_id: String,
        /// Thumbnail media id.
        thumb_media_id: String,
    },
    /// `location`
    Location {
        /// `Location_X`
        latitude: f64,
        /// `Location_Y`
        longitude: f64,
        /// Map zoom.
        scale: Option<u32>,
        /// Place description.
        label: String,
    },
    /// `link`
    Link {
        /// Title.
        title: String,
        /// Description.
        description: String,
        /// Link URL.
        url: String,
    },
    /// `event`
    Event(Event),
    /// Any other `MsgType`; every field is in [`Message::fields`].
    Unknown,
}

/// A scan result from a `scancode_*` menu event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScanCode {
    /// Menu key.
    pub event_key: String,
    /// `qrcode`, `barcode`, …
    pub scan_type: String,
    /// What was scanned.
    pub scan_result: String,
}

/// Photos chosen from a `pic_*` menu event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PicEvent {
    /// Menu key.
    pub event_key: String,
    /// MD5 sums of the pictures.
    pub pic_md5: Vec<String>,
}

/// Events (`MsgType=event`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Event {
    /// Follow, possibly through a parametric QR code (`qrscene_…`).
    Subscribe {
        /// `qrscene_` + scene for QR follows.
        event_key: Option<String>,
        /// QR ticket.
        ticket: Option<String>,
    },
    /// Unfollow.
    Unsubscribe,
    /// Scan of a parametric QR code by a follower.
    Scan {
        /// Scene value.
        event_key: String,
        /// QR ticket.
        ticket: Option<String>,
    },
    /// Location report.
    Location {
        /// Latitude.
        latitude: f64,
        /// Longitude.
        longitude: f64,
        /// Precision.
        precision: f64,
    },
    /// Menu click.
    Click {
        /// Menu key.
        event_key: String,
    },
    /// Menu link.
    View {
        /// Target URL.
        url: String,
        /// Menu id.
        menu_id: Option<String>,
    },
    /// `scancode_push`
    ScancodePush(ScanCode),
    /// `scancode_waitmsg`
    ScancodeWaitmsg(ScanCode),
    /// `pic_sysphoto`
    PicSysphoto(PicEvent),
    /// `pic_photo_or_album`
    PicPhotoOrAlbum(PicEvent),
    /// `pic_weixin`
    PicWeixin(PicEvent),
    /// `location_select`
    LocationSelect {
        /// Menu key.
        event_key: String,
        /// Latitude as sent.
        latitude: String,
        /// Longitude as sent.
        longitude: String,
        /// Scale as sent.
        scale: String,
        /// Place label.
        label: String,
        /// POI name (often empty).
        poiname: String,
    },
    /// Menu opening a mini program.
    ViewMiniprogram {
        /// Page path.
        page_path: String,
        /// Menu id.
        menu_id: Option<String>,
    },
    /// Template message delivery report.
    TemplateSendJobFinish {
        /// Status text (`success`, `failed:user block`, …).
        status: String,
    },
    /// Mass send report.
    MassSendJobFinish {
        /// Status text.
        status: String,
        /// Counters, when present.
        total_count: Option<u64>,
        /// Counters, when present.
        filter_count: Option<u64>,
        /// Counters, when present.
        sent_count: Option<u64>,
        /// Counters, when present.
        error_count: Option<u64>,
    },
    /// Any other event; every field is in [`Message::fields`].
    Unknown,
}

impl Message {
    /// The event, when this is one.
    pub fn event(&self) -> Option<&Event> {
        match &self.kind {
            MessageKind::Event(e) => Some(e),
            _ => None,
        }
    }

    /// The `Event` value as received (empty for non-events).
    pub fn event_name(&self) -> &str {
        self.fields.child_text("Event").map(str::trim).unwrap_or("")
    }

    /// The `EventKey` as received (empty when absent).
    pub fn event_key(&self) -> &str {
        self.fields.child_text("EventKey").unwrap_or("")
    }

    /// The text content: a text message's content, or a voice message's
    /// transcript (`<Recognition>`) when it has a non-blank one. `None` for
    /// every other kind and for voice without a transcript.
    pub fn text(&self) -> Option<&str> {
        match &self.kind {
            MessageKind::Text { content, .. } => Some(content),
            MessageKind::Voice {
                recognition: Some(r),
                ..
            } if !r.trim().is_empty() => Some(r),
            _ => None,
        }
    }

    /// How many news articles a reply to this message may carry: one when
    /// answering a user message (WeChat's rule since 2018), more for events.
    pub fn max_articles(&self) -> usize {
        if self.is_user_message() {
            1
        } else {
            super::reply::MAX_ARTICLES
        }
    }

    /// True for user-sent messages (not events): WeChat then allows only one news article.
    pub fn is_user_message(&self) -> bool {
        !matches!(self.kind, MessageKind::Event(_))
    }
}
