//! Which address a request comes from (security review M8). Behind a reverse proxy every TCP
//! peer is the proxy, so per-client limits would count all clients as one; in front of none, a
//! client could name any address it likes in `X-Forwarded-For`. The rule: the proxy's word is
//! taken only when the TCP peer is one of `trusted_proxies`, and then the client is the
//! right-most `X-Forwarded-For` entry that is not itself a trusted proxy (entries left of it
//! were written by the client and prove nothing). PROXY protocol headers ([`super::proxy_header`])
//! are believed under the same rule, per connection.
//!
//! The resolved address goes into the request's extensions as the `ConnectInfo<SocketAddr>`
//! every per-address limit already reads (`api::throttle`, the web front's `security`).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

/// One `trusted_proxies` entry: an address or a CIDR block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    bits: u8,
}

impl Cidr {
    /// `192.0.2.7`, `10.0.0.0/8`, `2001:db8::/32`; None for anything else (host bits set
    /// under the mask included: a typo there would trust more or less than meant).
    pub fn parse(text: &str) -> Option<Cidr> {
        let (addr, bits) = match text.trim().split_once('/') {
            Some((a, b)) => (a.parse::<IpAddr>().ok()?, b.parse::<u8>().ok()?),
            None => {
                let a = text.trim().parse::<IpAddr>().ok()?;
                (a, if a.is_ipv4() { 32 } else { 128 })
            }
        };
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let cidr = Cidr { network: addr, bits };
        (bits <= max && cidr.masked(addr) == addr).then_some(cidr)
    }

    fn masked(&self, ip: IpAddr) -> IpAddr {
        match ip {
            IpAddr::V4(v4) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.bits)).unwrap_or(0);
                IpAddr::V4((u32::from(v4) & mask).into())
            }
            IpAddr::V6(v6) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(self.bits)).unwrap_or(0);
                IpAddr::V6((u128::from(v6) & mask).into())
            }
        }
    }

    /// Whether `ip` is inside the block (an IPv4-mapped IPv6 address counts as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        ip.is_ipv4() == self.network.is_ipv4() && self.masked(ip) == self.network
    }
}

/// The configured `trusted_proxies`.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(Arc<Vec<Cidr>>);

impl TrustedProxies {
    /// From the validated configuration (entries that do not parse were refused there).
    pub fn new(entries: &[String]) -> TrustedProxies {
        TrustedProxies(Arc::new(entries.iter().filter_map(|e| Cidr::parse(e)).collect()))
    }

    /// Whether `ip` is a trusted proxy.
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|c| c.contains(ip))
    }

    /// Whether none are configured (then no header is ever believed).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The client of a request from `peer` carrying `forwarded` (`X-Forwarded-For` values in
    /// order): `peer` itself unless it is trusted; else the right-most entry that is not a
    /// trusted proxy. An entry that is not an address stops the walk at the last trusted hop.
    pub fn client<'a>(&self, peer: IpAddr, forwarded: impl Iterator<Item = &'a str>) -> IpAddr {
        if !self.contains(peer) {
            return peer;
        }
        let entries: Vec<&str> = forwarded.flat_map(|v| v.split(',')).map(str::trim).collect();
        let mut client = peer;
        for entry in entries.iter().rev() {
            let Some(ip) = parse_entry(entry) else { return client };
            client = ip;
            if !self.contains(ip) {
                return ip;
            }
        }
        client
    }
}

/// `192.0.2.7`, `192.0.2.7:5000`, `2001:db8::1` or `[2001:db8::1]:5000`.
fn parse_entry(entry: &str) -> Option<IpAddr> {
    entry
        .parse::<IpAddr>()
        .ok()
        .or_else(|| entry.parse::<SocketAddr>().ok().map(|s| s.ip()))
        .map(|ip| ip.to_canonical())
}

/// The `ConnectInfo` a request gets: the client address (resolved as above) with the peer's
/// port (the client's own port is not known through `X-Forwarded-For`).
pub fn resolve(trusted: &TrustedProxies, peer: SocketAddr, headers: &axum::http::HeaderMap) -> SocketAddr {
    if trusted.is_empty() {
        return peer;
    }
    let forwarded = headers.get_all(super::throttle::FORWARDED_FOR).iter().filter_map(|v| v.to_str().ok());
    SocketAddr::new(trusted.client(peer.ip(), forwarded), peer.port())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn cidrs_parse_strictly_and_match() {
        assert!(Cidr::parse("10.0.0.0/8").unwrap().contains(ip("10.200.1.1")));
        assert!(!Cidr::parse("10.0.0.0/8").unwrap().contains(ip("11.0.0.1")));
        assert!(Cidr::parse("0.0.0.0/0").unwrap().contains(ip("203.0.113.9")));
        assert!(Cidr::parse("192.0.2.7").unwrap().contains(ip("::ffff:192.0.2.7")));
        assert!(Cidr::parse("2001:db8::/32").unwrap().contains(ip("2001:db8:5::1")));
        assert!(!Cidr::parse("2001:db8::/32").unwrap().contains(ip("10.0.0.1")));
        for bad in ["10.0.0.1/8", "10.0.0.0/33", "example.org", "", "10.0.0.0/"] {
            assert!(Cidr::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn forwarded_for_is_believed_only_from_a_trusted_proxy() {
        let trusted = TrustedProxies::new(&["10.0.0.0/8".into(), "192.0.2.1".into()]);
        let client = |peer: &str, header: &str| trusted.client(ip(peer), std::iter::once(header));
        // An untrusted peer names nobody.
        assert_eq!(client("198.51.100.1", "203.0.113.9"), ip("198.51.100.1"));
        // The right-most entry that is not a proxy; what the client wrote to its left is ignored.
        assert_eq!(client("10.0.0.2", "1.1.1.1, 203.0.113.9"), ip("203.0.113.9"));
        assert_eq!(client("10.0.0.2", "1.1.1.1, 203.0.113.9, 192.0.2.1"), ip("203.0.113.9"));
        assert_eq!(client("10.0.0.2", "203.0.113.9:4000"), ip("203.0.113.9"));
        // Garbage stops the walk at the last trusted hop.
        assert_eq!(client("10.0.0.2", "203.0.113.9, junk"), ip("10.0.0.2"));
        assert_eq!(client("10.0.0.2", "junk, 192.0.2.1"), ip("192.0.2.1"));
        // Two header lines are one list.
        let two = ["203.0.113.9", "10.0.0.3"];
        assert_eq!(trusted.client(ip("10.0.0.2"), two.into_iter()), ip("203.0.113.9"));
    }
}
