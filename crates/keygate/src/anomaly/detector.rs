//! The detector task: consumes the feed, keeps per-key state (known
//! networks, active hours, hourly buckets), seeds a key's state from the
//! ledger the first time it sees the key after a start, and reports what it
//! finds: the key's policy is applied, then the alert raised.

use super::baseline::{hour_of, Baseline, Spike, Usage};
use super::feed::{Observation, Signal};
use super::hours::{local_date_hour, local_hour, Hours};
use super::lockout::{LockedOut, Lockout};
use super::network::Network;
use super::policy::{self, Action};
use crate::alerts::{Alert, Alerts, Clock};
use crate::auth::KeyCache;
use crate::config::anomaly::AnomalyConfig;
use crate::store::{Store, HISTORY_BUCKET_MS};
use chrono_tz::Tz;
use serde_json::json;
use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};

/// Networks remembered per key; a key used from more is used from
/// everywhere, and new networks stop being news.
pub const MAX_NETWORKS: usize = 4096;
/// Keys unused for this long are forgotten (and seeded again from the
/// ledger when they come back).
const IDLE_MS: i64 = 24 * 3_600_000;
const DAY_MS: i64 = 86_400_000;

/// What the detector task works with. It holds no ledger handle, so it
/// never delays the gateway's shutdown.
#[derive(Clone, Debug)]
pub struct Detection {
    /// History, keys and the audit log.
    pub store: Arc<dyn Store>,
    /// This node's key cache, updated at once when a key is suspended.
    pub keys: Arc<KeyCache>,
    /// Where findings go.
    pub alerts: Alerts,
    /// Thresholds.
    pub config: AnomalyConfig,
    /// The budget time zone: hours of the day are reckoned in it.
    pub zone: Tz,
}

/// What the detectors know of one key.
#[derive(Clone, Debug)]
pub(super) struct KeyState {
    first_seen: i64,
    last_seen: i64,
    networks: HashSet<Network>,
    hours: Hours,
    baseline: Baseline,
}

/// Something worth an alert.
#[derive(Clone, Debug, PartialEq)]
pub(super) enum Finding {
    /// A spike against the baseline.
    Spike(Spike),
    /// First use from a network.
    NewNetwork {
        network: Network,
        source: IpAddr,
        known: usize,
    },
    /// First use at an hour of the day.
    OddHour { hour: u32, active_hours: u32 },
}

impl KeyState {
    /// A key with no history before `at`.
    pub(super) fn new(at: i64) -> KeyState {
        KeyState {
            first_seen: at,
            last_seen: at,
            networks: HashSet::new(),
            hours: Hours::default(),
            baseline: Baseline::default(),
        }
    }

    /// A key's state from its ledger history: `(15-minute bucket,
    /// requests, cost)` rows and client addresses; `None` when it has none.
    pub(super) fn from_history(
        buckets: &[(i64, i64, i64)],
        sources: &[String],
        config: &AnomalyConfig,
        zone: Tz,
    ) -> Option<KeyState> {
        let first = buckets.iter().map(|b| b.0).min()?;
        let mut state = KeyState::new(first.saturating_mul(HISTORY_BUCKET_MS));
        for &(bucket, requests, cost_nanos) in buckets {
            let start = bucket.saturating_mul(HISTORY_BUCKET_MS);
            state.hours.insert(local_hour(start, zone));
            state.baseline.add(
                hour_of(start),
                Usage {
                    requests: u64::try_from(requests).unwrap_or(0),
                    cost_nanos,
                },
                config.spike.baseline_hours,
            );
            state.last_seen = state.last_seen.max(start);
        }
        state.networks = sources
            .iter()
            .filter_map(|s| s.parse::<IpAddr>().ok())
            .map(Network::of)
            .take(MAX_NETWORKS)
            .collect();
        Some(state)
    }

