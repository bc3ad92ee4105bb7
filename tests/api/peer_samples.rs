//! Every inbound body other WeChat SDKs recorded (`peer-samples/` of the
//! shared set, by its manifest) through the real server: Official Account
//! samples in plain and safe mode, WeCom samples through a WeCom app, the
//! 微信客服 notification through a 微信客服 account. Each gets 200 and a
//! well-formed reply addressed to the bare sender and account ids (no
//! whitespace from around the CDATA), whose placeholders carry the bare
//! values too.
//!
//! The samples are data gathered outside the project and stay where they
//! are: the test runs when `WXGATE_SHARED_DIR` names the shared directory
//! (CI sets it in a step of its own) and fails when it names a directory
//! without them.

use std::path::PathBuf;

use quick_xml::events::Event as XmlEvent;
use quick_xml::Reader;
use wxgate::message::xml::parse_str;

use crate::support::fake_wechat::{CORP_ID, KF_SECRET};
use crate::support::{AccountSpec, CallbackClient, FakeWechat, TestApp, TestConfig};

const NOW: i64 = 1_750_000_000;
const WC_TOKEN: &str = "peerSamplesToken";
const WC_KEY: &str = "Qm8tZ2Vu4lW3cK9pR7sY1vX5bN0aD6fH2jL8eT4uI3o";

/// Every event and every message answered, the placeholders shown.
const RULES: &str = r#"
[[rules]]
name = "events"
match = { msg_type = "event" }
reply = { type = "text", content = "ev|{from_user}|{to_user}|{event}|{event_key}" }

[default_reply]
type = "text"
content = "mt|{from_user}|{to_user}|{msg_type}"
"#;

#[derive(Debug, Clone, serde::Deserialize)]
struct Sample {
    file: String,
    platform: String,
    msg_type: String,
    event: Option<String>,
    /// What the rule set of the manifest's author answers; `(no sender: no
    /// reply)` where the push names no sender, which nobody can answer.
    expected_rule: String,
}

impl Sample {
    fn has_no_sender(&self) -> bool {
        self.expected_rule.starts_with("(no sender")
    }
}

/// The samples directory, or `None` when `WXGATE_SHARED_DIR` is unset.
fn samples_dir() -> Option<PathBuf> {
    let shared = PathBuf::from(std::env::var_os("WXGATE_SHARED_DIR")?);
    let dir = shared.join("peer-samples");
    assert!(
        dir.join("manifest.json").is_file(),
        "WXGATE_SHARED_DIR is set but {} has no manifest.json",
        dir.display()
    );
    Some(dir)
}

fn load() -> Option<(PathBuf, Vec<Sample>)> {
    let Some(dir) = samples_dir() else {
        eprintln!("peer samples: WXGATE_SHARED_DIR is not set; not run");
        return None;
    };
    let text = std::fs::read_to_string(dir.join("manifest.json")).expect("manifest.json");
    let samples: Vec<Sample> = serde_json::from_str(&text).expect("manifest parses");
    assert!(!samples.is_empty(), "the manifest lists no samples");
    Some((dir, samples))
}

/// The bare text of the first `<name>` element of `xml`, read without the
/// gateway's parser: whitespace and the CDATA markers around it removed.
/// Empty when the element is missing.
fn bare(xml: &str, name: &str) -> String {
    let open = format!("<{name}>");
    let close = format!("</{name}>");
    let Some(start) = xml.find(&open).map(|i| i + open.len()) else {
        return String::new();
    };
    let end = start + xml[start..].find(&close).expect("closed");
    let inner = xml[start..end].trim();
    let inner = inner
        .strip_prefix("<![CDATA[")
        .and_then(|s| s.strip_suffix("]]>"))
        .unwrap_or(inner);
    inner.trim().to_owned()
}

/// XML 1.0's `Char` (§2.2), written out here rather than taken from the
/// gateway.
fn is_xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..='\u{10FFFF}')
}

/// Checks `reply` is a well-formed XML document of allowed characters.
fn assert_well_formed(reply: &str, ctx: &str) {
    assert!(
        reply.chars().all(is_xml_char),
        "{ctx}: a character XML forbids in {reply:?}"
    );
    let mut reader = Reader::from_str(reply);
    reader.config_mut().check_end_names = true;
    let mut depth = 0i32;
    loop {
        match reader.read_event() {
            Ok(XmlEvent::Start(_)) => depth += 1,
            Ok(XmlEvent::End(_)) => depth -= 1,
            Ok(XmlEvent::Eof) => break,
            Ok(_) => {}
            Err(e) => panic!("{ctx}: reply is not well-formed ({e}): {reply:?}"),
        }
    }
    assert_eq!(depth, 0, "{ctx}: unbalanced reply {reply:?}");
}

