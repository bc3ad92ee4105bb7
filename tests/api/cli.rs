//! The real binary: the README's quick start and the exit codes.

use std::io::Write;
use std::process::Command;
use std::time::{Duration, Instant};

use wxgate::crypto;

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
    let mut file = tempfile::NamedTempFile::new().unwrap();
    writeln!(
        file,
        "[account]\ntoken = \"t\"\n[[rules]]\nname = \"broken\"\nmatch = {{ regex = \"(\" }}\nreply = {{ type = \"text\", content = \"x\" }}"
    )
    .unwrap();
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
    let server = crate::helpers::start_binary(&example_config()).await;
    let client = reqwest::Client::new();
    let base = server.base.clone();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        .to_string();
    let sig = crypto::signature("wxgatedev", &now, "42");
    let res = client
        .get(format!(
            "{base}/weixin?signature={sig}&timestamp={now}&nonce=42&echostr=hello123"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.text().await.unwrap(), "hello123");
    let xml = format!("<xml><ToUserName><![CDATA[gh_test]]></ToUserName><FromUserName><![CDATA[o_user]]></FromUserName><CreateTime>{now}</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[微博]]></Content><MsgId>1</MsgId></xml>");
    let res = client
        .post(format!(
            "{base}/weixin?signature={sig}&timestamp={now}&nonce=42&openid=o_user"
        ))
        .body(xml)
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
    let mut server = crate::helpers::start_binary(&example_config()).await;
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
