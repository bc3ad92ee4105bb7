//! The seam between the token manager and whatever obtains tokens.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use super::AccessToken;

/// A token as the issuer handed it out.
#[derive(Debug, Clone)]
pub struct FetchedToken {
    /// The token.
    pub access_token: AccessToken,
    /// Its remaining lifetime as the issuer reported it.
    pub expires_in: Duration,
}

/// What [`TokenFetcher::fetch`] returns.
pub type FetchFuture<'a> =
    Pin<Box<dyn Future<Output = Result<FetchedToken, FetchError>> + Send + 'a>>;

/// Obtains a fresh access token (the WeChat API client in production, fakes in tests).
pub trait TokenFetcher: Send + Sync {
    /// Fetches a token. `force_refresh` asks the issuer to invalidate the
    /// current token and issue a new one; it is set only when the current
    /// token is known to be invalid, and issuers without the notion ignore it.
    fn fetch(&self, force_refresh: bool) -> FetchFuture<'_>;
}

/// How a failed fetch should be treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FetchErrorKind {
    /// The credentials are wrong (bad app id or secret): a configuration
    /// error that retrying cannot fix.
    Credentials,
    /// This host may not call the API (IP whitelist): operators must act.
    NotAllowed,
    /// The issuer throttles us (quota, frequency limit, system busy): back off.
    Throttled,
    /// The issuer could not be reached or answered nonsense: retry later.
    Unavailable,
}

/// Why a fetch failed: a kind to branch on and the cause to show.
#[derive(Debug)]
pub struct FetchError {
    kind: FetchErrorKind,
    source: Box<dyn std::error::Error + Send + Sync + 'static>,
}

impl FetchError {
    /// Wraps the issuer's error.
    pub fn new(
        kind: FetchErrorKind,
        source: impl Into<Box<dyn std::error::Error + Send + Sync + 'static>>,
    ) -> Self {
        FetchError {
            kind,
            source: source.into(),
        }
    }

    /// How to treat it.
    pub fn kind(&self) -> FetchErrorKind {
        self.kind
    }

    /// The issuer's own error, for callers that know its type.
    pub fn cause(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
        &*self.source
    }
}

impl std::fmt::Display for FetchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The cause's text is the message; it is not repeated as a source.
        std::fmt::Display::fmt(&self.source, f)
    }
}

impl std::error::Error for FetchError {}
