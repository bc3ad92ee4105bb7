//! The operator console under test: the fixture account served from a
//! config file on disk (the console edits and reloads that file), with
//! the console on the operator listener, and a client that signs in and
//! keeps the session cookie and CSRF token as a browser would.
//!
//! ```ignore
//! let console = ConsoleApp::start(ConsoleApp::config()).await;
//! let client = console.signed_in().await;
//! let (status, body) = client.get("rules/default").await;
//! ```

use std::path::PathBuf;

use reqwest::header::{COOKIE, SET_COOKIE};
use serde_json::Value;

use super::app::TestApp;
use super::config::{AccountSpec, TestConfig, RULES};

/// The admin key, which is the console's sign-in.
pub const CONSOLE_KEY: &str = "console-admin-key-0123456789";

/// A wxgate serving a config file with the console enabled.
pub struct ConsoleApp {
    pub app: TestApp,
    /// `http://127.0.0.1:…` of the operator listener.
    pub operator: String,
    /// The config file the console edits.
    pub file: PathBuf,
    _dir: tempfile::TempDir,
}

/// A free loopback port (bound and released: the app binds it next).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl ConsoleApp {
    /// The fixture account (plain mode) with the fixture rules, the admin
    /// key, the operator listener and the console on; `public_url` names
    /// the public listener (so the verify button can reach it).
    pub fn config() -> TestConfig {
        TestConfig::new()
            .account(AccountSpec::fixture("plain"))
            .set("admin.api_key", CONSOLE_KEY)
            .set("admin.listen", "127.0.0.1:0")
            .set("console.enabled", true)
            .rules(RULES)
    }

    /// Writes `config` (with a comment on top, which saves must keep) to a
    /// file in a fresh directory and serves it.
    pub async fn start(config: TestConfig) -> ConsoleApp {
        let port = free_port();
        let url = format!("http://127.0.0.1:{port}");
        ConsoleApp::serve(
            config.set("server.listen", format!("127.0.0.1:{port}")),
            Some(url),
        )
        .await
    }

    /// As [`ConsoleApp::start`] with `console.public_url` set to `url`
    /// (or left out).
    pub async fn start_at(config: TestConfig, url: Option<String>) -> ConsoleApp {
        ConsoleApp::serve(config, url).await
    }

    async fn serve(config: TestConfig, url: Option<String>) -> ConsoleApp {
        let config = match url {
            Some(url) => config.set("console.public_url", url),
            None => config,
        };
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("wxgate.toml");
        std::fs::write(&file, format!("# wxgate under test\n{}", config.to_toml())).unwrap();
        let loaded = wxgate::Config::load(&file).unwrap_or_else(|e| panic!("{e}"));
        let app = TestApp::builder()
            .config(loaded)
            // The wall clock: the verify button signs with it, as WeChat does.
            .now(super::now_unix())
            .spawn()
            .await;
        let operator = app.operator_base.clone().expect("the operator listener");
        ConsoleApp {
            app,
            operator,
            file,
            _dir: dir,
        }
    }

    /// A client without a session.
    pub fn client(&self) -> ConsoleClient {
        ConsoleClient {
            base: self.operator.clone(),
            http: reqwest::Client::new(),
            cookie: None,
            csrf: None,
        }
    }

    /// A client signed in with the right key.
    pub async fn signed_in(&self) -> ConsoleClient {
        let mut client = self.client();
        let (status, body) = client.login(CONSOLE_KEY).await;
        assert_eq!(status, 200, "{body}");
        client
    }

    /// The text of the config file now.
    pub fn file_text(&self) -> String {
        std::fs::read_to_string(&self.file).unwrap()
    }

    /// The names of the files beside the config file.
    pub fn files(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.file.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    /// The reply content the callback gives `text` now.
    pub async fn answer(&self, text: &str, msg_id: u64) -> String {
        let (status, xml) = self
            .app
            .post_plain(&super::text_xml(text, self.app.now(), msg_id))
            .await;
        assert_eq!(status, 200, "{xml}");
        super::plain_content(&xml)
    }
}

/// A browser's side of the console API: the cookie, the CSRF token.
pub struct ConsoleClient {
    pub base: String,
    pub http: reqwest::Client,
    /// `wxgate_console=…`, once signed in.
    pub cookie: Option<String>,
    /// The session's CSRF token.
    pub csrf: Option<String>,
}

/// A response: status, JSON body (`Null` when not JSON), raw text.
pub struct Answer {
    pub status: u16,
    pub json: Value,
    pub text: String,
    pub set_cookie: Option<String>,
}

impl ConsoleClient {
    /// `POST /console/api/login`; keeps the cookie and token on success.
    pub async fn login(&mut self, key: &str) -> (u16, Value) {
        let answer = self
            .send(
                reqwest::Method::POST,
                "login",
                Some(serde_json::json!({ "key": key })),
                None,
            )
            .await;
        if answer.status == 200 {
            let cookie = answer.set_cookie.clone().expect("a session cookie");
            self.cookie = Some(cookie.split(';').next().unwrap().to_owned());
            self.csrf = answer.json["csrf"].as_str().map(str::to_owned);
        }
        (answer.status, answer.json)
    }

    /// Any request to `/console/api/{path}`; `csrf` overrides the token
    /// sent (`Some("")` sends none).
    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
        csrf: Option<&str>,
    ) -> Answer {
        let mut req = self
            .http
            .request(method, format!("{}/console/api/{path}", self.base));
        if let Some(cookie) = &self.cookie {
            req = req.header(COOKIE, cookie);
        }
        match csrf.or(self.csrf.as_deref()) {
            Some("") | None => {}
            Some(token) => req = req.header("x-csrf-token", token),
        }
        if let Some(body) = body {
            req = req.json(&body);
        }
        let res = req.send().await.expect("console request");
        let status = res.status().as_u16();
        let set_cookie = res
            .headers()
            .get(SET_COOKIE)
            .map(|v| v.to_str().unwrap().to_owned());
        let text = res.text().await.unwrap();
        Answer {
            status,
            json: serde_json::from_str(&text).unwrap_or(Value::Null),
            text,
            set_cookie,
        }
    }

    pub async fn get(&self, path: &str) -> Answer {
        self.send(reqwest::Method::GET, path, None, None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> Answer {
        self.send(reqwest::Method::POST, path, Some(body), None)
            .await
    }

    pub async fn put(&self, path: &str, body: Value) -> Answer {
        self.send(reqwest::Method::PUT, path, Some(body), None)
            .await
    }

    /// The conversations page's entries for `account`, newest first, and
    /// the page's text (for messages and for what must not be in it).
    pub async fn conversations(&self, account: &str) -> (Vec<Value>, String) {
        let list = self.get(&format!("conversations/{account}")).await;
        assert_eq!(list.status, 200, "{}", list.text);
        let entries = list.json["entries"]
            .as_array()
            .unwrap_or_else(|| panic!("no entries: {}", list.text))
            .clone();
        (entries, list.text)
    }
}
