//! Building and running the server: bind first, serve later.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::net::TcpListener;

use crate::agent::{AgentParts, AgentResponder, CustomServiceDelivery};
use crate::callback::Callback;
use crate::callback_ips;
use crate::clock::{Clock, SystemClock};
use crate::config::{AccountEntry, AccountKind, Config, StoreConfig};
use crate::delivery::{
    Dedup, Delivery, LateDelivery, MemoryDedup, NoLateDelivery, Responder, RulesResponder,
    SharedRules, StoreDedup,
};
use crate::metrics::Metrics;
use crate::reload::Reloader;
use crate::security::Allowlist;
use crate::security::AllowlistMode;
use crate::server::{
    self, AppState, Endpoint, Probe, ProbeFuture, RouterSettings, StateParts, TokenEndpoint,
};
use crate::store::{MemoryStore, Namespace, RedisSettings, RedisStore, Store, StoreError};
use crate::token::{IssuedToken, RefresherGuard, TokenError, TokenManager, TokenSettings};
use crate::wechat_api::{ClientSettings, TokenSource, WechatApi, WechatClient, WechatError};
use crate::wecom::{AppDelivery, KfParts, KfPuller, KfResponder};

/// Upper bound on every Redis operation.
const STORE_TIMEOUT: Duration = Duration::from_secs(2);

/// A bound, ready-to-run wxgate.
pub struct Application {
    listener: TcpListener,
    router: axum::Router,
    state: AppState,
    addr: SocketAddr,
    shutdown_grace: Duration,
    /// Each account's API (same order as the accounts), when it has credentials.
    apis: Vec<Option<WechatApi>>,
    /// Stop the background token refreshers when the application goes.
    _refreshers: Vec<RefresherGuard>,
    /// Stop the callback IP refreshers when the application goes.
    _ip_refreshers: Vec<callback_ips::RefreshGuard>,
}

/// Parts that can be swapped in when building (tests, embedding).
pub struct Overrides {
    /// The wall clock (default: the system clock).
    pub clock: Arc<dyn Clock>,
    /// The reply decision (default: the rules of the config).
    pub responder: Option<Arc<dyn Responder>>,
    /// Where late replies go (default: logged and dropped).
    pub late: Option<Arc<dyn LateDelivery>>,
    /// The dedup store (default: memory, from the config).
    pub dedup: Option<Arc<dyn Dedup>>,
    /// Listen here instead of `server.listen` (`serve --listen`).
    pub listen: Option<SocketAddr>,
}

impl Default for Overrides {
    fn default() -> Self {
        Overrides {
            clock: Arc::new(SystemClock),
            responder: None,
            late: None,
            dedup: None,
            listen: None,
        }
    }
}

/// Readiness of an account's callback IP allowlist: WeChat's list must be loaded.
struct AllowlistProbe {
    /// `callback_ips`, or `callback_ips:{account}` after the first account.
    name: String,
    allowlist: Arc<Allowlist>,
}

impl Probe for AllowlistProbe {
    fn name(&self) -> &str {
        &self.name
    }
    fn check(&self) -> ProbeFuture<'_> {
        let count = self.allowlist.fetched_len();
        Box::pin(async move {
            if count > 0 {
                Ok(format!("{count} WeChat callback IP ranges"))
            } else {
                Err(
                    "WeChat's callback IP list is not loaded yet; pushes would be refused"
                        .to_owned(),
                )
            }
        })
    }
}

/// Readiness of the shared store: a PING (Redis) with the reason when it fails.
struct StoreProbe(Arc<dyn Store>);

impl Probe for StoreProbe {
    fn name(&self) -> &str {
        "store"
    }
    fn check(&self) -> ProbeFuture<'_> {
        Box::pin(async { self.0.ping().await.map_err(|e| e.to_string()) })
    }
}

/// Readiness of the access token: usable now, when it was last refreshed,
/// and the last error.
struct TokenProbe {
    /// `token`, or `token:{account}` for the accounts after the first.
    name: String,
    tokens: TokenManager,
    clock: Arc<dyn Clock>,
}