    /// Learn from one use; what it reveals.
    pub(super) fn observe(
        &mut self,
        obs: &Observation,
        config: &AnomalyConfig,
        zone: Tz,
    ) -> Vec<Finding> {
        let mut findings = Vec::new();
        let age = obs.at.saturating_sub(self.first_seen);
        let ms = |d: Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        if let Some(source) = obs.source {
            let network = Network::of(source);
            if self.networks.len() < MAX_NETWORKS && self.networks.insert(network) {
                let known = self.networks.len() - 1;
                if known > 0 && age >= ms(config.network_min_history) {
                    findings.push(Finding::NewNetwork {
                        network,
                        source,
                        known,
                    });
                }
            }
        }
        let hour = local_hour(obs.at, zone);
        if !self.hours.contains(hour) {
            if !self.hours.is_empty() && age >= i64::from(config.odd_hour_min_days) * DAY_MS {
                findings.push(Finding::OddHour {
                    hour,
                    active_hours: self.hours.len(),
                });
            }
            self.hours.insert(hour);
        }
        let bucket = hour_of(obs.at);
        let window = config.spike.baseline_hours;
        self.baseline.add(
            bucket,
            Usage {
                requests: 1,
                cost_nanos: obs.cost_nanos,
            },
            window,
        );
        // Judged once a whole trailing window lies after the first use.
        let judged = hour_of(self.first_seen) <= bucket.saturating_sub(i64::from(window));
        if let Some(spike) = self.baseline.judge(bucket, &config.spike, judged) {
            findings.push(Finding::Spike(spike));
        }
        self.last_seen = self.last_seen.max(obs.at);
        findings
    }
}

/// The task's state.
pub(super) struct Detector {
    parts: Detection,
    lockout: Arc<Lockout>,
    clock: Clock,
    keys: HashMap<String, KeyState>,
}

impl Detector {
    pub(super) fn new(parts: Detection, lockout: Arc<Lockout>, clock: Clock) -> Detector {
        Detector {
            parts,
            lockout,
            clock,
            keys: HashMap::new(),
        }
    }

    /// Consume `signals` until every sender is gone, publishing how many
    /// were handled.
    pub(super) async fn run(
        mut self,
        mut signals: mpsc::Receiver<Signal>,
        processed: watch::Sender<u64>,
    ) {
        let every = self
            .parts
            .config
            .stuffing
            .window
            .min(Duration::from_secs(60));
        let mut ticker = tokio::time::interval(every);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut handled: u64 = 0;
        loop {
            tokio::select! {
                signal = signals.recv() => {
                    let Some(signal) = signal else { return };
                    self.handle(signal).await;
                    handled += 1;
                    processed.send_replace(handled);
                }
                _ = ticker.tick() => {
                    self.lockout.purge();
                    let now = self.clock.now_ms();
                    self.keys.retain(|_, k| now.saturating_sub(k.last_seen) < IDLE_MS);
                }
            }
        }
    }

    async fn handle(&mut self, signal: Signal) {
        match signal {
            Signal::Used(obs) => {
                if !self.keys.contains_key(&obs.key_id) {
                    let state = self.seed(&obs).await;
                    self.keys.insert(obs.key_id.clone(), state);
                }
                let Some(state) = self.keys.get_mut(&obs.key_id) else {
                    return;
                };
                let findings = state.observe(&obs, &self.parts.config, self.parts.zone);
                for finding in findings {
                    self.report(&obs, finding).await;
                }
            }
            Signal::LockedOut(locked) => self.report_lockout(locked).await,
        }
    }

    /// The key's state from the ledger before this use: a restart does not
    /// make every network and hour new again.
    async fn seed(&self, obs: &Observation) -> KeyState {
        let history = i64::try_from(self.parts.config.history.as_millis()).unwrap_or(i64::MAX);
        let read = self
            .parts
            .store
            .key_history(
                &obs.key_id,
                obs.ledger_ts.saturating_sub(history),
                obs.ledger_ts,
                i64::try_from(MAX_NETWORKS).unwrap_or(i64::MAX),
            )
            .await;
        match read {
            Ok(history) => KeyState::from_history(
                &history.buckets,
                &history.sources,
                &self.parts.config,
                self.parts.zone,
            )
            .unwrap_or_else(|| KeyState::new(obs.at)),
            Err(error) => {
                // Treated as a new key: it alerts on nothing until it has
                // history again, rather than on everything.
                tracing::warn!(%error, key_id = %obs.key_id, "anomaly detection could not read a key's history");
                KeyState::new(obs.at)
            }
        }
    }

