//! Every refusal has an honest status, and the server keeps serving after it.

use crate::support::{fixtures_dir, text_xml, AccountSpec, CallbackClient, TestApp, TestConfig};

const NOW: i64 = 1_750_000_000;

#[tokio::test]
async fn get_refusals() {
    let app = TestApp::builder().mode("plain").now(NOW).spawn().await;
    let full = app.wechat.verify_query(NOW, "e1");
    for drop in ["signature", "timestamp", "nonce", "echostr"] {
        let query: Vec<&str> = full
            .trim_start_matches("/weixin?")
            .split('&')
            .filter(|kv| !kv.starts_with(&format!("{drop}=")))
            .collect();
        let (status, body) = app.get(&format!("/weixin?{}", query.join("&"))).await;
        assert_eq!(status, 400, "without {drop}: {body}");
        assert!(
            body.contains(drop),
            "the error names the missing parameter: {body}"
        );
        app.assert_still_serving().await;
    }
    let (status, _) = app.get(&full.replace("signature=", "signature=0")).await;
    assert_eq!(status, 403, "bad signature");
    app.assert_still_serving().await;
    let (status, _) = app.get(&app.wechat.verify_query(NOW - 301, "e2")).await;
    assert_eq!(status, 403, "stale timestamp");
    let (status, _) = app.get(&app.wechat.verify_query(NOW + 301, "e3")).await;
    assert_eq!(status, 403, "timestamp from the future");
    let (status, _) = app.get(&app.wechat.verify_query(NOW - 299, "e4")).await;
    assert_eq!(status, 200, "inside the window");
    app.assert_still_serving().await;
}

#[tokio::test]
async fn plain_post_refusals() {
    let app = TestApp::builder().mode("plain").now(NOW).spawn().await;
    let xml = text_xml("hello", NOW, 1);
    let (status, _) = app.post("/weixin?timestamp=1&nonce=2", xml.clone()).await;
    assert_eq!(status, 400, "missing signature");
    let (status, _) = app
        .post(
            &format!("/weixin?signature={}&nonce=2", "0".repeat(40)),
            xml.clone(),
        )
        .await;
    assert_eq!(status, 400, "missing timestamp");
    let (status, _) = app
        .post(
            &app.wechat
                .signed_query(NOW)
                .replace("nonce=31415926", "nonce="),
            xml.clone(),
        )
        .await;
    assert_eq!(status, 400, "empty nonce");
    let (status, _) = app
        .post(
            &app.wechat
                .signed_query(NOW)
                .replace("timestamp=", "timestamp=x"),
            xml.clone(),
        )
        .await;
    assert_eq!(
        status, 403,
        "signature no longer matches the altered timestamp"
    );
    let (status, _) = app
        .post(
            &app.wechat
                .signed_query(NOW)
                .replace("signature=", "signature=f"),
            xml.clone(),
        )
        .await;
    assert_eq!(status, 403, "bad signature");
    let (status, _) = app
        .post(&app.wechat.signed_query(NOW - 1000), xml.clone())
        .await;
    assert_eq!(status, 403, "replayed timestamp");
    let (status, _) = app
        .post(
            "/weixin?signature=a&signature=b&timestamp=1&nonce=1",
            xml.clone(),
        )
        .await;
    assert_eq!(status, 400, "malformed query (duplicate parameter)");
    app.assert_still_serving().await;
    let (status, _) = app.post_plain(&xml).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn malformed_bodies_are_400() {
    let app = TestApp::builder().mode("plain").now(NOW).spawn().await;
    let bad = fixtures_dir().join("xml/bad");
    let mut seen = 0;
    for entry in std::fs::read_dir(&bad).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "query") {
            continue;
        }
        let body = std::fs::read(&path).unwrap();
        let (status, text) = app.post(&app.wechat.signed_query(NOW), body).await;
        assert_eq!(status, 400, "{}: {text}", path.display());
        seen += 1;
        app.assert_still_serving().await;
    }
    assert!(seen >= 8, "all bad fixtures were sent");
    // Not UTF-8 at all.
    let (status, _) = app
        .post(&app.wechat.signed_query(NOW), vec![0xffu8, 0xfe, 0x00])
        .await;
    assert_eq!(status, 400);
    app.assert_still_serving().await;
}

