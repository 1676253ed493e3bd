//! The credential-stuffing lockout, on the request path: after
//! `stuffing_failures` refused credentials from one source within
//! `stuffing_window`, the source is refused for `lockout` before its
//! credential is even looked at (429 `source_locked_out`, `Retry-After`).
//! Other sources are unaffected.
//!
//! A source is an IPv4 address, or an IPv6 /64 (an IPv6 client picks its
//! address within its /64 at will). The check is an atomic load while no
//! source is locked out, else one lookup in a sharded concurrent map;
//! nothing else happens on the request path. Counting
//! starts at a source's first refusal and restarts once the window has
//! passed. Entries whose window and lockout are over are purged by the
//! detector task. Exempt sources (`lockout_exempt`, loopback by default)
//! are neither counted nor locked out.

use crate::config::anomaly::StuffingConfig;
use dashmap::DashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::time::Instant;

/// Where refused credentials come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Source(IpAddr);

impl Source {
    /// The source `ip` belongs to.
    pub fn of(ip: IpAddr) -> Source {
        match ip {
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Source(IpAddr::V4(v4)),
                None => {
                    let mut octets = v6.octets();
                    octets[8..].fill(0);
                    Source(IpAddr::V6(Ipv6Addr::from(octets)))
                }
            },
            v4 => Source(v4),
        }
    }
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            IpAddr::V4(v4) => write!(f, "{v4}"),
            IpAddr::V6(v6) => write!(f, "{v6}/64"),
        }
    }
}

#[derive(Debug)]
struct Tally {
    window_start: Instant,
    failures: u32,
    locked_until: Option<Instant>,
}

/// A lockout that has just begun.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LockedOut {
    /// The source.
    pub source: Source,
    /// Refusals counted in the window.
    pub failures: u32,
    /// How long it lasts.
    pub lockout: Duration,
}

/// Refused credentials per source, and the sources locked out.
#[derive(Debug)]
pub struct Lockout {
    config: StuffingConfig,
    sources: DashMap<Source, Tally>,
    /// Entries with a lockout set (running or over but not yet purged):
    /// while none has, the check reads nothing else.
    locked: AtomicUsize,
}

impl Lockout {
    /// An empty lockout with `config`.
    pub fn new(config: StuffingConfig) -> Lockout {
        Lockout {
            config,
            sources: DashMap::new(),
            locked: AtomicUsize::new(0),
        }
    }

    /// `Err(remaining)` while `ip`'s source is locked out.
    pub fn check(&self, ip: IpAddr) -> Result<(), Duration> {
        if self.locked.load(Ordering::Acquire) == 0 || self.exempt(ip) {
            return Ok(());
        }
        let Some(tally) = self.sources.get(&Source::of(ip)) else {
            return Ok(());
        };
        match tally.locked_until {
            Some(until) => {
                let now = Instant::now();
                if until > now {
                    Err(until - now)
                } else {
                    Ok(())
                }
            }
            None => Ok(()),
        }
    }

    /// Count a refused credential from `ip`; `Some` when this refusal
    /// locked its source out.
    pub fn refused(&self, ip: IpAddr) -> Option<LockedOut> {
        if self.exempt(ip) {
            return None;
        }
        let source = Source::of(ip);
        let now = Instant::now();
        let mut tally = self.sources.entry(source).or_insert(Tally {
            window_start: now,
            failures: 0,
            locked_until: None,
        });
        if tally.locked_until.is_some_and(|until| until > now) {
            // Refused while locked out cannot happen (the check comes
            // first); a race with the lockout's start is not counted twice.
            return None;
        }
        if tally.locked_until.is_some()
            || now.duration_since(tally.window_start) >= self.config.window
        {
            if tally.locked_until.is_some() {
                self.locked.fetch_sub(1, Ordering::AcqRel);
            }
            *tally = Tally {
                window_start: now,
                failures: 0,
                locked_until: None,
            };
        }
        tally.failures = tally.failures.saturating_add(1);
        if tally.failures < self.config.failures {
            return None;
        }
        tally.locked_until = Some(now + self.config.lockout);
        self.locked.fetch_add(1, Ordering::AcqRel);
        Some(LockedOut {
            source,
            failures: tally.failures,
            lockout: self.config.lockout,
        })
    }

