use super::*;

fn rules(toml_text: &str) -> Result<RuleSet, Vec<RuleError>> {
    #[derive(serde::Deserialize)]
    struct File {
        #[serde(default)]
        rules: Vec<RuleSpec>,
        default_reply: Option<ReplySpec>,
    }
    let file: File = toml::from_str(toml_text).expect("test TOML parses");
    RuleSet::compile(&file.rules, file.default_reply.as_ref())
}

fn text(content: &str) -> Message {
    let mut xml = String::from("<xml><ToUserName>gh_1</ToUserName><FromUserName>o_2</FromUserName><CreateTime>1</CreateTime><MsgType>text</MsgType>");
    crate::message::xml::push_cdata_element(&mut xml, "Content", content);
    xml.push_str("<MsgId>1</MsgId></xml>");
    Message::parse(xml.as_bytes()).unwrap()
}

fn event(name: &str, key: &str) -> Message {
    Message::parse(
        format!("<xml><ToUserName>gh_1</ToUserName><FromUserName>o_2</FromUserName><CreateTime>1</CreateTime><MsgType>event</MsgType><Event>{name}</Event><EventKey>{key}</EventKey></xml>").as_bytes(),
    )
    .unwrap()
}

fn other(msg_type: &str, extra: &str) -> Message {
    Message::parse(
        format!("<xml><ToUserName>gh_1</ToUserName><FromUserName>o_2</FromUserName><CreateTime>1</CreateTime><MsgType>{msg_type}</MsgType>{extra}</xml>").as_bytes(),
    )
    .unwrap()
}

fn said(reply: &Reply) -> &str {
    match reply {
        Reply::Text { content } => content,
        other => panic!("expected text, got {other:?}"),
    }
}

const SAMPLE: &str = r#"
[default_reply]
type = "text"
content = "default for {from_user}"

[[rules]]
name = "exact"
match = { text = ["微博", "weibo"] }
reply = { type = "text", content = "exact" }

[[rules]]
name = "ci-exact"
match = { text = "HELLO", ignore_case = true }
reply = { type = "text", content = "ci-exact" }

[[rules]]
name = "prefix"
match = { prefix = "echo " }
reply = { type = "text", content = "echo: {content}" }

[[rules]]
name = "contains"
match = { contains = ["价格", "price"], ignore_case = true }
reply = { type = "text", content = "contains" }

[[rules]]
name = "regex"
match = { regex = '^order\s*(\d+)$' }
reply = { type = "text", content = "regex" }

[[rules]]
name = "image"
match = { msg_type = "image" }
reply = { type = "image", media_id = "m1" }

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
match = { event = "CLICK", key = "K1" }
reply = { type = "news", articles = [{ title = "a", url = "https://x/a" }, { title = "b", url = "https://x/b" }] }

[[rules]]
name = "late-exact"
match = { text = "echo me" }
reply = { type = "text", content = "never: prefix rule comes first" }
"#;

#[test]
fn each_matcher_kind_matches() {
    let set = rules(SAMPLE).unwrap();
    let d = set.evaluate(&text("微博"));
    assert_eq!(
        (d.rule.as_deref(), said(&d.reply)),
        (Some("exact"), "exact")
    );
    assert_eq!(
        set.evaluate(&text("hello")).rule.as_deref(),
        Some("ci-exact")
    );
    assert_eq!(
        set.evaluate(&text("HeLLo")).rule.as_deref(),
        Some("ci-exact")
    );
    assert_eq!(said(&set.evaluate(&text("echo hi")).reply), "echo: echo hi");
    assert_eq!(
        set.evaluate(&text("多少PRICE?")).rule.as_deref(),
        Some("contains")
    );
    assert_eq!(
        set.evaluate(&text("问价格")).rule.as_deref(),
        Some("contains")
    );
    assert_eq!(
        set.evaluate(&text("order 42")).rule.as_deref(),
        Some("regex")
    );
    assert_eq!(set.evaluate(&text("order x")).rule, None);
    assert_eq!(
        set.evaluate(&other("image", "<PicUrl>u</PicUrl><MediaId>m</MediaId>"))
            .rule
            .as_deref(),
        Some("image")
    );
    let qr = set.evaluate(&event("subscribe", "qrscene_9"));
    assert_eq!(said(&qr.reply), "qr qrscene_9");
    assert_eq!(
        set.evaluate(&event("subscribe", "")).rule.as_deref(),
        Some("subscribe")
    );
    assert_eq!(
        set.evaluate(&event("click", "K1")).rule.as_deref(),
        Some("click")
    );
    assert_eq!(set.evaluate(&event("CLICK", "K2")).rule, None);
}

