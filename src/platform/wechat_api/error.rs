use std::time::Duration;

use thiserror::Error;

/// What to do about an error code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Remedy {
    /// The access token is stale: refresh it once and retry once.
    RefreshToken,
    /// WeChat is busy or the quota is spent: back off, do not loop.
    BackOff,
    /// The app id or secret is wrong: fix the configuration.
    FixConfig,
    /// This host's IP may not call the API: fix the IP whitelist.
    FixIpWhitelist,
    /// Nothing will make this call succeed now (user outside the window…).
    GiveUp,
}

/// WeChat's `errcode`, with the documented meanings as variants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrCode {
    /// -1: system busy.
    SystemBusy,
    /// 40001: invalid credential: on a token request a wrong AppSecret, on an
    /// API call a stale or invalid access token.
    InvalidCredential,
    /// 40002: invalid grant_type (a bug).
    InvalidGrantType,
    /// 40013: invalid AppID.
    InvalidAppId,
    /// 40014: invalid access_token.
    InvalidAccessToken,
    /// 40125: invalid AppSecret.
    InvalidAppSecret,
    /// 40164: the caller's IP is not in the account's IP whitelist.
    IpNotWhitelisted,
    /// 41001: access_token missing (a bug).
    AccessTokenMissing,
    /// 42001: access_token expired.
    AccessTokenExpired,
    /// 45009: daily quota or frequency limit reached.
    QuotaExceeded,
    /// 45015: the user is outside the 48 h window or unfollowed.
    OutOfWindow,
    /// 45047: the per-interaction message quota is spent.
    ResponseCountLimit,
    /// 48001: api unauthorized: the account lacks this API's permission
    /// (unverified accounts have no customer-service API).
    ApiUnauthorized,
    /// 89501/89503/89506/89507: the IP awaits or was refused admin confirmation.
    IpNotConfirmed(i64),
    /// Any other code.
    Other(i64),
}

impl ErrCode {
    /// The variant for a numeric code.
    pub fn from_code(code: i64) -> ErrCode {
        match code {
            -1 => ErrCode::SystemBusy,
            40001 => ErrCode::InvalidCredential,
            40002 => ErrCode::InvalidGrantType,
            40013 => ErrCode::InvalidAppId,
            40014 => ErrCode::InvalidAccessToken,
            40125 => ErrCode::InvalidAppSecret,
            40164 => ErrCode::IpNotWhitelisted,
            41001 => ErrCode::AccessTokenMissing,
            42001 => ErrCode::AccessTokenExpired,
            45009 => ErrCode::QuotaExceeded,
            45015 => ErrCode::OutOfWindow,
            45047 => ErrCode::ResponseCountLimit,
            48001 => ErrCode::ApiUnauthorized,
            89501 | 89503 | 89506 | 89507 => ErrCode::IpNotConfirmed(code),
            other => ErrCode::Other(other),
        }
    }

    /// The numeric code.
    pub fn code(self) -> i64 {
        match self {
            ErrCode::SystemBusy => -1,
            ErrCode::InvalidCredential => 40001,
            ErrCode::InvalidGrantType => 40002,
            ErrCode::InvalidAppId => 40013,
            ErrCode::InvalidAccessToken => 40014,
            ErrCode::InvalidAppSecret => 40125,
            ErrCode::IpNotWhitelisted => 40164,
            ErrCode::AccessTokenMissing => 41001,
            ErrCode::AccessTokenExpired => 42001,
            ErrCode::QuotaExceeded => 45009,
            ErrCode::OutOfWindow => 45015,
            ErrCode::ResponseCountLimit => 45047,
            ErrCode::ApiUnauthorized => 48001,
            ErrCode::IpNotConfirmed(c) | ErrCode::Other(c) => c,
        }
    }

    /// The remedy when an API call (not a token request) answers this code.
    pub fn remedy(self) -> Remedy {
        match self {
            ErrCode::InvalidCredential
            | ErrCode::InvalidAccessToken
            | ErrCode::AccessTokenExpired => Remedy::RefreshToken,
            ErrCode::SystemBusy | ErrCode::QuotaExceeded => Remedy::BackOff,
            ErrCode::InvalidAppId | ErrCode::InvalidAppSecret => Remedy::FixConfig,
            ErrCode::IpNotWhitelisted | ErrCode::IpNotConfirmed(_) => Remedy::FixIpWhitelist,
            _ => Remedy::GiveUp,
        }
    }

