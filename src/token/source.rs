//! Which endpoint issues an account's access tokens.

/// Which endpoint issues access tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TokenSource {
    /// `POST /cgi-bin/stable_token`: returns the current token while it is
    /// valid, so several callers cannot invalidate each other's token. The
    /// default.
    #[default]
    Stable,
    /// `GET /cgi-bin/token`: every call issues a new token and invalidates
    /// the previous one (after a short overlap).
    Classic,
    /// WeCom's `GET /cgi-bin/gettoken` with the corp id and an app's secret.
    WeCom,
}

impl TokenSource {
    /// The name used in the config file.
    pub fn as_str(self) -> &'static str {
        match self {
            TokenSource::Stable => "stable",
            TokenSource::Classic => "classic",
            TokenSource::WeCom => "gettoken",
        }
    }
}

impl std::str::FromStr for TokenSource {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "stable" => Ok(TokenSource::Stable),
            "classic" => Ok(TokenSource::Classic),
            other => Err(format!("must be \"stable\" or \"classic\", not {other:?}")),
        }
    }
}
