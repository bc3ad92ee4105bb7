//! WeCom self-built apps through the real server: the WeCom crypto vectors
//! over HTTP, WeCom's own events, late answers through the app message
//! API, and several accounts side by side in one process.

use std::time::Duration;

use serde_json::{json, Value};
use wxgate::message::xml::parse_str;

use crate::support::fake_wechat::{AGENT_ID, CORP_ID, CORP_SECRET};
use crate::support::fixtures::load_vectors;
use crate::support::{
    eventually, rule, table, text_reply, text_xml, wecom_text, AccountSpec, Behaviour,
    CallbackClient, FakeUpstream, FakeWechat, TestApp, TestConfig,
};

const NOW: i64 = 1_750_000_000;
/// The WeCom test app (separate from the Official Account fixture).
const WC_TOKEN: &str = "wecomTestToken";
const WC_KEY: &str = "Qm8tZ2Vu4lW3cK9pR7sY1vX5bN0aD6fH2jL8eT4uI3o";

/// Every WeCom vector of the set (see `support::fixtures::load_vectors`).
fn vectors() -> Vec<Value> {
    [
        "official_vectors.json",
        "generated_vectors.json",
        "wechatpy_test_vectors.json",
    ]
    .into_iter()
    .flat_map(load_vectors)
    .filter(|v| v["kind"] == "wecom")
    .collect()
}

/// A WeCom app as the only account.
fn wecom_config(token: &str, key: &str, corp_id: &str) -> TestConfig {
    TestConfig::new()
        .account(AccountSpec::wecom(token, key, corp_id))
        .source("wecom.toml")
}

async fn spawn(config: TestConfig, now: i64) -> TestApp {
    TestApp::builder().config(config).now(now).spawn().await
}

/// Percent-encodes base64 as WeChat does (`+`, `/`, `=`).
fn enc(s: &str) -> String {
    s.replace('+', "%2B")
        .replace('/', "%2F")
        .replace('=', "%3D")
}

#[tokio::test]
async fn every_wecom_vector_verifies_and_decrypts_through_the_server() {
    let mut checked = 0;
    for v in vectors() {
        let name = v["name"].as_str().unwrap();
        let s = |k: &str| v[k].as_str().map(str::to_owned);
        let (Some(token), Some(key), Some(corp)) =
            (s("token"), s("encoding_aes_key"), s("receive_id"))
        else {
            panic!("{name}: incomplete vector")
        };
        let query = v.get("query");
        let q = |k: &str| s(k).or_else(|| query.and_then(|q| q[k].as_str()).map(str::to_owned));
        let (Some(ts), Some(nonce), Some(sig)) = (q("timestamp"), q("nonce"), q("msg_signature"))
        else {
            continue;
        };
        let now: i64 = ts.parse().unwrap();
        if v["direction"] == "encrypt" {
            // Replies: covered by the crypto vectors (random prefix fixed there).
            continue;
        }
        let app = spawn(wecom_config(&token, &key, &corp), now).await;
        let base = format!("/weixin?msg_signature={sig}&timestamp={ts}&nonce={nonce}");
        let echo = s("echostr").or_else(|| {
            s("expected_msg")
                .filter(|m| !m.starts_with("<xml"))
                .and(s("encrypt"))
        });
        if let Some(echostr) = echo {
            let expected = s("expected_response_body").or(s("expected_msg")).unwrap();
            let (status, body) = app.get(&format!("{base}&echostr={}", enc(&echostr))).await;
            assert_eq!((status, body.as_str()), (200, expected.as_str()), "{name}");
            // One nonce off: refused.
            let bad = base.replace(&format!("nonce={nonce}"), "nonce=1");
            let (status, _) = app.get(&format!("{bad}&echostr={}", enc(&echostr))).await;
            assert_eq!(status, 403, "{name}: wrong nonce");
            checked += 1;
        }
        if let Some(post_body) = s("post_body") {
            let (status, body) = app.post(&base, post_body.clone()).await;
            // No rules: WeCom's "no reply" is 200 with an empty body.
            assert_eq!((status, body.as_str()), (200, ""), "{name}");
            // The same push to an account with another corp id is refused.
            let other = spawn(wecom_config(&token, &key, "ww0000000000000000"), now).await;
            let (status, _) = other.post(&base, post_body).await;
            assert_eq!(status, 403, "{name}: receive id must be checked");
            checked += 1;
        }
    }
    assert!(checked >= 7, "only {checked} WeCom vectors checked");
}

