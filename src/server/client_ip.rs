//! The caller's address: the socket peer, unless the peer is a trusted proxy.

use std::net::IpAddr;

use axum::http::HeaderMap;
use ipnet::IpNet;

use crate::security::contains;

/// Resolves the client address. Forwarding headers are believed only when
/// the socket peer is a trusted proxy; then the rightmost untrusted hop of
/// `X-Forwarded-For` is the client (hops further left can be forged by it),
/// falling back to `X-Real-IP`, then to the peer itself.
pub fn resolve(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    if !contains(trusted, peer) {
        return peer;
    }
    let forwarded = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect::<Vec<_>>();
    for hop in forwarded.iter().rev() {
        match hop.parse::<IpAddr>() {
            Ok(ip) if contains(trusted, ip) => continue,
            Ok(ip) => return ip,
            // A garbled hop: nothing left of it can be believed.
            Err(_) => break,
        }
    }
    headers
        .get("x-real-ip")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(peer)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::security::parse_net;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn untrusted_peer_headers_are_ignored() {
        let trusted = vec![parse_net("127.0.0.1").unwrap()];
        let h = headers(&[
            ("x-forwarded-for", "101.226.103.1"),
            ("x-real-ip", "101.226.103.1"),
        ]);
        assert_eq!(
            resolve("203.0.113.9".parse().unwrap(), &h, &trusted),
            "203.0.113.9".parse::<IpAddr>().unwrap()
        );
    }

    #[test]
    fn trusted_proxy_forwarded_for_rightmost_untrusted() {
        let trusted = vec![
            parse_net("127.0.0.1").unwrap(),
            parse_net("10.0.0.0/8").unwrap(),
        ];
        let peer = "127.0.0.1".parse().unwrap();
        // The client forged the left entry; the proxy appended the real one.
        let h = headers(&[("x-forwarded-for", "101.226.103.1, 203.0.113.9, 10.0.0.2")]);
        assert_eq!(
            resolve(peer, &h, &trusted),
            "203.0.113.9".parse::<IpAddr>().unwrap()
        );
        let h = headers(&[("x-real-ip", "203.0.113.7")]);
        assert_eq!(
            resolve(peer, &h, &trusted),
            "203.0.113.7".parse::<IpAddr>().unwrap()
        );
        assert_eq!(resolve(peer, &HeaderMap::new(), &trusted), peer);
    }
}