    fn exempt(&self, ip: IpAddr) -> bool {
        !self.config.exempt.is_empty() && self.config.exempt.iter().any(|net| net.contains(&ip))
    }

    /// Forget sources whose window and lockout are over.
    pub fn purge(&self) {
        let now = Instant::now();
        let window = self.config.window;
        self.sources.retain(|_, tally| match tally.locked_until {
            Some(until) if until > now => true,
            Some(_) => {
                self.locked.fetch_sub(1, Ordering::AcqRel);
                false
            }
            None => now.duration_since(tally.window_start) < window,
        });
    }

    /// Sources tracked now (for metrics and tests).
    pub fn tracked(&self) -> usize {
        self.sources.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lockout() -> Lockout {
        Lockout::new(StuffingConfig {
            failures: 3,
            window: Duration::from_secs(60),
            lockout: Duration::from_secs(600),
            exempt: vec!["127.0.0.0/8".parse().unwrap()],
        })
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn the_nth_refusal_in_the_window_locks_the_source_out_for_the_period() {
        let l = lockout();
        let bad = ip("192.0.2.66");
        assert_eq!(l.refused(bad), None);
        assert_eq!(l.refused(bad), None);
        let locked = l.refused(bad).unwrap();
        assert_eq!(locked.failures, 3);
        assert_eq!(l.check(bad), Err(Duration::from_secs(600)));
        assert_eq!(l.check(ip("192.0.2.67")), Ok(()));
        // Exempt sources are never counted.
        for _ in 0..10 {
            assert_eq!(l.refused(ip("127.0.0.1")), None);
        }
        assert_eq!(l.check(ip("127.0.0.1")), Ok(()));
        tokio::time::advance(Duration::from_secs(599)).await;
        assert_eq!(l.check(bad), Err(Duration::from_secs(1)));
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(l.check(bad), Ok(()));
        // Counting starts afresh.
        assert_eq!(l.refused(bad), None);
        l.purge();
        assert_eq!(l.tracked(), 1);
        assert_eq!(l.locked.load(Ordering::Acquire), 0);
        // Locked again, then purged once over.
        l.refused(bad);
        l.refused(bad);
        assert_eq!(l.locked.load(Ordering::Acquire), 1);
        tokio::time::advance(Duration::from_secs(600)).await;
        l.purge();
        assert_eq!((l.tracked(), l.locked.load(Ordering::Acquire)), (0, 0));
    }

    #[tokio::test(start_paused = true)]
    async fn refusals_spread_beyond_the_window_do_not_lock_out() {
        let l = lockout();
        let bad = ip("192.0.2.66");
        l.refused(bad);
        l.refused(bad);
        tokio::time::advance(Duration::from_secs(60)).await;
        assert_eq!(l.refused(bad), None);
        assert_eq!(l.refused(bad), None);
        assert_eq!(l.check(bad), Ok(()));
        tokio::time::advance(Duration::from_secs(60)).await;
        l.purge();
        assert_eq!(l.tracked(), 0);
    }

    #[test]
    fn ipv6_sources_are_slash_64s() {
        assert_eq!(
            Source::of(ip("2001:db8:1:2::1")),
            Source::of(ip("2001:db8:1:2:ffff::9"))
        );
        assert_ne!(
            Source::of(ip("2001:db8:1:2::1")),
            Source::of(ip("2001:db8:1:3::1"))
        );
        assert_eq!(
            Source::of(ip("::ffff:192.0.2.1")),
            Source::of(ip("192.0.2.1"))
        );
        assert_eq!(
            Source::of(ip("2001:db8:1:2::1")).to_string(),
            "2001:db8:1:2::/64"
        );
    }
}
