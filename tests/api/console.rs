//! The operator console's API over HTTP: sign-in and its rate limit, the
//! cookie's attributes, CSRF refusals, expiry and sign-out; drafts
//! validated as a reload would (the rule named), the tester against a
//! draft, the atomic save with its backup and reload, restore; the
//! accounts page with secrets masked (only the reveal shows them), the
//! verify button, the conversations page; and where the console may be
//! served at all.
//!
//! One file (about 800 lines) for the one API: every test starts the same
//! console app from a config file on disk and shares the drafts below; the
//! browser's scenario is in `console_browser.rs`.

use reqwest::Method;
use serde_json::json;

use crate::support::{ConsoleApp, TestApp, TestConfig, ACCOUNT, CONSOLE_KEY};

/// A draft: the fixture's first rule changed, a rule for 多少钱 added.
pub(crate) const DRAFT: &str = r#"[default_reply]
type = "text"
content = "echo: {content}"

[[rules]]
name = "hello"
match = { text = "hello wxgate" }
reply = { type = "text", content = "hello from the console" }

[[rules]]
name = "price"
match = { contains = "多少钱" }
reply = { type = "text", content = "十块钱" }
"#;

/// A draft whose second rule has a regex that does not compile.
pub(crate) const BAD_REGEX: &str = r#"[[rules]]
name = "fine"
match = { text = "a" }
reply = { type = "text", content = "A" }

[[rules]]
name = "broken"
match = { regex = "(unclosed" }
reply = { type = "text", content = "never" }
"#;

#[tokio::test]
async fn signing_in_takes_the_admin_key_and_sets_a_strict_cookie() {
    let console = ConsoleApp::start(ConsoleApp::config()).await;
    let mut client = console.client();
    assert_eq!(client.get("session").await.status, 401, "no cookie");
    assert_eq!(client.get("overview").await.status, 401);
    let (status, _) = client.login("not-the-admin-key").await;
    assert_eq!(status, 401);
    let bad = client
        .send(Method::POST, "login", Some(json!({ "nope": 1 })), None)
        .await;
    assert_eq!(bad.status, 400, "{}", bad.text);

    let answer = client
        .send(
            Method::POST,
            "login",
            Some(json!({ "key": CONSOLE_KEY })),
            None,
        )
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    let cookie = answer.set_cookie.expect("a cookie");
    for attribute in [
        "HttpOnly",
        "SameSite=Strict",
        "Path=/console",
        "Max-Age=3600",
    ] {
        assert!(cookie.contains(attribute), "{attribute} in {cookie}");
    }
    assert!(
        !cookie.contains("Secure"),
        "plain HTTP from a client: {cookie}"
    );
    assert!(answer.json["csrf"].as_str().unwrap().len() >= 32);
    assert!(!answer.text.contains(CONSOLE_KEY));

    client.login(CONSOLE_KEY).await;
    let session = client.get("session").await;
    assert_eq!(session.status, 200);
    assert_eq!(session.json["accounts"], json!(["default"]));
    assert_eq!(session.json["csrf"], json!(client.csrf.clone().unwrap()));
}

