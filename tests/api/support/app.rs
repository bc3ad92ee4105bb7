//! Spawning the real app on a free port (or the real binary) and talking to
//! it like WeChat.
//!
//! ```ignore
//! let app = TestApp::builder().mode("safe").now(NOW).spawn().await;
//! let app = TestApp::builder().config(cfg).responder(slow).spawn().await;
//! ```

use std::path::Path;
use std::sync::{Arc, LazyLock, Mutex};

use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use wxgate::app::Overrides;
use wxgate::clock::ManualClock;
use wxgate::conversation::{LateDelivery, Responder};
use wxgate::{Application, Config};

use super::client::CallbackClient;
use super::config::TestConfig;

/// Logs go nowhere unless TEST_LOG is set.
static TRACING: LazyLock<()> = LazyLock::new(|| {
    if std::env::var_os("TEST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter("debug")
            .with_test_writer()
            .try_init();
    }
});

/// How to start a [`TestApp`]: by default the fixture account in plain
/// mode with the fixture rules, its clock at 0.
#[must_use]
pub struct TestAppBuilder {
    mode: Option<String>,
    config: Option<Config>,
    now: i64,
    overrides: Overrides,
    wechat: Option<CallbackClient>,
}

impl TestAppBuilder {
    /// The fixture account in `mode` with the fixture rules.
    pub fn mode(mut self, mode: &str) -> Self {
        assert!(self.config.is_none(), "mode() is for the fixture config");
        self.mode = Some(mode.to_owned());
        self
    }

    /// Serve this configuration.
    pub fn config(mut self, config: impl Into<Config>) -> Self {
        assert!(self.mode.is_none(), "mode() is for the fixture config");
        self.config = Some(config.into());
        self
    }

    /// The app's clock (always a `ManualClock`) starts here.
    pub fn now(mut self, now: i64) -> Self {
        self.now = now;
        self
    }

    /// The reply decision instead of the rules.
    pub fn responder(mut self, responder: Arc<dyn Responder>) -> Self {
        self.overrides.responder = Some(responder);
        self
    }

    /// Where late replies go.
    pub fn late(mut self, late: Arc<dyn LateDelivery>) -> Self {
        self.overrides.late = Some(late);
        self
    }

    /// The client behind `post_plain` / `post_encrypted` (default: the
    /// primary account as configured).
    pub fn wechat(mut self, client: CallbackClient) -> Self {
        self.wechat = Some(client);
        self
    }

    /// Builds the app and serves it on a free loopback port until the
    /// [`TestApp`] is dropped or [`TestApp::stop`]ped.
    pub async fn spawn(self) -> TestApp {
        LazyLock::force(&TRACING);
        let config = match (self.config, self.mode) {
            (Some(config), _) => config,
            (None, mode) => TestConfig::fixture(mode.as_deref().unwrap_or("plain")).build(),
        };
        let wechat = self
            .wechat
            .unwrap_or_else(|| CallbackClient::for_entry(config.primary()));
        let clock = Arc::new(ManualClock::new(self.now));
        let overrides = Overrides {
            clock: clock.clone(),
            ..self.overrides
        };
        let app = Application::build_with(config.clone(), overrides)
            .await
            .expect("app builds");
        let base = format!("http://127.0.0.1:{}", app.port());
        let operator_base = app
            .operator_addr()
            .map(|a| format!("http://127.0.0.1:{}", a.port()));
        let metrics = app.state().metrics().clone();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(app.run_until_stopped(async move {
            let _ = stopped.await;
        }));
        TestApp {
            base,
            operator_base,
            http: reqwest::Client::new(),
            clock,
            metrics,
            config,
            wechat,
            running: Mutex::new(Some((stop, task))),
        }
    }
}

impl From<TestConfig> for Config {
    fn from(config: TestConfig) -> Config {
        config.build()
    }
}

type Running = (oneshot::Sender<()>, JoinHandle<std::io::Result<()>>);

/// A running wxgate; stops when dropped.
pub struct TestApp {
    pub base: String,
    /// The operator listener, when `[admin] listen` is set.
    pub operator_base: Option<String>,
    pub http: reqwest::Client,
    pub clock: Arc<ManualClock>,
    pub metrics: Arc<wxgate::metrics::Metrics>,
    /// What it serves.
    pub config: Config,
    /// Speaks for the primary account (see [`TestAppBuilder::wechat`]).
    pub wechat: CallbackClient,
    running: Mutex<Option<Running>>,
}

impl TestApp {
    /// Waits (8 s at most) until the app's metrics have `line` exactly;
    /// fails with all of them otherwise.
    pub async fn wait_for_metric(&self, line: &str) {
        let seen = super::eventually(std::time::Duration::from_secs(8), || {
            self.metrics.render().lines().any(|l| l == line)
        })
        .await;
        assert!(seen, "no line {line:?} in:\n{}", self.metrics.render());
    }

