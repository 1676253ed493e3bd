//! Per-key access policy beyond the model allowlist: which route families a
//! key may call (scopes), which networks it may be used from, and who the
//! client is when keygate sits behind trusted proxies.

pub mod counters;
pub mod estimate;
pub mod governor;
pub mod limits;
pub mod period;
pub mod redis_counters;

use http::HeaderMap;
use ipnet::IpNet;
use std::net::IpAddr;

/// A family of data-plane routes a key may be scoped to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// `POST /v1/chat/completions`
    Chat,
    /// `POST /v1/embeddings`
    Embeddings,
    /// `POST /v1/messages`
    Messages,
    /// `POST /v1beta/models/{model}:generateContent` (and streaming)
    Generate,
    /// `GET /v1/models`
    Models,
}

impl Scope {
    /// Every scope, by its name in key definitions.
    pub const ALL: [(Scope, &'static str); 5] = [
        (Scope::Chat, "chat"),
        (Scope::Embeddings, "embeddings"),
        (Scope::Messages, "messages"),
        (Scope::Generate, "generate"),
        (Scope::Models, "models"),
    ];

    /// The scope's name.
    pub fn name(self) -> &'static str {
        Scope::ALL
            .iter()
            .find(|(s, _)| *s == self)
            .map_or("", |(_, n)| n)
    }

    fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

/// The scopes a key holds; none listed means every route.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Scopes(u8);

impl Scopes {
    /// Parse scope names; an unknown one is an error naming the valid ones.
    pub fn parse(names: &[String]) -> Result<Scopes, String> {
        let mut bits = 0;
        for name in names {
            let scope = Scope::ALL
                .iter()
                .find(|(_, n)| n == name)
                .map(|(s, _)| *s)
                .ok_or_else(|| {
                    format!(
                        "unknown scope '{}'; scopes are {}",
                        crate::error::printable(name),
                        Scope::ALL.map(|(_, n)| n).join(", ")
                    )
                })?;
            bits |= scope.bit();
        }
        Ok(Scopes(bits))
    }

    /// Whether a route of `scope` may be called.
    pub fn allows(self, scope: Scope) -> bool {
        self.0 == 0 || self.0 & scope.bit() != 0
    }

    /// Every route family (none listed).
    pub fn is_all(self) -> bool {
        self.0 == 0
    }

    /// Whether every route these allow, `parent` allows too.
    pub fn within(self, parent: Scopes) -> bool {
        parent.0 == 0 || (self.0 != 0 && self.0 & !parent.0 == 0)
    }

    /// The names of the scopes held (empty: every route).
    pub fn names(self) -> Vec<&'static str> {
        Scope::ALL
            .iter()
            .filter(|(s, _)| self.0 & s.bit() != 0)
            .map(|(_, n)| *n)
            .collect()
    }
}

/// The networks a key may be used from; empty means anywhere.
#[derive(Clone, Debug, Default)]
pub struct IpAllowlist(Vec<IpNet>);

/// Most networks one key may list.
pub const MAX_NETWORKS: usize = 256;

impl IpAllowlist {
    /// Parse CIDRs (`10.0.0.0/8`, `2001:db8::/32`) or single addresses.
    pub fn parse(entries: &[String]) -> Result<IpAllowlist, String> {
        if entries.len() > MAX_NETWORKS {
            return Err(format!("at most {MAX_NETWORKS} networks"));
        }
        entries
            .iter()
            .map(|entry| parse_network(entry))
            .collect::<Result<Vec<_>, _>>()
            .map(IpAllowlist)
    }

    /// Whether a client at `ip` may use the key.
    pub fn allows(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.0.is_empty() || self.0.iter().any(|net| net.contains(&ip))
    }
}

/// A CIDR or a single address.
pub fn parse_network(entry: &str) -> Result<IpNet, String> {
    let entry = entry.trim();
    entry
        .parse::<IpNet>()
        .or_else(|_| entry.parse::<IpAddr>().map(IpNet::from))
        .map_err(|_| {
            format!(
                "'{}' is not a network (CIDR like 10.0.0.0/8) or an address",
                crate::error::printable(entry)
            )
        })
}

/// IPv4 peers may arrive as IPv4-mapped IPv6 addresses.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// The client's address: the peer, unless the peer is a trusted proxy, in
/// which case `X-Forwarded-For` is read from the right, skipping trusted
/// hops; the first untrusted address is the client. A client cannot forge
/// its way in by sending its own `X-Forwarded-For`: only what trusted
/// proxies appended is believed.
pub fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    let peer = canonical(peer);
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return peer;
    }
    let mut client = peer;
    let hops = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect::<Vec<_>>();
    for hop in hops.iter().rev() {
        let Ok(ip) = hop.parse::<IpAddr>().map(canonical) else {
            // A malformed hop: stop at the last address we could trust.
            return client;
        };
        client = ip;
        if !is_trusted(&ip) {
            return ip;
        }
    }
    client
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn scopes_allow_only_what_they_list() {
        let none = Scopes::parse(&[]).unwrap();
        assert!(none.allows(Scope::Chat) && none.allows(Scope::Models));
        let chat = Scopes::parse(&["chat".into(), "models".into()]).unwrap();
        assert!(chat.allows(Scope::Chat) && chat.allows(Scope::Models));
        assert!(!chat.allows(Scope::Embeddings) && !chat.allows(Scope::Messages));
        assert!(Scopes::parse(&["admin".into()])
            .unwrap_err()
            .contains("chat"));
    }

    #[test]
    fn networks_and_mapped_addresses() {
        let list = IpAllowlist::parse(&["10.0.0.0/8".into(), "2001:db8::1".into()]).unwrap();
        assert!(list.allows(ip("10.1.2.3")));
        assert!(list.allows(ip("::ffff:10.1.2.3")));
        assert!(list.allows(ip("2001:db8::1")));
        assert!(!list.allows(ip("11.0.0.1")));
        assert!(IpAllowlist::parse(&[]).unwrap().allows(ip("1.2.3.4")));
        assert!(IpAllowlist::parse(&["10.0.0.0/33".into()]).is_err());
        assert!(IpAllowlist::parse(&["nonsense".into()]).is_err());
    }

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let trusted = vec![parse_network("10.0.0.0/8").unwrap()];
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-forwarded-for",
            "6.6.6.6, 203.0.113.7, 10.0.0.2".parse().unwrap(),
        );
        // From an untrusted peer the header is ignored.
        assert_eq!(
            client_ip(ip("198.51.100.1"), &headers, &trusted),
            ip("198.51.100.1")
        );
        // From a trusted proxy: the rightmost untrusted hop, not the forged first one.
        assert_eq!(
            client_ip(ip("10.0.0.1"), &headers, &trusted),
            ip("203.0.113.7")
        );
        // No trusted proxies configured: always the peer.
        assert_eq!(client_ip(ip("10.0.0.1"), &headers, &[]), ip("10.0.0.1"));
        // A malformed hop stops the walk at the last trusted address.
        headers.insert("x-forwarded-for", "junk, 10.0.0.3".parse().unwrap());
        assert_eq!(
            client_ip(ip("10.0.0.1"), &headers, &trusted),
            ip("10.0.0.3")
        );
    }
}
