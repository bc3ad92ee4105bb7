//! Rule matching (`RuleSet::evaluate`) with 10, 1,000 and 10,000 keyword rules.
//!
//! The rules are built as `RuleSpec` values: a mix of exact (`text`),
//! `contains` and `prefix` keywords in equal parts, with the "微博" rule last
//! so that a hit really has to get past every other rule (first match wins).
//! Inputs: "微博" (hits the last rule), a short text no rule matches (default
//! reply) and a 2 KB text no rule matches (the `contains` automaton scans all
//! of it). `compile/*` times `RuleSet::compile` (start-up and reload cost).
//!
//! `cargo bench --bench rules`

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use wxgate::message::Message;
use wxgate::rules::{ArticleSpec, MatchSpec, OneOrMany, ReplySpec, RuleSet, RuleSpec};

const SIZES: [usize; 3] = [10, 1_000, 10_000];

/// `n` rules: `n - 1` generated keyword rules, then "微博".
///
/// The generated keywords share no text with the inputs, so nothing matches
/// before the last rule.
fn specs(n: usize) -> Vec<RuleSpec> {
    let mut rules: Vec<RuleSpec> = (0..n - 1)
        .map(|i| {
            let (matcher, word) = match i % 3 {
                0 => {
                    let w = format!("关键词{i}");
                    (
                        MatchSpec {
                            text: Some(OneOrMany::One(w.clone())),
                            ..MatchSpec::default()
                        },
                        w,
                    )
                }
                1 => {
                    let w = format!("优惠码{i}");
                    (
                        MatchSpec {
                            contains: Some(OneOrMany::One(w.clone())),
                            ..MatchSpec::default()
                        },
                        w,
                    )
                }
                _ => {
                    let w = format!("查询{i} ");
                    (
                        MatchSpec {
                            prefix: Some(OneOrMany::One(w.clone())),
                            ..MatchSpec::default()
                        },
                        w,
                    )
                }
            };
            RuleSpec {
                name: Some(format!("kw-{i}")),
                matcher,
                reply: ReplySpec::Text {
                    content: format!("回复：{word}"),
                },
            }
        })
        .collect();
    rules.push(RuleSpec {
        name: Some("weibo".into()),
        matcher: MatchSpec {
            text: Some(OneOrMany::Many(vec!["微博".into(), "weibo".into()])),
            ignore_case: true,
            ..MatchSpec::default()
        },
        reply: ReplySpec::News {
            articles: vec![ArticleSpec {
                title: "最新文章".into(),
                description: "点击阅读".into(),
                url: "https://example.com/articles/latest".into(),
                pic_url: "https://example.com/cover.jpg".into(),
            }],
        },
    });
    rules
}

fn default_reply() -> ReplySpec {
    ReplySpec::Text {
        content: "欢迎关注！回复“微博”获取最新文章。".into(),
    }
}

fn text(content: &str) -> Message {
    let mut xml = String::from(
        "<xml><ToUserName><![CDATA[gh_x]]></ToUserName><FromUserName><![CDATA[o_bench]]></FromUserName>\
         <CreateTime>1763700000</CreateTime><MsgType><![CDATA[text]]></MsgType>",
    );
    wxgate::message::xml::push_cdata_element(&mut xml, "Content", content);
    xml.push_str("<MsgId>1</MsgId></xml>");
    Message::parse(xml.as_bytes()).expect("valid message")
}

fn long_text() -> String {
    let sentence = "今天天气不错，我们一起去公园散步，顺便聊聊最近的新闻和工作。";
    let mut s = String::new();
    while s.len() < 2048 {
        s.push_str(sentence);
    }
    s
}

fn matching(c: &mut Criterion) {
    let inputs = [
        ("hit_last", text("微博"), Some("weibo")),
        ("miss_short", text("今天天气怎么样？"), None),
        ("miss_2k", text(&long_text()), None),
    ];
    let mut group = c.benchmark_group("match");
    for n in SIZES {
        let set = RuleSet::compile(&specs(n), Some(&default_reply())).expect("rules compile");
        assert_eq!(set.len(), n);
        for (name, message, expect) in &inputs {
            assert_eq!(
                set.evaluate(message).rule.as_deref(),
                *expect,
                "{name} with {n} rules"
            );
            group.bench_with_input(BenchmarkId::new(*name, n), &n, |b, _| {
                b.iter(|| set.evaluate(black_box(message)))
            });
        }
    }
    // Rules that do match early, to show that a hit costs no more than a miss.
    let set = RuleSet::compile(&specs(10_000), Some(&default_reply())).expect("rules compile");
    for (name, content) in [
        ("hit_exact", "关键词9000"),
        ("hit_contains", "我的优惠码9001是多少"),
        ("hit_prefix", "查询9002 订单"),
    ] {
        let message = text(content);
        assert!(set.evaluate(&message).rule.is_some(), "{name}");
        group.bench_with_input(BenchmarkId::new(name, 10_000), &message, |b, m| {
            b.iter(|| set.evaluate(black_box(m)))
        });
    }
    group.finish();
}

fn compile(c: &mut Criterion) {
    let mut group = c.benchmark_group("compile");
    group.sample_size(10);
    for n in SIZES {
        let specs = specs(n);
        let default = default_reply();
        group.bench_with_input(BenchmarkId::from_parameter(n), &specs, |b, specs| {
            b.iter(|| RuleSet::compile(black_box(specs), Some(&default)).expect("compiles"))
        });
    }
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
    targets = matching, compile
}
criterion_main!(benches);
