use std::time::Duration;

use super::*;
use crate::token::TokenSource;

fn load(text: &str) -> Result<Config, ConfigError> {
    Config::from_toml(text, Path::new("test.toml"), |_| None)
}

#[test]
fn minimal_plain_config() {
    let c = load("[account]\ntoken = \"abc\"\n").unwrap();
    assert_eq!(c.primary().account.mode, Mode::Plain);
    assert_eq!(c.server.listen.to_string(), "127.0.0.1:8080");
    assert_eq!(c.server.path, "/weixin");
    assert_eq!(c.server.max_body_bytes, 65536);
    assert_eq!(c.store, StoreConfig::Memory);
    assert!(c.primary().rules.is_empty());
}

#[test]
fn environment_overrides_the_file() {
    let c = Config::from_toml(
        "[account]\ntoken = \"file\"\nmode = \"safe\"\n",
        Path::new("t.toml"),
        |name| match name {
            ENV_TOKEN => Some("fromenv".into()),
            ENV_ENCODING_AES_KEY => Some("abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG".into()),
            ENV_APP_ID => Some("wx0123456789abcdef".into()),
            _ => None,
        },
    )
    .unwrap();
    assert_eq!(c.primary().account.token.expose(), "fromenv");
    assert_eq!(
        c.primary().account.crypto.clone().unwrap().receive_id(),
        "wx0123456789abcdef"
    );
}

#[test]
fn secrets_never_show_in_debug() {
    let c = load("[account]\ntoken = \"supersecret\"\napp_secret = \"alsosecret\"\nencoding_aes_key = \"abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG\"\napp_id = \"wx1\"\n").unwrap();
    let dbg = format!("{c:?}");
    assert!(
        !dbg.contains("supersecret") && !dbg.contains("alsosecret") && !dbg.contains("abcdefghij"),
        "{dbg}"
    );
}

#[test]
fn every_problem_is_listed_with_the_file() {
    let err = load(
            "[server]\nlisten = \"nowhere\"\n[account]\nmode = \"safe\"\n[[rules]]\nname = \"r\"\nmatch = { regex = \"[\" }\nreply = { type = \"text\", content = \"x\" }\n",
        )
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("test.toml: "), "{err}");
    for needle in [
        "server.listen",
        "account.token is missing",
        "encoding_aes_key is required",
        "app_id is required",
        "rule #1 \"r\": invalid regex",
    ] {
        assert!(err.contains(needle), "missing {needle:?} in {err}");
    }
}

