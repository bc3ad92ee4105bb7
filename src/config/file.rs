//! The file as a whole: each section's raw form lives beside its
//! validation. Unknown keys are errors everywhere.

use serde::Deserialize;

use super::account::AccountSection;
use super::agent::{AgentSection, UpstreamSection};
use super::console::ConsoleSection;
use super::delivery::DeliverySection;
use super::log::LogSection;
use super::security::SecuritySection;
use super::server::ServerSection;
use super::store::StoreSection;
use super::token::TokenSection;
use crate::rules::{ReplySpec, RuleSpec};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ConfigFile {
    #[serde(default)]
    pub server: ServerSection,
    pub account: Option<AccountSection>,
    /// More accounts, each at its own path (`/weixin/{name}` by default).
    #[serde(default)]
    pub accounts: Vec<AccountSection>,
    #[serde(default)]
    pub store: StoreSection,
    #[serde(default)]
    pub log: LogSection,
    #[serde(default)]
    pub delivery: DeliverySection,
    #[serde(default)]
    pub security: SecuritySection,
    #[serde(default)]
    pub admin: AdminSection,
    #[serde(default)]
    pub token: TokenSection,
    #[serde(default)]
    pub console: ConsoleSection,
    #[serde(default)]
    pub agent: AgentSection,
    #[serde(default)]
    pub upstreams: Vec<UpstreamSection>,
    pub default_reply: Option<ReplySpec>,
    #[serde(default)]
    pub rules: Vec<RuleSpec>,
}

/// `[admin]`.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct AdminSection {
    pub api_key: Option<String>,
    /// A listener of its own for the operator routes.
    pub listen: Option<String>,
}
