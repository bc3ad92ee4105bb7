use std::time::Duration;

use thiserror::Error;

use super::{FetchError, FetchErrorKind};
use crate::store::StoreError;

/// Why no access token could be had.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum TokenError {
    /// The issuer refused or failed the fetch.
    #[error("cannot obtain an access token: {0}")]
    Fetch(#[source] FetchError),
    /// A recent fetch failed and the manager is waiting before it tries again,
    /// rather than hammering a throttled or misconfigured API.
    #[error("access token refresh is backing off for {remaining:?} after: {last_error}")]
    BackingOff {
        /// Until the next attempt.
        remaining: Duration,
        /// What went wrong last.
        last_error: String,
    },
    /// The shared store failed (Redis down, timed out…).
    #[error("access token store: {0}")]
    Store(#[from] StoreError),
    /// Another node held the refresh lock and no token appeared in time.
    #[error("waited {waited:?} for another node to refresh the access token, none appeared")]
    WaitTimedOut {
        /// How long.
        waited: Duration,
    },
}

impl TokenError {
    /// The credentials themselves are wrong: a configuration error, fatal at start-up.
    pub fn is_config(&self) -> bool {
        matches!(self, TokenError::Fetch(e) if e.kind() == FetchErrorKind::Credentials)
    }
}
