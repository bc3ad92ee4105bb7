//! The fake WeCom API where its behaviour is not obvious: one token per
//! secret, the token checks, sync_msg pages and cursors, the callback Token,
//! the gate that holds a pull, and send_msg's checks.

use std::time::Duration;

use serde_json::{json, Value};

use crate::support::fake_wechat::{
    kf_event, kf_text, FakeWechat, AGENT_ID, APP_ID, APP_SECRET, CORP_ID, CORP_SECRET, KF_SECRET,
};

const KF: &str = "wkFakeKfAccount0000000000000001";

struct Api {
    fake: FakeWechat,
    http: reqwest::Client,
}

impl Api {
    async fn start() -> Api {
        Api {
            fake: FakeWechat::start().await,
            http: reqwest::Client::new(),
        }
    }

    async fn get(&self, path_and_query: &str) -> Value {
        let url = format!("{}{path_and_query}", self.fake.base_url());
        self.http
            .get(url)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    async fn post(&self, path: &str, token: &str, body: Value) -> Value {
        let url = format!("{}{path}?access_token={token}", self.fake.base_url());
        let res = self.http.post(url).json(&body).send().await.unwrap();
        res.json().await.unwrap()
    }

    async fn token(&self, secret: &str) -> String {
        let res = self
            .get(&format!(
                "/cgi-bin/gettoken?corpid={CORP_ID}&corpsecret={secret}"
            ))
            .await;
        assert_eq!(res["errcode"], 0, "{res}");
        res["access_token"].as_str().unwrap().to_owned()
    }

    async fn sync(&self, token: &str, body: Value) -> Value {
        self.post("/cgi-bin/kf/sync_msg", token, body).await
    }
}

fn errcode(res: &Value) -> i64 {
    res["errcode"]
        .as_i64()
        .unwrap_or_else(|| panic!("no errcode: {res}"))
}

fn msgids(res: &Value) -> Vec<&str> {
    res["msg_list"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["msgid"].as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn gettoken_keeps_one_token_per_secret() {
    let api = Api::start().await;
    let first = api
        .get(&format!(
            "/cgi-bin/gettoken?corpid={CORP_ID}&corpsecret={CORP_SECRET}"
        ))
        .await;
    assert_eq!((errcode(&first), first["errmsg"].as_str()), (0, Some("ok")));
    assert_eq!(first["expires_in"], 7200);
    let app = first["access_token"].as_str().unwrap().to_owned();
    // While valid, the same token comes back; the kf secret has its own.
    assert_eq!(api.token(CORP_SECRET).await, app);
    let kf = api.token(KF_SECRET).await;
    assert_ne!(kf, app);
    assert_eq!(api.fake.token_secret(&app).as_deref(), Some(CORP_SECRET));
    assert_eq!(api.fake.token_secret(&kf).as_deref(), Some(KF_SECRET));
    assert_eq!(api.fake.token_secret("nonsense"), None);

    for (query, code) in [
        (
            format!("corpid=ww0000000000000000&corpsecret={CORP_SECRET}"),
            40013,
        ),
        (format!("corpid={CORP_ID}&corpsecret=wrong"), 40001),
        (format!("corpsecret={CORP_SECRET}"), 41002),
        (format!("corpid={CORP_ID}"), 41004),
    ] {
        assert_eq!(
            errcode(&api.get(&format!("/cgi-bin/gettoken?{query}")).await),
            code,
            "{query}"
        );
    }
    api.fake.fail_next_token_requests(&[-1]);
    assert_eq!(
        errcode(
            &api.get(&format!(
                "/cgi-bin/gettoken?corpid={CORP_ID}&corpsecret={KF_SECRET}"
            ))
            .await
        ),
        -1
    );
    assert_eq!(api.fake.token_requests(), 8);

    // Once expired, a new one.
    api.fake.expire(&app);
    let renewed = api.token(CORP_SECRET).await;
    assert_ne!(renewed, app);
    assert_eq!(
        api.fake.token_secret(&renewed).as_deref(),
        Some(CORP_SECRET)
    );
}

#[tokio::test]
async fn wecom_and_official_account_tokens_do_not_mix() {
    let api = Api::start().await;
    let send = json!({ "touser": "LiLei", "msgtype": "text", "agentid": AGENT_ID, "text": { "content": "hi" } });
    let wecom = api.token(CORP_SECRET).await;
    let oa = api
        .get(&format!(
            "/cgi-bin/token?grant_type=client_credential&appid={APP_ID}&secret={APP_SECRET}"
        ))
        .await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    // WeCom answers 40014 to a token it does not know, the OA API 40001.
    assert_eq!(
        errcode(&api.post("/cgi-bin/message/send", &oa, send.clone()).await),
        40014
    );
    assert_eq!(
        errcode(&api.post("/cgi-bin/message/send", "", send.clone()).await),
        41001
    );
    let custom = json!({ "touser": "o1", "msgtype": "text", "text": { "content": "hi" } });
    assert_eq!(
        errcode(
            &api.post("/cgi-bin/message/custom/send", &wecom, custom)
                .await
        ),
        40001
    );
    api.fake.expire(&wecom);
    assert_eq!(
        errcode(&api.post("/cgi-bin/message/send", &wecom, send).await),
        42001
    );
    assert_eq!(
        api.fake.api_call_tokens("message/send"),
        [oa.as_str(), "", wecom.as_str()],
        "every call's token is recorded, failed ones included"
    );
}

#[tokio::test]
async fn app_messages_are_checked_like_wecom() {
    let api = Api::start().await;
    let token = api.token(CORP_SECRET).await;
    let text = |content: &str| json!({ "touser": "LiLei", "msgtype": "text", "agentid": AGENT_ID, "text": { "content": content } });
    let mut no_agent = text("hi");
    no_agent.as_object_mut().unwrap().remove("agentid");
    let mut string_agent = text("hi");
    string_agent["agentid"] = json!("1000002");
    let mut other_agent = text("hi");
    other_agent["agentid"] = json!(1000003);
    let mut nobody = text("hi");
    nobody["touser"] = json!("");
    for (body, code) in [
        (no_agent, 41011),
        (string_agent, 40056),
        (other_agent, 40056),
        (text(""), 44004),
        (text(&"字".repeat(683)), 45002), // 2049 bytes
        (nobody, 81013),
        (
            json!({ "touser": "LiLei", "msgtype": "sticker", "agentid": AGENT_ID }),
            40008,
        ),
    ] {
        assert_eq!(
            errcode(
                &api.post("/cgi-bin/message/send", &token, body.clone())
                    .await
            ),
            code,
            "{body}"
        );
    }
    api.fake.fail_next_wecom_sends(&[45009]);
    assert_eq!(
        errcode(&api.post("/cgi-bin/message/send", &token, text("hi")).await),
        45009
    );
    let ok = api
        .post("/cgi-bin/message/send", &token, text(&"x".repeat(2048)))
        .await;
    assert_eq!((errcode(&ok), ok["invaliduser"].as_str()), (0, Some("")));
    assert!(ok["msgid"].as_str().is_some_and(|m| !m.is_empty()));
    assert_eq!(
        api.fake.wecom_sends(),
        [text(&"x".repeat(2048))],
        "only the accepted one"
    );
}

#[tokio::test]
async fn sync_msg_pages_and_resumes_from_a_cursor() {
    let api = Api::start().await;
    let token = api.token(KF_SECRET).await;
    api.fake.kf_push(
        KF,
        vec![
            kf_event("m0", "wmCustomer", KF, 1_700_000_000),
            kf_text("m1", "wmCustomer", KF, 1_700_000_001, "one"),
            kf_text("m2", "wmCustomer", KF, 1_700_000_002, "two"),
            kf_text("m3", "wmCustomer", KF, 1_700_000_003, "three"),
            kf_text("m4", "wmCustomer", KF, 1_700_000_004, "four"),
        ],
    );
    api.fake.set_kf_page_size(2);
    let callback = api.fake.kf_notification_token(KF);

    // Pages of min(limit, page size) until has_more is 0.
    let mut cursor: Option<String> = None;
    let mut pages = Vec::new();
    loop {
        let mut body = json!({ "token": callback, "open_kfid": KF });
        if let Some(c) = &cursor {
            body["cursor"] = json!(c);
        }
        let res = api.sync(&token, body).await;
        assert_eq!(errcode(&res), 0, "{res}");
        pages.push(msgids(&res).join(","));
        cursor = Some(res["next_cursor"].as_str().unwrap().to_owned());
        if res["has_more"] == 0 {
            break;
        }
        assert_eq!(res["has_more"], 1);
    }
    assert_eq!(pages, ["m0,m1", "m2,m3", "m4"]);
    let calls = api.fake.kf_sync_calls();
    assert_eq!(calls.len(), 3);
    assert_eq!(calls[0], (None, KF.to_owned()));
    assert!(calls[1].0.is_some());

    // The last cursor sees only what arrives later; cursors can be replayed.
    let last = cursor.unwrap();
    let empty = api
        .sync(&token, json!({ "cursor": last, "open_kfid": KF }))
        .await;
    assert_eq!((msgids(&empty).len(), &empty["has_more"]), (0, &json!(0)));
    assert_eq!(empty["next_cursor"], json!(last));
    api.fake.kf_push(
        KF,
        vec![kf_text("m5", "wmCustomer", KF, 1_700_000_005, "five")],
    );
    for _ in 0..2 {
        let res = api
            .sync(&token, json!({ "cursor": last, "open_kfid": KF }))
            .await;
        assert_eq!(msgids(&res), ["m5"]);
    }

    // limit is honoured below the page size; "" starts over; bad values are refused.
    let one = api
        .sync(&token, json!({ "cursor": "", "limit": 1, "open_kfid": KF }))
        .await;
    assert_eq!((msgids(&one), &one["has_more"]), (vec!["m0"], &json!(1)));
    let other_account = api
        .sync(&token, json!({ "cursor": last, "open_kfid": "wkOther" }))
        .await;
    assert_eq!(
        errcode(&other_account),
        40058,
        "a cursor belongs to its open_kfid"
    );
    for body in [
        json!({ "cursor": "not-a-cursor", "open_kfid": KF }),
        json!({ "limit": 0, "open_kfid": KF }),
        json!({ "limit": 1001, "open_kfid": KF }),
        json!({ "voice_format": 2, "open_kfid": KF }),
    ] {
        assert_eq!(
            errcode(&api.sync(&token, body.clone()).await),
            40058,
            "{body}"
        );
    }
    assert_eq!(
        errcode(&api.sync(&token, json!({ "cursor": last })).await),
        95000
    );
    // An account nothing was pushed to has an empty queue.
    let quiet = api.sync(&token, json!({ "open_kfid": "wkQuiet" })).await;
    assert_eq!((errcode(&quiet), msgids(&quiet).len()), (0, 0));
}

#[tokio::test]
async fn sync_msg_checks_the_callback_token() {
    let api = Api::start().await;
    let token = api.token(KF_SECRET).await;
    api.fake.kf_push(
        KF,
        vec![kf_text("m1", "wmCustomer", KF, 1_700_000_001, "hi")],
    );
    let callback = api.fake.kf_notification_token(KF);
    assert!(callback.starts_with("ENC") && callback.len() <= 128);

    let with = |t: &str| json!({ "token": t, "open_kfid": KF });
    assert_eq!(errcode(&api.sync(&token, with(&callback)).await), 0);
    assert_eq!(errcode(&api.sync(&token, with("ENCforged")).await), 95007);
    // No token at all is allowed (WeCom then rate-limits strictly).
    assert_eq!(
        errcode(&api.sync(&token, json!({ "open_kfid": KF })).await),
        0
    );
    api.fake.expire_kf_token(&callback);
    assert_eq!(errcode(&api.sync(&token, with(&callback)).await), 95007);
    api.fake.set_kf_token_lifetime(Duration::from_millis(50));
    let short = api.fake.kf_notification_token(KF);
    assert_eq!(errcode(&api.sync(&token, with(&short)).await), 0);
    tokio::time::sleep(Duration::from_millis(80)).await;
    assert_eq!(errcode(&api.sync(&token, with(&short)).await), 95007);

    // Scripted failures come before the body is looked at; the access token still counts.
    api.fake.fail_next_syncs(&[45033]);
    assert_eq!(errcode(&api.sync(&token, with(&callback)).await), 45033);
    assert_eq!(
        errcode(&api.sync("nonsense", json!({ "open_kfid": KF })).await),
        40014
    );
    assert_eq!(api.fake.kf_sync_requests()[0]["token"], json!(callback));
    let tokens = api.fake.api_call_tokens("kf/sync_msg");
    assert_eq!(tokens.len(), 8);
    assert!(tokens[..7]
        .iter()
        .all(|t| api.fake.token_secret(t).as_deref() == Some(KF_SECRET)));
}

async fn wait_until_no_sync_is_held(fake: &FakeWechat) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while fake.held_syncs() > 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "a held call never let go"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_held_sync_waits_for_release_and_a_dropped_one_blocks_nothing() {
    let api = Api::start().await;
    let token = api.token(KF_SECRET).await;
    api.fake.kf_push(
        KF,
        vec![kf_text("m1", "wmCustomer", KF, 1_700_000_001, "hi")],
    );
    let body = json!({ "open_kfid": KF });
    api.fake.hold_syncs_after(1);
    assert_eq!(
        errcode(&api.sync(&token, body.clone()).await),
        0,
        "the first call passes"
    );

    // A client that gives up on a held call.
    let url = format!(
        "{}/cgi-bin/kf/sync_msg?access_token={token}",
        api.fake.base_url()
    );
    let gave_up = api
        .http
        .post(&url)
        .json(&body)
        .timeout(Duration::from_millis(300))
        .send()
        .await;
    assert!(
        gave_up.is_err_and(|e| e.is_timeout()),
        "held calls do not answer"
    );
    // The server drops the abandoned call: it no longer waits at the gate.
    wait_until_no_sync_is_held(&api.fake).await;

    // Another held call, while the rest of the API keeps serving.
    let waiting = tokio::spawn({
        let (http, url, body) = (api.http.clone(), url.clone(), body.clone());
        async move {
            http.post(url)
                .json(&body)
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!waiting.is_finished());
    assert_eq!(api.fake.held_syncs(), 1);
    let send = json!({ "touser": "wmCustomer", "open_kfid": KF, "msgtype": "text", "text": { "content": "hi" } });
    assert_eq!(
        errcode(&api.post("/cgi-bin/kf/send_msg", &token, send).await),
        0
    );
    assert_eq!(
        api.fake.kf_sync_calls().len(),
        3,
        "held calls are recorded on arrival"
    );

    api.fake.release_syncs();
    let released = tokio::time::timeout(Duration::from_secs(5), waiting)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(msgids(&released), ["m1"]);
    wait_until_no_sync_is_held(&api.fake).await;
    // Released: no more holding.
    assert_eq!(errcode(&api.sync(&token, body).await), 0);
}

#[tokio::test]
async fn send_msg_checks_msgid_and_content() {
    let api = Api::start().await;
    let token = api.token(KF_SECRET).await;
    let text = |msgid: Option<&str>, content: &str| {
        let mut body = json!({ "touser": "wmCustomer", "open_kfid": KF, "msgtype": "text", "text": { "content": content } });
        if let Some(id) = msgid {
            body["msgid"] = json!(id);
        }
        body
    };
    let max_id = "A".repeat(32);
    for (body, code) in [
        (text(Some(&"A".repeat(33)), "hi"), 40058),
        (text(Some("reply.1"), "hi"), 40058),
        (text(None, ""), 44004),
        (text(None, &"x".repeat(2049)), 45002),
        (
            json!({ "open_kfid": KF, "msgtype": "text", "text": { "content": "hi" } }),
            40096,
        ),
        (
            json!({ "touser": "wmCustomer", "msgtype": "text", "text": { "content": "hi" } }),
            95000,
        ),
    ] {
        assert_eq!(
            errcode(&api.post("/cgi-bin/kf/send_msg", &token, body.clone()).await),
            code,
            "{body}"
        );
    }
    api.fake.fail_next_kf_sends(&[95018]);
    assert_eq!(
        errcode(
            &api.post("/cgi-bin/kf/send_msg", &token, text(None, "hi"))
                .await
        ),
        95018
    );

    // The msgid is echoed; without one the fake makes one up, within the same rules.
    let given = api
        .post("/cgi-bin/kf/send_msg", &token, text(Some(&max_id), "hi"))
        .await;
    assert_eq!(given["msgid"], json!(max_id));
    let made = api
        .post(
            "/cgi-bin/kf/send_msg",
            &token,
            text(None, &"x".repeat(2048)),
        )
        .await;
    let made_id = made["msgid"].as_str().unwrap();
    assert!(
        made_id.len() <= 32
            && made_id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    );
    // The same msgid twice is two sends: WeCom only promises the echo.
    api.post("/cgi-bin/kf/send_msg", &token, text(Some(&max_id), "again"))
        .await;
    let sent = api.fake.kf_sends();
    assert_eq!(sent.len(), 3);
    assert_eq!(
        sent.iter().filter(|b| b["msgid"] == json!(max_id)).count(),
        2
    );
}
