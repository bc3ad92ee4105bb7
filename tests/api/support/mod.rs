//! The shared harness of the API tests.
//!
//! - `agent`: the agent tests' account and reading plain replies;
//! - `app`: [`TestApp`], the app in-process on a free port (one builder),
//!   and [`BinaryServer`], the real binary;
//! - `config`: [`TestConfig`], configurations built as TOML values;
//! - `console`: [`ConsoleApp`], the operator console served from a
//!   config file on disk, and [`ConsoleClient`], a signed-in browser's API;
//! - `browser`: [`Browser`], a real headless Chromium through chromedriver;
//! - `client`: [`CallbackClient`], the one WeChat client (Official Account
//!   plain / compatible / safe, WeCom, 微信客服);
//! - `messages`: the XML WeChat pushes;
//! - `fake_wechat`, `fake_feishu`, `fake_dingtalk`, `fake_upstream`, `file_server`,
//!   `redis_server`: the outside world;
//! - `fixtures`: the recorded fixtures and the shared vectors;
//! - `responders`: reply decisions and late-delivery hooks to swap in.

pub mod agent;
pub mod app;
pub mod browser;
pub mod client;
pub mod config;
pub mod console;
pub mod fake_dingtalk;
pub mod fake_feishu;
pub mod fake_upstream;
pub mod fake_wechat;
pub mod fake_wecom_bot;
pub mod file_server;
pub mod fixtures;
pub mod messages;
pub mod redis_server;
pub mod responders;

use std::time::{Duration, Instant};

pub use agent::{
    agent_config, openai_upstream, plain_content, webhook_upstream, AGENT_RULES, INTERIM,
};
pub use app::{BinaryServer, TestApp};
pub use browser::Browser;
pub use client::{content_of, CallbackClient};
pub use config::{rule, table, text_reply, AccountSpec, TestConfig, RULES};
pub use console::{ConsoleApp, CONSOLE_KEY};
pub use fake_dingtalk::FakeDingTalk;
pub use fake_feishu::FakeFeishu;
pub use fake_upstream::{Behaviour, FakeUpstream, StreamPlan};
pub use fake_wechat::FakeWechat;
pub use file_server::FileServer;
pub use fixtures::{fixtures_dir, ACCOUNT};
pub use messages::{
    image_xml, kf_notification_xml, text_xml, voice_xml, wecom_image, wecom_text, wecom_voice,
};
pub use redis_server::{
    RedisCluster, RedisSentinel, RedisServer, SENTINEL_MASTER, SENTINEL_MASTER_PASSWORD,
};

/// Serves `router` on a free loopback port: the fakes' common start.
pub async fn serve_local(
    router: axum::Router,
) -> (std::net::SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, 0))
        .await
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        axum::serve(listener, router).await.unwrap();
    });
    (addr, server)
}

/// Delivers one push to each of `nodes` at once, as WeChat's retries may
/// land: every node's (status, body).
pub async fn concurrent_pushes(
    nodes: &[std::sync::Arc<TestApp>],
    query: &str,
    body: &str,
) -> Vec<(u16, String)> {
    let sends: Vec<_> = nodes
        .iter()
        .map(|node| {
            let (node, q, body) = (node.clone(), query.to_owned(), body.to_owned());
            tokio::spawn(async move { node.post(&q, body).await })
        })
        .collect();
    let mut answers = Vec::new();
    for send in sends {
        answers.push(send.await.unwrap());
    }
    answers
}

/// Polls `done` every 20 ms until it holds or `limit` passes.
pub async fn eventually(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    eventually_async(limit, || std::future::ready(done())).await
}

/// As [`eventually`], for a condition that must await (an HTTP call).
pub async fn eventually_async<F, Fut>(limit: Duration, mut done: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let until = Instant::now() + limit;
    loop {
        if done().await {
            return true;
        }
        if Instant::now() >= until {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The wall clock, in Unix seconds.
pub fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}
