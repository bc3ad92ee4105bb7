//! wxgate: a WeChat Official Account callback gateway.
//!
//! The crate is layered; each module owns one thing and dependencies point
//! one way (`server → callback → {crypto, message, rules}`; `rules → message`):
//!
//! - [`crypto`]: signatures and the AES envelope, byte for byte as WeChat does
//!   them. Bytes in, bytes out; no HTTP, no XML.
//! - [`message`]: XML parsing (DTDs refused), typed inbound messages and
//!   events, reply rendering. No crypto, no HTTP.
//! - [`rules`]: the TOML keyword rule engine. Knows messages only.
//! - [`callback`]: the HTTP-free pipeline joining the three above.
//! - [`delivery`]: retries deduplicated, the deadline, overload replies, late results.
//! - [`agent`]: the agent bridge: rules hand messages to upstreams (webhook or
//!   OpenAI-compatible); answers come passively or late through the
//!   customer-service API (`agent → {rules, store, wechat_api, delivery}`).
//! - [`security`]: the callback IP allowlist. [`metrics`]: Prometheus counters.
//! - [`store`]: the shared key/value store (memory, or Redis for several nodes).
//! - [`token`]: the access token, cached, refreshed early, refreshed once across nodes.
//! - [`wechat_api`]: the outbound WeChat API; refreshes tokens through [`token`]'s
//!   `TokenFetcher` seam, so `wechat_api → token → store`.
//! - [`config`]: the configuration file, validated once at start-up.
//! - [`server`]: axum routes, status codes and the layer stack.
//! - [`startup`]: binds the listener and wires everything together.
//! - [`clock`], [`secret`], [`shutdown`], [`telemetry`], [`cli`]: the small parts.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod agent;
pub mod app;
pub mod cli;
pub mod clock;
pub mod config;
pub mod conversation;
pub mod crypto;
pub mod domain;
pub mod message;
pub mod metrics;
pub mod platform;
pub mod reload;
pub mod rules;
pub mod secret;
pub mod security;
pub mod server;
pub mod store;
pub mod telemetry;
pub mod token;

pub use app::Application;
pub use config::Config;
