//! Networks a key is used from: an IPv4 address's /24, an IPv6 address's
//! /48 (what one site is usually given). A client moving within its
//! network is not news; one appearing in another network is.

use std::net::IpAddr;

/// A client's network, compact (what the detector remembers per key).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Network {
    /// The first three octets of an IPv4 address.
    V4([u8; 3]),
    /// The first six bytes of an IPv6 address.
    V6([u8; 6]),
}

impl Network {
    /// The network `ip` is in (IPv4-mapped IPv6 addresses count as IPv4).
    pub fn of(ip: IpAddr) -> Network {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match ip {
            IpAddr::V4(v4) => {
                let [a, b, c, _] = v4.octets();
                Network::V4([a, b, c])
            }
            IpAddr::V6(v6) => {
                let o = v6.octets();
                Network::V6([o[0], o[1], o[2], o[3], o[4], o[5]])
            }
        }
    }
}

impl std::fmt::Display for Network {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Network::V4([a, b, c]) => write!(f, "{a}.{b}.{c}.0/24"),
            Network::V6(o) => {
                let mut bytes = [0u8; 16];
                bytes[..6].copy_from_slice(o);
                write!(f, "{}/48", std::net::Ipv6Addr::from(bytes))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(text: &str) -> Network {
        Network::of(text.parse().unwrap())
    }

    #[test]
    fn ipv4_is_grouped_by_24_and_ipv6_by_48() {
        assert_eq!(net("203.0.113.7"), net("203.0.113.250"));
        assert_ne!(net("203.0.113.7"), net("203.0.114.7"));
        assert_eq!(net("2001:db8:1::1"), net("2001:db8:1:ffff::2"));
        assert_ne!(net("2001:db8:1::1"), net("2001:db8:2::1"));
        assert_eq!(net("::ffff:203.0.113.9"), net("203.0.113.1"));
        assert_eq!(net("203.0.113.7").to_string(), "203.0.113.0/24");
        assert_eq!(net("2001:db8:1:2::1").to_string(), "2001:db8:1::/48");
    }
}