#[tokio::test]
async fn wecom_messages_and_events_go_through_the_rules_and_replies_are_sealed() {
    let rules = r#"
[[rules]]
name = "hello"
match = { text = "你好" }
reply = { type = "text", content = "hi {from_user}" }
[[rules]]
name = "enter"
match = { event = "enter_agent" }
reply = { type = "text", content = "欢迎使用" }
[[rules]]
name = "menu"
match = { event = "click", key = "K1" }
reply = { type = "news", articles = [{ title = "A", url = "https://example.com/a" }, { title = "B", url = "https://example.com/b" }] }
"#;
    let app = spawn(wecom_config(WC_TOKEN, WC_KEY, CORP_ID).rules(rules), NOW).await;
    let post = |xml: String| {
        let app = &app;
        async move { app.post_encrypted(&xml).await }
    };

    let (status, body) = post(wecom_text("你好", NOW, 1)).await;
    assert_eq!(status, 200);
    let reply = parse_str(&app.wechat.open_reply(&body)).unwrap();
    assert_eq!(reply.child_text("Content"), Some("hi zhangsan"));
    assert_eq!(reply.child_text("ToUserName"), Some("zhangsan"));
    assert_eq!(reply.child_text("FromUserName"), Some(CORP_ID));

    let event = |name: &str, extra: &str| {
        format!("<xml><ToUserName><![CDATA[{CORP_ID}]]></ToUserName><FromUserName><![CDATA[lisi]]></FromUserName><CreateTime>{NOW}</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[{name}]]></Event>{extra}<AgentID>{AGENT_ID}</AgentID></xml>")
    };
    let (_, body) = post(event("enter_agent", "<EventKey><![CDATA[]]></EventKey>")).await;
    let reply = parse_str(&app.wechat.open_reply(&body)).unwrap();
    assert_eq!(reply.child_text("Content"), Some("欢迎使用"));

    let (_, body) = post(event("click", "<EventKey><![CDATA[K1]]></EventKey>")).await;
    let reply = parse_str(&app.wechat.open_reply(&body)).unwrap();
    assert_eq!(reply.child_text("ArticleCount"), Some("2"));

    // WeCom's own events without a rule: parsed, answered with nothing.
    let (status, body) = post(event(
        "change_contact",
        "<ChangeType><![CDATA[update_user]]></ChangeType><UserID><![CDATA[lisi]]></UserID>",
    ))
    .await;
    assert_eq!((status, body.as_str()), (200, ""));
    let (status, body) = post(wecom_text("没有规则", NOW, 2)).await;
    assert_eq!((status, body.as_str()), (200, ""));

    // An Official Account style request (signature + encrypt_type) is not WeCom's.
    let official = CallbackClient::for_entry(
        TestConfig::new()
            .account(AccountSpec::token_only(WC_TOKEN))
            .build()
            .primary(),
    );
    let (status, _) = app
        .post(
            &format!("{}&encrypt_type=aes", official.signed_query(NOW)),
            wecom_text("x", NOW, 3),
        )
        .await;
    assert_eq!(status, 400, "missing msg_signature");
    // A stale timestamp is refused like on an Official Account.
    let (q, b) = app
        .wechat
        .encrypted(&wecom_text("你好", NOW, 4), NOW - 3600);
    assert_eq!(app.post(&q, b).await.0, 403);
}

