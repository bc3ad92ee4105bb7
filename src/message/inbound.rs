//! WeChat XML into the domain's typed messages and events (PROTOCOL §4).

use thiserror::Error;

use super::xml::{self, XmlError};
use crate::domain::{Element, Event, Message, MessageKind, PicEvent, ScanCode};

/// Why a body is not a WeChat message.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum MessageError {
    /// Not a WeChat XML document.
    #[error(transparent)]
    Xml(#[from] XmlError),
    /// A field every message of this kind carries is missing.
    #[error("missing field <{0}>")]
    MissingField(&'static str),
    /// A field that must be a number is not.
    #[error("field <{field}> is not a valid number")]
    BadNumber {
        /// The element name.
        field: &'static str,
    },
}

impl Message {
    /// Parses a plaintext WeChat XML document.
    pub fn parse(body: &[u8]) -> Result<Message, MessageError> {
        let root = xml::parse(body)?;
        Message::from_element(root)
    }

    /// Parses a document that is already text, such as a decrypted payload
    /// (its UTF-8 was checked when it became a `String`).
    pub fn parse_str(text: &str) -> Result<Message, MessageError> {
        Message::from_element(xml::parse_str(text)?)
    }

    /// Builds a typed message from a parsed document.
    pub fn from_element(root: Element) -> Result<Message, MessageError> {
        let to_user = required(&root, "ToUserName")?.to_owned();
        let from_user = root
            .child_text("FromUserName")
            .unwrap_or_default()
            .to_owned();
        let create_time = seconds(
            number::<i64>(&root, "CreateTime")?.ok_or(MessageError::MissingField("CreateTime"))?,
        );
        let msg_type = required(&root, "MsgType")?.trim().to_owned();
        let msg_id = match number::<u64>(&root, "MsgId")? {
            Some(id) => Some(id),
            None => number::<u64>(&root, "MsgID")?,
        };
        let kind = parse_kind(&root, &msg_type)?;
        Ok(Message {
            to_user,
            from_user,
            create_time,
            msg_type,
            msg_id,
            kind,
            fields: root,
        })
    }
}

/// A `CreateTime` in Unix seconds. Some senders (node-webot's templates,
/// `new Date().getTime()`) write milliseconds; a value beyond
/// [`MILLIS_FROM`] cannot be seconds of this era and is read as milliseconds.
fn seconds(create_time: i64) -> i64 {
    if create_time >= MILLIS_FROM {
        create_time / 1000
    } else {
        create_time
    }
}

/// 10^11: as seconds the year 5138, as milliseconds March 1973.
const MILLIS_FROM: i64 = 100_000_000_000;

/// A media id: absent in the older formats (an image with `PicUrl` only,
/// WeRoBot's and wechat-python-sdk's samples), so an empty one then.
fn media_id(root: &Element) -> String {
    root.child_text("MediaId").unwrap_or_default().to_owned()
}

fn required<'a>(root: &'a Element, name: &'static str) -> Result<&'a str, MessageError> {
    root.child_text(name)
        .ok_or(MessageError::MissingField(name))
}

fn text(root: &Element, name: &'static str) -> Result<String, MessageError> {
    required(root, name).map(str::to_owned)
}

fn optional(root: &Element, name: &str) -> Option<String> {
    root.child_text(name).map(str::to_owned)
}

fn number<T: std::str::FromStr>(
    root: &Element,
    name: &'static str,
) -> Result<Option<T>, MessageError> {
    match root.child_text(name).map(str::trim) {
        None | Some("") => Ok(None),
        Some(v) => v
            .parse()
            .map(Some)
            .map_err(|_| MessageError::BadNumber { field: name }),
    }
}

fn float(root: &Element, name: &'static str) -> Result<f64, MessageError> {
    number::<f64>(root, name)?.ok_or(MessageError::MissingField(name))
}

fn parse_kind(root: &Element, msg_type: &str) -> Result<MessageKind, MessageError> {
    let kind = match msg_type.to_ascii_lowercase().as_str() {
        "text" => MessageKind::Text {
            content: text(root, "Content")?,
            biz_msg_menu_id: optional(root, "bizmsgmenuid"),
        },
        "image" => MessageKind::Image {
            pic_url: root.child_text("PicUrl").unwrap_or_default().to_owned(),
            media_id: media_id(root),
        },
        "voice" => MessageKind::Voice {
            media_id: media_id(root),
            format: root.child_text("Format").unwrap_or_default().to_owned(),
            recognition: optional(root, "Recognition"),
        },
        "video" => MessageKind::Video {
            media_id: media_id(root),
            thumb_media_id: root
                .child_text("ThumbMediaId")
                .unwrap_or_default()
                .to_owned(),
        },
        "shortvideo" => MessageKind::ShortVideo {
            media_id: media_id(root),
            thumb_media_id: root
                .child_text("ThumbMediaId")
                .unwrap_or_default()
                .to_owned(),
        },
        "location" => MessageKind::Location {
            latitude: float(root, "Location_X")?,
            longitude: float(root, "Location_Y")?,
            scale: number(root, "Scale")?,
            label: root.child_text("Label").unwrap_or_default().to_owned(),
        },
        "link" => MessageKind::Link {
            title: root.child_text("Title").unwrap_or_default().to_owned(),
            description: root
                .child_text("Description")
                .unwrap_or_default()
                .to_owned(),
            url: text(root, "Url")?,
        },
        "event" => MessageKind::Event(parse_event(root)?),
        _ => MessageKind::Unknown,
    };
    Ok(kind)
}

fn parse_event(root: &Element) -> Result<Event, MessageError> {
    let name = required(root, "Event")?.trim();
    let key = || root.child_text("EventKey").unwrap_or_default().to_owned();
    let event = match name.to_ascii_lowercase().as_str() {
        "subscribe" => Event::Subscribe {
            event_key: optional(root, "EventKey").filter(|k| !k.is_empty()),
            ticket: optional(root, "Ticket").filter(|k| !k.is_empty()),
        },
        "unsubscribe" => Event::Unsubscribe,
        "scan" => Event::Scan {
            event_key: key(),
            ticket: optional(root, "Ticket"),
        },
        "location" => Event::Location {
            latitude: float(root, "Latitude")?,
            longitude: float(root, "Longitude")?,
            precision: number(root, "Precision")?.unwrap_or(0.0),
        },
        "click" => Event::Click { event_key: key() },
        "view" => Event::View {
            url: key(),
            menu_id: optional(root, "MenuId").or_else(|| optional(root, "MenuID")),
        },
        "scancode_push" => Event::ScancodePush(scan_code(root)),
        "scancode_waitmsg" => Event::ScancodeWaitmsg(scan_code(root)),
        "pic_sysphoto" => Event::PicSysphoto(pic_event(root)),
        "pic_photo_or_album" => Event::PicPhotoOrAlbum(pic_event(root)),
        "pic_weixin" => Event::PicWeixin(pic_event(root)),
        "location_select" => {
            let info = root.child("SendLocationInfo");
            let field = |n: &str| {
                info.and_then(|i| i.child_text(n))
                    .unwrap_or_default()
                    .to_owned()
            };
            Event::LocationSelect {
                event_key: key(),
                latitude: field("Location_X"),
                longitude: field("Location_Y"),
                scale: field("Scale"),
                label: field("Label"),
                poiname: field("Poiname"),
            }
        }
        "view_miniprogram" => Event::ViewMiniprogram {
            page_path: key(),
            menu_id: optional(root, "MenuId").or_else(|| optional(root, "MenuID")),
        },
        "templatesendjobfinish" => Event::TemplateSendJobFinish {
            status: root.child_text("Status").unwrap_or_default().to_owned(),
        },
        "masssendjobfinish" => Event::MassSendJobFinish {
            status: root.child_text("Status").unwrap_or_default().to_owned(),
            total_count: number(root, "TotalCount")?,
            filter_count: number(root, "FilterCount")?,
            sent_count: number(root, "SentCount")?,
            error_count: number(root, "ErrorCount")?,
        },
        _ => Event::Unknown,
    };
    Ok(event)
}

fn scan_code(root: &Element) -> ScanCode {
    let info = root.child("ScanCodeInfo");
    let field = |n: &str| {
        info.and_then(|i| i.child_text(n))
            .unwrap_or_default()
            .to_owned()
    };
    ScanCode {
        event_key: root.child_text("EventKey").unwrap_or_default().to_owned(),
        scan_type: field("ScanType"),
        scan_result: field("ScanResult"),
    }
}

fn pic_event(root: &Element) -> PicEvent {
    let pic_md5 = root
        .child("SendPicsInfo")
        .and_then(|i| i.child("PicList"))
        .map(|list| {
            list.children
                .iter()
                .filter_map(|item| item.child_text("PicMd5Sum"))
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    PicEvent {
        event_key: root.child_text("EventKey").unwrap_or_default().to_owned(),
        pic_md5,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEAD: &str = "<ToUserName><![CDATA[gh_1]]></ToUserName><FromUserName><![CDATA[o_user]]></FromUserName><CreateTime>1700000000</CreateTime>";

    fn msg(rest: &str) -> Result<Message, MessageError> {
        Message::parse(format!("<xml>{HEAD}{rest}</xml>").as_bytes())
    }

    #[test]
    fn text_message() {
        let m = msg("<MsgType><![CDATA[text]]></MsgType><Content><![CDATA[你好 👋]]></Content><MsgId>23456789012345678</MsgId>").unwrap();
        assert_eq!(m.to_user, "gh_1");
        assert_eq!(m.from_user, "o_user");
        assert_eq!(m.create_time, 1_700_000_000);
        assert_eq!(m.msg_id, Some(23456789012345678));
        assert_eq!(m.text(), Some("你好 👋"));
        assert!(m.is_user_message());
    }

    #[test]
    fn msg_id_beyond_f64_precision_is_exact() {
        let m =
            msg("<MsgType>text</MsgType><Content>x</Content><MsgId>4561255354251345929</MsgId>")
                .unwrap();
        assert_eq!(m.msg_id, Some(4561255354251345929));
    }

    #[test]
    fn events_are_case_insensitive_and_typed() {
        let m = msg("<MsgType><![CDATA[event]]></MsgType><Event><![CDATA[CLICK]]></Event><EventKey><![CDATA[K1]]></EventKey>").unwrap();
        assert_eq!(
            m.event(),
            Some(&Event::Click {
                event_key: "K1".into()
            })
        );
        assert_eq!(m.event_name(), "CLICK");
        let m = msg("<MsgType>event</MsgType><Event>TEMPLATESENDJOBFINISH</Event><MsgID>3487542469355618313</MsgID><Status>success</Status>").unwrap();
        assert_eq!(m.msg_id, Some(3487542469355618313));
        assert!(
            matches!(m.event(), Some(Event::TemplateSendJobFinish { status }) if status == "success")
        );
    }

    #[test]
    fn an_image_of_the_older_format_has_no_media_id() {
        let m = msg("<MsgType>image</MsgType><PicUrl>https://p/1.jpg</PicUrl><MsgId>1</MsgId>")
            .unwrap();
        assert_eq!(
            m.kind,
            MessageKind::Image {
                pic_url: "https://p/1.jpg".into(),
                media_id: String::new()
            }
        );
    }

    #[test]
    fn unknown_keeps_every_field() {
        let m =
            msg("<MsgType>miniprogrampage</MsgType><Title>t</Title><AppId>wxapp</AppId>").unwrap();
        assert_eq!(m.kind, MessageKind::Unknown);
        assert_eq!(m.fields.child_text("AppId"), Some("wxapp"));
        let m = msg("<MsgType>event</MsgType><Event>user_info_modified</Event><Extra>1</Extra>")
            .unwrap();
        assert_eq!(m.event(), Some(&Event::Unknown));
        assert_eq!(m.fields.child_text("Extra"), Some("1"));
    }

    #[test]
    fn older_formats_and_quirks_are_read() {
        // An image with PicUrl only; a voice and a video without MediaId.
        let m = msg("<MsgType>image</MsgType><PicUrl>http://e.com/p.jpg</PicUrl><MsgId>1</MsgId>")
            .unwrap();
        assert!(
            matches!(&m.kind, MessageKind::Image { pic_url, media_id } if pic_url == "http://e.com/p.jpg" && media_id.is_empty())
        );
        for t in ["voice", "video", "shortvideo"] {
            assert!(msg(&format!("<MsgType>{t}</MsgType>")).is_ok(), "{t}");
        }
        // Milliseconds.
        let m = Message::parse(b"<xml><ToUserName>gh</ToUserName><FromUserName>o</FromUserName><CreateTime>1700000000123</CreateTime><MsgType>text</MsgType><Content>x</Content></xml>").unwrap();
        assert_eq!(m.create_time, 1_700_000_000);
        // Whitespace around CDATA, as WeChat's card-event samples have it.
        let m = Message::parse(b"<xml><ToUserName> <![CDATA[gh_1]]> </ToUserName>\n<FromUserName> <![CDATA[o_1]]> </FromUserName><CreateTime> 1 </CreateTime><MsgType> <![CDATA[event]]> </MsgType><Event> <![CDATA[user_get_card]]> </Event></xml>").unwrap();
        assert_eq!((m.to_user.as_str(), m.from_user.as_str()), ("gh_1", "o_1"));
        assert_eq!(
            (m.msg_type.as_str(), m.event_name()),
            ("event", "user_get_card")
        );
    }

    #[test]
    fn missing_and_bad_fields_are_errors() {
        assert_eq!(
            msg("<Content>x</Content>").unwrap_err(),
            MessageError::MissingField("MsgType")
        );
        assert_eq!(
            msg("<MsgType>text</MsgType>").unwrap_err(),
            MessageError::MissingField("Content")
        );
        assert_eq!(
            msg("<MsgType>location</MsgType><Location_X>north</Location_X><Location_Y>1</Location_Y>").unwrap_err(),
            MessageError::BadNumber { field: "Location_X" }
        );
        assert!(Message::parse(b"<xml><MsgType>text</MsgType></xml>").is_err());
        assert!(Message::parse(b"<xml><ToUserName>a</ToUserName><CreateTime>soon</CreateTime><MsgType>text</MsgType></xml>").is_err());
    }
}
