//! Building and running the server: bind first, serve later.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;

use crate::callback::Callback;
use crate::clock::{Clock, SystemClock};
use crate::config::{Config, StoreConfig};
use crate::server::{self, AppState, Probe, ProbeFuture, RouterSettings};

/// A bound, ready-to-run wxgate.
pub struct Application {
    listener: TcpListener,
    router: axum::Router,
    state: AppState,
    addr: SocketAddr,
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
        let probe: Arc<dyn Probe> = match &config.store {
            StoreConfig::Memory => Arc::new(MemoryStoreProbe),
            StoreConfig::Redis { .. } => return Err(StartupError::Store("redis")),
        };
        let callback = Callback::new(&config.account, config.server.timestamp_window_secs, clock);
        let state = AppState::new(callback, config.rules.clone(), vec![probe]);
        let settings = RouterSettings {
            path: config.server.path.clone(),
            max_body_bytes: config.server.max_body_bytes,
        };
        let router = server::router(state.clone(), &settings);
        let listener = TcpListener::bind(config.server.listen)
            .await
            .map_err(|source| StartupError::Bind {
                addr: config.server.listen,
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| StartupError::Bind {
            addr: config.server.listen,
            source,
        })?;
        Ok(Application {
            listener,
            router,
            state,
            addr,
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

    /// Serves until `shutdown` completes, then drains requests in flight.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        axum::serve(
            self.listener,
            self.router
                .into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(shutdown)
        .await
    }
}