/// The reply to `body`'s sender from its account, with the placeholders the
/// rules show.
fn check_reply(sample: &Sample, body: &str, reply: &str, ctx: &str) {
    assert_well_formed(reply, ctx);
    let tree = parse_str(reply).unwrap_or_else(|e| panic!("{ctx}: {e}: {reply:?}"));
    let sender = bare(body, "FromUserName");
    let account = bare(body, "ToUserName");
    assert_eq!(
        tree.child_text("ToUserName"),
        Some(sender.as_str()),
        "{ctx}: reply must go to the bare sender"
    );
    assert_eq!(
        tree.child_text("FromUserName"),
        Some(account.as_str()),
        "{ctx}: reply must come from the bare account id"
    );
    assert_eq!(tree.child_text("MsgType"), Some("text"), "{ctx}");
    let content = tree.child_text("Content").unwrap_or_default();
    let parts: Vec<&str> = content.split('|').collect();
    assert!(parts.len() >= 4, "{ctx}: {content:?}");
    assert_eq!(
        (parts[1], parts[2]),
        (sender.as_str(), account.as_str()),
        "{ctx}: placeholders must be bare"
    );
    if sample.msg_type.eq_ignore_ascii_case("event") {
        assert_eq!(parts[0], "ev", "{ctx}: {content:?}");
        let want = sample.event.as_deref().unwrap_or_default();
        assert!(
            parts[3].eq_ignore_ascii_case(want),
            "{ctx}: event {:?}, the sender meant {want:?}",
            parts[3]
        );
    } else {
        assert_eq!(parts[0], "mt", "{ctx}: {content:?}");
        assert!(
            parts[3].eq_ignore_ascii_case(&sample.msg_type),
            "{ctx}: msg_type {:?}, the sender meant {:?}",
            parts[3],
            sample.msg_type
        );
    }
}

/// One app per sample: the samples share MsgIds and senders, which dedup
/// would (rightly) answer as retries of each other.
async fn spawn(config: TestConfig) -> TestApp {
    TestApp::builder().config(config).now(NOW).spawn().await
}

/// Sends one sample as `platform` (`plain`, `safe`, `wecom`, `kf`) and
/// checks the answer; panics with what is wrong.
async fn run(sample: Sample, body: String, platform: &'static str, wechat: String) {
    let ctx = format!("{} ({platform})", sample.file);
    match platform {
        "plain" | "safe" => {
            let app = spawn(
                TestConfig::new()
                    .account(AccountSpec::fixture(platform))
                    .rules(RULES),
            )
            .await;
            let (status, reply) = if platform == "plain" {
                app.post_plain(&body).await
            } else {
                app.post_encrypted(&body).await
            };
            assert_eq!(status, 200, "{ctx}: {reply}");
            if sample.has_no_sender() {
                assert_eq!(reply, "success", "{ctx}");
                return;
            }
            let reply = if platform == "plain" {
                reply
            } else {
                assert_well_formed(&reply, &ctx);
                app.wechat.open_reply(&reply)
            };
            check_reply(&sample, &body, &reply, &ctx);
        }
        "wecom" => {
            let config = TestConfig::new()
                .account(AccountSpec::wecom(WC_TOKEN, WC_KEY, CORP_ID))
                .rules(RULES);
            let app = spawn(config).await;
            let (status, reply) = app.post_encrypted(&body).await;
            assert_eq!(status, 200, "{ctx}: {reply}");
            assert_well_formed(&reply, &ctx);
            check_reply(&sample, &body, &app.wechat.open_reply(&reply), &ctx);
        }
        "kf" => {
            let config = TestConfig::new().add_account(
                AccountSpec::kf(WC_TOKEN, WC_KEY, CORP_ID, KF_SECRET)
                    .name("service")
                    .set("path", "/kf")
                    .set("api_base_url", wechat),
            );
            let app = spawn(config).await;
            let (query, request) =
                CallbackClient::kf(WC_TOKEN, WC_KEY, CORP_ID).encrypted(&body, NOW);
            let (status, reply) = app.post(&query, request).await;
            // A notification is acknowledged with an empty body; the
            // messages it announces are pulled.
            assert_eq!((status, reply.as_str()), (200, ""), "{ctx}");
        }
        other => unreachable!("{other}"),
    }
}

#[tokio::test]
async fn every_peer_sample_gets_200_and_a_well_formed_addressed_reply() {
    let Some((dir, samples)) = load() else {
        return;
    };
    let wechat = FakeWechat::start().await;
    let total = samples.len();
    let mut runs = Vec::new();
    for sample in samples {
        let path = dir.join(&sample.file);
        let body =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let platforms: &[&'static str] = match sample.platform.as_str() {
            "official" => &["plain", "safe"],
            "wecom" => &["wecom"],
            "kf" => &["kf"],
            other => panic!("{}: unknown platform {other}", sample.file),
        };
        for &platform in platforms {
            let (sample, body, api) = (sample.clone(), body.clone(), wechat.base_url());
            // Its own task, so that one failure does not hide the others.
            let file = sample.file.clone();
            let task = tokio::spawn(run(sample, body, platform, api));
            runs.push((format!("{file} ({platform})"), task.await));
        }
    }
    let failed: Vec<&String> = runs
        .iter()
        .filter(|(_, done)| done.is_err())
        .map(|(name, _)| name)
        .collect();
    assert!(
        failed.is_empty(),
        "{} of {} runs ({total} samples) failed: {failed:#?}",
        failed.len(),
        runs.len()
    );
}

#[test]
fn the_bare_reader_strips_whitespace_and_cdata() {
    let xml = "<xml><ToUserName> <![CDATA[gh_1]]>\n</ToUserName><A>x</A></xml>";
    assert_eq!(bare(xml, "ToUserName"), "gh_1");
    assert_eq!(bare(xml, "A"), "x");
    assert_eq!(bare(xml, "FromUserName"), "");
}
