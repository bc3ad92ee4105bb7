//! Who may call the callback: an optional allowlist of WeChat's callback IPs.
//!
//! No HTTP here: the server resolves the client address (trusting
//! `X-Forwarded-For` only from configured proxies) and asks [`Allowlist`].

use std::net::IpAddr;
use std::sync::Arc;

use arc_swap::ArcSwap;
use ipnet::IpNet;

/// Parses `1.2.3.4`, `1.2.3.0/24`, `::1` or `2001:db8::/32`.
pub fn parse_net(text: &str) -> Result<IpNet, String> {
    let text = text.trim();
    if let Ok(net) = text.parse::<IpNet>() {
        return Ok(net.trunc());
    }
    text.parse::<IpAddr>()
        .map(IpNet::from)
        .map_err(|_| format!("{text:?} is not an IP address or CIDR range"))
}

/// True when `ip` is inside any of `nets` (IPv4-mapped IPv6 counts as IPv4).
pub fn contains(nets: &[IpNet], ip: IpAddr) -> bool {
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    };
    nets.iter().any(|n| n.contains(&ip))
}

/// Which callers are allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AllowlistMode {
    /// Everyone (signatures still apply).
    Off,
    /// Only `extra_allowed_ips`.
    Static,
    /// WeChat's published callback IPs (refreshed hourly) plus `extra_allowed_ips`.
    Wechat,
}

/// The current allowlist; the WeChat part is replaced by a refresh task.
#[derive(Debug)]
pub struct Allowlist {
    mode: AllowlistMode,
    fixed: Vec<IpNet>,
    fetched: ArcSwap<Vec<IpNet>>,
}

impl Allowlist {
    /// An allowlist with its fixed part.
    pub fn new(mode: AllowlistMode, fixed: Vec<IpNet>) -> Self {
        Allowlist {
            mode,
            fixed,
            fetched: ArcSwap::from_pointee(Vec::new()),
        }
    }

    /// No restriction.
    pub fn off() -> Self {
        Allowlist::new(AllowlistMode::Off, Vec::new())
    }

    /// The mode.
    pub fn mode(&self) -> AllowlistMode {
        self.mode
    }

    /// Whether a check is needed at all.
    pub fn enabled(&self) -> bool {
        self.mode != AllowlistMode::Off
    }

    /// Replaces the list fetched from WeChat.
    pub fn replace_fetched(&self, nets: Vec<IpNet>) {
        self.fetched.store(Arc::new(nets));
    }

    /// Number of fetched ranges (for readiness).
    pub fn fetched_len(&self) -> usize {
        self.fetched.load().len()
    }

    /// May `ip` call the callback?
    pub fn allows(&self, ip: IpAddr) -> bool {
        match self.mode {
            AllowlistMode::Off => true,
            AllowlistMode::Static => contains(&self.fixed, ip),
            AllowlistMode::Wechat => {
                contains(&self.fixed, ip) || contains(&self.fetched.load(), ip)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn parses_addresses_and_ranges() {
        assert_eq!(parse_net("1.2.3.4").unwrap().to_string(), "1.2.3.4/32");
        assert_eq!(
            parse_net("101.226.103.7/25").unwrap().to_string(),
            "101.226.103.0/25"
        );
        assert!(parse_net("::1").is_ok());
        assert!(parse_net("nope").is_err());
        assert!(parse_net("1.2.3.4/33").is_err());
    }

    #[test]
    fn modes() {
        let fixed = vec![parse_net("10.0.0.0/8").unwrap()];
        assert!(Allowlist::off().allows(ip("8.8.8.8")));
        let s = Allowlist::new(AllowlistMode::Static, fixed.clone());
        assert!(s.allows(ip("10.1.2.3")));
        assert!(s.allows(ip("::ffff:10.1.2.3")));
        assert!(!s.allows(ip("11.0.0.1")));
        let w = Allowlist::new(AllowlistMode::Wechat, fixed);
        assert!(!w.allows(ip("101.226.103.1")));
        w.replace_fetched(vec![parse_net("101.226.103.0/25").unwrap()]);
        assert!(w.allows(ip("101.226.103.1")));
        assert!(!w.allows(ip("101.226.103.200")));
    }
}
