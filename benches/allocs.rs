//! Heap allocations per call for the pipeline and each of its steps.
//!
//! Not a timing benchmark: a counting global allocator wraps the system one and
//! the figures are exact and noise-free, so they can be compared across commits
//! on any machine. `cargo bench --bench allocs` prints a table (also written to
//! target/bench/allocs.md).

use std::alloc::{GlobalAlloc, Layout, System};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use wxgate::clock::ManualClock;
use wxgate::config::Config;
use wxgate::crypto::{self, MessageCrypto};
use wxgate::message::{envelope, Message};
use wxgate::platform::callback::{Callback, CallbackQuery};
use wxgate::rules::RuleSet;

struct Counting;

static ALLOCS: AtomicU64 = AtomicU64::new(0);
static BYTES: AtomicU64 = AtomicU64::new(0);

// SAFETY: forwards every call to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Relaxed);
        BYTES.fetch_add(layout.size() as u64, Relaxed);
        System.alloc(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Relaxed);
        BYTES.fetch_add(new_size as u64, Relaxed);
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const BENCH_TOML: &str = include_str!("../config/bench.toml");
const TOKEN: &str = "bench_token";
const NOW: i64 = 1_763_700_000;
const ROUNDS: u64 = 1000;

/// Allocations and bytes per call of `f` (averaged over ROUNDS calls).
fn count<T>(mut f: impl FnMut() -> T) -> (f64, f64) {
    drop(f()); // warm any lazy state (thread-local RNG, …)
    let (a0, b0) = (ALLOCS.load(Relaxed), BYTES.load(Relaxed));
    for _ in 0..ROUNDS {
        drop(std::hint::black_box(f()));
    }
    let (a1, b1) = (ALLOCS.load(Relaxed), BYTES.load(Relaxed));
    (
        (a1 - a0) as f64 / ROUNDS as f64,
        (b1 - b0) as f64 / ROUNDS as f64,
    )
}

fn text_xml(content: &str) -> String {
    let mut xml = String::from(
        "<xml><ToUserName><![CDATA[gh_x]]></ToUserName>\
         <FromUserName><![CDATA[oBench0123456789abcdefghijk]]></FromUserName>",
    );
    xml.push_str(&format!("<CreateTime>{NOW}</CreateTime>"));
    xml.push_str("<MsgType><![CDATA[text]]></MsgType>");
    wxgate::message::xml::push_cdata_element(&mut xml, "Content", content);
    xml.push_str("<MsgId>24000000000000001</MsgId></xml>");
    xml
}

fn request(crypto: &MessageCrypto, inner: &str) -> (CallbackQuery, Vec<u8>) {
    let timestamp = NOW.to_string();
    let nonce = "1320562132".to_owned();
    let encrypt = crypto.encrypt(inner);
    let msg_signature = crypto::msg_signature(TOKEN, &timestamp, &nonce, &encrypt);
    let query = CallbackQuery {
        signature: Some(crypto::signature(TOKEN, &timestamp, &nonce).to_string()),
        timestamp: Some(timestamp),
        nonce: Some(nonce),
        openid: Some("oBench0123456789abcdefghijk".into()),
        encrypt_type: Some("aes".into()),
        msg_signature: Some(msg_signature.to_string()),
        ..CallbackQuery::default()
    };
    let body = format!(
        "<xml><ToUserName><![CDATA[gh_x]]></ToUserName><Encrypt><![CDATA[{encrypt}]]></Encrypt></xml>"
    );
    (query, body.into_bytes())
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` passes nothing useful.
    let config = Config::from_toml(BENCH_TOML, Path::new("config/bench.toml"), |_| None)
        .unwrap_or_else(|e| panic!("config/bench.toml is invalid: {e}"));
    let crypto = config.primary().account.crypto.clone().expect("safe mode");
    let callback = Callback::new(
        &config.primary().account,
        config.server.timestamp_window_secs,
        Arc::new(ManualClock::new(NOW)),
    );
    let rules: Arc<RuleSet> = config.primary().rules.clone();

    let mut rows: Vec<(String, (f64, f64))> = Vec::new();
    for (name, content) in [("short_text", "今天天气怎么样？"), ("keyword_news", "微博")]
    {
        let inner = text_xml(content);
        let (query, body) = request(&crypto, &inner);
        rows.push((
            format!("pipeline/{name} (Callback::handle)"),
            count(|| callback.handle(&query, &body, &rules).expect("handled")),
        ));
    }

    let inner = text_xml("今天天气怎么样？");
    let (query, body) = request(&crypto, &inner);
    let encrypted = envelope::parse_encrypted(&body).unwrap().unwrap();
    let message = Message::parse(inner.as_bytes()).unwrap();
    let decision = rules.evaluate(&message);
    let xml = decision
        .reply
        .render(&message.from_user, &message.to_user, NOW, 1)
        .unwrap();
    let reply_encrypt = crypto.encrypt(&xml);
    let ts = query.timestamp.clone().unwrap();
    let nonce = query.nonce.clone().unwrap();
    let sig = crypto::msg_signature(TOKEN, &ts, &nonce, &reply_encrypt);
    rows.push((
        "step/open (envelope, verify, decrypt, parse)".into(),
        count(|| callback.open(&query, &body).unwrap()),
    ));
    rows.push((
        "step/1_envelope_parse".into(),
        count(|| envelope::parse_encrypted(&body).unwrap()),
    ));
    rows.push((
        "step/3_decrypt".into(),
        count(|| crypto.decrypt(&encrypted.encrypt).unwrap()),
    ));
    rows.push((
        "step/4_message_parse".into(),
        count(|| Message::parse(inner.as_bytes()).unwrap()),
    ));
    rows.push((
        "step/5_rules_evaluate".into(),
        count(|| rules.evaluate(&message)),
    ));
    rows.push((
        "step/6_reply_render".into(),
        count(|| {
            decision
                .reply
                .render(&message.from_user, &message.to_user, NOW, 1)
        }),
    ));
    rows.push(("step/7_encrypt".into(), count(|| crypto.encrypt(&xml))));
    rows.push((
        "step/9_envelope_render".into(),
        count(|| envelope::render_encrypted(&reply_encrypt, sig.as_str(), &ts, &nonce)),
    ));

    let mut out =
        String::from("| call | allocations / call | bytes allocated / call |\n|---|---|---|\n");
    for (name, (allocs, bytes)) in &rows {
        out.push_str(&format!("| {name} | {allocs:.1} | {bytes:.0} |\n"));
    }
    print!("{out}");
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench");
    if std::fs::create_dir_all(&dir).is_ok() {
        let _ = std::fs::write(dir.join("allocs.md"), &out);
    }
}
