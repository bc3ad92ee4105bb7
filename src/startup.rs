//! Building and running the server: bind first, serve later.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::net::TcpListener;

use crate::callback::Callback;
use crate::clock::{Clock, SystemClock};
use crate::config::{Config, StoreConfig};
use crate::delivery::{
    Dedup, Delivery, LateDelivery, MemoryDedup, NoLateDelivery, Responder, RulesResponder,
    SharedRules,
};
use crate::metrics::Metrics;
use crate::reload::Reloader;
use crate::security::Allowlist;
use crate::server::{self, AppState, Probe, ProbeFuture, RouterSettings, StateParts};

/// A bound, ready-to-run wxgate.
pub struct Application {
    listener: TcpListener,
    router: axum::Router,
    state: AppState,
    addr: SocketAddr,
    rules: SharedRules,
    shutdown_grace: Duration,
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

/// The in-memory store is always reachable; it reports itself as such.
struct MemoryStoreProbe;

impl Probe for MemoryStoreProbe {
    fn name(&self) -> &str {
        "store"
    }
    fn check(&self) -> ProbeFuture<'_> {
        Box::pin(async { Ok("memory".to_owned()) })
    }
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
    /// The configured store backend is not available in this build.
    #[error("store backend {0} is not supported yet")]
    Store(&'static str),
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
    pub async fn build_with(
        config: Config,
        overrides: Overrides,
    ) -> Result<Application, StartupError> {
        let probe: Arc<dyn Probe> = match &config.store {
            StoreConfig::Memory => Arc::new(MemoryStoreProbe),
            StoreConfig::Redis { .. } => return Err(StartupError::Store("redis")),
        };
        let metrics = Arc::new(Metrics::new());
        let callback = Callback::new(
            &config.account,
            config.server.timestamp_window_secs,
            overrides.clock,
        );
        let rules: SharedRules = Arc::new(ArcSwap::new(config.rules.clone()));
        let responder = overrides
            .responder
            .unwrap_or_else(|| Arc::new(RulesResponder::new(rules.clone())));
        let dedup = overrides.dedup.unwrap_or_else(|| {
            Arc::new(MemoryDedup::new(
                config.delivery.dedup_window,
                config.delivery.dedup_capacity,
            ))
        });
        let late = overrides.late.unwrap_or_else(|| Arc::new(NoLateDelivery));
        let delivery = Delivery::new(
            dedup,
            responder,
            late,
            config.delivery.settings.clone(),
            metrics.clone(),
        );
        let allowlist = Arc::new(Allowlist::new(
            config.security.allowlist,
            config.security.extra_allowed_ips.clone(),
        ));
        let state = AppState::new(StateParts {
            callback,
            rules: rules.clone(),
            delivery,
            metrics,
            allowlist,
            trusted_proxies: config.security.trusted_proxies.clone(),
            probes: vec![probe],
            reloader: Some(Arc::new(Reloader::new(config.clone(), rules.clone()))),
            admin_key: config.admin_api_key.clone(),
        });
        let settings = RouterSettings {
            path: config.server.path.clone(),
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
            rules,
            shutdown_grace: config.delivery.shutdown_grace,
        })
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

    /// The rules in force (swap them to reload).
    pub fn rules(&self) -> SharedRules {
        self.rules.clone()
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