    /// What it means and what to do, for operators.
    fn explain(self) -> &'static str {
        match self {
            ErrCode::SystemBusy => "WeChat is busy; retry later",
            ErrCode::InvalidCredential => {
                "invalid credential: on a token request the app secret is wrong (check account.app_secret \
                 or WXGATE_APP_SECRET); on an API call the access token is stale"
            }
            ErrCode::InvalidGrantType => "invalid grant_type (a bug in the request)",
            ErrCode::InvalidAppId => "invalid app id: check account.app_id (or WXGATE_APP_ID)",
            ErrCode::InvalidAccessToken => "invalid access token; it will be refreshed",
            ErrCode::InvalidAppSecret => "invalid app secret: check account.app_secret (or WXGATE_APP_SECRET)",
            ErrCode::IpNotWhitelisted => {
                "this host's IP is not in the account's IP whitelist: add the server's egress IP to \
                 \"IP白名单\" (IP whitelist) in the WeChat console (设置与开发 → 基本配置)"
            }
            ErrCode::AccessTokenMissing => "access token missing (a bug in the request)",
            ErrCode::AccessTokenExpired => "access token expired; it will be refreshed",
            ErrCode::QuotaExceeded => {
                "API quota or frequency limit reached: backing off, not retrying (the quota resets daily)"
            }
            ErrCode::OutOfWindow => "the user is outside the 48 h reply window or has unfollowed",
            ErrCode::ResponseCountLimit => "the reply quota for this user interaction is spent",
            ErrCode::ApiUnauthorized => {
                "the account lacks this API's permission (unverified accounts have no customer-service API)"
            }
            ErrCode::IpNotConfirmed(_) => {
                "this host's IP needs an administrator's confirmation in the WeChat console (IP whitelist)"
            }
            ErrCode::Other(_) => "see WeChat's global return codes",
        }
    }
}

impl std::fmt::Display for ErrCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "errcode {}: {}", self.code(), self.explain())
    }
}

/// Why a WeChat API call failed. No variant ever carries a token, a secret
/// or a URL with its query (which holds them).
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum WechatError {
    /// WeChat answered with a non-zero `errcode`.
    #[error("{endpoint}: {code} (errmsg: {message})")]
    Api {
        /// The endpoint path, e.g. `/cgi-bin/stable_token`.
        endpoint: &'static str,
        /// The code, with its meaning.
        code: ErrCode,
        /// WeChat's `errmsg`.
        message: String,
    },
    /// No answer within the configured timeout.
    #[error("{endpoint}: no answer within {after:?}")]
    Timeout {
        /// The endpoint path.
        endpoint: &'static str,
        /// The limit.
        after: Duration,
    },
    /// The request could not be made (connection refused, TLS, DNS…).
    #[error("{endpoint}: request failed: {reason}")]
    Transport {
        /// The endpoint path.
        endpoint: &'static str,
        /// The cause, without the URL.
        reason: String,
    },
    /// An HTTP status other than 200 without an `errcode`.
    #[error("{endpoint}: HTTP status {status}")]
    Status {
        /// The endpoint path.
        endpoint: &'static str,
        /// The status.
        status: u16,
    },
    /// A 200 answer that is not what the endpoint documents.
    #[error("{endpoint}: unexpected answer: {reason}")]
    Decode {
        /// The endpoint path.
        endpoint: &'static str,
        /// What was wrong.
        reason: String,
    },
}

impl WechatError {
    /// The `errcode`, when WeChat answered with one.
    pub fn code(&self) -> Option<ErrCode> {
        match self {
            WechatError::Api { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// The endpoint that failed.
    pub fn endpoint(&self) -> &'static str {
        match self {
            WechatError::Api { endpoint, .. }
            | WechatError::Timeout { endpoint, .. }
            | WechatError::Transport { endpoint, .. }
            | WechatError::Status { endpoint, .. }
            | WechatError::Decode { endpoint, .. } => endpoint,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_carry_their_remedy() {
        for code in [
            -1, 40001, 40002, 40013, 40014, 40125, 40164, 41001, 42001, 45009, 45015, 45047, 89503,
            12345,
        ] {
            assert_eq!(ErrCode::from_code(code).code(), code);
        }
        assert_eq!(ErrCode::from_code(42001).remedy(), Remedy::RefreshToken);
        assert_eq!(ErrCode::from_code(40014).remedy(), Remedy::RefreshToken);
        assert_eq!(ErrCode::from_code(45009).remedy(), Remedy::BackOff);
        assert_eq!(ErrCode::from_code(-1).remedy(), Remedy::BackOff);
        assert_eq!(ErrCode::from_code(40125).remedy(), Remedy::FixConfig);
        assert_eq!(ErrCode::from_code(40164).remedy(), Remedy::FixIpWhitelist);
        assert_eq!(ErrCode::from_code(45015).remedy(), Remedy::GiveUp);
    }

    #[test]
    fn the_whitelist_error_names_the_setting() {
        let e = WechatError::Api {
            endpoint: "/cgi-bin/stable_token",
            code: ErrCode::IpNotWhitelisted,
            message: "invalid ip 203.0.113.9, not in whitelist".into(),
        };
        let text = e.to_string();
        assert!(
            text.contains("IP whitelist") && text.contains("40164") && text.contains("203.0.113.9"),
            "{text}"
        );
    }
}
