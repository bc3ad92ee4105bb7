//! The real binary: the README's quick start and the exit codes.

use std::process::Command;
use std::time::{Duration, Instant};

use crate::support::{
    now_unix, rule, table, text_reply, AccountSpec, BinaryServer, CallbackClient, TestConfig,
};

const BIN: &str = env!("CARGO_BIN_EXE_wxgate");

fn example_config() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/wxgate.toml")
}

#[test]
fn check_config_accepts_the_example() {
    let out = Command::new(BIN)
        .args(["check-config", "--config"])
        .arg(example_config())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("account default (official, mode plain"),
        "{stdout}"
    );
}

#[test]
fn invalid_config_exits_78_naming_file_and_rule() {
    let file = tempfile::NamedTempFile::new().unwrap();
    let mut broken = rule(table([("regex", "(".into())]), text_reply("x"));
    broken.insert("name".into(), "broken".into());
    TestConfig::new()
        .account(AccountSpec::token_only("t"))
        .rule(broken)
        .write(file.path());
    for args in [vec!["check-config"], vec!["serve"]] {
        let out = Command::new(BIN)
            .args(&args)
            .arg("--config")
            .arg(file.path())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(78), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(&file.path().display().to_string()), "{err}");
        assert!(err.contains("rule #1 \"broken\": invalid regex"), "{err}");
    }
    let out = Command::new(BIN)
        .args(["check-config", "--config", "does/not/exist.toml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(78));
}

#[tokio::test]
async fn example_config_serves_verification_and_a_text_message() {
    let server = BinaryServer::start(&example_config()).await;
    let client = reqwest::Client::new();
    let base = server.base.clone();
    let config = wxgate::Config::load(&example_config()).unwrap();
    let wechat = CallbackClient::for_entry(config.primary());
    assert_eq!(wechat.token(), "wxgatedev");
    let now = now_unix();
    let res = client
        .get(format!("{base}{}", wechat.verify_query(now, "hello123")))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.text().await.unwrap(), "hello123");
    let xml = format!("<xml><ToUserName><![CDATA[gh_test]]></ToUserName><FromUserName><![CDATA[o_user]]></FromUserName><CreateTime>{now}</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[微博]]></Content><MsgId>1</MsgId></xml>");
    let (query, body) = wechat.plain(&xml, now);
    let res = client
        .post(format!("{base}{query}"))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let body = res.text().await.unwrap();
    assert!(
        body.contains("<MsgType><![CDATA[news]]></MsgType>") && body.contains("最新文章"),
        "{body}"
    );
}

#[tokio::test]
async fn sigterm_stops_the_binary_cleanly() {
    let mut server = BinaryServer::start(&example_config()).await;
    let pid = server.child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = server.child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "did not stop after SIGTERM");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(status.code(), Some(0));
}
