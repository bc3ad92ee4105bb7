//! Redis over TLS (`rediss://`): a real `redis-server` with certificates
//! made by the harness (openssl). With the CA trusted (`store.tls_ca_file`)
//! the gateway keeps its state there; without it the server's certificate
//! is refused and `/readyz` says so.

use crate::support::{text_xml, RedisServer, TestApp, TestConfig};

const NOW: i64 = 1_750_000_000;

fn config(redis: &RedisServer) -> TestConfig {
    TestConfig::fixture("plain")
        .set("store.backend", "redis")
        .set("store.url", redis.tls_url())
}

#[tokio::test]
async fn the_store_works_over_tls_with_the_ca_trusted() {
    let redis = RedisServer::start_tls();
    let config = config(&redis).set("store.tls_ca_file", redis.ca_file().display().to_string());
    let app = TestApp::builder().config(config).now(NOW).spawn().await;
    let (status, body) = app.get("/readyz").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(redis.command(&["DBSIZE"]), ":0\r\n");
    let (status, reply) = app.post_plain(&text_xml("hello wxgate", NOW, 1)).await;
    assert_eq!(status, 200);
    assert!(reply.contains("hi "), "{reply}");
    // The dedup record went to Redis, through its TLS port (the only one
    // the gateway knows).
    assert_ne!(redis.command(&["DBSIZE"]), ":0\r\n");
}

#[tokio::test]
async fn an_untrusted_certificate_is_refused() {
    let redis = RedisServer::start_tls();
    let app = TestApp::builder()
        .config(config(&redis))
        .now(NOW)
        .spawn()
        .await;
    let (status, body) = app.get("/readyz").await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(redis.command(&["DBSIZE"]), ":0\r\n");
}
