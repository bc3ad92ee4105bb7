//! Hot reload: re-read the config file, validate it, swap the rules.
//!
//! Triggered by SIGHUP and by `POST /admin/reload`. All or nothing: a valid
//! file that changes only rules replaces every account's rules at once
//! (requests in flight finish with the rules they started with); anything
//! else is refused as a whole and the old configuration stays:
//! - an invalid file, with its errors;
//! - a file that changes a setting read only at start-up, naming each one
//!   (restart to apply it);
//! - a file that would leave an account that has rules with none, unless
//!   it says so (`rules = []`): a truncated file is the usual cause.
//!
//! Each reload, applied or refused, reports the rules added, removed and
//! changed per account.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use thiserror::Error;

use crate::config::{Config, ConfigError, PRIMARY_NAME};
use crate::conversation::SharedRules;
use crate::rules::RulesDiff;

/// What a successful reload changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReloadReport {
    /// Rules now in force.
    pub rules: usize,
    /// Changed settings that need a restart to take effect: always empty
    /// for an applied reload (such a file is refused), kept for callers.
    pub restart_required: Vec<&'static str>,
    /// What changed in each account's rules, by account name.
    pub diff: Vec<(String, RulesDiff)>,
}

/// Why a reload was refused; the configuration in force stays.
#[derive(Debug, Error)]
pub enum ReloadError {
    /// The file cannot be read or is not valid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Settings read only at start-up differ.
    #[error("{path}: refused, these changed settings need a restart: {}", settings.join(", "))]
    RestartRequired {
        /// File path.
        path: PathBuf,
        /// The settings.
        settings: Vec<&'static str>,
    },
    /// Accounts that have rules would have none, and the file does not say
    /// `rules = []`.
    #[error("{path}: refused, it leaves no rules for account(s) {} (write `rules = []` to mean it)", accounts.join(", "))]
    RulesEmptied {
        /// File path.
        path: PathBuf,
        /// The accounts.
        accounts: Vec<String>,
    },
}

impl ReloadError {
    /// The settings that need a restart, for [`ReloadError::RestartRequired`].
    pub fn restart_required(&self) -> &[&'static str] {
        match self {
            ReloadError::RestartRequired { settings, .. } => settings,
            _ => &[],
        }
    }
}

/// Checks `fresh` (read from `text`) as a replacement for `running`: the
/// per-account rules diff, or why it cannot replace it while running.
/// `check-config --against` and the reloader both use it.
pub fn check_replacement(
    running: &Config,
    fresh: &Config,
    text: &str,
) -> Result<Vec<(String, RulesDiff)>, ReloadError> {
    let settings = restart_required(running, fresh);
    if !settings.is_empty() {
        return Err(ReloadError::RestartRequired {
            path: fresh.source.clone(),
            settings,
        });
    }
    let mut diff = Vec::new();
    let mut emptied = Vec::new();
    for old in &running.accounts {
        let Some(new) = fresh.accounts.iter().find(|a| a.name == old.name) else {
            continue;
        };
        if !old.rules.is_empty() && new.rules.is_empty() && !declares_rules(text, &new.name) {
            emptied.push(old.name.clone());
        }
        diff.push((old.name.clone(), old.rules.diff(&new.rules)));
    }
    if !emptied.is_empty() {
        return Err(ReloadError::RulesEmptied {
            path: fresh.source.clone(),
            accounts: emptied,
        });
    }
    Ok(diff)
}

/// Whether the file writes the `rules` the account `name` uses (`rules =
/// []` counts): its `[[accounts]]` entry's own, or the top-level ones for
/// `[account]` and for entries with neither rules nor a default reply of
/// their own (they share the top-level rules).
fn declares_rules(text: &str, name: &str) -> bool {
    let Ok(root) = text.parse::<toml::Table>() else {
        return false;
    };
    let entry = root
        .get("accounts")
        .and_then(|a| a.as_array())
        .into_iter()
        .flatten()
        .filter_map(|entry| entry.as_table())
        .find(|entry| entry.get("name").and_then(|n| n.as_str()) == Some(name));
    match entry {
        Some(entry) if entry.contains_key("rules") => true,
        Some(entry) if entry.contains_key("default_reply") => false,
        Some(_) => root.contains_key("rules"),
        None => name == PRIMARY_NAME && root.contains_key("rules"),
    }
}

