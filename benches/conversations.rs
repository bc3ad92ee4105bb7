//! 10,000 conversations pending at once against a slow upstream: what the
//! engine holds in memory while they wait, and whether every answer
//! arrives (late sends) or is kept (next message). Not a timed test: run
//! with `cargo bench --bench conversations`; it prints RSS and answers lost.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use wxgate::conversation::{
    ConversationOptions, Conversations, Deferred, Delivery, DeliverySettings, LateDelivery,
    LateFuture, MemoryDedup, Recorded, Render, Responder, Response, Strategy,
};
use wxgate::domain::{Message, Reply};
use wxgate::metrics::Metrics;
use wxgate::platform;
use wxgate::store::{MemoryStore, Namespace, Store};

/// Under `cargo bench`; `cargo test --benches` runs a small smoke version.
const CONVERSATIONS: usize = 10_000;
const SMOKE: usize = 200;
const UPSTREAM: Duration = Duration::from_secs(5);

/// The upstream: every answer takes [`UPSTREAM`].
struct Slow;

impl Responder for Slow {
    fn respond(&self, message: &Arc<Message>) -> Response {
        let content = format!("answer for {}", message.from_user);
        Response::Deferred(Deferred {
            future: Box::pin(async move {
                tokio::time::sleep(UPSTREAM).await;
                Reply::Text { content }
            }),
            budget: Duration::from_millis(400),
            interim: Reply::Success,
            parts: None,
        })
    }
}

#[derive(Default)]
struct Count(AtomicUsize);

struct Counted(Arc<Count>);

impl LateDelivery for Counted {
    fn deliver(&self, _message: Arc<Message>, _reply: Reply) -> LateFuture {
        self.0 .0.fetch_add(1, Ordering::SeqCst);
        Box::pin(async { Ok(()) })
    }
}

fn rss_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// CPU time of every thread of this process so far, in nanoseconds (the
/// first field of each thread's `schedstat`).
fn cpu_ns() -> u64 {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0;
    };
    tasks
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

fn message(user: usize) -> Arc<Message> {
    let xml = format!(
        "<xml><ToUserName>gh_bench</ToUserName><FromUserName>o_user_{user}</FromUserName>\
         <CreateTime>1750000000</CreateTime><MsgType>text</MsgType>\
         <Content>question</Content><MsgId>{user}</MsgId></xml>"
    );
    Arc::new(Message::parse(xml.as_bytes()).expect("valid"))
}

async fn run(strategy: Strategy, conversations_n: usize) {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let metrics = Arc::new(Metrics::new());
    let caps = platform::official::capabilities(true, false);
    let options = ConversationOptions {
        delivery: Some(strategy),
        ..ConversationOptions::default()
    };
    let n = conversations_n;
    let conversations = Arc::new(Conversations::new(
        store.clone(),
        Namespace::for_app("wx_bench"),
        options.resolve(&caps, None, 2000),
        metrics.clone(),
    ));
    let sent = Arc::new(Count::default());
    let delivery = Arc::new(
        Delivery::new(
            Arc::new(MemoryDedup::new(Duration::from_secs(300), 4 * n)),
            Arc::new(Slow),
            Arc::new(Counted(sent.clone())),
            DeliverySettings {
                deadline: Duration::from_millis(4500),
                fallback: Reply::Success,
                overload: Reply::Success,
                max_in_flight: 4 * n,
            },
            metrics.clone(),
        )
        .with_conversations(conversations.clone()),
    );
    let render: Arc<dyn Render> = Arc::new(|reply: &Reply| -> Recorded {
        match reply {
            Reply::Text { content } => Some(Arc::from(content.as_str())),
            _ => None,
        }
    });
    // Two waves of n users: the first arrives with nothing pending, the
    // second while the first wave's n conversations are pending, so the
    // CPU per push of the two says whether pending work makes a new
    // message dearer.
    let wave = |users: std::ops::Range<usize>| {
        let pushes: Vec<_> = users
            .map(|user| {
                let (d, r) = (delivery.clone(), render.clone());
                tokio::spawn(async move {
                    d.answer(&message(user), &r, tokio::time::Instant::now())
                        .await
                })
            })
            .collect();
        async move {
            for push in pushes {
                push.await.expect("answered");
            }
        }
    };
    let before = rss_kib("VmRSS:");
    let (started, cpu_started) = (Instant::now(), cpu_ns());
    wave(0..n).await;
    let (answered_all, cpu_first) = (started.elapsed(), cpu_ns() - cpu_started);
    // Every conversation of the first wave is now pending behind its
    // interim answer.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let pending_rss = rss_kib("VmRSS:");
    let cpu_started = cpu_ns();
    wave(n..2 * n).await;
    let cpu_second = cpu_ns() - cpu_started;
    let cpu_drain = cpu_ns();
    while delivery.drain(Duration::from_secs(30)).await > 0 {}
    let cpu_drain = cpu_ns() - cpu_drain;
    let delivered = match strategy {
        Strategy::NextMessage => {
            let mut kept = 0;
            for user in 0..2 * n {
                kept += conversations
                    .pending()
                    .depth(&format!("o_user_{user}"))
                    .await as usize;
            }
            kept
        }
        _ => sent.0.load(Ordering::SeqCst),
    };
    let per = |ns: u64, count: usize| ns as f64 / 1000.0 / count as f64;
    println!(
        "{:<12} {n} conversations pending for {UPSTREAM:?}: every push answered in {:.2?}; \
         RSS before {} KiB, while pending {} KiB (+{:.1} KiB per conversation), peak {} KiB; \
         CPU per push {:.1} µs with none pending, {:.1} µs with {n} pending ({:.2}×); \
         CPU per answer after the budget {:.1} µs; \
         answers delivered or kept {delivered} of {}, lost {}",
        strategy.as_str(),
        answered_all,
        before,
        pending_rss,
        pending_rss.saturating_sub(before) as f64 / n as f64,
        rss_kib("VmHWM:"),
        per(cpu_first, n),
        per(cpu_second, n),
        cpu_second as f64 / cpu_first.max(1) as f64,
        per(cpu_drain, 2 * n),
        2 * n,
        (2 * n) - delivered.min(2 * n),
    );
    assert_eq!(delivered, 2 * n, "answers lost");
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` runs a smoke
    // version that stops by itself in a few seconds.
    let n = if std::env::args().any(|a| a == "--bench") {
        CONVERSATIONS
    } else {
        SMOKE
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(run(Strategy::LateSend, n));
    runtime.block_on(run(Strategy::NextMessage, n));
}
