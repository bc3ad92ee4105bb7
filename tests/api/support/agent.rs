//! What the agent tests share: an Official Account whose default reply goes
//! to the upstream `agent`, and reading the replies they get.

use toml::Table;
use wxgate::message::xml::parse_str;

use super::fake_upstream::FakeUpstream;
use super::fake_wechat::FakeWechat;
use super::{table, AccountSpec, TestConfig, ACCOUNT};

/// Answered while an upstream is still working.
pub const INTERIM: &str = "正在思考…";

/// A static rule, and the upstream `agent` answering everything else.
pub const AGENT_RULES: &str = r#"
[[rules]]
name = "static"
match = { text = "菜单" }
reply = { type = "text", content = "static menu" }

[default_reply]
type = "upstream"
upstream = "agent"
"#;

/// A plain-mode account with API credentials against `wechat`, a 400 ms
/// passive budget with [`INTERIM`], and `upstream` answering everything
/// but "菜单".
pub fn agent_config(wechat: &FakeWechat, upstream: Table) -> TestConfig {
    TestConfig::new()
        .account(AccountSpec::official_api(&ACCOUNT.token))
        .token_api(wechat)
        .set("token.timeout_secs", 2)
        .set("token.lock_ttl_ms", 3000)
        .set("agent.passive_budget_ms", 400)
        .set("agent.interim_text", INTERIM)
        .upstream(upstream)
        .rules(AGENT_RULES)
}

/// The upstream `agent`: a webhook at `upstream`, 5 s timeout, then `extra`.
pub fn webhook_upstream(upstream: &FakeUpstream, extra: Table) -> Table {
    let mut t = table([
        ("name", "agent".into()),
        ("protocol", "webhook".into()),
        ("url", upstream.hook_url().into()),
        ("timeout_ms", 5000.into()),
    ]);
    t.extend(extra);
    t
}

/// The upstream `agent`: OpenAI-compatible at `upstream`, model
/// `test-model`, 5 s timeout, then `extra`.
pub fn openai_upstream(upstream: &FakeUpstream, extra: Table) -> Table {
    let mut t = table([
        ("name", "agent".into()),
        ("protocol", "openai".into()),
        ("url", upstream.openai_base().into()),
        ("model", "test-model".into()),
        ("timeout_ms", 5000.into()),
    ]);
    t.extend(extra);
    t
}

/// The `Content` of a plain reply (panics on `success`).
pub fn plain_content(body: &str) -> String {
    parse_str(body)
        .unwrap_or_else(|e| panic!("not reply XML ({e}): {body}"))
        .child_text("Content")
        .unwrap_or_default()
        .to_owned()
}