#[test]
fn first_match_in_file_order_wins() {
    let set = rules(SAMPLE).unwrap();
    // "echo me" is both a prefix match (rule 3) and an exact match (rule 10).
    assert_eq!(
        set.evaluate(&text("echo me")).rule.as_deref(),
        Some("prefix")
    );
    let set = rules(
        r#"
[[rules]]
name = "a"
match = { contains = "b" }
reply = { type = "text", content = "a" }
[[rules]]
name = "b"
match = { text = "abc" }
reply = { type = "text", content = "b" }
"#,
    )
    .unwrap();
    assert_eq!(set.evaluate(&text("abc")).rule.as_deref(), Some("a"));
}

#[test]
fn default_and_success() {
    let set = rules(SAMPLE).unwrap();
    let d = set.evaluate(&text("nothing matches"));
    assert_eq!(d.rule, None);
    assert_eq!(said(&d.reply), "default for o_2");
    // Events never get the default reply.
    assert_eq!(
        set.evaluate(&event("unsubscribe", "")).reply,
        Reply::Success
    );
    let bare = rules("").unwrap();
    assert_eq!(bare.evaluate(&text("x")).reply, Reply::Success);
}

#[test]
fn every_problem_is_reported_with_its_rule() {
    let errors = rules(
        r#"
[[rules]]
name = "no-match"
match = {}
reply = { type = "text", content = "x" }
[[rules]]
name = "bad-regex"
match = { regex = "(" }
reply = { type = "text", content = "x" }
[[rules]]
name = "two-kinds"
match = { text = "a", prefix = "b" }
reply = { type = "text", content = "x" }
[[rules]]
name = "too-many"
match = { text = "n" }
reply = { type = "news", articles = [
  { title = "1", url = "u" }, { title = "2", url = "u" }, { title = "3", url = "u" },
  { title = "4", url = "u" }, { title = "5", url = "u" }, { title = "6", url = "u" },
  { title = "7", url = "u" }, { title = "8", url = "u" }, { title = "9", url = "u" } ] }
[[rules]]
name = "empty-news"
match = { text = "e" }
reply = { type = "news", articles = [] }
[[rules]]
name = "placeholder"
match = { text = "p" }
reply = { type = "text", content = "{nickname}" }
[[rules]]
name = "key-without-event"
match = { text = "k", key = "x" }
reply = { type = "text", content = "x" }
"#,
    )
    .unwrap_err();
    let rendered: Vec<String> = errors.iter().map(ToString::to_string).collect();
    assert_eq!(rendered.len(), 7, "{rendered:#?}");
    assert!(rendered[0].starts_with("rule #1 \"no-match\": match needs one of"));
    assert!(rendered[1].contains("bad-regex") && rendered[1].contains("invalid regex"));
    assert!(rendered[2].contains("only one of"));
    assert!(rendered[3].contains("1 to 8 articles, got 9"));
    assert!(rendered[4].contains("got 0"));
    assert!(rendered[5].contains("unknown placeholder {nickname}"));
    assert!(rendered[6].contains("key and key_prefix only go with event"));
}

#[test]
fn unknown_keys_are_refused_by_the_schema() {
    let err = toml::from_str::<RuleSpec>(
        "match = { txt = \"a\" }\nreply = { type = \"text\", content = \"x\" }",
    )
    .unwrap_err();
    assert!(err.to_string().contains("unknown field `txt`"), "{err}");
    let err = toml::from_str::<RuleSpec>(
        "match = { text = \"a\" }\nreply = { type = \"text\", content = \"x\", colour = 1 }",
    )
    .unwrap_err();
    assert!(err.to_string().contains("colour"), "{err}");
    let err = toml::from_str::<RuleSpec>("match = { text = \"a\" }\nreply = { type = \"gif\" }")
        .unwrap_err();
    assert!(err.to_string().contains("gif"), "{err}");
}

