//! The conversation engine at WeChat's real timing (5 s per push, 3 pushes
//! about 5 s apart), on tokio's paused clock: the same MsgId and CreateTime
//! pushed again when the previous push got no answer within 5 s.
//!
//! These drive `Delivery::answer` directly, as the server does after a
//! request is authenticated; the HTTP path is covered by `agent.rs` and the
//! tests in `conversation_e2e.rs` go through the real server.
//!
//! One file (about 620 lines): every test shares the fake agent, the fake
//! send channel and the engine builder above them.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use wxgate::conversation::{
    ConversationOptions, Conversations, Deferred, Delivery, DeliverySettings, LateDelivery,
    LateError, LateFailure, LateFuture, Outcome, PartsSender, Recorded, Render, Responder,
    Response, StoreDedup, Strategy, LEASE,
};
use wxgate::domain::{Message, Reply};
use wxgate::metrics::Metrics;
use wxgate::platform;
use wxgate::store::{MemoryStore, Namespace, Store};

/// Answers "answer:<text>" after the delay its text names ("slow8" → 8 s);
/// texts starting with "rule" are answered at once, as a rule would.
#[derive(Clone)]
struct Agent(Arc<AgentState>);

struct AgentState {
    calls: AtomicUsize,
    /// What each call saw before it, in order: a stand-in for history.
    seen: Mutex<Vec<String>>,
}

impl std::ops::Deref for Agent {
    type Target = AgentState;
    fn deref(&self) -> &AgentState {
        &self.0
    }
}