#[tokio::test]
async fn behind_a_trusted_tls_proxy_the_cookie_is_secure() {
    let config = ConsoleApp::config().set("security.trusted_proxies", vec!["127.0.0.1/32"]);
    let console = ConsoleApp::start(config).await;
    let res = reqwest::Client::new()
        .post(format!("{}/console/api/login", console.operator))
        .header("x-forwarded-proto", "https")
        .json(&json!({ "key": CONSOLE_KEY }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let cookie = res.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(cookie.contains("; Secure"), "{cookie}");
}

#[tokio::test]
async fn failed_sign_ins_are_rate_limited_with_the_operator_keys() {
    let console = ConsoleApp::start(ConsoleApp::config()).await;
    let mut client = console.client();
    for i in 0..wxgate::server::operator::bearer::MAX_FAILURES {
        assert_eq!(client.login("wrong").await.0, 401, "attempt {i}");
    }
    assert_eq!(client.login("wrong").await.0, 429);
    assert_eq!(client.login(CONSOLE_KEY).await.0, 429, "the right key too");
    // The same table as the bearer keys: /admin/reload is limited as well.
    let res = reqwest::Client::new()
        .post(format!("{}/admin/reload", console.operator))
        .bearer_auth(CONSOLE_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 429);
}

#[tokio::test]
async fn every_change_needs_the_sessions_csrf_token() {
    let console = ConsoleApp::start(ConsoleApp::config()).await;
    let client = console.signed_in().await;
    let draft = json!({ "toml": DRAFT });
    for csrf in [
        "",
        "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
    ] {
        for (method, path) in [
            (Method::POST, "rules/default/validate"),
            (Method::PUT, "rules/default"),
            (Method::POST, "accounts/default/reveal"),
            (Method::POST, "logout"),
        ] {
            let answer = client
                .send(method.clone(), path, Some(draft.clone()), Some(csrf))
                .await;
            assert_eq!(answer.status, 403, "{method} {path} with {csrf:?}");
            assert!(!answer.text.contains(&ACCOUNT.token));
        }
    }
    assert!(!console.file_text().contains("hello from the console"));
    // Another session's token is no better.
    let other = console.signed_in().await;
    let answer = client
        .send(
            Method::PUT,
            "rules/default",
            Some(draft),
            other.csrf.as_deref(),
        )
        .await;
    assert_eq!(answer.status, 403);
    assert_eq!(console.files(), vec!["wxgate.toml"], "nothing written");
}

#[tokio::test]
async fn sessions_expire_and_sign_out_ends_them() {
    let console =
        ConsoleApp::start(ConsoleApp::config().set("console.session_ttl_secs", 600)).await;
    let client = console.signed_in().await;
    let start = console.app.now();
    console.app.clock.set(start + 599);
    assert_eq!(client.get("overview").await.status, 200, "still alive");
    // That request moved the end on: 600 s after it.
    console.app.clock.set(start + 599 + 600);
    let expired = client.get("overview").await;
    assert_eq!(expired.status, 401);
    assert_eq!(expired.json["error"], "signed_out");

    let client = console.signed_in().await;
    let out = client.post("logout", json!({})).await;
    assert_eq!(out.status, 200);
    assert!(out.set_cookie.unwrap().contains("Max-Age=0"));
    assert_eq!(client.get("session").await.status, 401);
}

#[tokio::test]
async fn the_rules_show_as_a_draft_and_a_table() {
    let console = ConsoleApp::start(ConsoleApp::config()).await;
    let client = console.signed_in().await;
    let rules = client.get("rules/default").await;
    assert_eq!(rules.status, 200, "{}", rules.text);
    let toml = rules.json["toml"].as_str().unwrap();
    assert!(
        toml.contains("[[rules]]") && toml.contains("hello wxgate"),
        "{toml}"
    );
    assert!(!toml.contains("[account]") && !rules.text.contains(&ACCOUNT.token));
    let rows = rules.json["rows"].as_array().unwrap();
    assert_eq!(rows[0]["name"], "hello");
    assert_eq!(rows[0]["matches"], "{ text = \"hello wxgate\" }");
    assert_eq!(rows[0]["reply"], "hi {from_user}");
    assert_eq!(rows.last().unwrap()["name"], "default_reply");
    assert_eq!(rules.json["shared_with"], json!(["default"]));
    assert_eq!(client.get("rules/nobody").await.status, 404);
}

#[tokio::test]
async fn a_bad_regex_is_refused_naming_the_file_and_the_rule() {
    let console = ConsoleApp::start(ConsoleApp::config()).await;
    let client = console.signed_in().await;
    let answer = client
        .post("rules/default/validate", json!({ "toml": BAD_REGEX }))
        .await;
    assert_eq!(answer.status, 422, "{}", answer.text);
    let errors = answer.json["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 1, "{errors:?}");
    let error = errors[0].as_str().unwrap();
    assert!(error.contains("wxgate.toml"), "{error}");
    assert!(error.contains("#2 \"broken\""), "{error}");
    assert!(error.contains("regex"), "{error}");

    // Not TOML: the draft's own line.
    let answer = client
        .post(
            "rules/default/validate",
            json!({ "toml": "[[rules]]\nname = \"x\"\nmatch = {\n" }),
        )
        .await;
    assert_eq!(answer.status, 422);
    assert!(
        answer.json["errors"][0]
            .as_str()
            .unwrap()
            .starts_with("draft:"),
        "{}",
        answer.text
    );
    // Settings are not rules: refused, even valid ones.
    let answer = client
        .post(
            "rules/default/validate",
            json!({ "toml": "[admin]\napi_key = \"0123456789abcdefXYZ\"\n" }),
        )
        .await;
    assert_eq!(answer.status, 422);
    assert!(
        answer.text.contains("only default_reply and [[rules]]"),
        "{}",
        answer.text
    );
    // A draft that drops every rule is refused as a reload would.
    let answer = client.put("rules/default", json!({ "toml": "" })).await;
    assert_eq!(answer.status, 422, "{}", answer.text);
    assert!(answer.text.contains("rules = []"), "{}", answer.text);

    // A good draft: valid, with the diff against the rules in force.
    let answer = client
        .post("rules/default/validate", json!({ "toml": DRAFT }))
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(answer.json["ok"], true);
    assert_eq!(answer.json["diff"]["default"]["added"], json!(["price"]));
    assert_eq!(answer.json["diff"]["default"]["changed"], json!(["hello"]));
    assert_eq!(
        console.files(),
        vec!["wxgate.toml"],
        "validating writes nothing"
    );
}

#[tokio::test]
async fn the_tester_answers_from_the_draft_before_it_is_saved() {
    let console = ConsoleApp::start(ConsoleApp::config()).await;
    let client = console.signed_in().await;
    let test = |sample: serde_json::Value, toml: Option<&str>| {
        let mut body = json!({ "sample": sample });
        if let Some(toml) = toml {
            body["toml"] = json!(toml);
        }
        client.post("rules/default/test", body)
    };
    let answer = test(
        json!({ "type": "text", "content": "请问多少钱？" }),
        Some(DRAFT),
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(answer.json["verdict"], "rule");
    assert_eq!(answer.json["rule"], "price");
    assert_eq!(answer.json["content"], "十块钱");

    // The rules in force (no draft) do not know it: the default reply.
    let answer = test(json!({ "type": "text", "content": "请问多少钱？" }), None).await;
    assert_eq!(answer.json["verdict"], "default_reply");
    assert_eq!(answer.json["content"], "echo: 请问多少钱？");
    // A voice transcript is the text, events match by name.
    let answer = test(
        json!({ "type": "voice", "recognition": "多少钱" }),
        Some(DRAFT),
    )
    .await;
    assert_eq!(answer.json["rule"], "price", "{}", answer.text);
    let answer = test(
        json!({ "type": "event", "event": "SUBSCRIBE", "key": "" }),
        None,
    )
    .await;
    assert_eq!(answer.json["rule"], "subscribe", "{}", answer.text);
    assert_eq!(answer.json["content"], "welcome");
    // A draft with an error tests nothing and names it.
    let answer = test(json!({ "type": "text", "content": "a" }), Some(BAD_REGEX)).await;
    assert_eq!(answer.status, 422);
    assert!(answer.text.contains("broken"), "{}", answer.text);

    // Nothing was saved: the callback still answers from the file.
    assert_eq!(
        console.answer("请问多少钱？", 1).await,
        "echo: 请问多少钱？"
    );
}

#[tokio::test]
async fn saving_backs_up_writes_atomically_and_reloads() {
    let console = ConsoleApp::start(ConsoleApp::config()).await;
    let client = console.signed_in().await;
    let before = console.file_text();
    assert!(console.answer("hello wxgate", 1).await.starts_with("hi "));

    let saved = client.put("rules/default", json!({ "toml": DRAFT })).await;
    assert_eq!(saved.status, 200, "{}", saved.text);
    assert_eq!(saved.json["saved"], true);
    assert_eq!(saved.json["diff"]["default"]["added"], json!(["price"]));
    let backup = saved.json["backup"].as_str().unwrap().to_owned();
    let stamp = wxgate::server::console::files::stamp(console.app.now());
    assert_eq!(backup, stamp, "stamped with the app's clock");

    // The new file: the rules replaced, everything else as it was.
    let after = console.file_text();
    assert!(after.starts_with("# wxgate under test\n"), "{after}");
    assert!(after.contains(&ACCOUNT.token), "the account is kept");
    assert!(
        after.contains("十块钱") && !after.contains("\"weibo\""),
        "{after}"
    );
    // The backup beside it is the old file, byte for byte; no temporary file.
    assert_eq!(
        console.files(),
        vec![
            "wxgate.toml".to_owned(),
            format!("wxgate.toml.bak-{backup}")
        ]
    );
    let backup_text = std::fs::read_to_string(
        console
            .file
            .with_file_name(format!("wxgate.toml.bak-{backup}")),
    )
    .unwrap();
    assert_eq!(backup_text, before);

    // Reloaded: the callback answers from the new rules.
    assert_eq!(
        console.answer("hello wxgate", 2).await,
        "hello from the console"
    );
    assert_eq!(console.answer("多少钱", 3).await, "十块钱");
    let rules = client.get("rules/default").await;
    assert_eq!(rules.json["in_force"], 2);

    // The versions: listed, viewable as rules only.
    let backups = client.get("backups").await;
    assert_eq!(backups.json["backups"][0]["id"], backup.as_str());
    let at = backups.json["backups"][0]["at"].as_str().unwrap();
    assert!(at.ends_with(" UTC") && at.starts_with(&stamp[..4]), "{at}");
    let view = client.get(&format!("backups/{backup}/rules/default")).await;
    assert_eq!(view.status, 200);
    assert!(view.json["toml"].as_str().unwrap().contains("\"weibo\""));
    assert!(!view.text.contains(&ACCOUNT.token));
    assert_eq!(
        client.get("backups/..%2Fetc/rules/default").await.status,
        404
    );
    assert_eq!(
        client
            .get("backups/20000101T000000Z/rules/default")
            .await
            .status,
        404
    );
}

#[tokio::test]
async fn restoring_a_version_reloads_it_and_keeps_the_current_one() {
    let console = ConsoleApp::start(ConsoleApp::config()).await;
    let client = console.signed_in().await;
    let original = console.file_text();
    let first = client.put("rules/default", json!({ "toml": DRAFT })).await;
    assert_eq!(first.status, 200, "{}", first.text);
    let backup = first.json["backup"].as_str().unwrap().to_owned();
    assert_eq!(
        console.answer("hello wxgate", 1).await,
        "hello from the console"
    );

    let restored = client
        .send(
            Method::POST,
            &format!("backups/{backup}/restore"),
            None,
            None,
        )
        .await;
    assert_eq!(restored.status, 200, "{}", restored.text);
    assert_eq!(
        restored.json["diff"]["default"]["removed"],
        json!(["price"])
    );
    assert!(console.answer("hello wxgate", 2).await.starts_with("hi "));
    assert_eq!(console.file_text(), original);
    // The saved version is a backup now too (same second: `-2`).
    let ids: Vec<String> = client.get("backups").await.json["backups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids, vec![format!("{backup}-2"), backup.clone()]);
    assert_eq!(
        client
            .send(Method::POST, "backups/nope/restore", None, None)
            .await
            .status,
        404
    );
}

#[tokio::test]
async fn old_backups_beyond_keep_backups_are_removed() {
    let console = ConsoleApp::start(ConsoleApp::config().set("console.keep_backups", 2)).await;
    let client = console.signed_in().await;
    let start = console.app.now();
    for i in 0..4 {
        console.app.clock.set(start + i);
        let draft = DRAFT.replace("十块钱", &format!("{i} 块钱"));
        assert_eq!(
            client
                .put("rules/default", json!({ "toml": draft }))
                .await
                .status,
            200
        );
    }
    assert_eq!(
        client.get("backups").await.json["backups"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert_eq!(console.files().len(), 3);
    assert_eq!(console.answer("多少钱", 1).await, "3 块钱");
}

#[tokio::test]
async fn secrets_reach_no_answer_but_the_reveal() {
    let console = ConsoleApp::start(
        ConsoleApp::config().set("account.app_secret", "AppSecretNeverShown0123456789ab"),
    )
    .await;
    let client = console.signed_in().await;
    console.answer("hello wxgate", 1).await;
    let secrets = [
        ACCOUNT.token.as_str(),
        ACCOUNT.encoding_aes_key.as_str(),
        CONSOLE_KEY,
        "AppSecretNeverShown0123456789ab",
    ];
    let backup = client
        .put("rules/default", json!({ "toml": DRAFT }))
        .await
        .json["backup"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut answers = Vec::new();
    for path in [
        "session".to_owned(),
        "overview".into(),
        "rules/default".into(),
        "backups".into(),
        format!("backups/{backup}/rules/default"),
        "accounts".into(),
        "conversations/default".into(),
    ] {
        let answer = client.get(&path).await;
        assert_eq!(answer.status, 200, "{path}: {}", answer.text);
        answers.push((path, answer.text));
    }
    for (path, body) in [
        ("rules/default/validate", json!({ "toml": DRAFT })),
        ("rules/default/validate", json!({ "toml": BAD_REGEX })),
        (
            "rules/default/test",
            json!({ "toml": DRAFT, "sample": { "type": "text", "content": "x" } }),
        ),
    ] {
        answers.push((path.to_owned(), client.post(path, body).await.text));
    }
    for page in ["/console", "/console/console.js", "/console/console.css"] {
        let text = reqwest::get(format!("{}{page}", console.operator))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        answers.push((page.to_owned(), text));
    }
    for (path, text) in &answers {
        for secret in secrets {
            assert!(!text.contains(secret), "{path} shows a secret: {text}");
        }
    }
    let accounts = client.get("accounts").await.json;
    let account = &accounts["accounts"][0];
    assert!(account["token"].as_str().unwrap().starts_with("••••"));
    assert!(account["encoding_aes_key"]
        .as_str()
        .unwrap()
        .starts_with("••••"));

    // The reveal shows them, and only with the session and its token.
    let reveal = client
        .send(Method::POST, "accounts/default/reveal", None, None)
        .await;
    assert_eq!(reveal.status, 200);
    assert_eq!(reveal.json["token"], ACCOUNT.token.as_str());
    assert_eq!(
        reveal.json["encoding_aes_key"],
        ACCOUNT.encoding_aes_key.as_str()
    );
    let anonymous = console
        .client()
        .send(Method::POST, "accounts/default/reveal", None, None)
        .await;
    assert_eq!(anonymous.status, 401);
}

#[tokio::test]
async fn the_accounts_page_describes_and_verifies_the_account() {
    let console = ConsoleApp::start(ConsoleApp::config()).await;
    let client = console.signed_in().await;
    let accounts = client.get("accounts").await;
    let account = &accounts.json["accounts"][0];
    assert_eq!(account["kind"], "official");
    assert_eq!(account["path"], "/weixin");
    assert_eq!(account["mode"], "plain");
    assert_eq!(account["url"], format!("{}/weixin", console.app.base));
    assert_eq!(account["strategy"], "passive (rules only)");
    assert_eq!(account["capabilities"]["passive_reply_ms"], 5000);

    let verified = client
        .send(Method::POST, "accounts/default/verify", None, None)
        .await;
    assert_eq!(verified.status, 200, "{}", verified.text);
    assert_eq!(verified.json["ok"], true, "{}", verified.text);
}

#[tokio::test]
async fn verification_against_another_server_fails_with_the_diagnosis() {
    // The public URL reaches a wxgate with another token: the signature fails.
    let other = TestApp::builder()
        .config(TestConfig::new().account(crate::support::AccountSpec::token_only("othertoken1")))
        .spawn()
        .await;
    let console = ConsoleApp::start_at(ConsoleApp::config(), Some(other.base.clone())).await;
    let client = console.signed_in().await;
    let verified = client
        .send(Method::POST, "accounts/default/verify", None, None)
        .await;
    assert_eq!(verified.status, 200);
    assert_eq!(verified.json["ok"], false, "{}", verified.text);
    assert!(
        verified.json["error"].as_str().unwrap().contains("403"),
        "{}",
        verified.text
    );

    // Without a public URL there is nothing to verify against.
    let console = ConsoleApp::start_at(ConsoleApp::config(), None).await;
    let client = console.signed_in().await;
    let refused = client
        .send(Method::POST, "accounts/default/verify", None, None)
        .await;
    assert_eq!(refused.status, 409);
    assert!(refused.text.contains("console.public_url"));
}

#[tokio::test]
async fn conversations_show_shortened_ids_and_content_only_when_allowed() {
    let console = ConsoleApp::start(ConsoleApp::config()).await;
    let client = console.signed_in().await;
    console.answer("hello wxgate", 1).await;
    console.answer("secret words", 2).await;
    let list = client.get("conversations/default").await;
    assert_eq!(list.status, 200);
    let entries = list.json["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[0]["outcome"], "replied", "newest first");
    assert_eq!(entries[0]["msg_type"], "text");
    assert_eq!(entries[0]["reply_type"], "text");
    assert!(entries[0]["content"].is_null() && entries[0]["reply"].is_null());
    assert!(!list.text.contains("secret words"));
    let user = entries[0]["user"].as_str().unwrap();
    assert!(
        user.contains('…') && !list.text.contains(&ACCOUNT.openid),
        "{user}"
    );
    let tail: String = user
        .chars()
        .rev()
        .take(3)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    let found = client
        .get(&format!("conversations/default?user={tail}"))
        .await;
    assert_eq!(found.json["entries"].as_array().unwrap().len(), 2);
    let none = client.get("conversations/default?user=zzzz").await;
    assert!(none.json["entries"].as_array().unwrap().is_empty());

    let shown = ConsoleApp::start(ConsoleApp::config().set("console.show_content", true)).await;
    let client = shown.signed_in().await;
    shown.answer("hello wxgate", 1).await;
    let list = client.get("conversations/default").await;
    assert_eq!(list.json["entries"][0]["content"], "hello wxgate");
    assert!(list.json["entries"][0]["reply"]
        .as_str()
        .unwrap()
        .starts_with("hi "));
}

#[tokio::test]
async fn the_overview_reads_the_metrics() {
    let console = ConsoleApp::start(ConsoleApp::config()).await;
    let client = console.signed_in().await;
    console.answer("hello wxgate", 1).await;
    console.answer("hello wxgate", 2).await;
    let (status, _) = console
        .app
        .post("/weixin?signature=bad&timestamp=1&nonce=1", "x")
        .await;
    assert_eq!(status, 403);
    let overview = client.get("overview").await;
    assert_eq!(overview.status, 200, "{}", overview.text);
    let account = &overview.json["accounts"][0];
    assert_eq!(account["name"], "default");
    assert_eq!(account["requests"], 3.0);
    assert_eq!(account["outcomes"]["replied"], 2.0);
    let refused: f64 = account["refusals"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_f64().unwrap())
        .sum();
    assert_eq!(refused, 1.0, "{}", overview.text);
    assert!(account["latency"]["p50"].as_f64().unwrap() > 0.0);
    assert_eq!(overview.json["checks"]["store"]["ok"], true);
}

#[tokio::test]
async fn the_console_is_off_unless_enabled_and_never_public_by_accident() {
    // Off: no route, on either listener.
    let config = ConsoleApp::config().set("console.enabled", false);
    let app = TestApp::builder().config(config).spawn().await;
    let operator = app.operator_base.clone().unwrap();
    for base in [&app.base, &operator] {
        let res = reqwest::get(format!("{base}/console")).await.unwrap();
        assert_eq!(res.status(), 404, "{base}");
    }
    // On: the operator listener only.
    let console = ConsoleApp::start(ConsoleApp::config()).await;
    let page = reqwest::get(format!("{}/console", console.operator))
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .contains("default-src 'self'"));
    assert_eq!(page.headers()["x-frame-options"], "DENY");
    assert!(page.text().await.unwrap().contains("console.js"));
    let public = reqwest::get(format!("{}/console", console.app.base))
        .await
        .unwrap();
    assert_eq!(public.status(), 404);

    // Without an operator listener it is refused, unless explicitly allowed.
    let no_listener = TestConfig::fixture("plain")
        .set("admin.api_key", CONSOLE_KEY)
        .set("console.enabled", true);
    let error = no_listener.try_build().unwrap_err().to_string();
    assert!(
        error.contains("console.enabled needs admin.listen"),
        "{error}"
    );
    let error = TestConfig::fixture("plain")
        .set("console.enabled", true)
        .set("admin.listen", "127.0.0.1:0")
        .try_build()
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("console.enabled needs admin.api_key"),
        "{error}"
    );
    let allowed = no_listener.set("console.allow_public_listener", true);
    let app = TestApp::builder().config(allowed).spawn().await;
    let res = reqwest::get(format!("{}/console", app.base)).await.unwrap();
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn an_account_with_rules_of_its_own_is_edited_in_its_entry() {
    let shop = crate::support::AccountSpec::token_only("shoptoken12")
        .name("shop")
        .rules(
            "[[rules]]\nname = \"buy\"\nmatch = { text = \"buy\" }\nreply = { type = \"text\", content = \"shop: ok\" }\n",
        );
    let console = ConsoleApp::start(ConsoleApp::config().add_account(shop)).await;
    let client = console.signed_in().await;
    let rules = client.get("rules/shop").await;
    assert_eq!(rules.status, 200, "{}", rules.text);
    assert_eq!(rules.json["place"], "its [[accounts]] entry");
    assert!(rules.json["toml"].as_str().unwrap().contains("shop: ok"));
    assert!(!rules.json["toml"]
        .as_str()
        .unwrap()
        .contains("hello wxgate"));
    assert_eq!(
        client.get("rules/default").await.json["shared_with"],
        json!(["default"])
    );

    let draft = "[[rules]]\nname = \"buy\"\nmatch = { text = \"buy\" }\nreply = { type = \"text\", content = \"shop: sold out\" }\n";
    let saved = client.put("rules/shop", json!({ "toml": draft })).await;
    assert_eq!(saved.status, 200, "{}", saved.text);
    assert_eq!(saved.json["diff"]["shop"]["changed"], json!(["buy"]));
    assert_eq!(saved.json["diff"]["default"]["changed"], json!([]));
    let parsed: toml::Table = console.file_text().parse().unwrap();
    assert_eq!(
        parsed["accounts"][0]["rules"][0]["reply"]["content"].as_str(),
        Some("shop: sold out")
    );
    assert_eq!(
        parsed["rules"][0]["name"].as_str(),
        Some("hello"),
        "the top level stays"
    );

    let shop = console.app.wechat_for("shop");
    let now = console.app.now();
    let (query, body) = shop.plain(&crate::support::text_xml("buy", now, 1), now);
    let (status, xml) = console.app.post(&query, body).await;
    assert_eq!(status, 200);
    assert_eq!(crate::support::plain_content(&xml), "shop: sold out");
    assert!(console.answer("hello wxgate", 2).await.starts_with("hi "));
}

#[tokio::test]
async fn a_broken_backup_is_not_restored() {
    let console = ConsoleApp::start(ConsoleApp::config()).await;
    let client = console.signed_in().await;
    let before = console.file_text();
    std::fs::write(
        console
            .file
            .with_file_name("wxgate.toml.bak-20000101T000000Z"),
        "[account]\ntoken = \n",
    )
    .unwrap();
    let listed = client.get("backups").await;
    assert_eq!(listed.json["backups"][0]["id"], "20000101T000000Z");
    let refused = client
        .send(Method::POST, "backups/20000101T000000Z/restore", None, None)
        .await;
    assert_eq!(refused.status, 422, "{}", refused.text);
    assert_eq!(console.file_text(), before, "nothing written");
    assert_eq!(console.files().len(), 2, "no backup of a refused restore");
    assert!(console.answer("hello wxgate", 1).await.starts_with("hi "));
}

#[tokio::test]
async fn sign_in_takes_json_only() {
    // A cross-site form cannot send JSON without the browser asking first.
    let console = ConsoleApp::start(ConsoleApp::config()).await;
    let res = reqwest::Client::new()
        .post(format!("{}/console/api/login", console.operator))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("key={CONSOLE_KEY}"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    assert!(res.headers().get("set-cookie").is_none());
}

#[tokio::test]
async fn the_overview_shows_the_access_token_and_dedup_hits() {
    let fake = crate::support::FakeWechat::start().await;
    let secret = crate::support::fake_wechat::APP_SECRET;
    let config = ConsoleApp::config()
        .account(crate::support::AccountSpec::official_api("abc").set("app_secret", secret))
        .token_api(&fake);
    let console = ConsoleApp::start(config).await;
    let client = console.signed_in().await;
    // WeChat's retry of one message: answered from the dedup record.
    assert!(console.answer("hello wxgate", 7).await.starts_with("hi "));
    assert!(console.answer("hello wxgate", 7).await.starts_with("hi "));
    let overview = client.get("overview").await;
    assert_eq!(overview.status, 200);
    let token = &overview.json["accounts"][0]["token"];
    assert_eq!(token["valid"], true, "{}", overview.text);
    assert!(token["last_refresh"].as_i64().is_some(), "{token}");
    assert_eq!(token["fetches"], 1);
    let dedup: f64 = overview.json["dedup_hits"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_f64().unwrap())
        .sum();
    assert_eq!(dedup, 1.0, "{}", overview.text);
    assert_eq!(overview.json["accounts"][0]["outcomes"]["duplicate"], 1.0);
    assert!(!overview.text.contains(secret));
    let accounts = client.get("accounts").await;
    assert_eq!(accounts.json["accounts"][0]["api_credentials"], true);
    assert!(!accounts.text.contains(secret));
}

#[tokio::test]
async fn the_tester_names_the_upstream_a_draft_hands_a_message_to() {
    let upstream = crate::support::table([
        ("name", "helper".into()),
        ("protocol", "webhook".into()),
        ("url", "http://127.0.0.1:9/never-called".into()),
    ]);
    let console = ConsoleApp::start(ConsoleApp::config().upstream(upstream)).await;
    let client = console.signed_in().await;
    let draft = format!(
        "{DRAFT}\n[[rules]]\nname = \"ask\"\nmatch = {{ prefix = \"?\" }}\nreply = {{ type = \"upstream\", upstream = \"helper\" }}\n"
    );
    let answer = client
        .post(
            "rules/default/test",
            json!({ "toml": draft, "sample": { "type": "text", "content": "?天气" } }),
        )
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(answer.json["verdict"], "upstream");
    assert_eq!(answer.json["rule"], "ask");
    assert_eq!(answer.json["upstream"], "helper");
    // An upstream the file does not declare: the draft is refused, naming it.
    let unknown = draft.replace("upstream = \"helper\"", "upstream = \"nobody\"");
    let refused = client
        .post("rules/default/validate", json!({ "toml": unknown }))
        .await;
    assert_eq!(refused.status, 422);
    assert!(refused.text.contains("nobody"), "{}", refused.text);
}

/// 微信客服: its messages are pulled, not pushed; the console lists them too.
#[tokio::test]
async fn customer_service_messages_are_listed_with_their_answers() {
    use crate::support::fake_wechat::{kf_text, CORP_ID, KF_SECRET};
    use crate::support::{eventually, kf_notification_xml, CallbackClient, FakeWechat};
    const KF_TOKEN: &str = "kfCallbackToken";
    const KF_KEY: &str = "kWxPEV2UEDyxWpmPdKC3F4dgPDmOvfKX1HGnEUDS1aR";
    const OPEN_KFID: &str = "wkAJ2GCAAASSm4_FhToWMFea0xAFfd3Q";
    let wechat = FakeWechat::start().await;
    let kf = crate::support::AccountSpec::kf(KF_TOKEN, KF_KEY, CORP_ID, KF_SECRET)
        .name("service")
        .set("path", "/kf")
        .api(&wechat)
        .set("kf.max_message_age_secs", 600);
    let console = ConsoleApp::start(ConsoleApp::config().add_account(kf)).await;
    let now = console.app.now();
    wechat.kf_push(
        OPEN_KFID,
        vec![kf_text(
            "from_msgid_1",
            "wm_customer_0001",
            OPEN_KFID,
            now,
            "价格",
        )],
    );
    let token = wechat.kf_notification_token(OPEN_KFID);
    let (query, body) = CallbackClient::kf(KF_TOKEN, KF_KEY, CORP_ID)
        .encrypted(&kf_notification_xml(&token, OPEN_KFID, now), now);
    let (status, _) = console.app.post(&query, body).await;
    assert_eq!(status, 200);
    assert!(
        eventually(std::time::Duration::from_secs(5), || !wechat
            .kf_sends()
            .is_empty())
        .await,
        "answered through kf/send_msg"
    );
    let client = console.signed_in().await;
    let list = client.get("conversations/service").await;
    assert_eq!(list.status, 200, "{}", list.text);
    let entries = list.json["entries"].as_array().unwrap();
    // Newest first: the pulled message, then the notification that
    // started the pull (an event the callback acknowledged).
    assert_eq!(entries.len(), 2, "{}", list.text);
    assert_eq!(entries[1]["msg_type"], "event");
    assert_eq!(entries[0]["outcome"], "pulled");
    assert_eq!(entries[0]["strategy"], "kf_send");
    assert_eq!(entries[0]["reply_type"], "text");
    assert_eq!(entries[0]["user"], "wm_c…0001");
    assert!(client.get("conversations/default").await.json["entries"]
        .as_array()
        .unwrap()
        .is_empty());
}

/// An answer slower than the passive budget: the interim text at once, the
/// answer later through the customer-service API; both are listed.
#[tokio::test]
async fn a_late_answer_is_listed_after_its_interim_reply() {
    use crate::support::{eventually, FakeUpstream, FakeWechat, INTERIM};
    let wechat = FakeWechat::start().await;
    let hook = FakeUpstream::start(crate::support::Behaviour::Slow(
        std::time::Duration::from_millis(900),
        json!({ "type": "text", "content": "想好了：42" }),
    ))
    .await;
    let upstream = crate::support::table([
        ("name", "agent".into()),
        ("protocol", "webhook".into()),
        ("url", hook.hook_url().into()),
    ]);
    let config = crate::support::agent_config(&wechat, upstream)
        .set("admin.api_key", CONSOLE_KEY)
        .set("admin.listen", "127.0.0.1:0")
        .set("console.enabled", true)
        .set("console.show_content", true);
    let console = ConsoleApp::start(config).await;
    assert_eq!(console.answer("问个难题", 1).await, INTERIM);
    assert!(
        eventually(std::time::Duration::from_secs(5), || !wechat
            .sent_texts()
            .is_empty())
        .await,
        "the late answer is sent"
    );
    let client = console.signed_in().await;
    // Listed once the send has returned (just after the fake saw it).
    assert!(
        crate::support::eventually_async(std::time::Duration::from_secs(5), || async {
            client.get("conversations/default").await.json["entries"]
                .as_array()
                .is_some_and(|e| e.len() == 2)
        })
        .await
    );
    let listed = client.get("conversations/default").await;
    let entries = listed.json["entries"].as_array().unwrap();
    assert_eq!(entries[0]["outcome"], "late_sent");
    assert_eq!(entries[0]["strategy"], "late_send");
    assert_eq!(entries[0]["reply"], "想好了：42");
    assert_eq!(entries[1]["outcome"], "deferred");
    assert_eq!(entries[1]["reply"], INTERIM);
    assert_eq!(entries[1]["content"], "问个难题");
}
