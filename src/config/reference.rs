//! Holds `docs/configuration.md` to the config types: every key a section's
//! raw (serde) form accepts has a row in that section's table, and every row
//! names a key the code accepts.
//!
//! The keys are read from the types themselves: each raw section denies
//! unknown fields, and serde's refusal of an unknown one lists every field
//! the section has (renames included). The tables are the ones the page
//! marks with `<!-- keys: NAME -->`.

use std::collections::BTreeSet;

use serde::de::DeserializeOwned;

use super::account::{AccountSection, FeishuSection, KfSection};
use super::agent::{AgentSection, UpstreamSection};
use super::console::ConsoleSection;
use super::delivery::DeliverySection;
use super::file::{AdminSection, ConfigFile};
use super::log::LogSection;
use super::security::SecuritySection;
use super::server::ServerSection;
use super::store::{SentinelSection, StoreSection};
use super::token::TokenSection;
use crate::rules::{ArticleSpec, MatchSpec, RuleSpec};

const PAGE: &str = include_str!("../../docs/configuration.md");

/// The fields of a raw section, from serde's unknown-field error.
fn fields_of<T: DeserializeOwned>() -> BTreeSet<String> {
    let probe = "zz_not_a_key = 1\n";
    let err = match toml::from_str::<T>(probe) {
        Ok(_) => panic!("BUG: a section accepted an unknown key"),
        Err(e) => e.to_string(),
    };
    let expected = err
        .split_once("expected")
        .unwrap_or_else(|| panic!("no field list in {err:?}"))
        .1;
    let fields: BTreeSet<String> = expected
        .split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect();
    assert!(!fields.is_empty(), "no fields in {err:?}");
    fields
}

/// The keys in the first column of the table marked `<!-- keys: NAME -->`.
fn documented(name: &str) -> BTreeSet<String> {
    let marker = format!("<!-- keys: {name} -->");
    let start = PAGE
        .find(&marker)
        .unwrap_or_else(|| panic!("docs/configuration.md has no {marker}"));
    PAGE[start + marker.len()..]
        .lines()
        .skip_while(|l| l.trim().is_empty())
        .take_while(|l| l.starts_with('|'))
        .skip(2) // the header and its rule
        .map(|row| {
            let cell = row.split('|').nth(1).unwrap_or_default().trim();
            cell.strip_prefix('`')
                .and_then(|c| c.strip_suffix('`'))
                .unwrap_or_else(|| panic!("{name}: first cell of {row:?} is not a `key`"))
                .to_owned()
        })
        .collect()
}

fn same(name: &str, code: BTreeSet<String>) {
    let doc = documented(name);
    let missing: Vec<_> = code.difference(&doc).collect();
    let extra: Vec<_> = doc.difference(&code).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "docs/configuration.md, table {name}: undocumented keys {missing:?}, keys the code does not have {extra:?}"
    );
}

#[test]
fn every_section_table_lists_exactly_the_keys_of_its_type() {
    same("file", fields_of::<ConfigFile>());
    same("server", fields_of::<ServerSection>());
    same("account", fields_of::<AccountSection>());
    same("kf", fields_of::<KfSection>());
    same("feishu", fields_of::<FeishuSection>());
    same("store", fields_of::<StoreSection>());
    same("store.sentinel", fields_of::<SentinelSection>());
    same("log", fields_of::<LogSection>());
    same("delivery", fields_of::<DeliverySection>());
    same("security", fields_of::<SecuritySection>());
    same("admin", fields_of::<AdminSection>());
    same("token", fields_of::<TokenSection>());
    same("console", fields_of::<ConsoleSection>());
    same("agent", fields_of::<AgentSection>());
    same("upstreams", fields_of::<UpstreamSection>());
    same("rule", fields_of::<RuleSpec>());
    same("match", fields_of::<MatchSpec>());
    same("article", fields_of::<ArticleSpec>());
}

#[test]
fn the_check_can_fail() {
    // A table that lacks a key, or has one too many, is caught.
    let mut fewer = fields_of::<StoreSection>();
    fewer.insert("not_documented".into());
    assert_ne!(fewer, documented("store"));
    assert_eq!(fields_of::<StoreSection>(), documented("store"));
}
