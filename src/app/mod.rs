//! Building and running the server: bind first, serve later.
//!
//! - [`account`](self): one account assembled from its platform (token
//!   machinery, responder, late channel, dedup, dialect, allowlist, probes);
//! - `probes`, `tokens`, `error`, `overrides`: the parts it is built of;
//! - `observed`: 微信客服's pulled messages reported to the console;
//! - `edge`: the accept loop and the HTTP/1 limits of `[server]`;
//! - [`shutdown`]: the signal that stops the server.

mod account;
mod edge;
mod error;
mod observed;
mod overrides;
mod probes;
pub mod shutdown;
mod tokens;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;

pub use error::StartupError;
pub use overrides::{AccountOverrides, Overrides};
use probes::StoreProbe;
use tokens::open_store;
pub use tokens::{fetch_access_token, TokenParts};

use crate::clock::{Clock, SystemClock};
use crate::config::Config;
use crate::conversation::SharedRules;
use crate::metrics::Metrics;
use crate::platform::callback_ips;
use crate::platform::wechat_api::WechatApi;
use crate::reload::Reloader;
use crate::server::{self, AppState, Probe, RouterSettings, StateParts, TokenEndpoint};
use crate::token::RefresherGuard;

/// A bound, ready-to-run wxgate.
pub struct Application {
    listener: TcpListener,
    router: axum::Router,
    state: AppState,
    addr: SocketAddr,
    shutdown_grace: Duration,
    /// What every connection is held to.
    limits: crate::config::EdgeLimits,
    /// `[admin] listen`: the operator listener, bound, and its router.
    operator: Option<(TcpListener, axum::Router, SocketAddr)>,
    /// Each account's API (same order as the accounts), when it has credentials.
    apis: Vec<Option<WechatApi>>,
    /// Stop the background token refreshers when the application goes.
    _refreshers: Vec<RefresherGuard>,
    /// Stop the callback IP refreshers when the application goes.
    _ip_refreshers: Vec<callback_ips::RefreshGuard>,
    /// Stop the sweeps for cut conversation turns when the application goes.
    _sweepers: Vec<AbortOnDrop>,
}

