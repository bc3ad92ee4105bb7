//! The real binary: the README's quick start and the exit codes.

use std::io::Write;
use std::process::{Command, Stdio};
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
    assert!(String::from_utf8_lossy(&out.stdout).contains("OK (mode plain"));
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

/// Kills the server even when an assertion fails.
struct Server(std::process::Child);
impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn example_config_serves_verification_and_a_text_message() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let _server = Server(
        Command::new(BIN)
            .args([
                "serve",
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--config",
            ])
            .arg(example_config())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let client = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if client
            .get(format!("{base}/healthz"))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
        {
            break;
        }
        assert!(Instant::now() < deadline, "server did not come up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
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
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut server = Server(
        Command::new(BIN)
            .args([
                "serve",
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--config",
            ])
            .arg(example_config())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !client
        .get(format!("http://127.0.0.1:{port}/healthz"))
        .send()
        .await
        .is_ok_and(|r| r.status() == 200)
    {
        assert!(Instant::now() < deadline, "server did not come up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let pid = server.0.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = server.0.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "did not stop after SIGTERM");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(status.code(), Some(0));
}
