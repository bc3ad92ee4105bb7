//! The operator's path with the real binary: run the server, send every
//! message kind with `wxgate simulate`, change a rule, reload with SIGHUP.

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use crate::support::{BinaryServer, TestConfig};

const BIN: &str = env!("CARGO_BIN_EXE_wxgate");
const ADMIN_KEY: &str = "operator-test-admin-key-0123";

/// The example config switched to safe mode, so the simulator encrypts,
/// with an admin key.
fn safe_config(dir: &Path) -> std::path::PathBuf {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/wxgate.toml");
    let path = dir.join("wxgate.toml");
    TestConfig::from_file(&example)
        .set("account.mode", "safe")
        .set("account.app_id", "wx0123456789abcdef")
        .set(
            "account.encoding_aes_key",
            "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG",
        )
        .set("admin.api_key", ADMIN_KEY)
        .write(&path);
    path
}

fn wxgate(config: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .arg("--config")
        .arg(config)
        .args(args)
        .output()
        .unwrap()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

async fn start(config: &Path) -> (BinaryServer, String) {
    let server = BinaryServer::start(config).await;
    let base = server.base.clone();
    (server, base)
}

#[tokio::test]
async fn simulate_every_kind_then_reload_a_rule_with_sighup() {
    let dir = tempfile::tempdir().unwrap();
    let config = safe_config(dir.path());
    let (server, base) = start(&config).await;
    let url = format!("{base}/weixin");

    let out = wxgate(&config, &["verify-url", "--url", &url]);
    assert!(
        out.status.success() && stdout(&out).contains("would pass"),
        "{out:?}"
    );

    // Every kind, with what the example rules answer.
    let cases: &[(&[&str], &[&str])] = &[
        (
            &["text", "微博"],
            &["MsgType: news", "最新文章", "encrypted reply"],
        ),
        (&["text", "多少钱"], &["价格表"]),
        (&["text", "echo a]]>b"], &["你说：echo a]]>b"]),
        (&["text", "人工"], &["MsgType: transfer_customer_service"]),
        (&["text", "随便聊聊"], &["欢迎关注"]),
        (&["image"], &["图片已收到"]),
        (&["voice", "--recognition", "你好"], &["欢迎关注"]),
        (&["video"], &["欢迎关注"]),
        (&["shortvideo"], &["欢迎关注"]),
        (&["location"], &["已收到您的位置"]),
        (&["link"], &["欢迎关注"]),
        (&["event", "subscribe"], &["感谢关注"]),
        (&["event", "subscribe", "qrscene_42"], &["场景：qrscene_42"]),
        (
            &["event", "click", "V1001_TODAY_MUSIC"],
            &["MsgType: music", "今日歌曲"],
        ),
        (&["event", "click", "NEWS_1"], &["ArticleCount: 2"]),
        (&["event", "unsubscribe"], &["`success`"]),
        (&["event", "view", "https://example.com/"], &["`success`"]),
    ];
    for (args, expected) in cases {
        let mut full = vec!["simulate", "--url", url.as_str()];
        full.extend_from_slice(args);
        let out = wxgate(&config, &full);
        let text = stdout(&out);
        assert!(
            out.status.success(),
            "{args:?}: {text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        for needle in *expected {
            assert!(
                text.contains(needle),
                "{args:?}: missing {needle:?} in\n{text}"
            );
        }
    }
    // A recorded fixture, and JSON output.
    let fixture =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/xml/plain/event_subscribe.xml");
    let out = wxgate(
        &config,
        &[
            "simulate",
            "--url",
            &url,
            "--json",
            "--xml",
            fixture.to_str().unwrap(),
        ],
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["encrypted"], true, "{json}");
    assert!(json["xml"].as_str().unwrap().contains("感谢关注"), "{json}");

    // Change a rule and reload with SIGHUP.
    let original = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, original.replace("价格表：", "新价格表：")).unwrap();
    let pid = server.child.id().to_string();
    assert!(Command::new("kill")
        .args(["-HUP", &pid])
        .status()
        .unwrap()
        .success());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let out = wxgate(&config, &["simulate", "--url", &url, "text", "多少钱"]);
        if stdout(&out).contains("新价格表") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the reload never took effect: {}",
            stdout(&out)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // A broken file is rejected and the rules in force stay.
    std::fs::write(
        &config,
        original.replace("regex = '^订单", "regex = '(^订单"),
    )
    .unwrap();
    assert!(Command::new("kill")
        .args(["-HUP", &pid])
        .status()
        .unwrap()
        .success());
    tokio::time::sleep(Duration::from_millis(300)).await;
    let client = reqwest::Client::new();
    let res = client
        .post(format!("{base}/admin/reload"))
        .bearer_auth(ADMIN_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.status(),
        422,
        "invalid config refused over the admin endpoint too"
    );
    assert!(res.text().await.unwrap().contains("invalid regex"));
    // The server still answers with the last good rules.
    let simulate_ok = |content: &str| {
        let out = Command::new(BIN)
            .arg("--config")
            .arg(dir.path().join("good.toml"))
            .args(["simulate", "--url", &url, "text", content])
            .output()
            .unwrap();
        stdout(&out)
    };
    std::fs::write(
        dir.path().join("good.toml"),
        original.replace("价格表：", "新价格表："),
    )
    .unwrap();
    assert!(simulate_ok("多少钱").contains("新价格表"));

    // Admin endpoint: wrong key 401, right key reloads (back to the original text).
    std::fs::write(&config, &original).unwrap();
    let res = client
        .post(format!("{base}/admin/reload"))
        .bearer_auth("wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    let res = client
        .post(format!("{base}/admin/reload"))
        .bearer_auth(ADMIN_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["reloaded"], true);
    assert!(simulate_ok("多少钱").contains("价格表：https"));

    // Changing a start-up setting refuses the reload, naming the setting.
    std::fs::write(
        &config,
        original.replace("timestamp_window_secs = 300", "timestamp_window_secs = 60"),
    )
    .unwrap();
    let res = client
        .post(format!("{base}/admin/reload"))
        .bearer_auth(ADMIN_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 409);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(
        body["restart_required"],
        serde_json::json!(["server.timestamp_window_secs"])
    );
}

#[tokio::test]
async fn simulator_diagnoses_a_token_mismatch() {
    let dir = tempfile::tempdir().unwrap();
    let config = safe_config(dir.path());
    let (_server, base) = start(&config).await;
    let wrong = dir.path().join("wrong.toml");
    std::fs::write(
        &wrong,
        std::fs::read_to_string(&config)
            .unwrap()
            .replace("token = \"wxgatedev\"", "token = \"othertoken\""),
    )
    .unwrap();
    let out = wxgate(
        &wrong,
        &["simulate", "--url", &format!("{base}/weixin"), "text", "hi"],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("403") && err.contains("token"), "{err}");
    let out = wxgate(&wrong, &["verify-url", "--url", &format!("{base}/weixin")]);
    assert!(!out.status.success());
    // Nobody listening: a clear message, not a stack trace.
    let out = wxgate(
        &config,
        &[
            "simulate",
            "--url",
            "http://127.0.0.1:9/weixin",
            "text",
            "hi",
        ],
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot reach"));
}

#[test]
fn rules_test_and_crypto_helpers_work_offline() {
    let dir = tempfile::tempdir().unwrap();
    let config = safe_config(dir.path());
    let out = wxgate(&config, &["rules", "test", "text", "微博"]);
    let text = stdout(&out);
    assert!(
        text.contains("matched rule: weibo") && text.contains("最新文章"),
        "{text}"
    );
    let out = wxgate(&config, &["rules", "test", "event", "unsubscribe"]);
    assert!(stdout(&out).contains("success"));
    let out = wxgate(&config, &["rules", "test", "text", "nothing matches this"]);
    assert!(stdout(&out).contains("default reply"));

    let out = wxgate(
        &config,
        &[
            "crypto",
            "sign",
            "--timestamp",
            "1714037059",
            "--nonce",
            "486452656",
        ],
    );
    let expected = wxgate::crypto::signature("wxgatedev", "1714037059", "486452656").to_string();
    assert_eq!(stdout(&out).trim(), expected);
    let out = wxgate(&config, &["crypto", "encrypt", "<xml>hi</xml>"]);
    let encrypted = stdout(&out).trim().to_owned();
    let out = wxgate(&config, &["crypto", "decrypt", &encrypted]);
    assert_eq!(stdout(&out).trim(), "<xml>hi</xml>");
    let out = wxgate(&config, &["crypto", "decrypt", "AAAA"]);
    assert!(!out.status.success());
}

fn accounts_example() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("config/accounts.toml")
}

#[test]
fn the_multi_account_example_passes_check_config_and_its_kf_block_is_valid() {
    let out = wxgate(&accounts_example(), &["check-config"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = stdout(&out);
    for needle in [
        "account shop (official, mode plain, 1 rule(s)) at /weixin/shop",
        "account corp (wecom, mode safe, 2 rule(s)) at /weixin/corp",
    ] {
        assert!(text.contains(needle), "{needle:?} in {text}");
    }
    // The commented Customer Service block is valid once filled in.
    let example = std::fs::read_to_string(accounts_example()).unwrap();
    let (head, kf) = example
        .split_once("# [[accounts]]\n# name = \"service\"")
        .expect("the kf block");
    let kf: String = format!("# [[accounts]]\n# name = \"service\"{kf}")
        .lines()
        .map(|l| l.strip_prefix("# ").unwrap_or(l))
        .map(|l| l.replace("\"...\"", "\"Qm8tZ2Vu4lW3cK9pR7sY1vX5bN0aD6fH2jL8eT4uI3o\""))
        .collect::<Vec<_>>()
        .join("\n");
    let config = wxgate::Config::from_toml(&format!("{head}{kf}"), Path::new("kf.toml"), |_| None)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(config.accounts[2].name, "service");
    assert_eq!(config.accounts[2].path, "/kf");
}

#[tokio::test]
async fn the_simulator_speaks_wecom_to_a_wecom_account() {
    let config = accounts_example();
    let (_server, base) = start(&config).await;
    let url = format!("{base}/weixin/corp");
    let out = wxgate(
        &config,
        &[
            "--account",
            "corp",
            "simulate",
            "--url",
            &url,
            "text",
            "你好",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = stdout(&out);
    assert!(text.contains("WeCom, encrypted"), "{text}");
    assert!(
        text.contains("encrypted reply (signature verified, decrypted)"),
        "{text}"
    );
    assert!(text.contains("你好，同事"), "{text}");

    let out = wxgate(&config, &["--account", "corp", "verify-url", "--url", &url]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The other account answers with the top-level rules, in plain mode.
    let shop = format!("{base}/weixin/shop");
    let out = wxgate(
        &config,
        &[
            "--account",
            "shop",
            "simulate",
            "--url",
            &shop,
            "text",
            "hello",
        ],
    );
    assert!(stdout(&out).contains("你好，"), "{}", stdout(&out));
    // Talking to one account with another's secrets fails, and says so.
    let out = wxgate(
        &config,
        &[
            "--account",
            "shop",
            "simulate",
            "--url",
            &url,
            "text",
            "hello",
        ],
    );
    assert!(!out.status.success());
    let out = wxgate(
        &config,
        &["--account", "nobody", "verify-url", "--url", &url],
    );
    assert_eq!(out.status.code(), Some(78));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no account named \"nobody\""));
}

#[tokio::test]
async fn the_simulator_speaks_dingtalk_to_a_dingtalk_robot() {
    use crate::support::fake_dingtalk::{DINGTALK_EVENT_AES_KEY, DINGTALK_EVENT_TOKEN};
    use crate::support::{AccountSpec, FakeDingTalk};
    let fake = FakeDingTalk::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("wxgate.toml");
    TestConfig::new()
        .add_account(
            AccountSpec::dingtalk()
                .name("robot")
                .set("path", "/dingtalk")
                .set("api_base_url", fake.base_url())
                .set("robot_api_base_url", fake.base_url())
                .set("token", DINGTALK_EVENT_TOKEN)
                .set("encoding_aes_key", DINGTALK_EVENT_AES_KEY)
                .rules(
                    "[[rules]]\nmatch = { text = \"价格\" }\nreply = { type = \"text\", content = \"**价格表**见官网\" }\n",
                ),
        )
        .write(&config);
    let (_server, base) = start(&config).await;
    let url = format!("{base}/dingtalk");
    let robot = |args: &[&str]| {
        let mut all = vec!["--account", "robot"];
        all.extend_from_slice(args);
        wxgate(&config, &all)
    };
    let out = robot(&["simulate", "--url", &url, "text", "价格"]);
    let text = stdout(&out);
    assert!(out.status.success(), "{text} {out:?}");
    assert!(
        text.contains("robot message signed with the AppSecret"),
        "{text}"
    );
    assert!(text.contains("text: **价格表**见官网"), "{text}");
    // --json: the checked answer as JSON.
    let out = robot(&["simulate", "--url", &url, "--json", "text", "价格"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (v["platform"].as_str(), v["text"].as_str()),
        (Some("dingtalk"), Some("**价格表**见官网")),
        "{v}"
    );
    // The URL check of the event callbacks.
    let out = robot(&["verify-url", "--url", &url]);
    assert!(
        out.status.success() && stdout(&out).contains("would pass"),
        "{out:?}"
    );
    // A kind DingTalk has no form for, or WeChat's --mode: refused up front.
    let out = robot(&["simulate", "--url", &url, "video"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("not available"));
    let out = robot(&["simulate", "--url", &url, "--mode", "safe", "text", "价格"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    // The wrong path: the refusal is an error, not a success.
    let out = robot(&[
        "simulate",
        "--url",
        &format!("{base}/nowhere"),
        "text",
        "价格",
    ]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
}

// The binary runs while this thread waits for it: the fake upstream needs
// a thread of its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_simulator_pulls_a_bots_stream_and_prints_it_growing() {
    use crate::support::fake_wecom_bot::{BOT_KEY, BOT_TOKEN};
    use crate::support::{
        table, webhook_upstream, AccountSpec, Behaviour, FakeUpstream, AGENT_RULES,
    };
    let llm = FakeUpstream::start(Behaviour::Slow(
        Duration::from_millis(500),
        serde_json::json!({"type": "text", "content": "想好了的回答"}),
    ))
    .await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("wxgate.toml");
    TestConfig::new()
        .add_account(
            AccountSpec::wecom_bot(BOT_TOKEN, BOT_KEY)
                .name("aibot")
                .set("path", "/wecom-bot"),
        )
        .upstream(webhook_upstream(&llm, table([])))
        .rules(AGENT_RULES)
        .write(&config);
    let (_server, base) = start(&config).await;
    let url = format!("{base}/wecom-bot");
    let out = wxgate(
        &config,
        &[
            "-a", "aibot", "simulate", "--url", &url, "--wait", "10", "text", "讲讲",
        ],
    );
    let text = stdout(&out);
    assert!(out.status.success(), "{text} {out:?}");
    // The first answer is the open stream; a refresh then shows it finished.
    assert!(text.contains("\"finish\":false"), "{text}");
    assert!(text.contains(", finished: 想好了的回答"), "{text}");
    assert!(text.contains("text: 想好了的回答"), "{text}");
    // --wait 0: the open stream, not refreshed, reported unfinished.
    let out = wxgate(
        &config,
        &[
            "-a",
            "aibot",
            "simulate",
            "--url",
            &url,
            "--wait",
            "0",
            "text",
            "再讲讲",
        ],
    );
    let text = stdout(&out);
    assert!(out.status.success(), "{text} {out:?}");
    assert!(text.contains("not finished"), "{text}");
    let out = wxgate(
        &config,
        &[
            "-a", "aibot", "simulate", "--url", &url, "--wait", "-1", "text", "x",
        ],
    );
    assert_eq!(out.status.code(), Some(2), "{out:?}");
}
