//! One rule set, every platform: the same top-level `[[rules]]` answers an
//! Official Account, a WeCom app, a Feishu bot, a DingTalk robot and a WeCom
//! 智能机器人 side by side in one server, each in its own platform's form.

use std::time::Duration;

use serde_json::Value;

use crate::support::fake_dingtalk::{robot_text, signed_headers, DINGTALK_APP_SECRET};
use crate::support::fake_feishu::message_event;
use crate::support::fake_wechat::CORP_ID;
use crate::support::fake_wecom_bot::{
    bot_text, FakeResponseUrl, WeComBotClient, BOT_KEY, BOT_TOKEN,
};
use crate::support::{
    eventually, plain_content, text_xml, wecom_text, AccountSpec, CallbackClient, FakeDingTalk,
    FakeFeishu, TestApp, TestConfig,
};

const NOW: i64 = 1_700_000_000;
const WECOM_KEY: &str = "kWxPEV2UEDyxWpmPdKC3F4dgPDmOvfKX1HGnEUDS1aR";
const ANSWER: &str = "价格表见官网";

#[tokio::test]
async fn one_rule_answers_wechat_wecom_feishu_and_dingtalk_side_by_side() {
    let feishu = FakeFeishu::start().await;
    let dingtalk = FakeDingTalk::start().await;
    let response_url = FakeResponseUrl::start().await;
    let config = TestConfig::new()
        .rules(&format!(
            "[[rules]]\nmatch = {{ text = \"价格\" }}\nreply = {{ type = \"text\", content = \"{ANSWER}\" }}\n"
        ))
        .add_account(AccountSpec::token_only("shoptoken").name("shop"))
        .add_account(AccountSpec::wecom("corptoken", WECOM_KEY, CORP_ID).name("corp"))
        .add_account(
            AccountSpec::feishu("feishutoken")
                .name("bot")
                .set("path", "/feishu")
                .set("api_base_url", feishu.base_url()),
        )
        .add_account(
            AccountSpec::dingtalk()
                .name("robot")
                .set("path", "/dingtalk")
                .set("api_base_url", dingtalk.base_url())
                .set("robot_api_base_url", dingtalk.base_url()),
        )
        .add_account(
            AccountSpec::wecom_bot(BOT_TOKEN, BOT_KEY)
                .name("aibot")
                .set("path", "/wecom-bot")
                .set("api_base_url", response_url.base_url()),
        );
    let app = TestApp::builder().config(config).now(NOW).spawn().await;

    // The Official Account: the passive reply XML.
    let shop = app.wechat_for("shop");
    let (query, body) = shop.plain(&text_xml("价格", NOW, 1), NOW);
    let (status, reply) = app.post(&query, body).await;
    assert_eq!((status, plain_content(&reply).as_str()), (200, ANSWER));

    // The WeCom app: the encrypted passive reply.
    let corp = CallbackClient::wecom("corptoken", WECOM_KEY, CORP_ID).at("/weixin/corp");
    let (query, body) = corp.encrypted(&wecom_text("价格", NOW, 2), NOW);
    let (status, reply) = app.post(&query, body).await;
    assert_eq!((status, corp.content(&reply).as_str()), (200, ANSWER));

    // The DingTalk robot: the markdown message in the response.
    let event = robot_text("msgP1", "价格", &dingtalk.session("s"), (NOW + 600) * 1000);
    let mut request = app.http.post(format!("{}/dingtalk", app.base)).body(event);
    for (name, value) in signed_headers(NOW * 1000, DINGTALK_APP_SECRET) {
        request = request.header(name, value);
    }
    let res = request.send().await.unwrap();
    assert_eq!(res.status(), 200);
    let v: Value = serde_json::from_str(&res.text().await.unwrap()).unwrap();
    assert_eq!(v["markdown"]["text"], ANSWER);

    // The 智能机器人: a finished stream in the encrypted JSON answer.
    let bot = WeComBotClient::new(format!("{}/wecom-bot", app.base));
    let answer = bot
        .send(
            &bot_text("msgP2", "价格", &response_url.response_url("p")),
            NOW,
        )
        .await;
    assert_eq!(answer.stream()["finish"], true);
    assert_eq!(answer.stream()["content"], ANSWER);

    // The Feishu bot: 200 at once, the answer through the reply API.
    let event = message_event("feishutoken", "ev_p1", "om_p1", "p2p", "价格", &[]);
    let res = app
        .http
        .post(format!("{}/feishu", app.base))
        .body(event)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(eventually(Duration::from_secs(5), || feishu.replies().len() == 1).await);
    assert_eq!(feishu.replies()[0].text(), ANSWER);
}
