//! `[admin] listen`: the operator routes on a listener of their own; the
//! public listener then serves only the callbacks and `/healthz`.

use crate::support::{text_xml, TestApp, TestConfig};

const ADMIN_KEY: &str = "operator-listener-key-0123";
const NOW: i64 = 1_750_000_000;

async fn get(base: &str, path: &str) -> u16 {
    reqwest::get(format!("{base}{path}"))
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn the_operator_routes_move_to_their_own_listener() {
    let config = TestConfig::fixture("plain")
        .set("admin.api_key", ADMIN_KEY)
        .set("admin.listen", "127.0.0.1:0");
    let app = TestApp::builder().config(config).now(NOW).spawn().await;
    let operator = app.operator_base.clone().expect("an operator listener");
    assert_ne!(operator, app.base);

    // Public: callbacks and /healthz only.
    assert_eq!(get(&app.base, "/healthz").await, 200);
    for path in ["/readyz", "/metrics"] {
        assert_eq!(get(&app.base, path).await, 404, "public {path}");
    }
    let res = app
        .http
        .post(format!("{}/admin/reload", app.base))
        .bearer_auth(ADMIN_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404, "public /admin/reload");
    let (status, reply) = app.post_plain(&text_xml("hello wxgate", NOW, 1)).await;
    assert_eq!(status, 200);
    assert!(reply.contains("hi "), "{reply}");

    // Operator: everything else, not the callbacks.
    for path in ["/healthz", "/readyz", "/metrics"] {
        assert_eq!(get(&operator, path).await, 200, "operator {path}");
    }
    assert_eq!(get(&operator, "/weixin").await, 404);
    let res = app
        .http
        .post(format!("{operator}/admin/reload"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401, "the key is still required");
}

#[tokio::test]
async fn without_it_one_listener_serves_everything() {
    let app = TestApp::builder().mode("plain").now(NOW).spawn().await;
    assert!(app.operator_base.is_none());
    for path in ["/healthz", "/readyz", "/metrics"] {
        assert_eq!(get(&app.base, path).await, 200, "{path}");
    }
}

/// Wrong keys from one client: 401 up to the limit, then 429 for every
/// keyed request (the right key too) until the window ends.
#[tokio::test]
async fn failed_key_attempts_are_rate_limited_per_client() {
    let config = TestConfig::fixture("plain").set("admin.api_key", ADMIN_KEY);
    let app = TestApp::builder().config(config).now(NOW).spawn().await;
    let reload = |key: &'static str| {
        app.http
            .post(format!("{}/admin/reload", app.base))
            .bearer_auth(key)
            .send()
    };
    let limit = wxgate::server::operator::bearer::MAX_FAILURES;
    for i in 0..limit {
        assert_eq!(reload("wrong").await.unwrap().status(), 401, "attempt {i}");
    }
    let res = reload("wrong").await.unwrap();
    assert_eq!(res.status(), 429);
    assert!(res.headers().contains_key("retry-after"));
    assert_eq!(reload(ADMIN_KEY).await.unwrap().status(), 429);
    // The callbacks are not affected.
    let (status, _) = app.post_plain(&text_xml("hello wxgate", NOW, 2)).await;
    assert_eq!(status, 200);
}

/// Hundreds of wrong keys write one summary line, not one line each.
#[tokio::test]
async fn failed_key_attempts_are_logged_as_one_summary_line() {
    let dir = tempfile::tempdir().unwrap();
    let (file, log) = (dir.path().join("wxgate.toml"), dir.path().join("log"));
    TestConfig::fixture("plain")
        .set("admin.api_key", ADMIN_KEY)
        .write(&file);
    let server = crate::support::BinaryServer::start_logging(&file, &log).await;
    let http = reqwest::Client::new();
    for _ in 0..200 {
        let res = http
            .post(format!("{}/admin/reload", server.base))
            .bearer_auth("wrong")
            .send()
            .await
            .unwrap();
        assert!([401, 429].contains(&res.status().as_u16()));
    }
    let logged = std::fs::read_to_string(&log).unwrap();
    let lines = logged
        .lines()
        .filter(|l| l.contains("missing or wrong bearer key"))
        .count();
    assert_eq!(lines, 1, "{logged}");
}