impl Agent {
    fn new() -> Agent {
        Agent(Arc::new(AgentState {
            calls: AtomicUsize::new(0),
            seen: Mutex::default(),
        }))
    }
    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

fn delay_of(text: &str) -> Duration {
    let digits: String = text.chars().filter(char::is_ascii_digit).collect();
    if text.starts_with("slow") {
        Duration::from_secs(digits.parse().unwrap_or(8))
    } else {
        Duration::from_millis(100)
    }
}

impl Responder for Agent {
    fn respond(&self, message: &Arc<Message>) -> Response {
        let text = message.text().unwrap_or_default().to_owned();
        if let Some(rule) = text.strip_prefix("rule") {
            return Response::Ready(Reply::Text {
                content: format!("rule{rule}"),
            });
        }
        let agent = self.clone();
        Response::Deferred(Deferred {
            future: Box::pin(async move {
                agent.calls.fetch_add(1, Ordering::SeqCst);
                // Read "history" at the start of the call, append at the end:
                // two turns running at once would lose one.
                let before = agent.seen.lock().unwrap().clone();
                tokio::time::sleep(delay_of(&text)).await;
                let mut seen = agent.seen.lock().unwrap();
                *seen = before;
                seen.push(text.clone());
                Reply::Text {
                    content: format!("answer:{text}"),
                }
            }),
            budget: Duration::from_millis(4000),
            interim: Reply::Text {
                content: "稍等".into(),
            },
            parts: None,
        })
    }
}

/// A late channel that records, and refuses with the codes it is given
/// (one per part, in order).
#[derive(Clone, Default)]
struct Sends(Arc<SendsState>);

#[derive(Default)]
struct SendsState {
    sent: Mutex<Vec<String>>,
    refuse: Mutex<Vec<(usize, LateFailure)>>,
}

impl std::ops::Deref for Sends {
    type Target = SendsState;
    fn deref(&self) -> &SendsState {
        &self.0
    }
}

impl LateDelivery for Sends {
    fn deliver(&self, _message: Arc<Message>, reply: Reply) -> LateFuture {
        let Reply::Text { content } = reply.clone() else {
            return Box::pin(async { Ok(()) });
        };
        let this = self.clone();
        Box::pin(async move {
            // Each line is one "part" of the answer.
            let parts: Vec<&str> = content.split('\n').collect();
            let refuse = this.refuse.lock().unwrap().first().copied();
            for (i, part) in parts.iter().enumerate() {
                if let Some((_, kind)) = refuse.filter(|(at, _)| *at == i) {
                    return Err(LateError {
                        kind,
                        rest: Some(Reply::Text {
                            content: parts[i..].join("\n"),
                        }),
                        message: format!("refused at part {i}"),
                    });
                }
                this.sent.lock().unwrap().push(part.to_string());
            }
            Ok(())
        })
    }
}

fn text(msg_id: u64, content: &str) -> Arc<Message> {
    let xml = format!(
        "<xml><ToUserName>gh_a</ToUserName><FromUserName>o_user</FromUserName>\
         <CreateTime>1750000000</CreateTime><MsgType>text</MsgType>\
         <Content><![CDATA[{content}]]></Content><MsgId>{msg_id}</MsgId></xml>"
    );
    Arc::new(Message::parse(xml.as_bytes()).unwrap())
}

/// Renders a reply as its text (`None` for success).
fn render() -> Arc<dyn Render> {
    Arc::new(|reply: &Reply| -> Recorded {
        match reply {
            Reply::Text { content } => Some(Arc::from(content.as_str())),
            Reply::Success => None,
            other => Some(Arc::from(other.msg_type().unwrap_or("?"))),
        }
    })
}

struct Node {
    delivery: Arc<Delivery>,
    metrics: Arc<Metrics>,
}

/// One node of an Official Account (5 s, 3 pushes) with `strategy`,
/// sharing `store` with any other node built on it.
fn node(store: &Arc<dyn Store>, agent: &Agent, sends: &Sends, strategy: Strategy) -> Node {
    let options = ConversationOptions {
        delivery: Some(strategy),
        ..ConversationOptions::default()
    };
    engine(store, Arc::new(agent.clone()), sends, options, "wx_conv")
}

/// An Official Account's delivery engine over `store`: `responder`
/// answering, `sends` as its late channel, `options` as its `[agent]`.
fn engine(
    store: &Arc<dyn Store>,
    responder: Arc<dyn Responder>,
    sends: &Sends,
    options: ConversationOptions,
    namespace: &str,
) -> Node {
    let metrics = Arc::new(Metrics::new());
    let caps = platform::official::capabilities(true, false);
    let settings = options.resolve(&caps, None, 2000);
    if let Some(strategy) = options.delivery {
        assert_eq!(settings.strategy, strategy);
    }
    let ns = Namespace::for_app(namespace);
    let conversations = Arc::new(Conversations::new(
        store.clone(),
        ns.clone(),
        settings,
        metrics.clone(),
    ));
    let delivery = Delivery::new(
        Arc::new(StoreDedup::new(store.clone(), ns, Duration::from_secs(300))),
        responder,
        Arc::new(sends.clone()),
        DeliverySettings {
            deadline: Duration::from_millis(4500),
            fallback: Reply::Success,
            overload: Reply::Success,
            max_in_flight: 100,
        },
        metrics.clone(),
    )
    .with_conversations(conversations);
    Node {
        delivery: Arc::new(delivery),
        metrics,
    }
}

/// WeChat pushing `message` until it gets an answer within 5 s, at most 3
/// times, 5 s apart: the answer and the push that carried it.
async fn wechat_pushes(node: &Node, message: &Arc<Message>) -> (Option<String>, u32, Outcome) {
    let render = render();
    for push in 1..=3 {
        let started = tokio::time::Instant::now();
        let at = tokio::time::Instant::now();
        let delivery = node.delivery.clone();
        let (m, r) = (message.clone(), render.clone());
        let call = tokio::spawn(async move { delivery.answer(&m, &r, started).await });
        match tokio::time::timeout(Duration::from_secs(5), call).await {
            Ok(Ok((answer, outcome))) => {
                return (answer.map(|a| a.to_string()), push, outcome);
            }
            _ => {
                // No answer within 5 s: WeChat gives up on this push and
                // pushes again about 5 s after the previous one.
                tokio::time::sleep_until(at + Duration::from_secs(5)).await;
            }
        }
    }
    (None, 4, Outcome::Held)
}

fn memory() -> Arc<dyn Store> {
    Arc::new(MemoryStore::new())
}

#[tokio::test(start_paused = true)]
async fn retry_hold_answers_an_8_s_answer_on_a_retry_exactly_once() {
    let (store, agent, sends) = (memory(), Agent::new(), Sends::default());
    let n = node(&store, &agent, &sends, Strategy::RetryHold);
    let m = text(1, "slow8 question");
    let (answer, push, outcome) = wechat_pushes(&n, &m).await;
    assert_eq!(answer.as_deref(), Some("answer:slow8 question"));
    assert_eq!(
        push, 2,
        "the first push is held; the second carries the answer"
    );
    assert_eq!(outcome, Outcome::Duplicate);
    // A third push replays the same answer; the upstream ran once.
    let (again, _) = n
        .delivery
        .answer(&m, &render(), tokio::time::Instant::now())
        .await;
    assert_eq!(again.as_deref(), Some("answer:slow8 question"));
    assert_eq!(agent.calls(), 1);
    assert!(sends.sent.lock().unwrap().is_empty(), "nothing sent late");
    // And nothing waits for the next message.
    let (next, _) = n
        .delivery
        .answer(&text(2, "rule hi"), &render(), tokio::time::Instant::now())
        .await;
    assert_eq!(next.as_deref(), Some("rule hi"));
    let metrics = n.metrics.render();
    assert!(
        metrics.contains("wxgate_agent_deliveries_total{kind=\"on_retry\"} 1"),
        "{metrics}"
    );
}

#[tokio::test(start_paused = true)]
async fn retry_hold_keeps_a_20_s_answer_for_the_next_message_which_gets_its_own_answer_too() {
    let (store, agent, sends) = (memory(), Agent::new(), Sends::default());
    let n = node(&store, &agent, &sends, Strategy::RetryHold);
    let (answer, push, outcome) = wechat_pushes(&n, &text(1, "slow20 essay")).await;
    assert_eq!(push, 3, "held twice, then the last push answers");
    assert_eq!(outcome, Outcome::Pending);
    let marker = answer.unwrap();
    assert!(marker.contains("回复任意文字"), "{marker}");
    tokio::time::sleep(Duration::from_secs(15)).await;
    // The user writes again: the kept answer first, then this message's own.
    let (reply, push, _) = wechat_pushes(&n, &text(2, "rule 谢谢")).await;
    assert_eq!(push, 1);
    assert_eq!(reply.as_deref(), Some("answer:slow20 essay\n\nrule 谢谢"));
    assert_eq!(agent.calls(), 1);
    // Delivered once: the queue is empty now.
    let (third, _) = n
        .delivery
        .answer(
            &text(3, "rule again"),
            &render(),
            tokio::time::Instant::now(),
        )
        .await;
    assert_eq!(third.as_deref(), Some("rule again"));
    let metrics = n.metrics.render();
    assert!(
        metrics.contains("wxgate_pending_answers_total{kind=\"queued\"} 1")
            && metrics.contains("wxgate_pending_answers_total{kind=\"delivered\"} 1"),
        "{metrics}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_slow_first_and_a_fast_second_are_answered_in_order_with_every_turn_seen() {
    let (store, agent, sends) = (memory(), Agent::new(), Sends::default());
    let n = node(&store, &agent, &sends, Strategy::LateSend);
    let first = {
        let d = n.delivery.clone();
        tokio::spawn(async move {
            d.answer(
                &text(1, "slow6 first"),
                &render(),
                tokio::time::Instant::now(),
            )
            .await
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    let second = {
        let d = n.delivery.clone();
        tokio::spawn(async move {
            d.answer(
                &text(2, "fast second"),
                &render(),
                tokio::time::Instant::now(),
            )
            .await
        })
    };
    // Both waited past their passive budget (the second behind the first).
    assert_eq!(
        first.await.unwrap().1,
        Outcome::Deferred(Strategy::LateSend)
    );
    assert_eq!(
        second.await.unwrap().1,
        Outcome::Deferred(Strategy::LateSend)
    );
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert_eq!(
        *sends.sent.lock().unwrap(),
        ["answer:slow6 first", "answer:fast second"],
        "answers in the order the questions came"
    );
    // A third turn sees both earlier turns.
    let (third, _) = n
        .delivery
        .answer(
            &text(3, "fast third"),
            &render(),
            tokio::time::Instant::now(),
        )
        .await;
    assert_eq!(third.as_deref(), Some("answer:fast third"));
    assert_eq!(
        *agent.seen.lock().unwrap(),
        ["slow6 first", "fast second", "fast third"]
    );
}

#[tokio::test(start_paused = true)]
async fn a_spent_quota_keeps_the_rest_for_the_next_message() {
    let (store, agent, sends) = (memory(), Agent::new(), Sends::default());
    // 45047 at the third part: two parts went out.
    sends
        .refuse
        .lock()
        .unwrap()
        .push((2, LateFailure::QuotaSpent));
    let n = node(&store, &agent, &sends, Strategy::LateSend);
    struct Long;
    impl Responder for Long {
        fn respond(&self, _message: &Arc<Message>) -> Response {
            Response::Deferred(Deferred {
                future: Box::pin(async {
                    tokio::time::sleep(Duration::from_secs(6)).await;
                    Reply::Text {
                        content: "part one\npart two\npart three\npart four".into(),
                    }
                }),
                budget: Duration::from_secs(4),
                interim: Reply::Success,
                parts: None,
            })
        }
    }
    let long = engine(
        &store,
        Arc::new(Long),
        &sends,
        ConversationOptions::default(),
        "wx_conv",
    )
    .delivery;
    let (interim, outcome) = long
        .answer(
            &text(1, "long please"),
            &render(),
            tokio::time::Instant::now(),
        )
        .await;
    assert_eq!(
        (interim, outcome),
        (None, Outcome::Deferred(Strategy::LateSend))
    );
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(*sends.sent.lock().unwrap(), ["part one", "part two"]);
    // The next message (answered by the agent node at once) carries the rest.
    let (next, _) = n
        .delivery
        .answer(&text(2, "rule ok"), &render(), tokio::time::Instant::now())
        .await;
    assert_eq!(next.as_deref(), Some("part three\npart four\n\nrule ok"));
}

#[tokio::test(start_paused = true)]
async fn no_permission_moves_the_account_to_the_next_message() {
    let (store, agent, sends) = (memory(), Agent::new(), Sends::default());
    sends
        .refuse
        .lock()
        .unwrap()
        .push((0, LateFailure::NoPermission));
    let n = node(&store, &agent, &sends, Strategy::LateSend);
    let conv = n.delivery.conversations().unwrap().clone();
    assert_eq!(conv.describe().await, "late_send");
    let (_, outcome) = n
        .delivery
        .answer(
            &text(1, "slow6 one"),
            &render(),
            tokio::time::Instant::now(),
        )
        .await;
    assert_eq!(outcome, Outcome::Deferred(Strategy::LateSend));
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(conv.describe().await.starts_with("next_message"));
    // The next slow turn goes straight to the next message: its marker now.
    let (marker, outcome) = n
        .delivery
        .answer(
            &text(2, "slow6 two"),
            &render(),
            tokio::time::Instant::now(),
        )
        .await;
    assert_eq!(outcome, Outcome::Deferred(Strategy::NextMessage));
    let marker = marker.unwrap();
    // The first answer, refused by the send API, came with it.
    assert!(marker.starts_with("answer:slow6 one"), "{marker}");
    tokio::time::sleep(Duration::from_secs(10)).await;
    let (fetched, outcome) = n
        .delivery
        .answer(&text(3, "继续"), &render(), tokio::time::Instant::now())
        .await;
    assert_eq!(outcome, Outcome::Fetched);
    assert_eq!(fetched.as_deref(), Some("answer:slow6 two"));
    assert_eq!(agent.calls(), 2, "the fetch word never reaches the agent");
    assert!(sends.sent.lock().unwrap().is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_retry_never_starts_a_second_call_while_the_lease_lives() {
    let (store, agent, sends) = (memory(), Agent::new(), Sends::default());
    // Two nodes on one store: the retry reaches the other node.
    let a = node(&store, &agent, &sends, Strategy::RetryHold);
    let b = node(&store, &agent, &sends, Strategy::RetryHold);
    let m = text(1, "slow12 question");
    let first = {
        let d = a.delivery.clone();
        let m = m.clone();
        tokio::spawn(async move { d.answer(&m, &render(), tokio::time::Instant::now()).await })
    };
    tokio::time::sleep(Duration::from_secs(5)).await;
    let (answer, outcome) = b
        .delivery
        .answer(&m, &render(), tokio::time::Instant::now())
        .await;
    assert_eq!((answer, outcome), (None, Outcome::Held));
    let (answer, _) = b
        .delivery
        .answer(&m, &render(), tokio::time::Instant::now())
        .await;
    assert_eq!(answer.as_deref(), Some("answer:slow12 question"));
    assert_eq!(first.await.unwrap().1, Outcome::Held);
    assert_eq!(agent.calls(), 1);
    assert!(!b
        .metrics
        .render()
        .contains("wxgate_lease_takeovers_total 1"));
}

#[test]
fn a_retry_to_a_surviving_node_takes_over_a_dead_nodes_message() {
    // Node A runs on a runtime of its own, which is shut down mid-call: its
    // tasks (the upstream call and the lease renewal) die with it.
    let store = memory();
    let (agent, sends) = (Agent::new(), Sends::default());
    let m = text(1, "slow1 question");
    let doomed = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let a = doomed.block_on(async { node(&store, &agent, &sends, Strategy::RetryHold) });
    {
        let (d, m) = (a.delivery.clone(), m.clone());
        doomed.spawn(async move { d.answer(&m, &render(), tokio::time::Instant::now()).await });
    }
    std::thread::sleep(Duration::from_millis(300));
    doomed.shutdown_background();
    // WeChat's retry comes about 5 s after the push; by then the dead
    // node's leases (3 s) have lapsed.
    std::thread::sleep(LEASE + Duration::from_millis(200));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let b = node(&store, &agent, &sends, Strategy::RetryHold);
        // WeChat's retry reaches B, which takes the message over and answers it.
        let (answer, outcome) = b
            .delivery
            .answer(&m, &render(), tokio::time::Instant::now())
            .await;
        assert_eq!(
            answer.as_deref(),
            Some("answer:slow1 question"),
            "{outcome:?}"
        );
        assert!(b
            .metrics
            .render()
            .contains("wxgate_lease_takeovers_total 1"));
    });
    assert_eq!(agent.calls(), 2, "the dead node's call, and the survivor's");
}

#[tokio::test(start_paused = true)]
async fn the_rate_limit_answers_its_text_beyond_the_limit() {
    let (store, agent, sends) = (memory(), Agent::new(), Sends::default());
    let options = ConversationOptions {
        rate_limit: Some((2, "慢一点".into())),
        ..ConversationOptions::default()
    };
    let d = engine(&store, Arc::new(agent.clone()), &sends, options, "wx_rate").delivery;
    for id in 1..=2 {
        let (a, _) = d
            .answer(&text(id, "rule x"), &render(), tokio::time::Instant::now())
            .await;
        assert_eq!(a.as_deref(), Some("rule x"));
    }
    let (a, outcome) = d
        .answer(&text(3, "rule x"), &render(), tokio::time::Instant::now())
        .await;
    assert_eq!(
        (a.as_deref(), outcome),
        (Some("慢一点"), Outcome::RateLimited)
    );
}

#[tokio::test(start_paused = true)]
async fn texts_within_the_debounce_window_become_one_turn_answered_once() {
    let (store, agent, sends) = (memory(), Agent::new(), Sends::default());
    let options = ConversationOptions {
        debounce: Some(Duration::from_millis(1000)),
        ..ConversationOptions::default()
    };
    let n = engine(
        &store,
        Arc::new(agent.clone()),
        &sends,
        options,
        "wx_debounce",
    );
    let first = {
        let d = n.delivery.clone();
        tokio::spawn(async move {
            d.answer(
                &text(1, "fast 你好"),
                &render(),
                tokio::time::Instant::now(),
            )
            .await
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (second, outcome) = n
        .delivery
        .answer(
            &text(2, "fast 在吗"),
            &render(),
            tokio::time::Instant::now(),
        )
        .await;
    assert_eq!((second, outcome), (None, Outcome::Merged));
    let (answer, outcome) = first.await.unwrap();
    assert_eq!(answer.as_deref(), Some("answer:fast 你好\nfast 在吗"));
    assert_eq!(outcome, Outcome::Replied);
    assert_eq!(agent.calls(), 1, "one turn for both texts");
    // After the window, a text is its own turn again.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (third, _) = n
        .delivery
        .answer(
            &text(3, "fast 再见"),
            &render(),
            tokio::time::Instant::now(),
        )
        .await;
    assert_eq!(third.as_deref(), Some("answer:fast 再见"));
    assert_eq!(agent.calls(), 2);
}

/// Streams "part 1" … "part N" one second apart from 1.5 s on ("streamN"),
/// then answers "end" (at the second its "endS" names, else just after
/// the last part); texts starting with "rule" are answered at once.
struct Streamer;

impl Responder for Streamer {
    fn respond(&self, message: &Arc<Message>) -> Response {
        let text = message.text().unwrap_or_default().to_owned();
        if let Some(rule) = text.strip_prefix("rule") {
            return Response::Ready(Reply::Text {
                content: format!("rule{rule}"),
            });
        }
        let number = |prefix: &str| -> Option<u64> {
            let word = text.split(' ').find(|w| w.starts_with(prefix))?;
            word[prefix.len()..].parse().ok()
        };
        let parts = number("stream").unwrap_or(3);
        let end = number("end").map(Duration::from_secs);
        let (sender, receiver): (PartsSender, _) = tokio::sync::mpsc::unbounded_channel();
        Response::Deferred(Deferred {
            future: Box::pin(async move {
                let started = tokio::time::Instant::now();
                for i in 1..=parts {
                    let at = Duration::from_millis(500 + 1000 * i);
                    tokio::time::sleep_until(started + at).await;
                    let _ = sender.send(Reply::Text {
                        content: format!("part {i}"),
                    });
                }
                if let Some(end) = end {
                    tokio::time::sleep_until(started + end).await;
                }
                Reply::Text {
                    content: "end".into(),
                }
            }),
            budget: Duration::from_millis(4000),
            interim: Reply::Text {
                content: "稍等".into(),
            },
            parts: Some(receiver),
        })
    }
}

fn streaming_node(store: &Arc<dyn Store>, sends: &Sends, strategy: Strategy, ns: &str) -> Node {
    let options = ConversationOptions {
        delivery: Some(strategy),
        ..ConversationOptions::default()
    };
    engine(store, Arc::new(Streamer), sends, options, ns)
}

fn sent(sends: &Sends) -> Vec<String> {
    let sent = sends.sent.lock().unwrap();
    sent.iter().filter(|s| !s.is_empty()).cloned().collect()
}

fn parts(range: std::ops::RangeInclusive<u32>) -> Vec<String> {
    range.map(|i| format!("part {i}")).collect()
}

#[tokio::test(start_paused = true)]
async fn late_send_answers_a_streamed_12_s_answer_part_by_part_in_order() {
    let (store, sends) = (memory(), Sends::default());
    let n = streaming_node(&store, &sends, Strategy::LateSend, "wx_stream_late");
    let started = tokio::time::Instant::now();
    let (answer, push, outcome) = wechat_pushes(&n, &text(1, "stream12")).await;
    // The passive budget (4 s) passed with three parts complete: they are
    // the passive reply instead of the interim text.
    assert_eq!((push, outcome), (1, Outcome::Deferred(Strategy::LateSend)));
    assert_eq!(answer.as_deref(), Some("part 1\n\npart 2\n\npart 3"));
    // Mid-stream (8 s of 12.5): the parts since are already sent, in order.
    tokio::time::sleep_until(started + Duration::from_secs(8)).await;
    assert_eq!(sent(&sends), parts(4..=7));
    // The end: every part once, in order, then the rest of the answer.
    tokio::time::sleep_until(started + Duration::from_secs(14)).await;
    let mut expected = parts(4..=12);
    expected.push("end".into());
    assert_eq!(sent(&sends), expected);
    // Nothing is kept for the next message.
    let (next, _) = n
        .delivery
        .answer(&text(2, "rule hi"), &render(), tokio::time::Instant::now())
        .await;
    assert_eq!(next.as_deref(), Some("rule hi"));
    assert!(n
        .metrics
        .render()
        .contains("wxgate_agent_deliveries_total{kind=\"streamed\"} 1"));
}

#[tokio::test(start_paused = true)]
async fn a_streamed_answer_ready_in_time_is_one_passive_reply() {
    let (store, sends) = (memory(), Sends::default());
    let n = streaming_node(&store, &sends, Strategy::LateSend, "wx_stream_fast");
    // Two parts (1.5 s, 2.5 s) and the end: all within the 4 s budget.
    let (answer, push, outcome) = wechat_pushes(&n, &text(1, "stream2")).await;
    assert_eq!((push, outcome), (1, Outcome::Replied));
    assert_eq!(answer.as_deref(), Some("part 1\n\npart 2\n\nend"));
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert!(sent(&sends).is_empty(), "nothing sent late");
    let (next, _) = n
        .delivery
        .answer(&text(2, "rule hi"), &render(), tokio::time::Instant::now())
        .await;
    assert_eq!(next.as_deref(), Some("rule hi"), "nothing kept");
}

#[tokio::test(start_paused = true)]
async fn retry_hold_answers_the_last_push_with_the_parts_so_far_and_keeps_the_rest() {
    let (store, sends) = (memory(), Sends::default());
    let n = streaming_node(&store, &sends, Strategy::RetryHold, "wx_stream_hold");
    // Twelve parts until 12.5 s, the end at 30 s: beyond the three pushes.
    let (answer, push, outcome) = wechat_pushes(&n, &text(1, "stream12 end30")).await;
    assert_eq!((push, outcome), (3, Outcome::Pending));
    let answer = answer.unwrap();
    let (so_far, marker) = answer.rsplit_once("\n\n").unwrap();
    assert!(marker.contains("回复任意文字"), "{answer}");
    let so_far: Vec<String> = so_far.split("\n\n").map(str::to_owned).collect();
    let k = so_far.len() as u32;
    assert!(
        k >= 8,
        "the last push gives up after about 14 s: {so_far:?}"
    );
    assert_eq!(so_far, parts(1..=k));
    tokio::time::sleep(Duration::from_secs(30)).await;
    // The next message carries the rest, each part once, then its own answer.
    let (reply, _, _) = wechat_pushes(&n, &text(2, "rule 谢谢")).await;
    let mut rest = parts(k + 1..=12);
    rest.extend(["end".to_owned(), "rule 谢谢".to_owned()]);
    assert_eq!(reply.unwrap(), rest.join("\n\n"));
    assert!(sent(&sends).is_empty(), "retry_hold sends nothing");
}

#[tokio::test(start_paused = true)]
async fn a_refused_part_and_everything_after_it_wait_for_the_next_message_in_order() {
    let (store, sends) = (memory(), Sends::default());
    sends
        .refuse
        .lock()
        .unwrap()
        .push((0, LateFailure::NoPermission));
    let n = streaming_node(&store, &sends, Strategy::LateSend, "wx_stream_refused");
    let (answer, _, _) = wechat_pushes(&n, &text(1, "stream6")).await;
    assert_eq!(answer.as_deref(), Some("part 1\n\npart 2\n\npart 3"));
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert!(sent(&sends).is_empty());
    let (reply, _, _) = wechat_pushes(&n, &text(2, "rule 谢谢")).await;
    let mut rest = parts(4..=6);
    rest.extend(["end".to_owned(), "rule 谢谢".to_owned()]);
    assert_eq!(reply.unwrap(), rest.join("\n\n"));
}
