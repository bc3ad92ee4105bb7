//! The domain's replies as WeChat's passive-reply XML (PROTOCOL §5).

use std::fmt::Write as _;

use super::xml::push_cdata_element;
use crate::domain::Reply;
#[cfg(test)]
use crate::domain::{Article, ReplyError, MAX_ARTICLES};

impl Reply {
    /// Renders the reply XML with the header swapped: `to_user` is the
    /// inbound `FromUserName`, `from_user` the inbound `ToUserName`.
    ///
    /// `max_articles` is 1 when answering a user message (WeChat's rule since
    /// 2018) and [`MAX_ARTICLES`](crate::domain::MAX_ARTICLES) for events. `None` for [`Reply::Success`].
    pub fn render(
        &self,
        to_user: &str,
        from_user: &str,
        create_time: i64,
        max_articles: usize,
    ) -> Option<String> {
        let msg_type = self.msg_type()?;
        let mut out = String::with_capacity(
            HEADER_LEN + to_user.len() + from_user.len() + self.payload_len(),
        );
        out.push_str("<xml>");
        push_cdata_element(&mut out, "ToUserName", to_user);
        push_cdata_element(&mut out, "FromUserName", from_user);
        let _ = write!(out, "<CreateTime>{create_time}</CreateTime>");
        push_cdata_element(&mut out, "MsgType", msg_type);
        match self {
            Reply::Success => {}
            Reply::Text { content } => push_cdata_element(&mut out, "Content", content),
            Reply::Image { media_id } => wrap(&mut out, "Image", |o| {
                push_cdata_element(o, "MediaId", media_id)
            }),
            Reply::Voice { media_id } => wrap(&mut out, "Voice", |o| {
                push_cdata_element(o, "MediaId", media_id)
            }),
            Reply::Video {
                media_id,
                title,
                description,
            } => wrap(&mut out, "Video", |o| {
                push_cdata_element(o, "MediaId", media_id);
                push_optional(o, "Title", title);
                push_optional(o, "Description", description);
            }),
            Reply::Music {
                title,
                description,
                music_url,
                hq_music_url,
                thumb_media_id,
            } => wrap(&mut out, "Music", |o| {
                push_optional(o, "Title", title);
                push_optional(o, "Description", description);
                push_optional(o, "MusicUrl", music_url);
                push_optional(o, "HQMusicUrl", hq_music_url);
                push_cdata_element(o, "ThumbMediaId", thumb_media_id);
            }),
            Reply::News { articles } => {
                let shown = &articles[..articles.len().min(max_articles.max(1))];
                let _ = write!(out, "<ArticleCount>{}</ArticleCount>", shown.len());
                wrap(&mut out, "Articles", |o| {
                    for article in shown {
                        wrap(o, "item", |o| {
                            push_cdata_element(o, "Title", &article.title);
                            push_cdata_element(o, "Description", &article.description);
                            push_cdata_element(o, "PicUrl", &article.pic_url);
                            push_cdata_element(o, "Url", &article.url);
                        });
                    }
                });
            }
            Reply::TransferCustomerService { kf_account } => {
                if let Some(account) = kf_account {
                    wrap(&mut out, "TransInfo", |o| {
                        push_cdata_element(o, "KfAccount", account)
                    });
                }
            }
        }
        out.push_str("</xml>");
        Some(out)
    }
}

/// Room for the header's tags, CDATA markers and CreateTime.
const HEADER_LEN: usize = 192;
/// Room for one field's tags and CDATA markers.
const FIELD_LEN: usize = 48;

impl Reply {
    /// About how many bytes the fields after `MsgType` take (never less), so
    /// that rendering allocates once.
    fn payload_len(&self) -> usize {
        let field = |v: &str| v.len() + FIELD_LEN;
        let optional = |v: &Option<String>| v.as_deref().map_or(0, field);
        match self {
            Reply::Success => 0,
            Reply::Text { content } => field(content),
            Reply::Image { media_id } | Reply::Voice { media_id } => FIELD_LEN + field(media_id),
            Reply::Video {
                media_id,
                title,
                description,
            } => FIELD_LEN + field(media_id) + optional(title) + optional(description),
            Reply::Music {
                title,
                description,
                music_url,
                hq_music_url,
                thumb_media_id,
            } => {
                FIELD_LEN
                    + optional(title)
                    + optional(description)
                    + optional(music_url)
                    + optional(hq_music_url)
                    + field(thumb_media_id)
            }
            Reply::News { articles } => {
                2 * FIELD_LEN
                    + articles
                        .iter()
                        .map(|a| {
                            FIELD_LEN
                                + field(&a.title)
                                + field(&a.description)
                                + field(&a.pic_url)
                                + field(&a.url)
                        })
                        .sum::<usize>()
            }
            Reply::TransferCustomerService { kf_account } => FIELD_LEN + optional(kf_account),
        }
    }
}

