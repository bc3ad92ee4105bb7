//! The log, read as an operator and as an attacker would: the real binary,
//! in its text and its JSON format, through every refusal and failure path
//! a request can take. No line carries a secret or a full OpenID, and
//! every line written while a request is handled — by the turn it starts
//! too — carries that request's id.

use std::path::Path;
use std::time::Duration;

use crate::support::{
    eventually, now_unix, table, text_xml, AccountSpec, Behaviour, BinaryServer, CallbackClient,
    FakeUpstream, FakeWechat, TestConfig, ACCOUNT,
};

const ADMIN_KEY: &str = "admin-key-0123456789-SECRET";
const INTERNAL_KEY: &str = "internal-key-0123456789-SECRET";
const HOOK_SECRET: &str = "hook-secret-0123456789-SECRET";
const LLM_KEY: &str = "sk-llm-key-0123456789-SECRET";

const RULES: &str = r#"
[[rules]]
name = "menu"
match = { text = "菜单" }
reply = { type = "text", content = "menu" }

[[rules]]
name = "broken"
match = { prefix = "坏" }
reply = { type = "upstream", upstream = "broken" }

[default_reply]
type = "upstream"
upstream = "slow"
"#;

fn config(wechat: &FakeWechat, hook: &FakeUpstream, llm: &FakeUpstream, json: bool) -> TestConfig {
    TestConfig::new()
        .account(
            AccountSpec::official_api(&ACCOUNT.token)
                .set("mode", "safe")
                .set("encoding_aes_key", ACCOUNT.encoding_aes_key.as_str()),
        )
        .token_api(wechat)
        .set("log.format", if json { "json" } else { "text" })
        .set("log.level", "info")
        .set("admin.api_key", ADMIN_KEY)
        .set("token.internal_api_key", INTERNAL_KEY)
        .set("agent.passive_budget_ms", 300)
        .set("agent.interim_text", "稍等")
        .set("agent.typing", false)
        .upstream(table([
            ("name", "broken".into()),
            ("protocol", "webhook".into()),
            ("url", hook.hook_url().into()),
            ("secret_env", "HOOK_SECRET".into()),
        ]))
        .upstream(table([
            ("name", "slow".into()),
            ("protocol", "openai".into()),
            ("url", llm.openai_base().into()),
            ("model", "m".into()),
            ("api_key_env", "LLM_KEY".into()),
            ("timeout_ms", 5000.into()),
        ]))
        .rules(RULES)
        .env("HOOK_SECRET", HOOK_SECRET)
        .env("LLM_KEY", LLM_KEY)
}

/// One request of the scenario: what it sends and the status it must get.
struct Step {
    name: &'static str,
    method: reqwest::Method,
    path_and_query: String,
    body: String,
    headers: Vec<(&'static str, &'static str)>,
    status: u16,
    /// A line the request leads to after its response (a late turn): the
    /// step is over once the log has it.
    then: Option<&'static str>,
}

fn steps(client: &CallbackClient, now: i64) -> Vec<Step> {
    let post = |name, (query, body): (String, String), status| Step {
        name,
        method: reqwest::Method::POST,
        path_and_query: query,
        body,
        headers: vec![],
        status,
        then: None,
    };
    let get = |name, path_and_query: String, status, headers| Step {
        name,
        method: reqwest::Method::GET,
        path_and_query,
        body: String::new(),
        headers,
        status,
        then: None,
    };
    let good = client.encrypted(&text_xml("菜单", now, 1), now);
    let tampered = (
        good.0.replace("msg_signature=", "msg_signature=0"),
        good.1.clone(),
    );
    let stale = client.encrypted(&text_xml("菜单", now - 3600, 2), now - 3600);
    let garbage = client.seal("bm90IGEgY2lwaGVydGV4dA==", now);
    let control = client.encrypted(&text_xml("菜\u{1}单", now, 3), now);
    let huge = client.encrypted(&text_xml(&"大".repeat(400_000), now, 4), now);
    let not_xml = client.seal(&client.crypto().encrypt("not xml at all"), now);
    let mut late = post(
        "late send refused (48001)",
        client.encrypted(&text_xml("讲个故事", now, 6), now),
        200,
    );
    late.then = Some("answer kept for the user's next message");
    vec![
        post("a rule's answer", good.clone(), 200),
        post("the same message again (dedup)", good, 200),
        post("a bad signature", tampered, 403),
        post("a timestamp an hour old", stale, 403),
        post("a ciphertext that does not decrypt", garbage, 403),
        post("plaintext that is not XML", not_xml, 400),
        post("a control character (removed)", control, 200),
        post("a body over the limit", huge, 413),
        post(
            "a failing upstream (500)",
            client.encrypted(&text_xml("坏了", now, 5), now),
            200,
        ),
        late,
        get(
            "URL verification with a wrong signature",
            client
                .verify_query(now, "x")
                .replace("signature=", "signature=0"),
            403,
            vec![],
        ),
        Step {
            name: "the admin reload with a wrong key",
            method: reqwest::Method::POST,
            path_and_query: "/admin/reload".into(),
            body: String::new(),
            headers: vec![("authorization", "Bearer wrong-admin-key")],
            status: 401,
            then: None,
        },
        get(
            "the internal token with a wrong key",
            "/internal/access_token".into(),
            401,
            vec![("authorization", "Bearer wrong-internal-key")],
        ),
        get(
            "the internal token with the key",
            "/internal/access_token".into(),
            200,
            vec![("authorization", "Bearer internal-key-0123456789-SECRET")],
        ),
    ]
}

