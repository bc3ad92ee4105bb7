//! DingTalk's robot callback signature, pure: the `timestamp` header
//! (milliseconds) and `sign` = Base64(HMAC-SHA256(AppSecret, timestamp +
//! "\n" + AppSecret)), refused when the timestamp is more than an hour off
//! (docs/platforms/dingtalk.md, vectors in tests/fixtures/dingtalk/).

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;
use thiserror::Error;

use crate::secret::Secret;

/// How far the `timestamp` header may be from now.
pub const WINDOW_MS: i64 = 3600 * 1000;

/// Why a callback's signature is refused.
#[derive(Debug, Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum SignError {
    /// `timestamp` or `sign` is missing.
    #[error("missing header `{0}`")]
    Missing(&'static str),
    /// `timestamp` is not a number.
    #[error("timestamp is not a number of milliseconds")]
    BadTimestamp,
    /// More than an hour off.
    #[error("timestamp is {skew_ms} ms away from now, more than an hour")]
    Stale {
        /// How far off.
        skew_ms: i64,
    },
    /// The signature does not match.
    #[error("signature mismatch")]
    Mismatch,
}

/// `sign` for `timestamp` (as sent, in milliseconds).
pub fn sign(timestamp: &str, app_secret: &Secret) -> String {
    let secret = app_secret.expose().as_bytes();
    // HMAC takes keys of any length.
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).unwrap_or_else(|_| unreachable!());
    mac.update(timestamp.as_bytes());
    mac.update(b"\n");
    mac.update(secret);
    STANDARD.encode(mac.finalize().into_bytes())
}

/// Checks a callback's headers at `now_ms`.
pub fn verify(
    timestamp: Option<&str>,
    given: Option<&str>,
    app_secret: &Secret,
    now_ms: i64,
) -> Result<(), SignError> {
    let timestamp = timestamp
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or(SignError::Missing("timestamp"))?;
    let given = given
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .ok_or(SignError::Missing("sign"))?;
    let ts: i64 = timestamp.parse().map_err(|_| SignError::BadTimestamp)?;
    let skew_ms = now_ms.saturating_sub(ts);
    if skew_ms.unsigned_abs() > WINDOW_MS.unsigned_abs() {
        return Err(SignError::Stale { skew_ms });
    }
    let want = sign(timestamp, app_secret);
    if want.as_bytes().ct_eq(given.as_bytes()).into() {
        Ok(())
    } else {
        Err(SignError::Mismatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VECTORS: &str = include_str!("../../../tests/fixtures/dingtalk/vectors.json");

    #[test]
    fn the_recorded_signatures_hold() {
        let all: serde_json::Value = serde_json::from_str(VECTORS).unwrap();
        let cases = all["sign"].as_array().unwrap();
        assert!(!cases.is_empty());
        for case in cases {
            let secret = Secret::new(case["app_secret"].as_str().unwrap());
            let ts = case["timestamp"].as_str().unwrap();
            let want = case["sign"].as_str().unwrap();
            assert_eq!(sign(ts, &secret), want);
            let now: i64 = ts.parse().unwrap();
            assert_eq!(verify(Some(ts), Some(want), &secret, now), Ok(()));
        }
    }

    #[test]
    fn an_hour_off_a_wrong_sign_or_junk_is_refused() {
        let secret = Secret::new("s3cret");
        let ts = "1700000000000";
        let good = sign(ts, &secret);
        let now = 1_700_000_000_000;
        assert_eq!(
            verify(Some(ts), Some(&good), &secret, now + WINDOW_MS),
            Ok(())
        );
        assert_eq!(
            verify(Some(ts), Some(&good), &secret, now + WINDOW_MS + 1),
            Err(SignError::Stale {
                skew_ms: WINDOW_MS + 1
            })
        );
        assert!(matches!(
            verify(Some(ts), Some(&good), &secret, now - WINDOW_MS - 1),
            Err(SignError::Stale { .. })
        ));
        assert_eq!(
            verify(Some(ts), Some(&good), &Secret::new("other"), now),
            Err(SignError::Mismatch)
        );
        assert_eq!(
            verify(None, Some(&good), &secret, now),
            Err(SignError::Missing("timestamp"))
        );
        assert_eq!(
            verify(Some(ts), None, &secret, now),
            Err(SignError::Missing("sign"))
        );
        assert_eq!(
            verify(Some("soon"), Some(&good), &secret, now),
            Err(SignError::BadTimestamp)
        );
        assert!(verify(Some("-9223372036854775808"), Some(&good), &secret, now).is_err());
    }
}
