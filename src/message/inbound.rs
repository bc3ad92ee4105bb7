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
        let create_time =
            number::<i64>(&root, "CreateTime")?.ok_or(MessageError::MissingField("CreateTime"))?;
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
            // Pushes of the older format carry only the PicUrl (recorded by
            // WeRoBot, Senparc and node-webot): empty rather than refused.
            media_id: root.child_text("MediaId").unwrap_or_default().to_owned(),
        },
        "voice" => MessageKind::Voice {
            media_id: text(root, "MediaId")?,
            format: root.child_text("Format").unwrap_or_default().to_owned(),
            recognition: optional(root, "Recognition"),
        },
        "video" => MessageKind::Video {
            media_id: text(root, "MediaId")?,
            thumb_media_id: root
                .child_text("ThumbMediaId")
                .unwrap_or_default()
                .to_owned(),
        },
        "shortvideo" => MessageKind::ShortVideo {
            media_id: text(root, "MediaId")?,
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
