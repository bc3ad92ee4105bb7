//! Reload is all or nothing, with the real binary: a truncated file, a
//! restart-only change and a syntax error are refused whole (the rules in
//! force stay), and a secret on a broken line appears nowhere: not in the
//! 422 body, not in the log, not in `check-config`'s output.

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

use crate::support::{
    now_unix, text_xml, AccountSpec, BinaryServer, CallbackClient, TestConfig, RULES,
};

const BIN: &str = env!("CARGO_BIN_EXE_wxgate");
const ADMIN_KEY: &str = "reload-test-admin-key-0123";
const APP_SECRET: &str = "AppSecretNeverShown0123456789ab";
const INTERNAL_KEY: &str = "InternalKeyNeverShown0123456789";

/// The fixture account with the fixture rules, an app secret, an admin key
/// and an internal API key.
fn config() -> TestConfig {
    TestConfig::fixture("plain")
        .set("account.app_secret", APP_SECRET)
        .set("admin.api_key", ADMIN_KEY)
        .set("token.internal_api_key", INTERNAL_KEY)
}

async fn reload(server: &BinaryServer) -> (u16, Value) {
    let res = reqwest::Client::new()
        .post(format!("{}/admin/reload", server.base))
        .bearer_auth(ADMIN_KEY)
        .send()
        .await
        .unwrap();
    (res.status().as_u16(), res.json().await.unwrap())
}

/// The reply content to "hello wxgate" (the fixture rule answers
/// `hi {from_user}`, the default reply `echo: …`).
async fn answer(server: &BinaryServer, msg_id: u64) -> String {
    let client = CallbackClient::fixture("plain");
    let now = now_unix();
    let (query, body) = client.plain(&text_xml("hello wxgate", now, msg_id), now);
    let res = reqwest::Client::new()
        .post(format!("{}{query}", server.base))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let xml = res.text().await.unwrap();
    wxgate::message::xml::parse_str(&xml)
        .unwrap()
        .child_text("Content")
        .unwrap_or_default()
        .to_owned()
}

fn check_config(file: &Path, against: Option<&Path>) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.args(["check-config", "--config"]).arg(file);
    if let Some(against) = against {
        cmd.arg("--against").arg(against);
    }
    cmd.output().unwrap()
}

fn text_of(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[tokio::test]
async fn a_truncated_file_is_refused_and_the_rules_stay() {
    let dir = tempfile::tempdir().unwrap();
    let (file, running) = (
        dir.path().join("wxgate.toml"),
        dir.path().join("running.toml"),
    );
    // Settings first, the rules last, as an operator writes the file.
    let head = TestConfig::new()
        .account(AccountSpec::fixture("plain"))
        .set("admin.api_key", ADMIN_KEY)
        .to_toml();
    let text = format!("{head}\n{RULES}");
    std::fs::write(&file, &text).unwrap();
    std::fs::write(&running, &text).unwrap();
    let server = BinaryServer::start(&file).await;
    assert!(answer(&server, 1).await.starts_with("hi "));

    // `head -c`: cut before the first rule, still valid TOML.
    let cut = text.find("[[rules]]").expect("the file has rules");
    std::fs::write(&file, &text[..cut]).unwrap();
    let out = check_config(&file, Some(&running));
    assert_eq!(out.status.code(), Some(78), "{}", text_of(&out));
    assert!(text_of(&out).contains("rules = []"), "{}", text_of(&out));
    let (status, body) = reload(&server).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["reloaded"], false);
    assert!(
        body["error"].as_str().unwrap().contains("default"),
        "names the account: {body}"
    );
    assert!(
        answer(&server, 2).await.starts_with("hi "),
        "the rules stay"
    );

    // Saying so explicitly empties them, and the diff says what went.
    std::fs::write(&file, format!("rules = []\n{}", &text[..cut])).unwrap();
    let out = check_config(&file, Some(&running));
    assert!(out.status.success(), "{}", text_of(&out));
    assert!(
        text_of(&out).contains("default: removed hello"),
        "{}",
        text_of(&out)
    );
    let (status, body) = reload(&server).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["rules"], 0);
    let removed = body["accounts"]["default"]["removed"].as_array().unwrap();
    assert!(removed.contains(&"hello".into()), "{body}");
    assert!(answer(&server, 3).await.starts_with("echo: "));
}

#[tokio::test]
async fn a_restart_only_change_is_refused_whole() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("wxgate.toml");
    config().write(&file);
    let server = BinaryServer::start(&file).await;

    // A rule changed and a start-up setting changed: neither applies.
    let changed = config()
        .to_toml()
        .replace("hi {from_user}", "changed {from_user}");
    let changed = format!("{changed}\n[delivery]\ndedup_window_secs = 42\n");
    std::fs::write(&file, &changed).unwrap();
    let (status, body) = reload(&server).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["reloaded"], false);
    assert_eq!(body["restart_required"], serde_json::json!(["delivery"]));
    assert!(body["error"].as_str().unwrap().contains("restart"));
    assert!(
        answer(&server, 1).await.starts_with("hi "),
        "old rules stay"
    );

    // The rule change alone is applied, and reported as a change.
    std::fs::write(
        &file,
        config()
            .to_toml()
            .replace("hi {from_user}", "changed {from_user}"),
    )
    .unwrap();
    let (status, body) = reload(&server).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["accounts"]["default"]["changed"],
        serde_json::json!(["hello"])
    );
    assert!(answer(&server, 2).await.starts_with("changed "));
}

#[tokio::test]
async fn a_syntax_error_on_a_secret_line_never_shows_the_secret() {
    let dir = tempfile::tempdir().unwrap();
    let (file, log) = (dir.path().join("wxgate.toml"), dir.path().join("log"));
    let good = config().to_toml();
    std::fs::write(&file, &good).unwrap();
    let server = BinaryServer::start_logging(&file, &log).await;
    for (key, secret) in [
        ("app_secret", APP_SECRET),
        ("api_key", ADMIN_KEY),
        ("internal_api_key", INTERNAL_KEY),
    ] {
        let line = format!("{key} = \"{secret}\"");
        assert!(good.contains(&line), "{line} in {good}");
        for broken in [
            format!("{key} = \"{secret}"),
            format!("{key} = {secret}"),
            format!("{key} = \"{secret}\" trailing"),
        ] {
            std::fs::write(&file, good.replace(&line, &broken)).unwrap();
            let lineno = good[..good.find(&line).unwrap()].matches('\n').count() + 1;
            let (status, body) = reload(&server).await;
            assert_eq!(status, 422, "{body}");
            let error = body["error"].as_str().unwrap();
            assert!(!error.contains(&secret[..10]), "{key}: {error}");
            assert!(
                error.contains(&format!("wxgate.toml:{lineno}:")),
                "file and line: {error}"
            );
            assert!(error.contains(key), "names the key: {error}");
            let out = check_config(&file, None);
            assert_eq!(out.status.code(), Some(78));
            assert!(!text_of(&out).contains(&secret[..10]), "{}", text_of(&out));
        }
    }
    // The log has each refusal, and no secret.
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(logged.contains("reload refused"), "{logged}");
    for secret in [APP_SECRET, ADMIN_KEY, INTERNAL_KEY] {
        assert!(!logged.contains(&secret[..10]), "{logged}");
    }
    assert!(answer(&server, 1).await.starts_with("hi "));
}