/// One line per account for the log and `check-config`.
pub fn describe(diff: &[(String, RulesDiff)]) -> String {
    diff.iter()
        .map(|(name, d)| format!("{name}: {d}"))
        .collect::<Vec<_>>()
        .join("; ")
}

/// Reads `path` with secrets from the process environment: the text (for
/// [`check_replacement`]) and the validated configuration.
pub fn load_with_text(path: &Path) -> Result<(String, Config), ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
        path: path.to_owned(),
        source,
    })?;
    let config = Config::from_toml(&text, path, |name| std::env::var(name).ok())?;
    Ok((text, config))
}

/// Validates `text` as the file at `path` (secrets from the process
/// environment) and checks it as a replacement for `running`: exactly what
/// a reload of that file would decide, without applying it. The console
/// validates its drafts with it before it writes anything.
pub fn check_text(
    running: &Config,
    path: &Path,
    text: &str,
) -> Result<(Config, Vec<(String, RulesDiff)>), ReloadError> {
    let fresh = Config::from_toml(text, path, |name| std::env::var(name).ok())?;
    let diff = check_replacement(running, &fresh, text)?;
    Ok((fresh, diff))
}

/// Reloads one config file into the running server.
pub struct Reloader {
    path: PathBuf,
    running: Mutex<Config>,
    /// The rules in force, by account name.
    rules: Vec<(String, SharedRules)>,
}

impl Reloader {
    /// `running` is the config the server started with; `rules` the rules
    /// in force of each of its accounts, by name.
    pub fn new(running: Config, rules: Vec<(String, SharedRules)>) -> Self {
        Reloader {
            path: running.source.clone(),
            running: Mutex::new(running),
            rules,
        }
    }

