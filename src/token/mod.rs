//! Access tokens shared by every node of a deployment.
//!
//! Every outbound WeChat call needs an `access_token`. It lives about two
//! hours, obtaining one is rate limited, and with the classic endpoint a
//! refresh invalidates the previous token, so nodes must share one token and
//! refresh it once, not once each. The [`TokenManager`]:
//!
//! - caches the token and its expiry in memory, so callers almost never wait;
//! - refreshes it in the background before it expires ([`TokenManager::spawn_refresher`]);
//! - within a process, lets one caller fetch while the others wait for it
//!   (single flight);
//! - across processes, keeps the token in the shared [`Store`](crate::store::Store)
//!   and takes a lock there (`SET NX PX`, released only by its owner) so one
//!   node fetches while the others poll the store for the result. A node that
//!   dies holding the lock delays the others by at most the lock's TTL;
//! - backs off with jitter after WeChat throttles it, instead of looping.
//!
//! Tokens come from a [`TokenFetcher`], which the WeChat API client
//! implements; this module knows nothing of HTTP. Time comes from an
//! injectable [`Clock`](crate::clock::Clock).

mod error;
mod fetcher;
mod manager;
mod record;
mod source;

pub use self::error::TokenError;
pub use self::fetcher::{FetchError, FetchErrorKind, FetchFuture, FetchedToken, TokenFetcher};
pub use self::manager::{RefresherGuard, TokenManager, TokenSettings, TokenStatus};
pub use self::record::{AccessToken, IssuedToken};
pub use self::source::TokenSource;
