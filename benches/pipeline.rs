//! The request pipeline in-process, without HTTP: verify → decrypt → parse →
//! match → render → encrypt → sign, in safe mode with the shared harness's
//! account and the rules of `config/bench.toml`.
//!
//! Groups:
//! - `pipeline/*`: `Callback::handle` end to end for a short text (default
//!   reply), the keyword "微博" (news reply), a 2 KB text and a subscribe event.
//! - `parse/*`: `Message::parse` alone on the same plaintext documents.
//! - `step/*`: each stage of `pipeline/short_text` alone, so the stages can be
//!   compared with the whole (they add up to a little less: the glue between
//!   them, e.g. cloning the crypto into `Inbound`, is not in any step).
//!
//! `cargo bench --bench pipeline`; `scripts/bench_criterion.py` tabulates the
//! results into `docs/bench-results/criterion.md`.

use std::hint::black_box;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use wxgate::clock::ManualClock;
use wxgate::config::Config;
use wxgate::crypto::{self, MessageCrypto};
use wxgate::message::{envelope, Message, Reply};
use wxgate::platform::callback::{Callback, CallbackQuery};
use wxgate::rules::RuleSet;

/// The bench configuration, compiled into the binary so the benches measure
/// exactly the rules the side-by-side run serves.
const BENCH_TOML: &str = include_str!("../config/bench.toml");
const TOKEN: &str = "bench_token";
const APP_ID: &str = "wx0123456789abcdef";
/// Any fixed time works: the clock is manual and the requests carry it.
const NOW: i64 = 1_763_700_000;
const WELCOME: &str = "欢迎关注！回复“微博”获取最新文章。";

struct Fixture {
    callback: Callback,
    rules: Arc<RuleSet>,
    crypto: MessageCrypto,
}

fn fixture() -> Fixture {
    let config = Config::from_toml(BENCH_TOML, Path::new("config/bench.toml"), |_| None)
        .unwrap_or_else(|e| panic!("config/bench.toml is invalid: {e}"));
    let crypto = config
        .primary()
        .account
        .crypto
        .clone()
        .expect("config/bench.toml is in safe mode");
    let clock = Arc::new(ManualClock::new(NOW));
    Fixture {
        callback: Callback::new(
            &config.primary().account,
            config.server.timestamp_window_secs,
            clock,
        ),
        rules: config.primary().rules.clone(),
        crypto,
    }
}

/// A text message as WeChat sends it (the same shape as the harness's loadgen).
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

fn event_xml() -> String {
    format!(
        "<xml><ToUserName><![CDATA[gh_x]]></ToUserName>\
         <FromUserName><![CDATA[oBench0123456789abcdefghijk]]></FromUserName>\
         <CreateTime>{NOW}</CreateTime><MsgType><![CDATA[event]]></MsgType>\
         <Event><![CDATA[subscribe]]></Event><EventKey><![CDATA[]]></EventKey></xml>"
    )
}

/// About 2 KB of ordinary Chinese text that no rule matches.
fn long_text() -> String {
    let sentence = "今天天气不错，我们一起去公园散步，顺便聊聊最近的新闻和工作。";
    let mut s = String::new();
    while s.len() < 2048 {
        s.push_str(sentence);
    }
    s
}

/// Encrypts and signs `inner` as WeChat would; returns the query and body.
fn encrypted_request(crypto: &MessageCrypto, inner: &str) -> (CallbackQuery, Vec<u8>) {
    let timestamp = NOW.to_string();
    let nonce = "1320562132".to_owned();
    let encrypt = crypto.encrypt(inner);
    let msg_signature = crypto::msg_signature(TOKEN, &timestamp, &nonce, &encrypt);
    let signature = crypto::signature(TOKEN, &timestamp, &nonce);
    let body = format!(
        "<xml><ToUserName><![CDATA[gh_x]]></ToUserName><Encrypt><![CDATA[{encrypt}]]></Encrypt></xml>"
    );
    let query = CallbackQuery {
        signature: Some(signature.to_string()),
        timestamp: Some(timestamp),
        nonce: Some(nonce),
        openid: Some("oBench0123456789abcdefghijk".into()),
        encrypt_type: Some("aes".into()),
        msg_signature: Some(msg_signature.to_string()),
        ..CallbackQuery::default()
    };
    (query, body.into_bytes())
}

/// Checks one reply the way the harness's `--check` does, so that the benches
/// never time a pipeline that answers wrongly.
fn check_reply(f: &Fixture, body: &str, expect: &str) {
    let reply = envelope::parse_encrypted_reply(body.as_bytes())
        .expect("reply is XML")
        .expect("reply is an encrypted envelope");
    let signature = crypto::msg_signature(TOKEN, &reply.timestamp, &reply.nonce, &reply.encrypt);
    assert_eq!(signature.as_str(), reply.msg_signature, "reply signature");
    let inner = f.crypto.decrypt(&reply.encrypt).expect("reply decrypts");
    assert!(inner.contains(expect), "reply {inner} lacks {expect}");
    assert!(f.crypto.receive_id() == APP_ID);
}