#[test]
fn unknown_keys_and_bad_keys() {
    let err = load("[account]\ntoken = \"a\"\ntokne = \"b\"\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("unknown field `tokne`"), "{err}");
    let err = load("[account]\ntoken = \"a\"\nencoding_aes_key = \"short\"\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("43 characters"), "{err}");
    let err = load("[store]\nbackend = \"redis\"\n[account]\ntoken = \"a\"\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("store.url"), "{err}");
}

#[test]
fn token_defaults_and_overrides() {
    let c = load("[account]\ntoken = \"a\"\n").unwrap();
    assert_eq!(c.token.source, TokenSource::Stable);
    assert_eq!(c.token.refresh_margin_secs, 300);
    assert_eq!(c.token.api_base_url, "https://api.weixin.qq.com");
    assert_eq!(c.token.timeout_secs, 5);
    assert!(c.token.internal_api_key.is_none());
    assert!(!c.has_api_credentials());

    let c = Config::from_toml(
            "[account]\ntoken = \"a\"\napp_id = \"wx1\"\napp_secret = \"s\"\n[store]\nbackend = \"redis\"\nurl = \"redis://127.0.0.1:6379\"\n[token]\nsource = \"classic\"\napi_base_url = \"http://127.0.0.1:9/\"\nlock_ttl_ms = 6000\n",
            Path::new("t.toml"),
            |name| (name == ENV_INTERNAL_API_KEY).then(|| "k".repeat(32)),
        )
        .unwrap();
    assert_eq!(c.token.source, TokenSource::Classic);
    assert_eq!(c.token.api_base_url, "http://127.0.0.1:9");
    assert_eq!(
        c.token.internal_api_key.as_ref().unwrap().expose(),
        "k".repeat(32)
    );
    assert!(c.has_api_credentials());
    assert!(!format!("{c:?}").contains("kkkk"));
}

#[test]
fn token_problems_are_listed() {
    let err = load(
            "[account]\ntoken = \"a\"\napp_secret = \"s\"\n[token]\nsource = \"fast\"\nrefresh_margin_secs = 0\ntimeout_secs = 5\nlock_ttl_ms = 5000\napi_base_url = \"ftp://x\"\ninternal_api_key = \"short\"\n",
        )
        .unwrap_err()
        .to_string();
    for needle in [
        "token.source must be \"stable\" or \"classic\"",
        "token.refresh_margin_secs",
        "token.lock_ttl_ms must exceed",
        "token.api_base_url",
        "token.internal_api_key (or WXGATE_INTERNAL_API_KEY) must be at least 16",
        "account.app_secret is set but app_id is missing",
    ] {
        assert!(err.contains(needle), "missing {needle:?} in {err}");
    }
    let err = load(&format!(
        "[account]\ntoken = \"a\"\n[token]\ninternal_api_key = \"{}\"\n",
        "k".repeat(32)
    ))
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("internal_api_key is set but there is no token to serve"),
        "{err}"
    );
}

#[test]
fn upstreams_are_validated_with_defaults() {
    let c = Config::from_toml(
        r#"
[account]
token = "a"
[agent]
interim_text = "正在思考…"
[[upstreams]]
name = "hook"
url = "http://127.0.0.1:9000/wx"
protocol = "webhook"
secret_env = "HOOK_SECRET"
[[upstreams]]
name = "llm"
url = "http://127.0.0.1:11434/v1/"
protocol = "openai"
model = "qwen2.5"
fallback_text = "稍后再试"
[[rules]]
match = { prefix = "hook " }
reply = { type = "upstream", upstream = "hook" }
[default_reply]
type = "upstream"
upstream = "llm"
"#,
        Path::new("t.toml"),
        |name| (name == "HOOK_SECRET").then(|| "s3cret".to_owned()),
    )
    .unwrap();
    let a = &c.agent;
    assert_eq!(a.passive_budget, Duration::from_millis(4000));
    assert_eq!(a.interim_text.as_deref(), Some("正在思考…"));
    assert!(a.typing);
    let [hook, llm] = &a.upstreams[..] else {
        panic!("two upstreams expected: {a:?}")
    };
    assert_eq!(hook.protocol.as_str(), "webhook");
    assert_eq!(hook.fallback_text, crate::agent::DEFAULT_FALLBACK_TEXT);
    assert_eq!(
        (hook.max_concurrency, hook.timeout),
        (16, Duration::from_secs(30))
    );
    assert_eq!(llm.url, "http://127.0.0.1:11434/v1/chat/completions");
    assert_eq!(llm.fallback_text, "稍后再试");
    let crate::agent::ProtocolSettings::OpenAi(o) = &llm.protocol else {
        panic!("openai expected")
    };
    assert_eq!(
        (o.history_turns, o.history_ttl, o.reset_command.as_str()),
        (10, Duration::from_secs(1800), "/reset")
    );
    assert!(!format!("{c:?}").contains("s3cret"));
    use crate::agent::AnswerFormat;
    assert_eq!(
        (hook.format, llm.format),
        (AnswerFormat::Plain, AnswerFormat::Markdown)
    );
    assert!(o.voice_as_text);
    let voice = c.primary().rules.voice();
    assert!(voice.as_text);
    assert_eq!(
        voice.fallback,
        crate::domain::Reply::Text {
            content: crate::rules::DEFAULT_VOICE_FALLBACK_TEXT.into()
        }
    );
}

#[test]
fn voice_and_format_keys_are_read_and_checked() {
    let c = load(
        r#"
[account]
token = "a"
[agent]
voice_as_text = false
[[upstreams]]
name = "hook"
url = "http://127.0.0.1:9000/wx"
protocol = "webhook"
format = "markdown"
[[upstreams]]
name = "llm"
url = "http://127.0.0.1:11434/v1"
protocol = "openai"
model = "m"
format = "plain"
[[accounts]]
name = "two"
token = "b"
rules = []
"#,
    )
    .unwrap();
    use crate::agent::{AnswerFormat, ProtocolSettings};
    let [hook, llm] = &c.agent.upstreams[..] else {
        panic!("two upstreams")
    };
    assert_eq!(
        (hook.format, llm.format),
        (AnswerFormat::Markdown, AnswerFormat::Plain)
    );
    let ProtocolSettings::OpenAi(o) = &llm.protocol else {
        panic!("openai")
    };
    assert!(!o.voice_as_text);
    // Every account's rules, its own included, read voice the same way.
    assert!(c.accounts.iter().all(|a| !a.rules.voice().as_text));

    let err = load(
        r#"
[account]
token = "a"
[agent]
voice_as_text = false
voice_fallback_text = "请发文字"
[[upstreams]]
name = "hook"
url = "http://127.0.0.1:9000/wx"
protocol = "webhook"
format = "html"
"#,
    )
    .unwrap_err()
    .to_string();
    for needle in [
        "agent.voice_fallback_text needs agent.voice_as_text = true",
        "upstreams[0] \"hook\": format must be \"markdown\" or \"plain\", not \"html\"",
    ] {
        assert!(err.contains(needle), "missing {needle:?} in {err}");
    }
    let err = load("[account]\ntoken = \"a\"\n[agent]\nvoice_fallback_text = \" \"\n")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("agent.voice_fallback_text must not be empty"),
        "{err}"
    );
}

#[test]
fn media_and_vision_keys_are_read_and_checked() {
    let c = load(
        r#"
[account]
token = "a"
[agent]
allow_private_media = true
media_timeout_ms = 2500
[[upstreams]]
name = "llm"
url = "http://127.0.0.1:11434/v1"
protocol = "openai"
model = "m"
image_answers = true
vision = true
vision_prompt = "这是什么？"
[[upstreams]]
name = "plain"
url = "http://127.0.0.1:11434/v1"
protocol = "openai"
model = "m"
"#,
    )
    .unwrap();
    use crate::agent::{MediaSettings, ProtocolSettings, DEFAULT_VISION_PROMPT};
    assert_eq!(
        c.agent.media,
        MediaSettings {
            allow_private: true,
            timeout: std::time::Duration::from_millis(2500),
        }
    );
    let openai = |i: usize| match &c.agent.upstreams[i].protocol {
        ProtocolSettings::OpenAi(o) => (o.image_answers, o.vision, o.vision_prompt.clone()),
        other => panic!("not openai: {other:?}"),
    };
    assert_eq!(openai(0), (true, true, "这是什么？".to_owned()));
    assert_eq!(openai(1), (false, false, DEFAULT_VISION_PROMPT.to_owned()));
    let defaults = load("[account]\ntoken = \"a\"\n").unwrap();
    assert_eq!(defaults.agent.media, MediaSettings::default());

    let err = load(
        r#"
[account]
token = "a"
[agent]
media_timeout_ms = 50
[[upstreams]]
name = "hook"
url = "http://127.0.0.1:9000/wx"
protocol = "webhook"
image_answers = true
vision = true
[[upstreams]]
name = "llm"
url = "http://127.0.0.1:11434/v1"
protocol = "openai"
model = "m"
vision_prompt = "看图"
"#,
    )
    .unwrap_err()
    .to_string();
    for needle in [
        "agent.media_timeout_ms must be between 100 and 60000, not 50",
        "upstreams[0] \"hook\": image_answers only applies to protocol = \"openai\"",
        "upstreams[0] \"hook\": vision only applies to protocol = \"openai\"",
        "upstreams[1] \"llm\": vision_prompt needs vision = true",
    ] {
        assert!(err.contains(needle), "missing {needle:?} in {err}");
    }
}

#[test]
fn upstream_problems_name_the_rule_and_the_upstream() {
    let err = load(
        r#"
[account]
token = "a"
[delivery]
deadline_ms = 3000
[agent]
passive_budget_ms = 3000
[[upstreams]]
name = "hook"
url = "ftp://example.com"
protocol = "webhook"
model = "x"
secret_env = "UNSET_SECRET"
[[upstreams]]
name = "llm"
url = "http://127.0.0.1:11434/v1"
protocol = "openai"
[[upstreams]]
url = "http://127.0.0.1:1"
protocol = "grpc"
[[rules]]
name = "ask"
match = { prefix = "ask " }
reply = { type = "upstream", upstream = "agnet" }
[delivery.fallback_reply]
type = "upstream"
upstream = "hook"
"#,
    )
    .unwrap_err()
    .to_string();
    for needle in [
            "agent.passive_budget_ms must be at least 50 and below delivery.deadline_ms (3000)",
            "upstreams[0] \"hook\": url \"ftp://example.com\" must be an http:// or https:// URL",
            "upstreams[0] \"hook\": model only applies to protocol = \"openai\"",
            "upstreams[0] \"hook\": secret_env names the environment variable UNSET_SECRET, which is not set",
            "upstreams[1] \"llm\": model is missing",
            "upstreams[2]: name is missing",
            "upstreams[2]: protocol must be \"webhook\" or \"openai\", not \"grpc\"",
            "rule #1 \"ask\": unknown upstream \"agnet\"",
            "delivery.fallback_reply: an upstream reply is only allowed in rules and default_reply",
        ] {
            assert!(err.contains(needle), "missing {needle:?} in {err}");
        }
}

const KEY: &str = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG";

#[test]
fn accounts_side_by_side_with_the_single_account() {
    let c = Config::from_toml(
        &format!(
            r#"
[account]
token = "oa"
[[rules]]
match = {{ text = "hi" }}
reply = {{ type = "text", content = "top" }}

[[accounts]]
name = "corp-app"
kind = "wecom"
corp_id = "ww5d3c1b9a7e2f4086"
agent_id = 1000002
token = "wc"
encoding_aes_key = "{KEY}"
[[accounts.rules]]
match = {{ text = "hi" }}
reply = {{ type = "text", content = "own" }}

[[accounts]]
name = "service"
kind = "kf"
path = "/kf"
corp_id = "ww5d3c1b9a7e2f4086"
token = "kf"
encoding_aes_key = "{KEY}"
[accounts.kf]
max_message_age_secs = 120
"#
        ),
        Path::new("t.toml"),
        |name| (name == "WXGATE_SERVICE_CORP_SECRET").then(|| "kfsecret".to_owned()),
    )
    .unwrap();
    let [oa, app, kf] = &c.accounts[..] else {
        panic!("three accounts expected")
    };
    assert_eq!((oa.name.as_str(), oa.path.as_str()), ("default", "/weixin"));
    assert_eq!(oa.account.kind, AccountKind::Official);
    assert_eq!(app.path, "/weixin/corp-app");
    assert_eq!(app.account.kind, AccountKind::WeCom { agent_id: 1000002 });
    assert_eq!(app.account.mode, Mode::Safe);
    assert_eq!(app.account.api_base_url, WECOM_BASE_URL);
    assert_eq!(
        app.account.crypto.as_ref().unwrap().receive_id(),
        "ww5d3c1b9a7e2f4086"
    );
    assert_eq!(app.namespace, "ww5d3c1b9a7e2f4086.1000002");
    assert_eq!(kf.path, "/kf");
    assert_eq!(kf.namespace, "ww5d3c1b9a7e2f4086.kf");
    assert_eq!(kf.account.app_secret.as_ref().unwrap().expose(), "kfsecret");
    let AccountKind::Kf(settings) = &kf.account.kind else {
        panic!("kf expected")
    };
    assert_eq!(settings.max_message_age, Duration::from_secs(120));
    assert_eq!(settings.sync_limit, 100);
    // Own rules replace the top-level ones; no own rules inherit them.
    let rule_names = |a: &AccountEntry| a.rules.len();
    assert_eq!((rule_names(oa), rule_names(app), rule_names(kf)), (1, 1, 1));
    assert!(!format!("{c:?}").contains("kfsecret"));
    assert_eq!(c.find_account(Some("service")).unwrap().name, "service");
    assert!(c
        .find_account(Some("nope"))
        .unwrap_err()
        .contains("default, corp-app, service"));
}

#[test]
fn accounts_alone_need_no_single_account() {
    let c = load(&format!(
            "[[accounts]]\nname = \"a\"\ntoken = \"t\"\n[[accounts]]\nname = \"b\"\nkind = \"wecom\"\ncorp_id = \"ww1\"\nagent_id = 2\ntoken = \"t\"\nencoding_aes_key = \"{KEY}\"\n"
        ))
        .unwrap();
    assert_eq!(c.primary().name, "a");
    assert_eq!(c.primary().path, "/weixin/a");
}

#[test]
fn account_problems_name_the_account() {
    let err = load(&format!(
        r#"
[account]
token = "a"
agent_id = 3
[[accounts]]
name = "Bad Name"
token = "t"
[[accounts]]
name = "app"
kind = "wecom"
app_id = "wx1"
token = "t"
mode = "plain"
[[accounts]]
name = "svc"
kind = "kf"
corp_id = "ww1"
agent_id = 1
token = "t"
encoding_aes_key = "{KEY}"
[accounts.kf]
sync_limit = 5000
[[accounts]]
name = "svc"
kind = "chat"
token = "t"
[[accounts.rules]]
match = {{ regex = "[" }}
reply = {{ type = "text", content = "x" }}
"#
    ))
    .unwrap_err()
    .to_string();
    for needle in [
        "account.agent_id only applies to kind = \"wecom\" or \"kf\"",
        "accounts[0] \"Bad Name\".name \"Bad Name\" must be 1–32 characters",
        "accounts[1] \"app\".app_id does not apply to kind = \"wecom\" (use corp_id)",
        "accounts[1] \"app\".WeCom pushes are always encrypted",
        "accounts[1] \"app\".corp_id is required for kind = \"wecom\" (or set WXGATE_APP_CORP_ID)",
        "accounts[1] \"app\".encoding_aes_key is required",
        "accounts[1] \"app\".agent_id is required",
        "accounts[2] \"svc\".agent_id does not apply to kind = \"kf\"",
        "accounts[2] \"svc\".corp_secret (the Customer Service secret) is required",
        "accounts[2] \"svc\".kf.sync_limit must be between 1 and 1000",
        "accounts[3] \"svc\".kind must be \"official\", \"wecom\", \"kf\", \"feishu\", \"dingtalk\" or \"wecom_bot\"",
        "rule #1",
    ] {
        assert!(err.contains(needle), "missing {needle:?} in {err}");
    }
}

#[test]
fn accounts_must_not_collide() {
    let err = load(
            "[account]\ntoken = \"a\"\napp_id = \"wx1\"\n[[accounts]]\nname = \"x\"\npath = \"/weixin\"\ntoken = \"b\"\napp_id = \"wx1\"\n",
        )
        .unwrap_err()
        .to_string();
    assert!(err.contains("the path \"/weixin\" is used twice"), "{err}");
    assert!(
        err.contains("same WeChat account as another one (wx1)"),
        "{err}"
    );
}

#[test]
fn feishu_and_dingtalk_accounts_validate_their_own_keys() {
    let c = Config::from_toml(
        r#"
[[accounts]]
name = "bot"
kind = "feishu"
app_id = "cli_a1b2c3"
app_secret = "s"
token = "verify"
lark = true
[accounts.feishu]
require_mention = false
bot_open_id = "ou_bot"

[[accounts]]
name = "robot"
kind = "dingtalk"
app_secret = "ding-secret"
"#,
        Path::new("p.toml"),
        |name| (name == "WXGATE_BOT_ENCRYPT_KEY").then(|| "from-env".to_owned()),
    )
    .unwrap();
    let bot = c.find_account(Some("bot")).unwrap();
    assert_eq!(bot.account.api_base_url, LARK_BASE_URL);
    assert_eq!(bot.namespace, "feishu.cli_a1b2c3");
    let AccountKind::Feishu(f) = &bot.account.kind else {
        panic!("a Feishu account")
    };
    assert_eq!(f.encrypt_key.as_ref().map(Secret::expose), Some("from-env"));
    assert!(!f.require_mention);
    assert_eq!(f.bot_open_id.as_deref(), Some("ou_bot"));
    assert_eq!(bot.account.mode, Mode::Safe);
    assert!(!format!("{bot:?}").contains("from-env"));
    let robot = c.find_account(Some("robot")).unwrap();
    assert_eq!(robot.account.kind, AccountKind::DingTalk);
    assert_eq!(robot.account.api_base_url, DINGTALK_BASE_URL);
    assert_eq!(robot.namespace, "dingtalk.robot");

    let err = load(
        r#"
[[accounts]]
name = "bot"
kind = "feishu"
token = "t"
corp_id = "ww1"
[[accounts]]
name = "shop"
token = "t"
encrypt_key = "k"
lark = false
[[accounts]]
name = "robot"
kind = "dingtalk"
[security]
ip_allowlist = "wechat"
"#,
    )
    .unwrap_err()
    .to_string();
    for want in [
        "accounts[0] \"bot\".app_id is required for kind = \"feishu\"",
        "accounts[0] \"bot\".app_secret is required for kind = \"feishu\"",
        "accounts[0] \"bot\".corp_id does not apply to kind = \"feishu\"",
        "accounts[1] \"shop\".encrypt_key only applies to kind = \"feishu\"",
        "accounts[1] \"shop\".lark only applies to kind = \"feishu\"",
        "accounts[2] \"robot\".app_secret is required for kind = \"dingtalk\"",
    ] {
        assert!(err.contains(want), "missing {want:?} in {err}");
    }
}

#[test]
fn the_wechat_allowlist_is_refused_for_feishu_and_dingtalk() {
    let err = load(
        "[security]\nip_allowlist = \"wechat\"\n[[accounts]]\nname = \"robot\"\nkind = \"dingtalk\"\napp_secret = \"s\"\n",
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("do not include dingtalk's"), "{err}");
}

#[test]
fn wecom_bot_accounts_take_token_key_and_bot_id() {
    let c = Config::from_toml(
        r#"
[[accounts]]
name = "aibot"
kind = "wecom_bot"
token = "t"
encoding_aes_key = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"

[[accounts]]
name = "other"
kind = "wecom_bot"
token = "t"
encoding_aes_key = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
"#,
        Path::new("p.toml"),
        |name| (name == "WXGATE_OTHER_BOT_ID").then(|| "aibX1".to_owned()),
    )
    .unwrap();
    let bot = c.find_account(Some("aibot")).unwrap();
    assert_eq!(bot.account.kind, AccountKind::WeComBot);
    assert_eq!(bot.namespace, "wecom_bot.aibot");
    assert_eq!(bot.account.mode, Mode::Safe);
    // The envelope's receive id is empty.
    assert_eq!(
        bot.account.crypto.as_ref().map(|c| c.receive_id()),
        Some("")
    );
    let other = c.find_account(Some("other")).unwrap();
    assert_eq!(other.account.app_id.as_deref(), Some("aibX1"));
    assert_eq!(other.namespace, "wecom_bot.aibX1");

    let err = load(
        r#"
[[accounts]]
name = "aibot"
kind = "wecom_bot"
token = "t"
app_secret = "s"
[[accounts]]
name = "shop"
token = "t"
bot_id = "b"
"#,
    )
    .unwrap_err()
    .to_string();
    for want in [
        "accounts[0] \"aibot\".encoding_aes_key is required",
        "accounts[0] \"aibot\".app_secret does not apply to kind = \"wecom_bot\"",
        "accounts[1] \"shop\".bot_id only applies to kind = \"wecom_bot\"",
    ] {
        assert!(err.contains(want), "missing {want:?} in {err}");
    }
}