impl Probe for TokenProbe {
    fn name(&self) -> &str {
        &self.name
    }
    fn check(&self) -> ProbeFuture<'_> {
        let status = self.tokens.status();
        let now = self.clock.now_unix();
        let result = match status.expires_at {
            Some(at) if at > now => {
                let refreshed = status
                    .last_refresh
                    .map_or("never".to_owned(), |t| t.to_string());
                let mut s = format!("valid for {} s, last refresh at {refreshed}", at - now);
                if let Some(e) = status.last_error {
                    s.push_str(&format!("; last error: {e}"));
                }
                Ok(s)
            }
            _ => Err(status
                .last_error
                .unwrap_or_else(|| "no access token yet".to_owned())),
        };
        Box::pin(std::future::ready(result))
    }
}

/// The access token machinery of one account, built from the config.
pub struct TokenParts {
    /// The shared store the tokens live in.
    pub store: Arc<dyn Store>,
    /// The token manager.
    pub tokens: TokenManager,
    /// The API with token handling.
    pub api: WechatApi,
}

impl TokenParts {
    /// Builds the store, client and manager of the account `name` (the
    /// primary one when `None`); `None` when it has no app id and secret (no
    /// outbound calls, so no tokens). Does no I/O.
    pub fn from_config(
        config: &Config,
        name: Option<&str>,
        clock: Arc<dyn Clock>,
    ) -> Result<Option<TokenParts>, StartupError> {
        let entry = config.find_account(name).map_err(StartupError::NoAccount)?;
        let store = open_store(config)?;
        TokenParts::for_account(config, entry, store, clock)
    }

    fn for_account(
        config: &Config,
        entry: &AccountEntry,
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
    ) -> Result<Option<TokenParts>, StartupError> {
        let account = &entry.account;
        let (Some(app_id), Some(app_secret)) = (&account.app_id, &account.app_secret) else {
            return Ok(None);
        };
        let t = &config.token;
        let token_source = if account.kind.is_wecom() {
            TokenSource::WeCom
        } else {
            t.source
        };
        let client = WechatClient::new(ClientSettings {
            base_url: account.api_base_url.clone(),
            timeout: Duration::from_secs(t.timeout_secs),
            app_id: app_id.clone(),
            app_secret: app_secret.clone(),
            token_source,
        })
        .map_err(StartupError::Client)?;
        let client = Arc::new(client);
        let settings = TokenSettings::new(
            Duration::from_secs(t.refresh_margin_secs),
            Duration::from_millis(t.lock_ttl_ms),
        );
        let tokens = TokenManager::new(
            client.clone(),
            store.clone(),
            &Namespace::for_app(&entry.namespace),
            clock,
            settings,
        );
        let api = WechatApi::new(client, tokens.clone());
        Ok(Some(TokenParts { store, tokens, api }))
    }
}

fn open_store(config: &Config) -> Result<Arc<dyn Store>, StartupError> {
    Ok(match &config.store {
        StoreConfig::Memory => Arc::new(MemoryStore::new()),
        StoreConfig::Redis { url } => Arc::new(
            RedisStore::open(&RedisSettings {
                url: url.clone(),
                timeout: STORE_TIMEOUT,
            })
            .map_err(StartupError::Store)?,
        ),
    })
}

/// A probe name: `what` for the first account, `what:{name}` for the others.
fn suffixed(what: &str, index: usize, name: &str) -> String {
    if index == 0 {
        what.to_owned()
    } else {
        format!("{what}:{name}")
    }
}

/// Who decides the reply, and where late replies go.
type Deciders = (Arc<dyn Responder>, Arc<dyn LateDelivery>);

/// What one account's deciders are built from.
struct DecidersFor<'a> {
    config: &'a Config,
    entry: &'a AccountEntry,
    rules: &'a SharedRules,
    store: &'a Arc<dyn Store>,
    namespace: &'a Namespace,
    api: Option<&'a WechatApi>,
    metrics: &'a Arc<Metrics>,
    clock: &'a Arc<dyn Clock>,
}