fn read(log: &Path) -> Vec<String> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

async fn scenario(json: bool) {
    let wechat = FakeWechat::start().await;
    let hook = FakeUpstream::start(Behaviour::Fail(500)).await;
    let llm = FakeUpstream::start(Behaviour::NoContent).await;
    llm.set_chat_delay(Duration::from_millis(700));
    let config = config(&wechat, &hook, &llm, json);
    let dir = tempfile::tempdir().unwrap();
    let (file, log) = (
        dir.path().join("wxgate.toml"),
        dir.path().join("wxgate.log"),
    );
    config.write(&file);
    let client = CallbackClient::for_entry(config.build().primary());
    let server = BinaryServer::start_logging_env(
        &file,
        &log,
        &[("HOOK_SECRET", HOOK_SECRET), ("LLM_KEY", LLM_KEY)],
    )
    .await;
    // Let start-up (and its token fetch) finish writing.
    assert!(eventually(Duration::from_secs(5), || wechat.token_requests() >= 1).await);
    tokio::time::sleep(Duration::from_millis(200)).await;

    let http = reqwest::Client::new();
    let mut seen = read(&log).len();
    for (i, step) in steps(&client, now_unix()).into_iter().enumerate() {
        let id = format!("rq{i}x{}", if json { "j" } else { "t" });
        if step.then.is_some() {
            // The account turns out to have no customer-service permission.
            wechat.fail_next_api_calls(&[48001]);
        }
        let mut request = http
            .request(
                step.method.clone(),
                format!("{}{}", server.base, step.path_and_query),
            )
            .header("x-request-id", &id)
            .body(step.body.clone());
        for (k, v) in &step.headers {
            request = request.header(*k, *v);
        }
        let status = request.send().await.unwrap().status().as_u16();
        assert_eq!(status, step.status, "{}", step.name);
        // Over once the access line (and the late line, if any) is written.
        let done = |lines: &[String]| {
            lines
                .iter()
                .any(|l| l.contains(&id) && l.contains("wxgate::access"))
                && step
                    .then
                    .is_none_or(|t| lines.iter().any(|l| l.contains(t)))
        };
        assert!(
            eventually(Duration::from_secs(5), || done(&read(&log)[seen..])).await,
            "{}: {:?}",
            step.name,
            &read(&log)[seen..]
        );
        let lines = read(&log);
        for line in &lines[seen..] {
            assert!(
                line.contains(&id),
                "{}: a line without the request id {id}: {line}",
                step.name
            );
        }
        seen = lines.len();
    }

    let whole = std::fs::read_to_string(&log).unwrap();
    let mut secrets = vec![
        ACCOUNT.token.clone(),
        ACCOUNT.encoding_aes_key.clone(),
        crate::support::fake_wechat::APP_SECRET.to_owned(),
        ADMIN_KEY.to_owned(),
        INTERNAL_KEY.to_owned(),
        HOOK_SECRET.to_owned(),
        LLM_KEY.to_owned(),
        ACCOUNT.openid.clone(),
    ];
    // The access tokens the fake issued.
    secrets.extend(wechat.api_call_tokens("/cgi-bin/message/custom/send"));
    assert!(!wechat
        .api_call_tokens("/cgi-bin/message/custom/send")
        .is_empty());
    for secret in secrets {
        assert!(
            !whole.contains(&secret),
            "{secret:?} is in the log:\n{whole}"
        );
    }
    // The refusals and failures were logged, not swallowed.
    for expected in ["refused", "upstream failed", "48001"] {
        assert!(whole.contains(expected), "no {expected:?} line:\n{whole}");
    }
    if json {
        for line in whole.lines() {
            serde_json::from_str::<serde_json::Value>(line)
                .unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}"));
        }
    }
}

#[tokio::test]
async fn text_logs_carry_no_secret_and_the_request_id_on_every_line() {
    scenario(false).await;
}

#[tokio::test]
async fn json_logs_carry_no_secret_and_the_request_id_on_every_line() {
    scenario(true).await;
}