#[test]
fn many_keywords_still_pick_the_first_rule() {
    let mut specs = Vec::new();
    for i in 0..5000 {
        specs.push(RuleSpec {
            name: Some(format!("k{i}")),
            matcher: MatchSpec {
                contains: Some(OneOrMany::One(format!("kw{i}x"))),
                ..MatchSpec::default()
            },
            reply: ReplySpec::Text {
                content: format!("r{i}"),
            },
        });
    }
    let set = RuleSet::compile(&specs, None).unwrap();
    assert_eq!(
        set.evaluate(&text("I say kw4999x and kw17x"))
            .rule
            .as_deref(),
        Some("k17")
    );
    assert_eq!(set.evaluate(&text("nothing")).rule, None);
}

#[test]
fn rules_and_the_default_can_hand_messages_to_upstreams() {
    let set = rules(
        r#"
[default_reply]
type = "upstream"
upstream = "fallback-agent"

[[rules]]
name = "ask"
match = { prefix = "ask " }
reply = { type = "upstream", upstream = "agent" }

[[rules]]
name = "hi"
match = { text = "hi" }
reply = { type = "text", content = "hello" }
"#,
    )
    .unwrap();
    let d = set.evaluate(&text("ask anything"));
    assert_eq!(
        (d.rule.as_deref(), d.upstream.as_deref(), &d.reply),
        (Some("ask"), Some("agent"), &Reply::Success)
    );
    let d = set.evaluate(&text("hi"));
    assert_eq!((d.upstream, said(&d.reply)), (None, "hello"));
    let d = set.evaluate(&text("anything else"));
    assert_eq!(
        (d.rule, d.upstream.as_deref()),
        (None, Some("fallback-agent"))
    );
    // Events never reach the default, upstream or not.
    assert_eq!(set.evaluate(&event("subscribe", "")).upstream, None);
    let refs: Vec<_> = set
        .upstream_refs()
        .iter()
        .map(|r| (r.rule.as_str(), &*r.upstream))
        .collect();
    assert_eq!(
        refs,
        [("#1 \"ask\"", "agent"), ("default_reply", "fallback-agent")]
    );
}

#[test]
fn upstream_replies_need_a_name_and_stay_out_of_fixed_replies() {
    let errors = rules(
        r#"
[[rules]]
name = "blank"
match = { text = "x" }
reply = { type = "upstream", upstream = " " }
"#,
    )
    .unwrap_err();
    assert!(
        errors[0]
            .to_string()
            .starts_with("rule #1 \"blank\": upstream reply needs"),
        "{errors:?}"
    );
    let spec = ReplySpec::Upstream {
        upstream: "agent".into(),
    };
    assert!(compile_reply(&spec)
        .unwrap_err()
        .contains("only allowed in rules"));
    // Answers from elsewhere keep their braces.
    assert_eq!(
        build_reply(ReplySpec::Text {
            content: "{not a placeholder}".into()
        }),
        Ok(Reply::Text {
            content: "{not a placeholder}".into()
        })
    );
}

#[test]
fn diff_names_rules_added_removed_and_changed() {
    let old = rules(
        r#"
[[rules]]
name = "a"
match = { text = "a" }
reply = { type = "text", content = "A" }
[[rules]]
name = "b"
match = { text = "b" }
reply = { type = "text", content = "B" }
"#,
    )
    .unwrap();
    let new = rules(
        r#"
[default_reply]
type = "text"
content = "d"
[[rules]]
name = "a"
match = { text = "a" }
reply = { type = "text", content = "A2" }
[[rules]]
name = "c"
match = { text = "c" }
reply = { type = "text", content = "C" }
"#,
    )
    .unwrap();
    let diff = old.diff(&new);
    assert_eq!(diff.added, ["c"]);
    assert_eq!(diff.removed, ["b"]);
    assert_eq!(diff.changed, ["a"]);
    assert!(diff.default_reply_changed);
    assert_eq!(
        diff.to_string(),
        "added c; removed b; changed a; default_reply changed"
    );
    assert!(old.diff(&old).is_empty());
    assert_eq!(new.diff(&new).to_string(), "unchanged");
}

fn voice(recognition: Option<&str>) -> Message {
    let extra = match recognition {
        Some(r) => format!("<MediaId>m</MediaId><Format>amr</Format><Recognition><![CDATA[{r}]]></Recognition><MsgId>7</MsgId>"),
        None => "<MediaId>m</MediaId><Format>amr</Format><MsgId>7</MsgId>".to_owned(),
    };
    other("voice", &extra)
}