#[tokio::test]
async fn a_slow_wecom_answer_arrives_as_an_app_message() {
    let wechat = FakeWechat::start().await;
    let long: String = (1..=90).map(|i| format!("第{i}句回答内容。")).collect();
    let hook = FakeUpstream::start(Behaviour::Slow(
        Duration::from_millis(900),
        json!({ "type": "text", "content": long }),
    ))
    .await;
    let config = TestConfig::new()
        .account(
            AccountSpec::wecom(WC_TOKEN, WC_KEY, CORP_ID)
                .set("corp_secret", CORP_SECRET)
                .api(&wechat),
        )
        .set("agent.passive_budget_ms", 300)
        .set("agent.interim_text", "稍等")
        .upstream(table([
            ("name", "agent".into()),
            ("protocol", "webhook".into()),
            ("url", hook.hook_url().into()),
            ("timeout_ms", 5000.into()),
        ]))
        .set(
            "default_reply",
            table([("type", "upstream".into()), ("upstream", "agent".into())]),
        );
    let app = spawn(config, NOW).await;
    let (q, b) = app.wechat.encrypted(&wecom_text("讲讲", NOW, 11), NOW);
    let (status, body) = app.post(&q, b).await;
    assert_eq!(status, 200);
    let interim = parse_str(&app.wechat.open_reply(&body)).unwrap();
    assert_eq!(interim.child_text("Content"), Some("稍等"));

    let texts = || -> Vec<String> {
        wechat
            .wecom_sends()
            .iter()
            .map(|s| s["text"]["content"].as_str().unwrap_or_default().to_owned())
            .collect()
    };
    assert!(
        eventually(Duration::from_secs(6), || texts().concat() == long).await,
        "the late answer never arrived whole: {:?}",
        wechat.wecom_sends()
    );
    for send in wechat.wecom_sends() {
        assert_eq!(send["touser"], "zhangsan");
        assert_eq!(send["agentid"], AGENT_ID);
        assert_eq!(send["msgtype"], "text");
    }
    assert!(texts().len() >= 2, "split into several messages");
    // The token came from WeCom's gettoken with the app secret.
    assert_eq!(wechat.api_calls("/cgi-bin/message/custom/send"), 0);
}

#[tokio::test]
async fn accounts_are_served_side_by_side_with_their_own_rules() {
    let hello = || table([("text", "hello".into())]);
    let config = TestConfig::new()
        .account(AccountSpec::fixture("plain"))
        .rule(rule(hello(), text_reply("from the official account")))
        .add_account(
            AccountSpec::wecom(WC_TOKEN, WC_KEY, CORP_ID)
                .name("corp")
                .rule(rule(hello(), text_reply("from the wecom app"))),
        )
        .source("multi.toml");
    let app = spawn(config, NOW).await;
    let corp = app.wechat_for("corp");

    let (status, body) = app.post_plain(&text_xml("hello", NOW, 77)).await;
    assert_eq!(status, 200);
    assert!(body.contains("from the official account"), "{body}");

    // The same MsgId on the other account is another message.
    let (q, b) = corp.encrypted(&wecom_text("hello", NOW, 77), NOW);
    let (status, body) = app.post(&q, b.clone()).await;
    assert_eq!(status, 200);
    let reply = corp.open_reply(&body);
    assert!(reply.contains("from the wecom app"), "{reply}");

    // Each path speaks for its own account only.
    let official_path = q.replacen("/weixin/corp", "/weixin", 1);
    assert_eq!(app.post(&official_path, b).await.0, 400);
    // Signed with the Official Account's token, sent to each path.
    let verify = |path: &str| app.wechat.clone().at(path).verify_query(NOW, "ok");
    assert_eq!(app.get(&verify("/weixin")).await, (200, "ok".to_owned()));
    assert_eq!(app.get(&verify("/weixin/corp")).await.0, 400);
    assert_eq!(app.get(&verify("/weixin/other")).await.0, 404);

    let (status, ready) = app.get("/readyz").await;
    assert_eq!(status, 200, "{ready}");
    let ready: Value = serde_json::from_str(&ready).unwrap();
    assert_eq!(
        ready["accounts"],
        json!([
            {"name": "default", "kind": "official", "path": "/weixin", "mode": "plain", "rules": 1},
            {"name": "corp", "kind": "wecom", "path": "/weixin/corp", "mode": "safe", "rules": 1},
        ])
    );
}

