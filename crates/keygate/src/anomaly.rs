//! Anomaly detection, per key, off the request path; and the
//! credential-stuffing lockout, on it.
//!
//! # How it is fed
//!
//! Every row the ledger records (accepted or refused) is offered to a
//! bounded queue ([`feed`]) without waiting; a detector task consumes it.
//! When the task falls behind and the queue is full, rows are dropped,
//! counted and logged: anomaly detection never slows a request. The
//! detectors reckon time on tokio's clock (wall clock at start plus tokio's
//! elapsed time, like the alert outbox), so tests can pause it.
//!
//! The first time the task sees a key after a start it reads the key's
//! ledger history (`anomaly.history`, 30 days by default) from the store:
//! known networks, active hours and hourly buckets survive a restart, and a
//! restart does not alert on every key.
//!
//! # Detectors
//!
//! | alert kind | when | settings (defaults) |
//! |---|---|---|
//! | `anomaly.spike` | the current hour's requests exceed `spike_factor` × the trailing hourly average and `spike_min_requests`, or its spend exceeds `spike_factor` × the average spend and `spike_min_usd`; the trailing window is `spike_baseline` hours, empty hours count as zero; judged once a key has a full window of history; a spike running into the next hour is one episode | 5×, 24 h, 100 requests, $1 |
//! | `anomaly.new_network` | first use from an IPv4 /24 or IPv6 /48 the key was never used from, once the key was first used at least `network_min_history` ago (and has a known network) | 1 day |
//! | `anomaly.odd_hour` | use at an hour of the day (in `KEYGATE_BUDGET_TIMEZONE`) the key was never active in, once it has `odd_hour_min_days` days of history | 7 days |
//! | `auth.stuffing` | `stuffing_failures` refused credentials from one source (IPv4 address, IPv6 /64) within `stuffing_window`: the source is locked out for `lockout`; `lockout_exempt` sources never are | 20, 1 min, 15 min, loopback |
//!
//! Each occurrence alerts once (dedupe keys name the key and the hour, the
//! network, the local date and hour, or the source and the lockout). A
//! locked-out source is refused before its credential is verified, with
//! 429 `source_locked_out` and `Retry-After`; other sources are unaffected.
//! Refused credentials are counted on the data plane and on the admin API.
//!
//! # Policy
//!
//! What a per-key anomaly does is the key's `on_anomaly` policy, else its
//! project's, else `alert`; `suspend` suspends the key too (see [`policy`]).
//!
//! # Limits
//!
//! Each node detects on the traffic it serves (seeded from the shared
//! ledger): with several nodes a spike is judged per node, and a lockout
//! holds on the node that counted it.

mod baseline;
mod detector;
pub mod feed;
mod hours;
pub mod lockout;
mod network;
pub mod policy;

pub use detector::Detection;
pub use feed::Feed;
pub use network::Network;
pub use policy::OnAnomaly;

use crate::alerts::Clock;
use crate::error::ApiError;
use feed::Signal;
use lockout::Lockout;
use std::net::IpAddr;
use std::sync::Arc;

/// Handle to anomaly detection; cheap to clone. Inert when
/// `KEYGATE_ANOMALY_ENABLED=false`.
#[derive(Clone, Debug)]
pub struct Anomaly {
    inner: Option<Arc<Inner>>,
}

#[derive(Debug)]
struct Inner {
    feed: Feed,
    lockout: Arc<Lockout>,
}

impl Anomaly {
    /// Detection off: nothing is fed, nobody is locked out.
    pub fn disabled() -> Anomaly {
        Anomaly { inner: None }
    }

    /// Start the detector task (on the current runtime).
    pub fn start(parts: Detection) -> Anomaly {
        let clock = Clock::new();
        let lockout = Arc::new(Lockout::new(parts.config.stuffing.clone()));
        let (feed, signals, processed) = Feed::new(parts.config.queue, clock);
        let detector = detector::Detector::new(parts, Arc::clone(&lockout), clock);
        tokio::spawn(detector.run(signals, processed));
        Anomaly {
            inner: Some(Arc::new(Inner { feed, lockout })),
        }
    }

    /// The feed the ledger offers its rows to (`None`: detection is off).
    pub fn feed(&self) -> Option<&Feed> {
        self.inner.as_ref().map(|i| &i.feed)
    }

    /// On the request path, before any credential is looked at: refuse a
    /// source that is locked out.
    pub fn admit_source(&self, client: IpAddr) -> Result<(), ApiError> {
        let Some(inner) = &self.inner else {
            return Ok(());
        };
        inner.lockout.check(client).map_err(|remaining| {
            // Whole seconds, rounded up: retrying at once would be refused.
            let seconds = remaining
                .as_secs()
                .saturating_add(u64::from(remaining.subsec_nanos() > 0))
                .max(1);
            ApiError::rate_limited(
                "source_locked_out",
                format!(
                    "Too many requests from this address presented credentials that were refused; it is locked out for {seconds} more seconds."
                ),
                Some(seconds),
            )
        })
    }

    /// A credential presented from `client` was refused (401): count it
    /// towards the source's lockout.
    pub fn credential_refused(&self, client: IpAddr) {
        let Some(inner) = &self.inner else {
            return;
        };
        if let Some(locked) = inner.lockout.refused(client) {
            tracing::warn!(source = %locked.source, failures = locked.failures, "source locked out after refused credentials");
            inner.feed.send(Signal::LockedOut(locked));
        }
    }

    /// Wait until the detectors have handled everything fed so far.
    pub async fn settled(&self) {
        if let Some(inner) = &self.inner {
            inner.feed.settled().await;
        }
    }

    /// Rows dropped because the detectors were behind.
    pub fn dropped(&self) -> u64 {
        self.inner.as_ref().map_or(0, |i| i.feed.dropped())
    }

    /// Unix ms now on the detectors' clock.
    pub fn now_ms(&self) -> i64 {
        self.inner
            .as_ref()
            .map_or_else(crate::time::now_ms, |i| i.feed.clock().now_ms())
    }
}