const VOICE_RULES: &str = r#"
[default_reply]
type = "text"
content = "default"

[[rules]]
name = "price"
match = { contains = "多少钱" }
reply = { type = "text", content = "价格：{content}" }

[[rules]]
name = "order"
match = { regex = '^订单\d+$' }
reply = { type = "text", content = "order" }

[[rules]]
name = "hi"
match = { text = "你好" }
reply = { type = "text", content = "hi" }

[[rules]]
name = "go"
match = { prefix = "去" }
reply = { type = "text", content = "go {content}" }
"#;

#[test]
fn a_voice_transcript_is_read_by_every_kind_of_text_rule_and_fills_content() {
    let set = rules(VOICE_RULES).unwrap();
    let d = set.evaluate(&voice(Some("这个多少钱？")));
    assert_eq!(d.rule.as_deref(), Some("price"));
    assert_eq!(said(&d.reply), "价格：这个多少钱？");
    assert_eq!(
        set.evaluate(&voice(Some("订单42"))).rule.as_deref(),
        Some("order")
    );
    assert_eq!(
        set.evaluate(&voice(Some("你好"))).rule.as_deref(),
        Some("hi")
    );
    assert_eq!(
        said(&set.evaluate(&voice(Some("去北京"))).reply),
        "go 去北京"
    );
    // A transcript no rule matches gets the default reply, like a text.
    assert_eq!(said(&set.evaluate(&voice(Some("天气"))).reply), "default");
}

#[test]
fn voice_as_text_off_leaves_voice_to_the_non_text_rules() {
    let set = rules(VOICE_RULES).unwrap().with_voice(VoiceOptions {
        as_text: false,
        ..VoiceOptions::default()
    });
    let d = set.evaluate(&voice(Some("这个多少钱？")));
    assert_eq!((d.rule, said(&d.reply)), (None, "default"));
    // Without a transcript either: no fallback, the default reply.
    assert_eq!(said(&set.evaluate(&voice(None)).reply), "default");
}

#[test]
fn a_voice_without_transcript_gets_the_voice_fallback_unless_a_rule_takes_it() {
    let set = rules(VOICE_RULES).unwrap();
    let d = set.evaluate(&voice(None));
    assert_eq!((d.rule.as_deref(), d.upstream.as_deref()), (None, None));
    assert_eq!(said(&d.reply), crate::rules::DEFAULT_VOICE_FALLBACK_TEXT);
    // A blank transcript counts as none.
    assert_eq!(
        said(&set.evaluate(&voice(Some("  "))).reply),
        crate::rules::DEFAULT_VOICE_FALLBACK_TEXT
    );
    let custom = rules(VOICE_RULES).unwrap().with_voice(VoiceOptions {
        as_text: true,
        fallback: Reply::Text {
            content: "请发文字".into(),
        },
    });
    assert_eq!(said(&custom.evaluate(&voice(None)).reply), "请发文字");

    // A msg_type rule answers voice by itself: no fallback.
    let typed = rules(&format!(
        "{VOICE_RULES}\n[[rules]]\nname = \"any-voice\"\nmatch = {{ msg_type = \"voice\" }}\nreply = {{ type = \"text\", content = \"voice\" }}\n"
    ))
    .unwrap();
    assert_eq!(said(&typed.evaluate(&voice(None)).reply), "voice");
    // …but a transcript a text rule matches is that rule's, if it comes first.
    assert_eq!(
        typed.evaluate(&voice(Some("多少钱"))).rule.as_deref(),
        Some("price")
    );

    // No text rules and a fixed default reply: the voice would reach
    // neither text rules nor an upstream, so the default reply stands.
    let plain = rules("[default_reply]\ntype = \"text\"\ncontent = \"default\"\n").unwrap();
    assert_eq!(said(&plain.evaluate(&voice(None)).reply), "default");
    // A default reply handing messages to an upstream: the fallback, not
    // an upstream call with nothing to say.
    let agent = rules("[default_reply]\ntype = \"upstream\"\nupstream = \"llm\"\n").unwrap();
    let d = agent.evaluate(&voice(None));
    assert_eq!(d.upstream, None);
    assert_eq!(said(&d.reply), crate::rules::DEFAULT_VOICE_FALLBACK_TEXT);
    assert_eq!(
        agent.evaluate(&voice(Some("你好"))).upstream.as_deref(),
        Some("llm")
    );
}