    /// The config file it reloads.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The configuration in force (its rules as last reloaded).
    pub fn running(&self) -> Config {
        self.running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Re-reads the config file and applies it, or refuses it as a whole.
    pub fn reload(&self) -> Result<ReloadReport, ReloadError> {
        let result = self.try_reload();
        if let Err(e) = &result {
            tracing::error!(error = %e, "reload refused; the configuration in force stays");
        }
        result
    }

    fn try_reload(&self) -> Result<ReloadReport, ReloadError> {
        let (text, fresh) = load_with_text(&self.path)?;
        let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        let diff = match check_replacement(&running, &fresh, &text) {
            Ok(diff) => diff,
            Err(e) => {
                let diff = rules_diff(&running, &fresh);
                tracing::info!(rules = %describe(&diff), "the refused file's rules");
                return Err(e);
            }
        };
        // Accounts are the same (a change is refused above), matched by name.
        let mut rules = 0;
        for account in &fresh.accounts {
            if let Some((_, shared)) = self.rules.iter().find(|(name, _)| *name == account.name) {
                shared.store(account.rules.clone());
                rules += account.rules.len();
            }
        }
        for running_account in running.accounts.iter_mut() {
            if let Some(a) = fresh
                .accounts
                .iter()
                .find(|a| a.name == running_account.name)
            {
                running_account.rules = a.rules.clone();
            }
        }
        tracing::info!(rules, changes = %describe(&diff), "configuration reloaded");
        Ok(ReloadReport {
            rules,
            restart_required: Vec::new(),
            diff,
        })
    }
}

/// The per-account rules diff alone (for a refused file's log line).
fn rules_diff(running: &Config, fresh: &Config) -> Vec<(String, RulesDiff)> {
    running
        .accounts
        .iter()
        .filter_map(|old| {
            let new = fresh.accounts.iter().find(|a| a.name == old.name)?;
            Some((old.name.clone(), old.rules.diff(&new.rules)))
        })
        .collect()
}

/// Names the settings that differ and cannot change while running.
pub fn restart_required(old: &Config, new: &Config) -> Vec<&'static str> {
    let mut changed = Vec::new();
    let mut check = |name: &'static str, differs: bool| {
        if differs && !changed.contains(&name) {
            changed.push(name);
        }
    };
    check("server.listen", old.server.listen != new.server.listen);
    check("server.path", old.server.path != new.server.path);
    check(
        "server.max_body_bytes",
        old.server.max_body_bytes != new.server.max_body_bytes,
    );
    check(
        "server.timestamp_window_secs",
        old.server.timestamp_window_secs != new.server.timestamp_window_secs,
    );
    check(
        "server edge limits (timeouts, max_header_bytes, max_connections, drain_secs)",
        old.server.limits != new.server.limits,
    );
    let names = |c: &Config| {
        c.accounts
            .iter()
            .map(|a| (a.name.clone(), a.path.clone()))
            .collect::<Vec<_>>()
    };
    check(
        "accounts (added, removed or moved)",
        names(old) != names(new),
    );
    for (a, b) in old.accounts.iter().zip(&new.accounts) {
        let (a, b) = (&a.account, &b.account);
        check("account.kind", a.kind != b.kind);
        check("account.token", a.token != b.token);
        check("account.app_id / corp_id", a.app_id != b.app_id);
        check("account.mode", a.mode != b.mode);
        check(
            "account.encoding_aes_key",
            key_of(&a.crypto) != key_of(&b.crypto)
                || key_of(&a.previous_crypto) != key_of(&b.previous_crypto),
        );
        check(
            "account.app_secret / corp_secret",
            a.app_secret != b.app_secret,
        );
        check("account.api_base_url", a.api_base_url != b.api_base_url);
    }
    check("store", old.store != new.store);
    check("log", format!("{:?}", old.log) != format!("{:?}", new.log));
    check(
        "delivery",
        format!("{:?}", old.delivery) != format!("{:?}", new.delivery),
    );
    check(
        "security",
        format!("{:?}", old.security) != format!("{:?}", new.security),
    );
    check(
        "admin",
        old.admin_api_key != new.admin_api_key || old.admin_listen != new.admin_listen,
    );
    check("agent / upstreams", old.agent != new.agent);
    check("console", old.console != new.console);
    let voice = |c: &Config| c.accounts.first().map(|a| a.rules.voice().clone());
    check(
        "agent.voice_as_text / voice_fallback_text",
        voice(old) != voice(new),
    );
    changed
}

fn key_of(crypto: &Option<crate::crypto::MessageCrypto>) -> Option<String> {
    crypto
        .as_ref()
        .map(|c| format!("{}:{}", hex::encode(c.key().bytes()), c.receive_id()))
}

/// Reloads on every SIGHUP until the process ends.
pub async fn on_sighup(reloader: Arc<Reloader>) {
    #[cfg(unix)]
    {
        let mut hup = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGHUP; reload with POST /admin/reload");
                return;
            }
        };
        while hup.recv().await.is_some() {
            tracing::info!("SIGHUP received, reloading the configuration");
            let _ = reloader.reload();
        }
    }
    #[cfg(not(unix))]
    let _ = reloader;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_are_declared_where_the_account_reads_them() {
        // The single account reads the top-level rules.
        assert!(declares_rules(
            "rules = []\n[account]\ntoken = \"t\"\n",
            PRIMARY_NAME
        ));
        assert!(!declares_rules("[account]\ntoken = \"t\"\n", PRIMARY_NAME));
        let named = r#"
rules = []
[[accounts]]
name = "own"
rules = []
[[accounts]]
name = "shares"
[[accounts]]
name = "default-only"
default_reply = { type = "text", content = "x" }
"#;
        assert!(declares_rules(named, "own"));
        assert!(declares_rules(named, "shares"), "inherits the top level");
        assert!(
            !declares_rules(named, "default-only"),
            "has its own, without rules"
        );
        assert!(!declares_rules(named, "missing"));
        assert!(!declares_rules(
            "[[accounts]]\nname = \"shares\"\n",
            "shares"
        ));
        // Not TOML (a reload validates before asking): never declared.
        assert!(!declares_rules("rules = [", PRIMARY_NAME));
    }
}