#[tokio::test]
async fn encrypted_refusals() {
    let app = TestApp::builder().mode("safe").now(NOW).spawn().await;
    let xml = text_xml("hello", NOW, 9);
    let (query, body) = app.wechat.encrypted(&xml, NOW);

    // No msg_signature: safe mode never falls back to `signature`.
    let without: String = query
        .split('&')
        .filter(|kv| !kv.starts_with("msg_signature="))
        .collect::<Vec<_>>()
        .join("&");
    let (status, _) = app.post(&without, body.clone()).await;
    assert_eq!(status, 400, "missing msg_signature");

    // Tampered ciphertext: signature no longer covers it.
    let tampered = body.replacen("<Encrypt><![CDATA[", "<Encrypt><![CDATA[AAAA", 1);
    let (status, _) = app.post(&query, tampered).await;
    assert_eq!(status, 403, "tampered ciphertext");

    // Correctly signed garbage: decryption fails.
    for garbage in [
        "bm90IGEgY2lwaGVydGV4dA==",
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
        "!!!",
    ] {
        let (query, body) = app.wechat.seal(garbage, NOW);
        let (status, _) = app.post(&query, body).await;
        assert_eq!(status, 403, "undecryptable {garbage}");
    }

    // Encrypted for another app id with the same key.
    let other = CallbackClient::for_entry(
        TestConfig::new()
            .account(AccountSpec::fixture("safe").set("app_id", "wx0000000000000000"))
            .build()
            .primary(),
    );
    let (other_query, other_body) = other.encrypted(&xml, NOW);
    let (status, _) = app.post(&other_query, other_body).await;
    assert_eq!(status, 403, "wrong app id");

    // No <Encrypt> at all.
    let (status, _) = app
        .post(&query, "<xml><ToUserName>gh</ToUserName></xml>")
        .await;
    assert_eq!(status, 400, "no Encrypt");

    // DOCTYPE before <Encrypt> is refused before anything else.
    let (status, _) = app
        .post(&query, format!("<!DOCTYPE xml [<!ENTITY a \"b\">]>{body}"))
        .await;
    assert_eq!(status, 400, "DOCTYPE");

    // Plain request to a safe-mode account.
    let (status, _) = app.post_plain(&xml).await;
    assert_eq!(status, 400, "plain request in safe mode");

    app.assert_still_serving().await;
    let (status, _) = app.post(&query, body).await;
    assert_eq!(status, 200, "the untouched request still works");
}

#[tokio::test]
async fn encrypted_request_to_plain_account_is_400() {
    let app = TestApp::builder().mode("plain").now(NOW).spawn().await;
    let (query, body) = app.wechat.encrypted(&text_xml("x", NOW, 1), NOW);
    let (status, text) = app.post(&query, body).await;
    assert_eq!(status, 400);
    assert!(text.contains("plain mode"), "{text}");
    app.assert_still_serving().await;
}

#[tokio::test]
async fn oversized_body_is_413() {
    let config = TestConfig::fixture("plain").set("server.max_body_bytes", 4096);
    let app = TestApp::builder().config(config).now(NOW).spawn().await;
    let big = text_xml(&"x".repeat(5000), NOW, 1);
    let (status, _) = app.post_plain(&big).await;
    assert_eq!(status, 413);
    app.assert_still_serving().await;
    let (status, _) = app.post_plain(&text_xml(&"x".repeat(3000), NOW, 2)).await;
    assert_eq!(status, 200, "just below the limit");
}

#[tokio::test]
async fn default_limit_is_64_kib() {
    let app = TestApp::builder().mode("plain").now(NOW).spawn().await;
    let (status, _) = app
        .post_plain(&text_xml(&"x".repeat(70 * 1024), NOW, 1))
        .await;
    assert_eq!(status, 413);
    app.assert_still_serving().await;
}

#[tokio::test]
async fn other_methods_are_405_and_unknown_paths_404() {
    let app = TestApp::builder().mode("plain").now(NOW).spawn().await;
    for method in [
        reqwest::Method::PUT,
        reqwest::Method::DELETE,
        reqwest::Method::PATCH,
    ] {
        let res = app
            .http
            .request(method.clone(), format!("{}/weixin", app.base))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), 405, "{method}");
    }
    let (status, _) = app.get("/nowhere").await;
    assert_eq!(status, 404);
    app.assert_still_serving().await;
}
