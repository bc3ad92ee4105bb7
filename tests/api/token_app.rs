//! Access tokens in the running app: start-up checks of the credentials,
//! the configuration that needs nothing, the internal endpoint, a Redis
//! outage, and `wxgate token`, against the local fake WeChat.
//!
//! These build `Application` themselves: they test start-up itself, need
//! the app's `WechatApi` handle, or run on the system clock.

use std::time::{Duration, Instant};

use wxgate::app::StartupError;
use wxgate::clock::{Clock, SystemClock};
use wxgate::{Application, Config};

use crate::support::fake_wechat::APP_SECRET;
use crate::support::{AccountSpec, FakeWechat, RedisServer, TestConfig};

fn token_config(fake: &FakeWechat, secret: &str) -> TestConfig {
    TestConfig::new()
        .account(AccountSpec::official_api("abc").set("app_secret", secret))
        .token_api(fake)
        .set("token.timeout_secs", 2)
        .set("token.lock_ttl_ms", 3000)
}

fn config(config: TestConfig) -> Config {
    config.build()
}

#[tokio::test]
async fn wrong_credentials_fail_start_up_with_a_configuration_error() {
    let fake = FakeWechat::start().await;
    let err = match Application::build(config(token_config(&fake, "wrong-secret"))).await {
        Ok(_) => panic!("started with a wrong app secret"),
        Err(e) => e,
    };
    let text = err.to_string();
    assert!(matches!(err, StartupError::Credentials(_)), "{err:?}");
    assert!(err.is_config());
    assert!(
        text.contains("40125") && text.contains("account.app_secret"),
        "{text}"
    );
    assert!(!text.contains("wrong-secret"), "the secret leaked: {text}");

    let bad_id = token_config(&fake, APP_SECRET).set("account.app_id", "wxnotmyapp");
    let Err(err) = Application::build(config(bad_id)).await else {
        panic!("started with a wrong app id")
    };
    assert!(
        err.to_string().contains("40013") && err.to_string().contains("account.app_id"),
        "{err}"
    );
}

#[tokio::test]
async fn the_default_config_needs_no_network_and_no_redis() {
    let text = TestConfig::new().account(AccountSpec::token_only("abc"));
    let app = Application::build(config(text)).await.unwrap();
    assert!(app.wechat_api().is_none());
    let port = app.port();
    let _server = tokio::spawn(app.run_until_stopped(std::future::pending()));
    let http = reqwest::Client::new();
    let ready: serde_json::Value = http
        .get(format!("http://127.0.0.1:{port}/readyz"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ready["checks"]["store"]["status"], "memory");
    assert!(ready["checks"].get("token").is_none());
    let status = http
        .get(format!("http://127.0.0.1:{port}/internal/access_token"))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 404);
}

#[tokio::test]
async fn the_internal_endpoint_serves_the_token_to_holders_of_the_key() {
    let fake = FakeWechat::start().await;
    let key = "internal-key-0123456789abcdef";
    let app = Application::build(config(
        token_config(&fake, APP_SECRET).set("token.internal_api_key", key),
    ))
    .await
    .unwrap();
    let port = app.port();
    let _server = tokio::spawn(app.run_until_stopped(std::future::pending()));
    let url = format!("http://127.0.0.1:{port}/internal/access_token");
    let http = reqwest::Client::new();

    assert_eq!(http.get(&url).send().await.unwrap().status(), 401);
    let wrong = http
        .get(&url)
        .bearer_auth("internal-key-0123456789abcdeX")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);

    let ok = http.get(&url).bearer_auth(key).send().await.unwrap();
    assert_eq!(ok.status(), 200);
    assert_eq!(ok.headers()["cache-control"], "no-store");
    let body: serde_json::Value = ok.json().await.unwrap();
    assert_eq!(body["access_token"], fake.current_token().unwrap());
    let now = SystemClock.now_unix();
    let expires_at = body["expires_at"].as_i64().unwrap();
    let expires_in = body["expires_in"].as_i64().unwrap();
    assert!((7190..=7200).contains(&expires_in), "{body}");
    assert!((expires_at - now - expires_in).abs() <= 1, "{body}");
    assert_eq!(
        fake.token_requests(),
        1,
        "start-up fetched it; the endpoint reads the cache"
    );
}

async fn readyz(http: &reqwest::Client, port: u16) -> (u16, serde_json::Value) {
    let res = http
        .get(format!("http://127.0.0.1:{port}/readyz"))
        .send()
        .await
        .unwrap();
    (res.status().as_u16(), res.json().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_outage_gives_clear_errors_and_recovers_by_itself() {
    let mut redis = RedisServer::start();
    let fake = FakeWechat::start().await;
    let text = token_config(&fake, APP_SECRET).redis(&redis.url());
    let app = Application::build(config(text)).await.unwrap();
    let api = app.wechat_api().unwrap();
    let port = app.port();
    let _server = tokio::spawn(app.run_until_stopped(std::future::pending()));
    let http = reqwest::Client::new();

    let (status, body) = readyz(&http, port).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["checks"]["token"]["ok"], true, "{body}");
    assert!(
        body["checks"]["store"]["status"]
            .as_str()
            .unwrap()
            .contains("redis"),
        "{body}"
    );

    redis.stop();

    let (status, body) = readyz(&http, port).await;
    assert_eq!(status, 503, "{body}");
    let reason = body["checks"]["store"]["error"].as_str().unwrap();
    assert!(reason.contains("redis"), "{reason}");
    println!("readiness while Redis is down: {reason}");
    // The cached token still works while Redis is down...
    api.callback_ips().await.unwrap();
    // ...but replacing it needs the store: a clear error, no panic, no fetch.
    let before = fake.token_requests();
    let cached = api.tokens().token().await.unwrap().access_token;
    let err = api.tokens().replace(&cached).await.unwrap_err().to_string();
    assert!(err.contains("redis"), "{err}");
    let err = api.tokens().replace(&cached).await.unwrap_err().to_string();
    assert!(err.contains("redis"), "{err}");
    assert_eq!(fake.token_requests(), before);
    println!("while Redis is down: {err}");

    redis.restart();

    // Readiness comes back by itself (bounded wait).
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (status, body) = readyz(&http, port).await;
        if status == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "still unready 15 s after Redis came back: {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // And tokens can be replaced again (after the short backoff).
    let deadline = Instant::now() + Duration::from_secs(15);
    let fresh = loop {
        match api.tokens().replace(&cached).await {
            Ok(t) => break t,
            Err(e) => {
                assert!(
                    Instant::now() < deadline,
                    "token refresh did not recover: {e}"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    assert_ne!(fresh.access_token, cached);
    assert!(redis
        .command(&["EXISTS", "wxgate:{wxfake0123456789}:access_token"])
        .contains(":1"));
}

#[tokio::test]
async fn wxgate_token_prints_the_token() {
    let fake = FakeWechat::start().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wxgate.toml");
    token_config(&fake, APP_SECRET).write(&path);
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_wxgate"))
        .args(["token", "--config"])
        .arg(&path)
        .env_remove("WXGATE_APP_SECRET")
        .env_remove("WXGATE_APP_ID")
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8(out.stdout).unwrap().trim(),
        fake.current_token().unwrap()
    );

    // Wrong secret: exit 78 (configuration), a message naming the setting.
    token_config(&fake, "nope").write(&path);
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_wxgate"))
        .args(["token", "--config"])
        .arg(&path)
        .env_remove("WXGATE_APP_SECRET")
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(78));
    assert!(String::from_utf8_lossy(&out.stderr).contains("account.app_secret"));
}