/// The responder and late hook of one account: the agent bridge when
/// upstreams are configured, else the plain rules; late answers through the
/// account's send API; Customer Service notifications start a pull.
/// Overrides win.
fn deciders(
    parts: DecidersFor<'_>,
    responder: Option<Arc<dyn Responder>>,
    late: Option<Arc<dyn LateDelivery>>,
) -> Result<Deciders, StartupError> {
    let DecidersFor {
        config,
        entry,
        rules,
        store,
        namespace,
        api,
        metrics,
        clock,
    } = parts;
    let agent = &config.agent;
    let responder: Arc<dyn Responder> = match responder {
        Some(r) => r,
        None if agent.upstreams.is_empty() => Arc::new(RulesResponder::new(rules.clone())),
        None => Arc::new(
            AgentResponder::new(AgentParts {
                settings: agent.clone(),
                rules: rules.clone(),
                store: store.clone(),
                namespace: namespace.clone(),
                app_id: entry.account.app_id.clone().unwrap_or_default(),
                overload: config.delivery.settings.overload.clone(),
                metrics: metrics.clone(),
            })
            .map_err(|e| StartupError::Upstream(e.to_string()))?,
        ),
    };
    let late: Arc<dyn LateDelivery> = match (late, api, &entry.account.kind) {
        (Some(l), _, _) => l,
        // Customer Service answers are sent by the puller.
        (None, _, AccountKind::Kf(_)) => Arc::new(NoLateDelivery),
        (None, Some(api), AccountKind::WeCom { agent_id }) => {
            Arc::new(AppDelivery::new(api.clone(), *agent_id, metrics.clone()))
        }
        (None, Some(api), AccountKind::Official) => Arc::new(CustomServiceDelivery::new(
            api.clone(),
            metrics.clone(),
            agent.typing,
        )),
        (None, None, _) => {
            if !agent.upstreams.is_empty() {
                tracing::warn!(
                    account = %entry.name,
                    "upstreams are configured but the account has no API credentials: answers later than agent.passive_budget_ms cannot be sent and are dropped"
                );
            }
            Arc::new(NoLateDelivery)
        }
    };
    let responder: Arc<dyn Responder> = match (&entry.account.kind, api) {
        (AccountKind::Kf(settings), Some(api)) => {
            let puller = KfPuller::new(KfParts {
                api: api.clone(),
                store: store.clone(),
                namespace: namespace.clone(),
                responder: responder.clone(),
                settings: settings.clone(),
                clock: clock.clone(),
                metrics: metrics.clone(),
            });
            Arc::new(KfResponder::new(Arc::new(puller), responder))
        }
        _ => responder,
    };
    Ok((responder, late))
}

/// Gets the account's current access token once, as `wxgate token` does:
/// from the shared store when another node put it there, else from WeChat.
pub async fn fetch_access_token(
    config: &Config,
    account: Option<&str>,
) -> Result<IssuedToken, StartupError> {
    let parts = TokenParts::from_config(config, account, Arc::new(SystemClock))?
        .ok_or(StartupError::NoCredentials)?;
    parts.tokens.token().await.map_err(StartupError::Token)
}

/// Why the application could not be built.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// The listen address cannot be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// Address.
        addr: SocketAddr,
        /// Cause.
        source: std::io::Error,
    },
    /// The configured store cannot be used (a URL Redis does not accept).
    #[error("store: {0}")]
    Store(StoreError),
    /// The outbound API client cannot be built.
    #[error("WeChat API client: {0}")]
    Client(WechatError),
    /// WeChat refused the account's credentials (40013, 40125, 40001 on a
    /// token request): the configuration is wrong.
    #[error("invalid configuration: {0}")]
    Credentials(TokenError),
    /// An upstream's HTTP client cannot be built.
    #[error("agent upstream client: {0}")]
    Upstream(String),
    /// No access token could be had (`wxgate token`).
    #[error("{0}")]
    Token(TokenError),
    /// Access tokens need `account.app_id` and `account.app_secret`.
    #[error("no access token: the account's app_id and app_secret (corp_id and corp_secret for WeCom) are not set")]
    NoCredentials,
    /// `--account` names no configured account.
    #[error("{0}")]
    NoAccount(String),
}