fn wrap(out: &mut String, name: &str, inner: impl FnOnce(&mut String)) {
    out.push('<');
    out.push_str(name);
    out.push('>');
    inner(out);
    out.push_str("</");
    out.push_str(name);
    out.push('>');
}

fn push_optional(out: &mut String, name: &str, value: &Option<String>) {
    if let Some(v) = value {
        push_cdata_element(out, name, v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::xml::parse_str;

    fn article(n: usize) -> Article {
        Article {
            title: format!("t{n}"),
            description: "d".into(),
            pic_url: "https://x/p.jpg".into(),
            url: "https://x/a".into(),
        }
    }

    #[test]
    fn text_reply_matches_the_documented_shape() {
        let xml = Reply::Text {
            content: "你好".into(),
        }
        .render("oABC", "gh_1", 1700000002, 1)
        .unwrap();
        assert_eq!(
            xml,
            "<xml><ToUserName><![CDATA[oABC]]></ToUserName><FromUserName><![CDATA[gh_1]]></FromUserName><CreateTime>1700000002</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[你好]]></Content></xml>"
        );
    }

    #[test]
    fn cdata_terminator_in_content_survives() {
        let xml = Reply::Text {
            content: "a]]>b".into(),
        }
        .render("o", "g", 1, 1)
        .unwrap();
        assert_eq!(
            parse_str(&xml).unwrap().child_text("Content"),
            Some("a]]>b")
        );
    }

    #[test]
    fn news_count_is_enforced() {
        assert_eq!(Reply::news(vec![]), Err(ReplyError::ArticleCount(0)));
        assert_eq!(
            Reply::news((0..9).map(article).collect()),
            Err(ReplyError::ArticleCount(9))
        );
        let news = Reply::news((0..3).map(article).collect()).unwrap();
        let to_message = parse_str(&news.render("o", "g", 1, 1).unwrap()).unwrap();
        assert_eq!(to_message.child_text("ArticleCount"), Some("1"));
        assert_eq!(to_message.child("Articles").unwrap().children.len(), 1);
        let to_event = parse_str(&news.render("o", "g", 1, MAX_ARTICLES).unwrap()).unwrap();
        assert_eq!(to_event.child_text("ArticleCount"), Some("3"));
        assert_eq!(to_event.child("Articles").unwrap().children.len(), 3);
    }

    #[test]
    fn every_kind_renders_well_formed_xml() {
        let replies = [
            Reply::Image {
                media_id: "m".into(),
            },
            Reply::Voice {
                media_id: "m".into(),
            },
            Reply::Video {
                media_id: "m".into(),
                title: Some("t".into()),
                description: None,
            },
            Reply::Music {
                title: Some("t".into()),
                description: Some("d".into()),
                music_url: Some("u".into()),
                hq_music_url: Some("h".into()),
                thumb_media_id: "th".into(),
            },
            Reply::TransferCustomerService {
                kf_account: Some("a@b".into()),
            },
            Reply::TransferCustomerService { kf_account: None },
        ];
        for r in replies {
            let xml = r.render("o", "g", 1, 1).unwrap();
            let doc = parse_str(&xml).unwrap();
            assert_eq!(doc.child_text("MsgType"), r.msg_type());
            assert_eq!(doc.child_text("ToUserName"), Some("o"));
        }
        assert_eq!(Reply::Success.render("o", "g", 1, 1), None);
    }

    #[test]
    fn rendering_needs_no_second_allocation() {
        let long = "长".repeat(600);
        let replies = [
            Reply::Text {
                content: long.clone(),
            },
            Reply::news(vec![article(1), article(2)]).unwrap(),
            Reply::Music {
                title: Some(long.clone()),
                description: Some("d".into()),
                music_url: Some("u".into()),
                hq_music_url: Some("h".into()),
                thumb_media_id: "th".into(),
            },
        ];
        let (to, from) = ("oBench0123456789abcdefghijk", "gh_0123456789ab");
        for r in replies {
            let xml = r.render(to, from, 1_763_700_000, MAX_ARTICLES).unwrap();
            let room = HEADER_LEN + to.len() + from.len() + r.payload_len();
            assert!(xml.len() <= room, "{} > {room}: {xml}", xml.len());
        }
    }
}