    pub fn builder() -> TestAppBuilder {
        TestAppBuilder {
            mode: None,
            config: None,
            now: 0,
            overrides: Overrides::default(),
            wechat: None,
        }
    }

    /// Signals a graceful shutdown; the server task, to await its end.
    pub fn stop(&self) -> JoinHandle<std::io::Result<()>> {
        let (stop, task) = self.running.lock().unwrap().take().expect("stopped once");
        stop.send(()).expect("the server is running");
        task
    }

    pub fn now(&self) -> i64 {
        use wxgate::clock::Clock;
        self.clock.now_unix()
    }

    /// A client for the account named `name`, at its path.
    pub fn wechat_for(&self, name: &str) -> CallbackClient {
        CallbackClient::for_entry(self.config.find_account(Some(name)).unwrap())
    }

    pub async fn get(&self, path_and_query: &str) -> (u16, String) {
        let res = self
            .http
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
            .http
            .post(format!("{}{path_and_query}", self.base))
            .body(body)
            .send()
            .await
            .expect("POST");
        (res.status().as_u16(), res.text().await.unwrap())
    }

    /// A signed plaintext POST of `xml`, stamped with the app's clock.
    pub async fn post_plain(&self, xml: &str) -> (u16, String) {
        let (query, body) = self.wechat.plain(xml, self.now());
        self.post(&query, body).await
    }

    /// A signed, encrypted POST of `xml` (the Official Account's safe form,
    /// or WeCom's), stamped with the app's clock.
    pub async fn post_encrypted(&self, xml: &str) -> (u16, String) {
        let (query, body) = self.wechat.encrypted(xml, self.now());
        self.post(&query, body).await
    }

    /// Shows the server still answers a valid request.
    pub async fn assert_still_serving(&self) {
        let (status, body) = self
            .get(&self.wechat.verify_query(self.now(), "still-alive"))
            .await;
        assert_eq!(
            (status, body.as_str()),
            (200, "still-alive"),
            "server stopped serving"
        );
    }
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

impl BinaryServer {
    /// Sends SIGTERM: the server drains for its grace period, then exits.
    pub fn terminate(&mut self) {
        let pid = self.child.id().to_string();
        let status = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// True once the process has exited.
    pub fn exited(&mut self) -> bool {
        self.child.try_wait().ok().flatten().is_some()
    }

    /// Starts `wxgate serve` on a free loopback port and waits for `/healthz`.
    pub async fn start(config: &Path) -> BinaryServer {
        BinaryServer::start_with(config, std::process::Stdio::null()).await
    }

    /// As [`BinaryServer::start`], its log (stderr) written to `log`.
    pub async fn start_logging(config: &Path, log: &Path) -> BinaryServer {
        let file = std::fs::File::create(log).expect("log file");
        BinaryServer::start_with(config, file.into()).await
    }

    /// As [`BinaryServer::start_logging`], with these environment variables
    /// (the secrets a config names with `*_env`).
    pub async fn start_logging_env(
        config: &Path,
        log: &Path,
        env: &[(&str, &str)],
    ) -> BinaryServer {
        let file = std::fs::File::create(log).expect("log file");
        BinaryServer::spawn(config, file.into(), None, env).await
    }

    /// As [`BinaryServer::start_logging`], with at most `open_files` file
    /// descriptors (`ulimit -n`): to run out of them on purpose.
    pub async fn start_with_fd_limit(config: &Path, log: &Path, open_files: u32) -> BinaryServer {
        let file = std::fs::File::create(log).expect("log file");
        BinaryServer::spawn(config, file.into(), Some(open_files), &[]).await
    }

    async fn start_with(config: &Path, stderr: std::process::Stdio) -> BinaryServer {
        BinaryServer::spawn(config, stderr, None, &[]).await
    }

    async fn spawn(
        config: &Path,
        stderr: std::process::Stdio,
        open_files: Option<u32>,
        env: &[(&str, &str)],
    ) -> BinaryServer {
        use std::process::{Command, Stdio};
        use std::time::{Duration, Instant};
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut command = match open_files {
            None => Command::new(env!("CARGO_BIN_EXE_wxgate")),
            Some(n) => {
                // The shell lowers its limit, then becomes wxgate (same pid).
                let mut sh = Command::new("sh");
                sh.arg("-c")
                    .arg(format!("ulimit -n {n} && exec \"$0\" \"$@\""))
                    .arg(env!("CARGO_BIN_EXE_wxgate"));
                sh
            }
        };
        let child = command
            .args([
                "serve",
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--config",
            ])
            .arg(config)
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(stderr)
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
}
