//! wxgate: a callback gateway for WeChat Official Accounts, WeCom apps and
//! WeChat Customer Service.
//!
//! The crate is layered, bottom to top; a module uses its own layer or those
//! below, never above (`tests/layering.rs` checks it, `docs/architecture.md`
//! draws it):
//!
//! 1. [`domain`], [`clock`], [`secret`]: the platform-neutral vocabulary
//!    (messages, replies, conversation keys, capabilities) and small seams.
//! 2. [`crypto`], [`message`]: the WeChat wire codec, bytes and strings only.
//! 3. [`rules`], [`security`]: keyword rules over domain messages; the IP allowlist.
//! 4. [`store`], [`metrics`], [`token`]: shared state, counters, access tokens.
//! 5. [`conversation`]: dedup, the deadline race, overload, late results.
//! 6. [`agent`]: rules hand messages to upstream protocols (webhook, OpenAI).
//! 7. [`config`], [`telemetry`], [`reload`]: the validated configuration,
//!    logging, all-at-once rule reloads.
//! 8. [`platform`]: each platform's dialect, capabilities, API and late channel.
//! 9. [`server`]: the public and operator routers.
//! 10. [`app`]: assembles each account from its platform; binds and runs.
//! 11. [`cli`]: the subcommands; the binary only calls [`cli::run`].
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
pub mod outbound;
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