    async fn report(&self, obs: &Observation, finding: Finding) {
        let key_id = obs.key_id.as_str();
        let zone = self.parts.zone;
        let (kind, mut message, details, dedupe) = match &finding {
            Finding::Spike(spike) => {
                let usd = crate::policy::limits::nanos_to_usd;
                #[allow(clippy::cast_possible_truncation)]
                let avg_cost = spike.average.cost_nanos.round() as i64;
                let what = match (spike.requests, spike.spend) {
                    (true, true) => "requests and spend",
                    (true, false) => "requests",
                    _ => "spend",
                };
                (
                    "anomaly.spike",
                    format!(
                        "Key {key_id}: {what} spiked in the hour from {} ({zone}): {} requests costing ${:.4}, against an hourly average of {:.1} requests and ${:.4} over the previous {} hours.",
                        local_date_hour(spike.hour * super::baseline::HOUR_MS, zone),
                        spike.current.requests,
                        usd(spike.current.cost_nanos),
                        spike.average.requests,
                        usd(avg_cost),
                        self.parts.config.spike.baseline_hours,
                    ),
                    json!({
                        "key_id": key_id,
                        "hour_start": crate::time::rfc3339(spike.hour * super::baseline::HOUR_MS),
                        "requests": spike.current.requests,
                        "cost_usd": usd(spike.current.cost_nanos),
                        "baseline_requests_per_hour": spike.average.requests,
                        "baseline_cost_usd_per_hour": usd(avg_cost),
                        "baseline_hours": self.parts.config.spike.baseline_hours,
                        "factor": self.parts.config.spike.factor,
                        "request_spike": spike.requests,
                        "spend_spike": spike.spend,
                    }),
                    format!("anomaly.spike:{key_id}:{}", spike.hour),
                )
            }
            Finding::NewNetwork {
                network,
                source,
                known,
            } => (
                "anomaly.new_network",
                format!(
                    "Key {key_id} was used from {source}, in {network}: a network it was never used from before ({known} known)."
                ),
                json!({
                    "key_id": key_id,
                    "source_ip": source.to_string(),
                    "network": network.to_string(),
                    "known_networks": known,
                }),
                format!("anomaly.new_network:{key_id}:{network}"),
            ),
            Finding::OddHour { hour, active_hours } => (
                "anomaly.odd_hour",
                format!(
                    "Key {key_id} was used at {hour:02}:00-{hour:02}:59 ({zone}), an hour of the day it was never active in before (active in {active_hours} of 24 hours)."
                ),
                json!({
                    "key_id": key_id,
                    "hour": hour,
                    "timezone": zone.name(),
                    "active_hours": active_hours,
                    "source_ip": obs.source.map(|s| s.to_string()),
                }),
                format!(
                    "anomaly.odd_hour:{key_id}:{}",
                    local_date_hour(obs.at, zone)
                ),
            ),
        };
        let applied = policy::apply(
            self.parts.store.as_ref(),
            &self.parts.keys,
            key_id,
            kind,
            crate::time::now_ms(),
        )
        .await;
        let (record, action) = match applied {
            Ok(done) => done,
            Err(error) => {
                tracing::warn!(%error, key_id, kind, "anomaly policy could not be applied; alerting only");
                (None, Action::Alerted)
            }
        };
        match action {
            Action::Suspended => message.push_str(&format!(
                " The key was suspended automatically (its anomaly policy is 'suspend'); once it is safe, resume it: keygate keys resume {key_id}"
            )),
            Action::AlreadySuspended => message.push_str(" The key was already suspended."),
            Action::Alerted => {}
        }
        let mut details = details;
        if let Some(map) = details.as_object_mut() {
            map.insert("action".into(), json!(action.as_str()));
            if let Some(record) = &record {
                map.insert("name".into(), json!(record.name));
                map.insert("project_id".into(), json!(record.project_id));
            }
        }
        let mut alert = Alert::new(kind, message)
            .subject(key_id)
            .details(details)
            .dedupe_key(dedupe);
        if let Some(owner) = record.as_ref().and_then(|r| r.owner.clone()) {
            alert = alert.owner(owner);
        }
        if let Err(error) = self.parts.alerts.raise(alert).await {
            tracing::warn!(%error, key_id, kind, "anomaly alert not recorded");
        }
    }

