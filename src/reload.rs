//! Hot reload: re-read the config file, validate it, swap the rules.
//!
//! Triggered by SIGHUP and by `POST /admin/reload`. A valid file replaces the
//! rules atomically (requests in flight finish with the rules they started
//! with); an invalid one is rejected with its errors and the old rules stay.
//! Settings that only take effect at start-up are named in the log.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use crate::config::{Config, ConfigError};
use crate::conversation::SharedRules;

/// What a successful reload changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReloadReport {
    /// Rules now in force.
    pub rules: usize,
    /// Changed settings that need a restart to take effect.
    pub restart_required: Vec<&'static str>,
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

    /// Re-reads and applies the config file.
    pub fn reload(&self) -> Result<ReloadReport, ConfigError> {
        let fresh = match Config::load(&self.path) {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %e, "reload rejected; the previous rules stay in force");
                return Err(e);
            }
        };
        let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        let restart_required = restart_required(&running, &fresh);
        // Accounts are matched by name; an added or removed account waits
        // for a restart (and is named in restart_required).
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
        let report = ReloadReport {
            rules,
            restart_required,
        };
        if report.restart_required.is_empty() {
            tracing::info!(rules = report.rules, "configuration reloaded");
        } else {
            tracing::warn!(
                rules = report.rules,
                restart_required = %report.restart_required.join(", "),
                "configuration reloaded; these changed settings need a restart to take effect"
            );
        }
        Ok(report)
    }
}

/// Names the settings that differ and cannot change while running.
fn restart_required(old: &Config, new: &Config) -> Vec<&'static str> {
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
    check("admin", old.admin_api_key != new.admin_api_key);
    check("agent / upstreams", old.agent != new.agent);
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