/// Aborts a background task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// How often each node looks for conversation turns cut by a stopped node.
const SWEEP_EVERY: Duration = Duration::from_secs(2);

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
    /// Each account with an app id and secret gets its first access token
    /// here and keeps it fresh in the background; the platform refusing the
    /// credentials fails the build. Any other token problem (WeChat or Redis
    /// unreachable) is logged and shows in `/readyz`.
    pub async fn build_with(
        config: Config,
        overrides: Overrides,
    ) -> Result<Application, StartupError> {
        let Overrides {
            clock,
            listen,
            responder,
            late,
            dedup,
            mut accounts,
        } = overrides;
        if let Some(unknown) = accounts
            .keys()
            .find(|name| !config.accounts.iter().any(|a| &a.name == *name))
        {
            return Err(StartupError::NoAccount(format!(
                "overrides name an account that is not configured: {unknown:?}"
            )));
        }
        let mut primary = Some(AccountOverrides {
            responder,
            late,
            dedup,
        });
        let store = open_store(&config)?;
        let metrics = Arc::new(Metrics::new());
        let console = config
            .console
            .clone()
            .map(|c| Arc::new(server::console::Console::new(c, clock.clone())));
        let shared = account::Shared {
            config: &config,
            store: &store,
            metrics: &metrics,
            clock: &clock,
            console: console.as_ref(),
        };
        let mut probes: Vec<Arc<dyn Probe>> = vec![Arc::new(StoreProbe(store.clone()))];
        let mut refreshers = Vec::new();
        let mut ip_refreshers = Vec::new();
        let mut endpoints = Vec::new();
        let mut apis = Vec::new();
        let mut token_endpoint = None;
        for (index, entry) in config.accounts.iter().enumerate() {
            // The unnamed overrides are the primary account's.
            let overrides = accounts
                .remove(&entry.name)
                .or_else(|| primary.take().filter(|_| index == 0))
                .unwrap_or_default();
            let assembled = account::assemble(&shared, index, entry, overrides).await?;
            if let (0, Some(tokens), Some(api_key)) = (
                index,
                &assembled.tokens,
                config.token.internal_api_key.clone(),
            ) {
                token_endpoint = Some(TokenEndpoint {
                    tokens: tokens.clone(),
                    api_key,
                    clock: clock.clone(),
                });
            }
            probes.extend(assembled.probes);
            refreshers.extend(assembled.refresher);
            ip_refreshers.extend(assembled.ip_refresher);
            endpoints.push(assembled.endpoint);
            apis.push(assembled.api);
        }
        let sweepers = endpoints
            .iter()
            .filter(|e| e.delivery.conversations().is_some())
            .map(|e| {
                let endpoint = Arc::clone(e);
                AbortOnDrop(tokio::spawn(async move {
                    loop {
                        endpoint.delivery.sweep().await;
                        tokio::time::sleep(SWEEP_EVERY).await;
                    }
                }))
            })
            .collect();
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
            console,
        });
        let settings = RouterSettings {
            max_body_bytes: config.server.max_body_bytes,
        };
        let (router, operator_router) = match config.admin_listen {
            None => (server::router(state.clone(), &settings), None),
            Some(_) => {
                let (public, operator) = server::split_routers(state.clone(), &settings);
                (public, Some(operator))
            }
        };
        let listen = listen.unwrap_or(config.server.listen);
        let listener = bind(listen).await?;
        let addr = listener.local_addr().map_err(|source| StartupError::Bind {
            addr: listen,
            source,
        })?;
        let operator = match (config.admin_listen, operator_router) {
            (Some(admin), Some(router)) => {
                let listener = bind(admin).await?;
                let addr = listener.local_addr().map_err(|source| StartupError::Bind {
                    addr: admin,
                    source,
                })?;
                Some((listener, router, addr))
            }
            _ => None,
        };
        Ok(Application {
            listener,
            router,
            state,
            addr,
            shutdown_grace: config.delivery.shutdown_grace,
            limits: config.server.limits.clone(),
            operator,
            apis,
            _refreshers: refreshers,
            _ip_refreshers: ip_refreshers,
            _sweepers: sweepers,
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

    /// The operator listener's address (`[admin] listen`, port 0 resolved).
    pub fn operator_addr(&self) -> Option<SocketAddr> {
        self.operator.as_ref().map(|(_, _, addr)| *addr)
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
        let operator = self.operator.map(|(listener, router, _)| {
            let mut fired = fired_rx.clone();
            let stopped = async move {
                let _ = fired.wait_for(|fired| *fired).await;
            };
            edge::serve(listener, router, self.limits.clone(), stopped)
        });
        let public = edge::serve(self.listener, self.router, self.limits, signal);
        let serve = async move {
            match operator {
                Some(operator) => {
                    tokio::join!(public, operator);
                }
                None => public.await,
            }
        };
        let deadline = async move {
            let _ = fired_rx.wait_for(|fired| *fired).await;
            tokio::time::sleep(grace).await;
        };
        let result: std::io::Result<()> = tokio::select! {
            () = serve => Ok(()),
            () = deadline => {
                tracing::warn!(grace_secs = grace.as_secs(), "grace period over; closing remaining connections");
                Ok(())
            }
        };
        // The slow turns (upstream calls, late sends) still running behind
        // the answered requests get a grace period of their own.
        let until = tokio::time::Instant::now() + grace;
        let mut unfinished = 0;
        for endpoint in self.state.endpoints() {
            let left = until.saturating_duration_since(tokio::time::Instant::now());
            unfinished += endpoint.delivery.drain(left).await;
        }
        if unfinished > 0 {
            self.state.metrics().agent_delivery("expired");
            tracing::error!(
                unfinished,
                grace_secs = grace.as_secs(),
                "conversation turns still running at the end of the grace period; their messages are answered by the node that gets WeChat's next retry, or not at all"
            );
        } else {
            tracing::info!("no conversation turn left running");
        }
        result
    }
}

/// Binds `addr`.
async fn bind(addr: SocketAddr) -> Result<TcpListener, StartupError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| StartupError::Bind { addr, source })
}
