//! Spawning the real app on a free port and talking to it like WeChat.

use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock};

use tokio::sync::oneshot;
use wxgate::app::Overrides;
use wxgate::clock::ManualClock;
use wxgate::crypto::{self, AesKey, MessageCrypto};
use wxgate::message::envelope;
use wxgate::{Application, Config};

/// Logs go nowhere unless TEST_LOG is set.
static TRACING: LazyLock<()> = LazyLock::new(|| {
    if std::env::var_os("TEST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter("debug")
            .with_test_writer()
            .try_init();
    }
});

pub fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// The fixture account (tests/fixtures/account.json).
#[derive(Debug, Clone, serde::Deserialize)]
pub struct Account {
    pub token: String,
    pub encoding_aes_key: String,
    pub app_id: String,
    pub original_id: String,
    pub openid: String,
}

pub static ACCOUNT: LazyLock<Account> = LazyLock::new(|| {
    let text = std::fs::read_to_string(fixtures_dir().join("account.json"))
        .expect("tests/fixtures/account.json");
    serde_json::from_str(&text).expect("account.json parses")
});

pub fn account_crypto() -> MessageCrypto {
    MessageCrypto::new(
        AesKey::from_encoding_aes_key(&ACCOUNT.encoding_aes_key).unwrap(),
        ACCOUNT.app_id.clone(),
    )
}

/// Rules exercising every match and reply kind; the fixture tests rely on them.
pub const RULES: &str = r#"
[default_reply]
type = "text"
content = "echo: {content}"

[[rules]]
name = "hello"
match = { text = "hello wxgate" }
reply = { type = "text", content = "hi {from_user}" }

[[rules]]
name = "weibo"
match = { text = "微博" }
reply = { type = "news", articles = [
  { title = "A1", description = "D1", url = "https://example.com/1", pic_url = "https://example.com/1.jpg" },
  { title = "A2", description = "D2", url = "https://example.com/2", pic_url = "https://example.com/2.jpg" },
] }

[[rules]]
name = "image"
match = { msg_type = "image" }
reply = { type = "image", media_id = "IMG_MEDIA" }

[[rules]]
name = "voice"
match = { msg_type = "voice" }
reply = { type = "voice", media_id = "VOICE_MEDIA" }

[[rules]]
name = "video"
match = { msg_type = "video" }
reply = { type = "video", media_id = "VIDEO_MEDIA", title = "T", description = "D" }

[[rules]]
name = "shortvideo"
match = { msg_type = "shortvideo" }
reply = { type = "music", thumb_media_id = "THUMB", title = "M", music_url = "https://example.com/a.mp3" }

[[rules]]
name = "location"
match = { msg_type = "location" }
reply = { type = "news", articles = [
  { title = "L1", url = "https://example.com/l1" },
  { title = "L2", url = "https://example.com/l2" },
  { title = "L3", url = "https://example.com/l3" },
] }

[[rules]]
name = "link"
match = { msg_type = "link" }
reply = { type = "transfer_customer_service" }

[[rules]]
name = "qr"
match = { event = "subscribe", key_prefix = "qrscene_" }
reply = { type = "text", content = "qr {event_key}" }

[[rules]]
name = "subscribe"
match = { event = "subscribe" }
reply = { type = "text", content = "welcome" }

[[rules]]
name = "click"
match = { event = "CLICK" }
reply = { type = "news", articles = [
  { title = "C1", url = "https://example.com/c1" },
  { title = "C2", url = "https://example.com/c2" },
] }

[[rules]]
name = "scan"
match = { event = "SCAN" }
reply = { type = "text", content = "scanned {event_key}" }
"#;

pub fn config_text(mode: &str, extra_server: &str) -> String {
    format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n{extra_server}\n[account]\napp_id = \"{}\"\ntoken = \"{}\"\nencoding_aes_key = \"{}\"\nmode = \"{mode}\"\n{RULES}",
        ACCOUNT.app_id, ACCOUNT.token, ACCOUNT.encoding_aes_key
    )
}

pub fn config(mode: &str, extra_server: &str) -> Config {
    Config::from_toml(
        &config_text(mode, extra_server),
        Path::new("test.toml"),
        |_| None,
    )
    .expect("test config is valid")
}

/// A running wxgate; stops when dropped.
pub struct TestApp {
    pub base: String,
    pub client: reqwest::Client,
    pub clock: Arc<ManualClock>,
    pub metrics: Arc<wxgate::metrics::Metrics>,
    _stop: Option<oneshot::Sender<()>>,
}

impl TestApp {
    /// Starts the app in `mode` with its clock at `now`.
    pub async fn spawn(mode: &str, now: i64) -> TestApp {
        TestApp::spawn_with(config(mode, ""), now).await
    }

    pub async fn spawn_with(config: Config, now: i64) -> TestApp {
        TestApp::spawn_custom(config, now, Overrides::default()).await
    }

    /// Starts the app with parts swapped in (the clock is always a ManualClock at `now`).
    pub async fn spawn_custom(config: Config, now: i64, overrides: Overrides) -> TestApp {
        let (mut app, stop, _task) = TestApp::spawn_task(config, now, overrides).await;
        app._stop = Some(stop);
        app
    }

