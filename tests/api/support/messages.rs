//! Messages as WeChat pushes them (plaintext; the client signs and encrypts).

use wxgate::message::xml::push_cdata_element;

use super::fake_wechat::{AGENT_ID, CORP_ID};
use super::fixtures::ACCOUNT;

/// A plain text message from the fixture user to the fixture account.
pub fn text_xml(content: &str, now: i64, msg_id: u64) -> String {
    let mut xml = String::from("<xml>");
    push_cdata_element(&mut xml, "ToUserName", &ACCOUNT.original_id);
    push_cdata_element(&mut xml, "FromUserName", &ACCOUNT.openid);
    xml.push_str(&format!("<CreateTime>{now}</CreateTime>"));
    push_cdata_element(&mut xml, "MsgType", "text");
    push_cdata_element(&mut xml, "Content", content);
    xml.push_str(&format!("<MsgId>{msg_id}</MsgId></xml>"));
    xml
}

/// A voice message from the fixture user, with WeChat's transcript
/// (`<Recognition>`) when speech recognition is on.
pub fn voice_xml(recognition: Option<&str>, now: i64, msg_id: u64) -> String {
    let mut xml = String::from("<xml>");
    push_cdata_element(&mut xml, "ToUserName", &ACCOUNT.original_id);
    push_cdata_element(&mut xml, "FromUserName", &ACCOUNT.openid);
    xml.push_str(&format!("<CreateTime>{now}</CreateTime>"));
    push_cdata_element(&mut xml, "MsgType", "voice");
    push_cdata_element(&mut xml, "MediaId", "voice-media-1");
    push_cdata_element(&mut xml, "Format", "amr");
    if let Some(r) = recognition {
        push_cdata_element(&mut xml, "Recognition", r);
    }
    xml.push_str(&format!("<MsgId>{msg_id}</MsgId></xml>"));
    xml
}

/// A picture from the fixture user, at `pic_url`.
pub fn image_xml(pic_url: &str, now: i64, msg_id: u64) -> String {
    let mut xml = String::from("<xml>");
    push_cdata_element(&mut xml, "ToUserName", &ACCOUNT.original_id);
    push_cdata_element(&mut xml, "FromUserName", &ACCOUNT.openid);
    xml.push_str(&format!("<CreateTime>{now}</CreateTime>"));
    push_cdata_element(&mut xml, "MsgType", "image");
    push_cdata_element(&mut xml, "PicUrl", pic_url);
    push_cdata_element(&mut xml, "MediaId", "image-media-1");
    xml.push_str(&format!("<MsgId>{msg_id}</MsgId></xml>"));
    xml
}

/// A WeCom picture from `zhangsan`, at `pic_url`.
pub fn wecom_image(pic_url: &str, now: i64, msg_id: u64) -> String {
    format!(
        "<xml><ToUserName><![CDATA[{CORP_ID}]]></ToUserName><FromUserName><![CDATA[zhangsan]]></FromUserName><CreateTime>{now}</CreateTime><MsgType><![CDATA[image]]></MsgType><PicUrl><![CDATA[{pic_url}]]></PicUrl><MediaId><![CDATA[image-media-1]]></MediaId><MsgId>{msg_id}</MsgId><AgentID>{AGENT_ID}</AgentID></xml>"
    )
}

/// A WeCom voice message from `zhangsan`, with a transcript when given.
pub fn wecom_voice(recognition: Option<&str>, now: i64, msg_id: u64) -> String {
    let recognition = recognition
        .map(|r| format!("<Recognition><![CDATA[{r}]]></Recognition>"))
        .unwrap_or_default();
    format!(
        "<xml><ToUserName><![CDATA[{CORP_ID}]]></ToUserName><FromUserName><![CDATA[zhangsan]]></FromUserName><CreateTime>{now}</CreateTime><MsgType><![CDATA[voice]]></MsgType><MediaId><![CDATA[voice-media-1]]></MediaId><Format><![CDATA[amr]]></Format>{recognition}<MsgId>{msg_id}</MsgId><AgentID>{AGENT_ID}</AgentID></xml>"
    )
}

/// A WeCom text message from `zhangsan` to the app [`AGENT_ID`] of [`CORP_ID`].
pub fn wecom_text(content: &str, now: i64, msg_id: u64) -> String {
    format!(
        "<xml><ToUserName><![CDATA[{CORP_ID}]]></ToUserName><FromUserName><![CDATA[zhangsan]]></FromUserName><CreateTime>{now}</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[{content}]]></Content><MsgId>{msg_id}</MsgId><AgentID>{AGENT_ID}</AgentID></xml>"
    )
}

/// The 微信客服 notification (`kf_msg_or_event`) carrying `token` (e.g. one
/// from `FakeWechat::kf_notification_token`) for `open_kfid`.
pub fn kf_notification_xml(token: &str, open_kfid: &str, now: i64) -> String {
    format!(
        "<xml><ToUserName><![CDATA[{CORP_ID}]]></ToUserName><CreateTime>{now}</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[kf_msg_or_event]]></Event><Token><![CDATA[{token}]]></Token><OpenKfId><![CDATA[{open_kfid}]]></OpenKfId></xml>"
    )
}