fn pipeline(c: &mut Criterion) {
    let f = fixture();
    let cases = [
        ("short_text", text_xml("今天天气怎么样？"), WELCOME),
        (
            "keyword_news",
            text_xml("微博"),
            "<ArticleCount>1</ArticleCount>",
        ),
        ("text_2k", text_xml(&long_text()), WELCOME),
        ("event_subscribe", event_xml(), "感谢关注"),
    ];
    let mut group = c.benchmark_group("pipeline");
    for (name, inner, expect) in &cases {
        let (query, body) = encrypted_request(&f.crypto, inner);
        let (_, outcome) = f
            .callback
            .handle(&query, &body, &f.rules)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        check_reply(&f, &outcome.body, expect);
        group.bench_function(*name, |b| {
            b.iter(|| {
                f.callback
                    .handle(black_box(&query), black_box(&body), &f.rules)
                    .expect("handled")
            })
        });
    }
    group.finish();
}

fn parse(c: &mut Criterion) {
    let cases = [
        ("short_text", text_xml("今天天气怎么样？")),
        ("text_2k", text_xml(&long_text())),
        ("event_subscribe", event_xml()),
    ];
    let mut group = c.benchmark_group("parse");
    for (name, xml) in &cases {
        Message::parse(xml.as_bytes()).unwrap_or_else(|e| panic!("{name}: {e}"));
        group.bench_function(*name, |b| {
            b.iter(|| Message::parse(black_box(xml.as_bytes())).expect("parses"))
        });
    }
    group.finish();
}

/// The stages of `pipeline/short_text`, one by one.
fn steps(c: &mut Criterion) {
    let f = fixture();
    let inner = text_xml("今天天气怎么样？");
    let (query, body) = encrypted_request(&f.crypto, &inner);
    let timestamp = query.timestamp.clone().unwrap_or_default();
    let nonce = query.nonce.clone().unwrap_or_default();
    let msg_signature = query.msg_signature.clone().unwrap_or_default();
    let encrypted = envelope::parse_encrypted(&body).unwrap().unwrap();
    let message = Message::parse(inner.as_bytes()).unwrap();
    let decision = f.rules.evaluate(&message);
    let reply_xml = decision
        .reply
        .render(&message.from_user, &message.to_user, NOW, 1)
        .expect("a text reply");
    let reply_encrypt = f.crypto.encrypt(&reply_xml);
    let reply_sig = crypto::msg_signature(TOKEN, &timestamp, &nonce, &reply_encrypt);

    let mut group = c.benchmark_group("step");
    group.bench_function("1_envelope_parse", |b| {
        b.iter(|| envelope::parse_encrypted(black_box(&body)).unwrap())
    });
    group.bench_function("2_verify_msg_signature", |b| {
        b.iter(|| {
            crypto::verify_msg_signature(
                TOKEN,
                black_box(&timestamp),
                &nonce,
                &encrypted.encrypt,
                &msg_signature,
            )
            .unwrap()
        })
    });
    group.bench_function("3_decrypt", |b| {
        b.iter(|| f.crypto.decrypt(black_box(&encrypted.encrypt)).unwrap())
    });
    group.bench_function("4_message_parse", |b| {
        b.iter(|| Message::parse(black_box(inner.as_bytes())).unwrap())
    });
    group.bench_function("5_rules_evaluate", |b| {
        b.iter(|| f.rules.evaluate(black_box(&message)))
    });
    group.bench_function("6_reply_render", |b| {
        b.iter(|| {
            black_box(&decision.reply as &Reply)
                .render(&message.from_user, &message.to_user, NOW, 1)
                .unwrap()
        })
    });
    group.bench_function("7_encrypt", |b| {
        b.iter(|| f.crypto.encrypt(black_box(&reply_xml)))
    });
    group.bench_function("8_sign", |b| {
        b.iter(|| crypto::msg_signature(TOKEN, black_box(&timestamp), &nonce, &reply_encrypt))
    });
    group.bench_function("9_envelope_render", |b| {
        b.iter(|| {
            envelope::render_encrypted(
                black_box(&reply_encrypt),
                reply_sig.as_str(),
                &timestamp,
                &nonce,
            )
        })
    });
    group.finish();
}

fn config() -> Criterion {
    // Modest: the bench machine has two cores shared with other work.
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(30)
}

criterion_group! {
    name = benches;
    config = config();
    targets = pipeline, parse, steps
}
criterion_main!(benches);