    /// Starts the app; the caller owns the shutdown trigger and the server task.
    pub async fn spawn_task(
        config: Config,
        now: i64,
        overrides: Overrides,
    ) -> (
        TestApp,
        oneshot::Sender<()>,
        tokio::task::JoinHandle<std::io::Result<()>>,
    ) {
        LazyLock::force(&TRACING);
        let clock = Arc::new(ManualClock::new(now));
        let overrides = Overrides {
            clock: clock.clone(),
            ..overrides
        };
        let app = Application::build_with(config, overrides)
            .await
            .expect("app builds");
        let base = format!("http://127.0.0.1:{}", app.port());
        let metrics = app.state().metrics().clone();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(app.run_until_stopped(async move {
            let _ = stopped.await;
        }));
        let app = TestApp {
            base,
            client: reqwest::Client::new(),
            clock,
            metrics,
            _stop: None,
        };
        (app, stop, task)
    }

    pub fn now(&self) -> i64 {
        use wxgate::clock::Clock;
        self.clock.now_unix()
    }

    pub async fn get(&self, path_and_query: &str) -> (u16, String) {
        let res = self
            .client
            .get(format!("{}{path_and_query}", self.base))
            .send()
            .await
            .expect("GET");
        (res.status().as_u16(), res.text().await.unwrap())
    }

    pub async fn post(
        &self,
        path_and_query: &str,
        body: impl Into<reqwest::Body>,
    ) -> (u16, String) {
        let res = self
            .client
            .post(format!("{}{path_and_query}", self.base))
            .body(body)
            .send()
            .await
            .expect("POST");
        (res.status().as_u16(), res.text().await.unwrap())
    }

    /// A signed plaintext-mode POST of `xml`, stamped with the app's clock.
    pub async fn post_plain(&self, xml: &str) -> (u16, String) {
        let ts = self.now().to_string();
        let nonce = "31415926";
        let sig = crypto::signature(&ACCOUNT.token, &ts, nonce);
        self.post(
            &format!(
                "/weixin?signature={sig}&timestamp={ts}&nonce={nonce}&openid={}",
                ACCOUNT.openid
            ),
            xml.to_owned(),
        )
        .await
    }

    /// A signed, encrypted (safe-mode) POST of `xml`.
    pub async fn post_encrypted(&self, xml: &str) -> (u16, String) {
        let (query, body) = encrypted_request(xml, self.now());
        self.post(&query, body).await
    }

    /// Shows the server still answers a valid request.
    pub async fn assert_still_serving(&self) {
        let (status, body) = self.get(&verify_query(self.now(), "still-alive")).await;
        assert_eq!(
            (status, body.as_str()),
            (200, "still-alive"),
            "server stopped serving"
        );
    }
}

/// A valid URL-verification query at time `now`.
pub fn verify_query(now: i64, echostr: &str) -> String {
    let ts = now.to_string();
    let sig = crypto::signature(&ACCOUNT.token, &ts, "2718");
    format!("/weixin?signature={sig}&timestamp={ts}&nonce=2718&echostr={echostr}")
}

/// Query and body of a safe-mode request carrying `xml`.
pub fn encrypted_request(xml: &str, now: i64) -> (String, String) {
    let encrypt = account_crypto().encrypt(xml);
    let ts = now.to_string();
    let nonce = "16180339";
    let msg_sig = crypto::msg_signature(&ACCOUNT.token, &ts, nonce, &encrypt);
    let sig = crypto::signature(&ACCOUNT.token, &ts, nonce);
    let body = format!(
        "<xml><ToUserName><![CDATA[{}]]></ToUserName><Encrypt><![CDATA[{encrypt}]]></Encrypt></xml>",
        ACCOUNT.original_id
    );
    (
        format!(
            "/weixin?signature={sig}&timestamp={ts}&nonce={nonce}&openid={}&encrypt_type=aes&msg_signature={msg_sig}",
            ACCOUNT.openid
        ),
        body,
    )
}

/// Checks an encrypted reply's signature and decrypts it.
pub fn open_reply(body: &str) -> String {
    let reply = envelope::parse_encrypted_reply(body.as_bytes())
        .expect("reply is XML")
        .unwrap_or_else(|| panic!("not an encrypted envelope: {body}"));
    crypto::verify_msg_signature(
        &ACCOUNT.token,
        &reply.timestamp,
        &reply.nonce,
        &reply.encrypt,
        &reply.msg_signature,
    )
    .expect("reply signature verifies");
    account_crypto()
        .decrypt(&reply.encrypt)
        .expect("reply decrypts")
}

/// A plain text message from the fixture user.
pub fn text_xml(content: &str, now: i64, msg_id: u64) -> String {
    let mut xml = format!(
        "<xml><ToUserName><![CDATA[{}]]></ToUserName><FromUserName><![CDATA[{}]]></FromUserName><CreateTime>{now}</CreateTime><MsgType><![CDATA[text]]></MsgType>",
        ACCOUNT.original_id, ACCOUNT.openid
    );
    wxgate::message::xml::push_cdata_element(&mut xml, "Content", content);
    xml.push_str(&format!("<MsgId>{msg_id}</MsgId></xml>"));
    xml
}

/// The real `wxgate` binary serving a config file on a free port; killed on drop.
pub struct BinaryServer {
    pub child: std::process::Child,
    pub base: String,
}

impl Drop for BinaryServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `wxgate serve` on a free loopback port and waits for `/healthz`.
pub async fn start_binary(config: &Path) -> BinaryServer {
    use std::process::{Command, Stdio};
    use std::time::{Duration, Instant};
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(env!("CARGO_BIN_EXE_wxgate"))
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--config",
        ])
        .arg(config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let server = BinaryServer {
        child,
        base: format!("http://127.0.0.1:{port}"),
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while !reqwest::get(format!("{}/healthz", server.base))
        .await
        .is_ok_and(|r| r.status() == 200)
    {
        assert!(Instant::now() < deadline, "server did not come up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    server
}