#[tokio::test]
async fn every_recorded_wecom_push_is_answered_through_the_server() {
    use crate::support::fixtures::{read_wecom, wecom_manifest, WECOM_ACCOUNT};
    let a = &*WECOM_ACCOUNT;
    // A rule for every event (events get no default reply) and a default
    // reply for messages: each push gets a reply naming its type.
    let manifest = wecom_manifest();
    let answer = "got {msg_type} {event} from {from_user}";
    let mut config = wecom_config(&a.token, &a.encoding_aes_key, &a.corp_id);
    for event in manifest.kinds.values().filter_map(|k| k.event.as_deref()) {
        config = config.rule(rule(table([("event", event.into())]), text_reply(answer)));
    }
    let config = config.set("default_reply", text_reply(answer));
    let verify = &manifest.verify;
    let app = spawn(config, verify.timestamp.parse().unwrap()).await;
    assert_eq!(
        app.get(&format!("/weixin?{}", verify.get_query)).await,
        (200, verify.expected_response_body.clone())
    );
    for (name, kind) in &manifest.kinds {
        app.clock.set(kind.query.timestamp.parse().unwrap());
        let body = read_wecom(&format!("encrypted/{name}.xml"));
        let (status, reply) = app
            .post(&format!("/weixin?{}", kind.query.to_query_string()), body)
            .await;
        assert_eq!(status, 200, "{name}: {reply}");
        let from = kind.fields.get("FromUserName").cloned().unwrap_or_default();
        if from.is_empty() {
            // The Customer Service notification on an app account: nothing to say.
            assert_eq!(reply, "", "{name}");
            continue;
        }
        let xml = parse_str(&app.wechat.open_reply(&reply)).unwrap();
        let expected = format!(
            "got {} {} from {from}",
            kind.msg_type,
            kind.event.as_deref().unwrap_or("")
        );
        assert_eq!(xml.child_text("Content"), Some(expected.as_str()), "{name}");
        assert_eq!(xml.child_text("ToUserName"), Some(from.as_str()), "{name}");
        assert_eq!(
            xml.child_text("FromUserName"),
            Some(a.corp_id.as_str()),
            "{name}"
        );
    }
}

#[tokio::test]
async fn the_internal_token_endpoint_serves_each_account() {
    let wechat = FakeWechat::start().await;
    let key = "internal-key-0123456789abcdef";
    let config = TestConfig::new()
        .token_api(&wechat)
        .set("token.internal_api_key", key)
        .account(AccountSpec::official_api("t"))
        .add_account(
            AccountSpec::wecom(WC_TOKEN, WC_KEY, CORP_ID)
                .name("corp")
                .set("corp_secret", CORP_SECRET)
                .api(&wechat),
        )
        .source("t.toml");
    let app = spawn(config, NOW).await;
    let get = |query: &str| {
        let request = app
            .http
            .get(format!("{}/internal/access_token{query}", app.base))
            .bearer_auth(key);
        async move {
            let res = request.send().await.unwrap();
            let status = res.status().as_u16();
            (status, res.json::<Value>().await.unwrap())
        }
    };
    let (status, official) = get("").await;
    assert_eq!(status, 200);
    let official = official["access_token"].as_str().unwrap().to_owned();
    assert_eq!(
        wechat.token_secret(&official),
        None,
        "an Official Account token"
    );
    let (status, corp) = get("?account=corp").await;
    assert_eq!(status, 200);
    let corp = corp["access_token"].as_str().unwrap();
    assert_eq!(wechat.token_secret(corp).as_deref(), Some(CORP_SECRET));
    assert_eq!(get("?account=nobody").await.0, 404);
}