    async fn report_lockout(&self, locked: LockedOut) {
        let now = self.clock.now_ms();
        let lockout_ms = i64::try_from(locked.lockout.as_millis()).unwrap_or(i64::MAX);
        let window = humantime::format_duration(self.parts.config.stuffing.window);
        let alert = Alert::new(
            "auth.stuffing",
            format!(
                "{} refused credentials from {} within {window}: a credential-stuffing attempt? Requests from it are refused for {} (until {}).",
                locked.failures,
                locked.source,
                humantime::format_duration(locked.lockout),
                crate::time::rfc3339(now.saturating_add(lockout_ms)),
            ),
        )
        .subject(locked.source.to_string())
        .details(json!({
            "source": locked.source.to_string(),
            "failures": locked.failures,
            "window_seconds": self.parts.config.stuffing.window.as_secs(),
            "lockout_seconds": locked.lockout.as_secs(),
            "locked_until": crate::time::rfc3339(now.saturating_add(lockout_ms)),
        }))
        .dedupe_key(format!("auth.stuffing:{}:{now}", locked.source));
        if let Err(error) = self.parts.alerts.raise(alert).await {
            tracing::warn!(%error, "credential-stuffing alert not recorded");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> AnomalyConfig {
        AnomalyConfig {
            network_min_history: Duration::from_secs(3600),
            odd_hour_min_days: 2,
            ..AnomalyConfig::default()
        }
    }

    fn used(at: i64, source: &str) -> Observation {
        Observation {
            key_id: "key_x".into(),
            ledger_ts: at,
            at,
            source: Some(source.parse().unwrap()),
            cost_nanos: 0,
        }
    }

    #[test]
    fn a_new_key_learns_before_it_alerts() {
        let c = config();
        let start = 1_767_225_600_000; // 2026-01-01T00:00Z
        let mut key = KeyState::new(start);
        assert!(key
            .observe(&used(start, "203.0.113.1"), &c, Tz::UTC)
            .is_empty());
        // Another network within the learning period: learnt silently.
        assert!(key
            .observe(&used(start + 1000, "198.51.100.1"), &c, Tz::UTC)
            .is_empty());
        let later = start + 2 * 3_600_000;
        let found = key.observe(&used(later, "192.0.2.1"), &c, Tz::UTC);
        assert_eq!(found.len(), 1);
        assert!(matches!(found[0], Finding::NewNetwork { known: 2, .. }));
        // Hours: 00, 02 known by now, but the key is not 2 days old.
        let found = key.observe(&used(later + 3_600_000, "192.0.2.2"), &c, Tz::UTC);
        assert!(found.is_empty(), "{found:?}");
        let found = key.observe(
            &used(start + 3 * DAY_MS + 5 * 3_600_000, "192.0.2.3"),
            &c,
            Tz::UTC,
        );
        assert_eq!(
            found,
            vec![Finding::OddHour {
                hour: 5,
                active_hours: 3
            }]
        );
    }

    #[test]
    fn history_seeds_hours_networks_and_age() {
        let c = config();
        let day = 1_767_225_600_000 / HISTORY_BUCKET_MS;
        let per_hour = 3_600_000 / HISTORY_BUCKET_MS;
        // 09:00 and 09:15 UTC three days ago, 10:45 two days ago.
        let buckets = vec![
            (day, 1, 0),
            (day + 9 * per_hour, 2, 10),
            (day + 9 * per_hour + 1, 1, 0),
            (day + 96 + 10 * per_hour + 3, 1, 0),
        ];
        let sources = vec!["203.0.113.9".to_string(), "not an ip".to_string()];
        let key = KeyState::from_history(&buckets, &sources, &c, Tz::UTC).unwrap();
        assert_eq!(key.first_seen, day * HISTORY_BUCKET_MS);
        assert!(key.hours.contains(0) && key.hours.contains(9) && key.hours.contains(10));
        assert_eq!(key.hours.len(), 3);
        assert_eq!(key.networks.len(), 1);
        assert!(KeyState::from_history(&[], &sources, &c, Tz::UTC).is_none());
        // In India, 10:45 UTC is 16:15.
        let key = KeyState::from_history(&buckets, &[], &c, chrono_tz::Asia::Kolkata).unwrap();
        assert!(key.hours.contains(16) && !key.hours.contains(10));
    }
}
