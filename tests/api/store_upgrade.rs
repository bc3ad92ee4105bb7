//! Upgrading to hash-tagged keys on one real `redis-server`: a new node
//! adopts the access token a node of an older version left under the old
//! key (no second fetch, which would invalidate the older node's token),
//! and `store.key_format = "legacy"` spells every key as older versions did.

use crate::support::fake_wechat::APP_ID;
use crate::support::{text_xml, AccountSpec, FakeWechat, RedisServer, TestApp, TestConfig};

const NOW: i64 = 1_750_000_000;
const INTERNAL_KEY: &str = "internal-key-0123456789abcdef";

/// The `wxgate:…` keys in `redis`.
fn keys(redis: &RedisServer) -> Vec<String> {
    redis
        .command(&["KEYS", "wxgate:*"])
        .lines()
        .filter(|l| l.starts_with("wxgate:"))
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn a_new_node_adopts_the_token_an_older_version_left_under_the_old_key() {
    let redis = RedisServer::start();
    let fake = FakeWechat::start().await;
    let old_key = format!("wxgate:{APP_ID}:access_token");
    let stored = format!(
        r#"{{"access_token":"TOKEN-OF-AN-OLDER-NODE","fetched_at":{NOW},"expires_at":{}}}"#,
        NOW + 7000
    );
    assert_eq!(redis.command(&["SET", &old_key, &stored]), "+OK\r\n");
    let config = TestConfig::new()
        .account(AccountSpec::official_api("abc"))
        .token_api(&fake)
        .set("token.internal_api_key", INTERNAL_KEY)
        .redis(&redis.url());
    let app = TestApp::builder().config(config).now(NOW).spawn().await;
    let body: serde_json::Value = app
        .http
        .get(format!("{}/internal/access_token", app.base))
        .bearer_auth(INTERNAL_KEY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["access_token"], "TOKEN-OF-AN-OLDER-NODE", "{body}");
    assert_eq!(fake.token_requests(), 0, "adopted, not fetched");
}

#[tokio::test]
async fn legacy_key_format_spells_keys_without_hash_tags() {
    for (format, tagged) in [("legacy", false), ("tagged", true)] {
        let redis = RedisServer::start();
        let config = TestConfig::fixture("plain")
            .redis(&redis.url())
            .set("store.key_format", format);
        let app = TestApp::builder().config(config).now(NOW).spawn().await;
        let (status, _) = app.post_plain(&text_xml("hello wxgate", NOW, 1)).await;
        assert_eq!(status, 200);
        let keys = keys(&redis);
        assert!(!keys.is_empty(), "the dedup record is in Redis");
        assert!(
            keys.iter().all(|k| k.contains('{') == tagged),
            "{format}: {keys:?}"
        );
    }
}
