//! The token value and how it is kept in the shared store.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// An access token. Cheap to clone; `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct AccessToken(Arc<str>);

impl AccessToken {
    /// Wraps a token.
    pub fn new(value: impl Into<Arc<str>>) -> Self {
        AccessToken(value.into())
    }

    /// The token itself, to put in a request; never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AccessToken(<{} chars>)", self.0.len())
    }
}

/// A token with its lifetime, as cached and as shared between nodes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedToken {
    /// The token.
    pub access_token: AccessToken,
    /// When it was obtained (Unix seconds).
    pub fetched_at: i64,
    /// When it stops working (Unix seconds).
    pub expires_at: i64,
}

impl IssuedToken {
    /// Still accepted by WeChat at `now`.
    pub fn usable(&self, now: i64) -> bool {
        now < self.expires_at
    }

    /// Seconds of life left at `now` (0 when expired).
    pub fn expires_in(&self, now: i64) -> i64 {
        (self.expires_at - now).max(0)
    }

    /// When to replace it: `margin` seconds before expiry, but never in the
    /// first half of its life. WeChat's stable token endpoint hands out the
    /// current token until about 300 s before expiry, so a token fetched with
    /// little life left would otherwise be due at once, and again, and again.
    pub fn refresh_at(&self, margin_secs: i64) -> i64 {
        let half_life = self.fetched_at + (self.expires_at - self.fetched_at) / 2;
        (self.expires_at - margin_secs).max(half_life)
    }

    pub(super) fn encode(&self) -> Vec<u8> {
        let wire = Wire {
            access_token: self.access_token.expose().into(),
            fetched_at: self.fetched_at,
            expires_at: self.expires_at,
        };
        // Serialising three plain fields to JSON cannot fail.
        serde_json::to_vec(&wire).unwrap_or_default()
    }

    pub(super) fn decode(bytes: &[u8]) -> Option<IssuedToken> {
        let wire: Wire = serde_json::from_slice(bytes).ok()?;
        if wire.access_token.is_empty() {
            return None;
        }
        Some(IssuedToken {
            access_token: AccessToken::new(wire.access_token),
            fetched_at: wire.fetched_at,
            expires_at: wire.expires_at,
        })
    }
}

/// The stored form: JSON, so operators can read it with `redis-cli GET`.
#[derive(Serialize, Deserialize)]
struct Wire {
    access_token: String,
    fetched_at: i64,
    expires_at: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn issued(fetched_at: i64, expires_at: i64) -> IssuedToken {
        IssuedToken {
            access_token: AccessToken::new("T"),
            fetched_at,
            expires_at,
        }
    }

    #[test]
    fn refresh_is_due_margin_before_expiry_but_not_in_the_first_half() {
        assert_eq!(issued(0, 7200).refresh_at(300), 6900);
        assert_eq!(issued(0, 300).refresh_at(300), 150);
        assert_eq!(issued(0, 4).refresh_at(2), 2);
    }

    #[test]
    fn round_trips_through_the_store_encoding() {
        let t = issued(10, 7210);
        assert_eq!(IssuedToken::decode(&t.encode()), Some(t));
        assert_eq!(IssuedToken::decode(b"garbage"), None);
    }

    #[test]
    fn debug_hides_the_token() {
        let t = AccessToken::new("very-secret-token");
        assert!(!format!("{t:?}").contains("secret"));
    }
}
