//! A real headless Chromium, driven through chromedriver (WebDriver) with
//! fantoccini: Debian's `chromium` and `chromium-driver`, which
//! `scripts/ensure-chromium.sh` installs (the test command runs it). A
//! missing browser fails the test with that advice; it never skips.
//!
//! chromedriver runs on a free loopback port for one test; Chromium gets
//! a fresh profile and the flags that keep it off the network (this
//! machine's tests reach nothing but loopback). Screenshots go to
//! `console-screenshots/` in the target directory.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;

/// `WXGATE_CHROMIUM`, else Debian's path.
fn chromium() -> PathBuf {
    std::env::var_os("WXGATE_CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"))
}

/// `WXGATE_CHROMEDRIVER`, else Debian's path.
fn chromedriver() -> PathBuf {
    std::env::var_os("WXGATE_CHROMEDRIVER")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromedriver"))
}

/// Where screenshots go: `<target dir>/console-screenshots/` (the test
/// binary is `<target dir>/debug/deps/api-…`).
pub fn screenshot_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    let target = exe
        .ancestors()
        .nth(3)
        .map(Path::to_owned)
        .unwrap_or_else(|| PathBuf::from("target"));
    target.join("console-screenshots")
}

/// A headless Chromium under chromedriver; both end when it is dropped
/// (call [`Browser::close`] to end the session cleanly first).
pub struct Browser {
    pub client: Client,
    _driver: Driver,
    _profile: tempfile::TempDir,
}

/// The chromedriver process, killed when dropped (also when starting the
/// session fails).
struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Browser {
    /// Starts chromedriver and a Chromium session with a `width`×`height` window.
    pub async fn start(width: u32, height: u32) -> Browser {
        for (what, path) in [("chromium", chromium()), ("chromedriver", chromedriver())] {
            assert!(
                path.exists(),
                "{what} is missing at {}: the browser tests need Debian's chromium and chromium-driver; run scripts/ensure-chromium.sh (apt-get install chromium chromium-driver), or set WXGATE_CHROMIUM / WXGATE_CHROMEDRIVER",
                path.display()
            );
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let driver = Driver(
            Command::new(chromedriver())
                .arg(format!("--port={port}"))
                .arg("--allowed-ips=127.0.0.1")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {}: {e}", chromedriver().display())),
        );
        let profile = tempfile::tempdir().unwrap();
        let client = connect(port, &profile, width, height).await;
        client
            .set_window_size(width, height)
            .await
            .expect("window size");
        Browser {
            client,
            _driver: driver,
            _profile: profile,
        }
    }

    /// Resizes the window (a phone: 390×844).
    pub async fn resize(&self, width: u32, height: u32) {
        self.client
            .set_window_size(width, height)
            .await
            .expect("window size");
    }

    /// Opens `url`.
    pub async fn goto(&self, url: &str) {
        self.client.goto(url).await.expect("navigate");
    }

    /// The element at `css`, waiting for it to exist.
    pub async fn find(&self, css: &str) -> fantoccini::elements::Element {
        self.client
            .wait()
            .at_most(Duration::from_secs(10))
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no element {css}: {e}"))
    }

    /// Clicks the element at `css`.
    pub async fn click(&self, css: &str) {
        self.find(css).await.click().await.expect("click");
    }

    /// Replaces the text of the input or textarea at `css` by typing it.
    pub async fn type_into(&self, css: &str, text: &str) {
        let element = self.find(css).await;
        element.clear().await.expect("clear");
        element.send_keys(text).await.expect("type");
    }

    /// The visible text of `css` (empty when it does not exist yet).
    pub async fn text(&self, css: &str) -> String {
        match self.client.find(Locator::Css(css)).await {
            Ok(e) => e.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        }
    }

    /// Waits (at most 20 s) until `css`'s text satisfies `done`; its text.
    pub async fn wait_text(&self, css: &str, mut done: impl FnMut(&str) -> bool) -> String {
        let until = Instant::now() + Duration::from_secs(20);
        loop {
            let text = self.text(css).await;
            if done(&text) {
                return text;
            }
            assert!(
                Instant::now() < until,
                "{css} never showed what was expected; it shows {text:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Scrolls the page to its top.
    pub async fn scroll_top(&self) {
        self.client
            .execute("window.scrollTo(0, 0)", vec![])
            .await
            .expect("scroll");
    }

    /// Saves a screenshot as `<name>.png` among the test artifacts.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        let png = self.client.screenshot().await.expect("screenshot");
        let dir = screenshot_dir();
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png).unwrap();
        path
    }

    /// Ends the browser session.
    pub async fn close(self) {
        let _ = self.client.clone().close().await;
    }
}

/// Connects to chromedriver on `port` (waiting for it to listen) with a
/// new headless session.
async fn connect(port: u16, profile: &tempfile::TempDir, width: u32, height: u32) -> Client {
    let args = vec![
        "--headless".to_owned(),
        "--no-sandbox".into(),
        "--disable-gpu".into(),
        "--disable-quic".into(),
        "--no-first-run".into(),
        "--disable-background-networking".into(),
        "--disable-component-update".into(),
        "--disable-sync".into(),
        "--disable-dev-shm-usage".into(),
        "--lang=en-US".into(),
        format!("--window-size={width},{height}"),
        format!("--user-data-dir={}", profile.path().display()),
    ];
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({ "binary": chromium(), "args": args }),
    );
    let url = format!("http://127.0.0.1:{port}");
    let until = Instant::now() + Duration::from_secs(30);
    loop {
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        match ClientBuilder::new(connector)
            .capabilities(caps.clone())
            .connect(&url)
            .await
        {
            Ok(client) => return client,
            Err(e) => {
                assert!(
                    Instant::now() < until,
                    "chromedriver on {url} gave no Chromium session: {e}"
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}