impl StartupError {
    /// The configuration is at fault (exit code 78 rather than 1).
    pub fn is_config(&self) -> bool {
        match self {
            StartupError::Credentials(_)
            | StartupError::NoCredentials
            | StartupError::NoAccount(_)
            | StartupError::Store(_) => true,
            StartupError::Token(e) => e.is_config(),
            _ => false,
        }
    }
}

impl Application {
    /// Binds the listener and builds the state with the system clock.
    pub async fn build(config: Config) -> Result<Application, StartupError> {
        Application::build_with_clock(config, Arc::new(SystemClock)).await
    }

    /// As [`Application::build`] with an injected clock (tests, replays).
    pub async fn build_with_clock(
        config: Config,
        clock: Arc<dyn Clock>,
    ) -> Result<Application, StartupError> {
        Application::build_with(
            config,
            Overrides {
                clock,
                ..Overrides::default()
            },
        )
        .await
    }

    /// As [`Application::build`] with parts swapped in.
    ///
    /// When the account has an app id and secret, this also gets the first
    /// access token and starts refreshing it in the background; WeChat
    /// refusing the credentials fails the build. Any other token problem
    /// (WeChat or Redis unreachable) is logged and shows in `/readyz`.
    pub async fn build_with(
        config: Config,
        overrides: Overrides,
    ) -> Result<Application, StartupError> {
        let clock = overrides.clock;
        let store = open_store(&config)?;
        let metrics = Arc::new(Metrics::new());
        let mut probes: Vec<Arc<dyn Probe>> = vec![Arc::new(StoreProbe(store.clone()))];
        let mut refreshers = Vec::new();
        let mut ip_refreshers = Vec::new();
        let mut endpoints = Vec::new();
        let mut apis = Vec::new();
        let mut token_endpoint = None;
        let mut responder_override = overrides.responder;
        let mut late_override = overrides.late;
        let mut dedup_override = overrides.dedup;
        for (index, entry) in config.accounts.iter().enumerate() {
            let namespace = Namespace::for_app(&entry.namespace);
            let mut tokens = None;
            let mut api = None;
            if let Some(parts) =
                TokenParts::for_account(&config, entry, store.clone(), clock.clone())?
            {
                match parts.tokens.token().await {
                    Ok(_) => tracing::info!(
                        account = %entry.name,
                        kind = entry.account.kind.as_str(),
                        "access token ready"
                    ),
                    Err(e) if e.is_config() => return Err(StartupError::Credentials(e)),
                    Err(e) => tracing::warn!(
                        account = %entry.name,
                        error = %e,
                        "no access token yet; retrying in the background"
                    ),
                }
                refreshers.push(parts.tokens.spawn_refresher());
                probes.push(Arc::new(TokenProbe {
                    name: suffixed("token", index, &entry.name),
                    tokens: parts.tokens.clone(),
                    clock: clock.clone(),
                }));
                if index == 0 {
                    token_endpoint =
                        config
                            .token
                            .internal_api_key
                            .clone()
                            .map(|api_key| TokenEndpoint {
                                tokens: parts.tokens.clone(),
                                api_key,
                                clock: clock.clone(),
                            });
                }
                tokens = Some(parts.tokens);
                api = Some(parts.api);
            }
            if let (AccountKind::Kf(_), None) = (&entry.account.kind, &api) {
                // Validation requires the secret; this is only reached when
                // the corp id is missing too, which validation also refuses.
                return Err(StartupError::NoCredentials);
            }
            let rules: SharedRules = Arc::new(ArcSwap::new(entry.rules.clone()));
            let (responder, late) = deciders(
                DecidersFor {
                    config: &config,
                    entry,
                    rules: &rules,
                    store: &store,
                    namespace: &namespace,
                    api: api.as_ref(),
                    metrics: &metrics,
                    clock: &clock,
                },
                responder_override.take(),
                late_override.take(),
            )?;
            // In memory for one node; through the shared store (Redis) so that
            // nodes recognise one another's retries.
            let dedup: Arc<dyn Dedup> = match (dedup_override.take(), &config.store) {
                (Some(d), _) => d,
                (None, StoreConfig::Memory) => Arc::new(MemoryDedup::new(
                    config.delivery.dedup_window,
                    config.delivery.dedup_capacity,
                )),
                (None, StoreConfig::Redis { .. }) => Arc::new(StoreDedup::new(
                    store.clone(),
                    namespace.clone(),
                    config.delivery.dedup_window,
                )),
            };
            let delivery = Delivery::new(
                dedup,
                responder,
                late,
                config.delivery.settings.clone(),
                metrics.clone(),
            );
            let callback = Callback::new(
                &entry.account,
                config.server.timestamp_window_secs,
                clock.clone(),
            );
            let allowlist = Arc::new(Allowlist::new(
                config.security.allowlist,
                config.security.extra_allowed_ips.clone(),
            ));
            if let (Some(api), AllowlistMode::Wechat) = (&api, config.security.allowlist) {
                probes.push(Arc::new(AllowlistProbe {
                    name: suffixed("callback_ips", index, &entry.name),
                    allowlist: allowlist.clone(),
                }));
                ip_refreshers.push(callback_ips::spawn(
                    api.clone(),
                    allowlist.clone(),
                    store.clone(),
                    namespace.clone(),
                ));
            }
            endpoints.push(Arc::new(Endpoint {
                name: entry.name.clone(),
                kind: entry.account.kind.as_str(),
                path: entry.path.clone(),
                callback,
                rules,
                delivery,
                tokens,
                allowlist,
            }));
            apis.push(api);
        }
        let reload_rules = endpoints
            .iter()
            .map(|e| (e.name.clone(), e.rules.clone()))
            .collect();
        let state = AppState::new(StateParts {
            endpoints,
            metrics,
            trusted_proxies: config.security.trusted_proxies.clone(),
            probes,
            reloader: Some(Arc::new(Reloader::new(config.clone(), reload_rules))),
            admin_key: config.admin_api_key.clone(),
            token_endpoint,
        });
        let settings = RouterSettings {
            max_body_bytes: config.server.max_body_bytes,
        };
        let router = server::router(state.clone(), &settings);
        let listen = overrides.listen.unwrap_or(config.server.listen);
        let listener = TcpListener::bind(listen)
            .await
            .map_err(|source| StartupError::Bind {
                addr: listen,
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| StartupError::Bind {
            addr: listen,
            source,
        })?;
        Ok(Application {
            listener,
            router,
            state,
            addr,
            shutdown_grace: config.delivery.shutdown_grace,
            apis,
            _refreshers: refreshers,
            _ip_refreshers: ip_refreshers,
        })
    }

    /// The primary account's WeChat API with the shared access token, when
    /// it has credentials.
    pub fn wechat_api(&self) -> Option<WechatApi> {
        self.apis.first().cloned().flatten()
    }

    /// The address actually bound (port 0 resolved).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The port actually bound.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The shared state (for reloads and tests).
    pub fn state(&self) -> AppState {
        self.state.clone()
    }

    /// The config reloader (SIGHUP handler).
    pub fn reloader(&self) -> Option<Arc<Reloader>> {
        self.state.reloader()
    }

    /// The primary account's rules in force (swap them to reload).
    pub fn rules(&self) -> SharedRules {
        self.state.primary().rules.clone()
    }

    /// Serves until `shutdown` completes: then stops accepting connections,
    /// lets requests in flight finish, and gives up on stragglers after the
    /// configured grace period.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let (fired_tx, mut fired_rx) = tokio::sync::watch::channel(false);
        let signal = async move {
            shutdown.await;
            let _ = fired_tx.send(true);
        };
        let grace = self.shutdown_grace;
        let serve = axum::serve(
            self.listener,
            self.router
                .into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(signal);
        let deadline = async move {
            let _ = fired_rx.wait_for(|fired| *fired).await;
            tokio::time::sleep(grace).await;
        };
        tokio::select! {
            result = serve => result,
            () = deadline => {
                tracing::warn!(grace_secs = grace.as_secs(), "grace period over; closing remaining connections");
                Ok(())
            }
        }
    }
}
