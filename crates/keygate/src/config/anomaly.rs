//! `[anomaly]`: the per-key anomaly detectors and the credential-stuffing
//! lockout (see [`crate::anomaly`]).
//!
//! ```toml
//! [anomaly]
//! enabled = true                # KEYGATE_ANOMALY_ENABLED
//! queue = 65536                 # KEYGATE_ANOMALY_QUEUE: ledger rows waiting for the detectors
//! history = "30d"               # KEYGATE_ANOMALY_HISTORY: ledger read back when a key is first seen
//! spike_factor = 5.0            # KEYGATE_ANOMALY_SPIKE_FACTOR: × the trailing hourly average
//! spike_baseline = "24h"        # KEYGATE_ANOMALY_SPIKE_BASELINE: trailing window, whole hours
//! spike_min_requests = 100      # KEYGATE_ANOMALY_SPIKE_MIN_REQUESTS: floor of a request spike
//! spike_min_usd = 1.0           # KEYGATE_ANOMALY_SPIKE_MIN_USD: floor of a spend spike
//! network_min_history = "1d"    # KEYGATE_ANOMALY_NETWORK_MIN_HISTORY
//! odd_hour_min_days = 7         # KEYGATE_ANOMALY_ODD_HOUR_MIN_DAYS
//! stuffing_failures = 20        # KEYGATE_ANOMALY_STUFFING_FAILURES
//! stuffing_window = "1m"        # KEYGATE_ANOMALY_STUFFING_WINDOW
//! lockout = "15m"               # KEYGATE_ANOMALY_LOCKOUT
//! lockout_exempt = ["127.0.0.0/8", "::1/128"]  # KEYGATE_ANOMALY_LOCKOUT_EXEMPT (comma-separated)
//! ```
//!
//! Loopback is exempt from the lockout by default: a gateway behind a
//! reverse proxy on the same host, without `trusted_proxies`, sees every
//! client as 127.0.0.1, and one stuffing client would lock everyone out.

use super::{invalid, ConfigError, Env};
use serde::Deserialize;
use std::time::Duration;

/// The `[anomaly]` table of the file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAnomaly {
    /// `KEYGATE_ANOMALY_ENABLED`: run the detectors and the lockout.
    pub enabled: Option<bool>,
    /// `KEYGATE_ANOMALY_QUEUE`: ledger rows waiting for the detectors
    /// before further rows are dropped (and counted).
    pub queue: Option<usize>,
    /// `KEYGATE_ANOMALY_HISTORY`: how much of a key's ledger is read when
    /// the detectors first see it after a start.
    pub history: Option<String>,
    /// `KEYGATE_ANOMALY_SPIKE_FACTOR`: an hour is a spike above this many
    /// times the trailing hourly average.
    pub spike_factor: Option<f64>,
    /// `KEYGATE_ANOMALY_SPIKE_BASELINE`: the trailing window (whole hours).
    pub spike_baseline: Option<String>,
    /// `KEYGATE_ANOMALY_SPIKE_MIN_REQUESTS`: fewer requests in an hour are
    /// never a spike.
    pub spike_min_requests: Option<u64>,
    /// `KEYGATE_ANOMALY_SPIKE_MIN_USD`: less spend in an hour is never a
    /// spike.
    pub spike_min_usd: Option<f64>,
    /// `KEYGATE_ANOMALY_NETWORK_MIN_HISTORY`: a key alerts on new networks
    /// once it was first used at least this long ago.
    pub network_min_history: Option<String>,
    /// `KEYGATE_ANOMALY_ODD_HOUR_MIN_DAYS`: a key alerts on hours it was
    /// never active once it has this many days of history.
    pub odd_hour_min_days: Option<u32>,
    /// `KEYGATE_ANOMALY_STUFFING_FAILURES`: refused credentials from one
    /// address within the window that lock it out.
    pub stuffing_failures: Option<u32>,
    /// `KEYGATE_ANOMALY_STUFFING_WINDOW`.
    pub stuffing_window: Option<String>,
    /// `KEYGATE_ANOMALY_LOCKOUT`: how long a locked-out address is refused.
    pub lockout: Option<String>,
    /// `KEYGATE_ANOMALY_LOCKOUT_EXEMPT` (comma-separated CIDRs): sources
    /// never locked out.
    pub lockout_exempt: Option<Vec<String>>,
}

/// When a key's hourly use is a spike.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SpikeConfig {
    /// Multiple of the trailing hourly average.
    pub factor: f64,
    /// Trailing window, in hourly buckets.
    pub baseline_hours: u32,
    /// Floor of a request spike.
    pub min_requests: u64,
    /// Floor of a spend spike, nanodollars.
    pub min_cost_nanos: i64,
}

/// The credential-stuffing lockout.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StuffingConfig {
    /// Refused credentials within `window` that lock a source out.
    pub failures: u32,
    /// The window they are counted in.
    pub window: Duration,
    /// How long a source stays locked out.
    pub lockout: Duration,
    /// Sources never locked out (their refusals are not counted).
    pub exempt: Vec<ipnet::IpNet>,
}

/// Validated `[anomaly]`.
#[derive(Clone, Debug, PartialEq)]
pub struct AnomalyConfig {
    /// Detectors and lockout on.
    pub enabled: bool,
    /// Capacity of the detectors' queue.
    pub queue: usize,
    /// How much of a key's ledger is read when it is first seen.
    pub history: Duration,
    /// Spike detection.
    pub spike: SpikeConfig,
    /// Age of a key's first use before new networks alert.
    pub network_min_history: Duration,
    /// Days of history before odd hours alert.
    pub odd_hour_min_days: u32,
    /// Credential stuffing.
    pub stuffing: StuffingConfig,
}

impl Default for AnomalyConfig {
    fn default() -> Self {
        AnomalyConfig {
            enabled: true,
            queue: 65_536,
            history: Duration::from_secs(30 * 86_400),
            spike: SpikeConfig {
                factor: 5.0,
                baseline_hours: 24,
                min_requests: 100,
                min_cost_nanos: 1_000_000_000,
            },
            network_min_history: Duration::from_secs(86_400),
            odd_hour_min_days: 7,
            stuffing: StuffingConfig {
                failures: 20,
                window: Duration::from_secs(60),
                lockout: Duration::from_secs(15 * 60),
                exempt: vec![
                    ipnet::IpNet::V4(
                        ipnet::Ipv4Net::new(std::net::Ipv4Addr::LOCALHOST, 8).unwrap_or_default(),
                    ),
                    ipnet::IpNet::V6(
                        ipnet::Ipv6Net::new(std::net::Ipv6Addr::LOCALHOST, 128).unwrap_or_default(),
                    ),
                ],
            },
        }
    }
}

/// The setting's name in both places, for messages.
fn name(field: &str, var: &str) -> String {
    format!("anomaly.{field} / {var}")
}

fn parsed<T: std::str::FromStr>(
    env: &dyn Env,
    field: &str,
    var: &str,
    file: Option<T>,
    what: &str,
) -> Result<Option<T>, ConfigError> {
    match env.var(var) {
        Some(text) => text.trim().parse::<T>().map(Some).map_err(|_| {
            invalid(
                name(field, var),
                format!("'{}' is not {what}", crate::error::printable(&text)),
            )
        }),
        None => Ok(file),
    }
}

fn duration(
    env: &dyn Env,
    field: &str,
    var: &str,
    file: Option<String>,
) -> Result<Option<Duration>, ConfigError> {
    match env.var(var).or(file) {
        Some(text) => humantime::parse_duration(text.trim())
            .ok()
            .filter(|d| !d.is_zero())
            .map(Some)
            .ok_or_else(|| {
                invalid(
                    name(field, var),
                    format!(
                        "'{}' is not a duration like 30s, 10m or 7d",
                        crate::error::printable(&text)
                    ),
                )
            }),
        None => Ok(None),
    }
}

fn in_range<T: PartialOrd + std::fmt::Display>(
    field: &str,
    var: &str,
    value: T,
    low: T,
    high: T,
) -> Result<T, ConfigError> {
    if value < low || value > high {
        return Err(invalid(
            name(field, var),
            format!("must be between {low} and {high}"),
        ));
    }
    Ok(value)
}

fn duration_in_range(
    field: &str,
    var: &str,
    value: Duration,
    low: Duration,
    high: Duration,
) -> Result<Duration, ConfigError> {
    if value < low || value > high {
        return Err(invalid(
            name(field, var),
            format!(
                "must be between {} and {}",
                humantime::format_duration(low),
                humantime::format_duration(high)
            ),
        ));
    }
    Ok(value)
}

/// Validate `[anomaly]` over the environment.
pub fn validate(raw: RawAnomaly, env: &dyn Env) -> Result<AnomalyConfig, ConfigError> {
    let d = AnomalyConfig::default();
    let enabled = parsed(
        env,
        "enabled",
        "KEYGATE_ANOMALY_ENABLED",
        raw.enabled,
        "true or false",
    )?
    .unwrap_or(d.enabled);
    let queue = parsed(
        env,
        "queue",
        "KEYGATE_ANOMALY_QUEUE",
        raw.queue,
        "a whole number",
    )?
    .unwrap_or(d.queue);
    let queue = in_range("queue", "KEYGATE_ANOMALY_QUEUE", queue, 16, 16_777_216)?;
    let history =
        duration(env, "history", "KEYGATE_ANOMALY_HISTORY", raw.history)?.unwrap_or(d.history);
    let history = duration_in_range(
        "history",
        "KEYGATE_ANOMALY_HISTORY",
        history,
        Duration::from_secs(3600),
        Duration::from_secs(366 * 86_400),
    )?;
    let factor = parsed(
        env,
        "spike_factor",
        "KEYGATE_ANOMALY_SPIKE_FACTOR",
        raw.spike_factor,
        "a number",
    )?
    .unwrap_or(d.spike.factor);
    if !factor.is_finite() {
        return Err(invalid(
            name("spike_factor", "KEYGATE_ANOMALY_SPIKE_FACTOR"),
            "must be a finite number",
        ));
    }
    let factor = in_range(
        "spike_factor",
        "KEYGATE_ANOMALY_SPIKE_FACTOR",
        factor,
        1.0,
        1000.0,
    )?;
    let baseline = duration(
        env,
        "spike_baseline",
        "KEYGATE_ANOMALY_SPIKE_BASELINE",
        raw.spike_baseline,
    )?
    .unwrap_or(Duration::from_secs(
        u64::from(d.spike.baseline_hours) * 3600,
    ));
    if baseline.as_secs() % 3600 != 0 || baseline.subsec_nanos() != 0 {
        return Err(invalid(
            name("spike_baseline", "KEYGATE_ANOMALY_SPIKE_BASELINE"),
            "must be whole hours, like 24h",
        ));
    }
    let baseline_hours = u32::try_from(baseline.as_secs() / 3600).unwrap_or(u32::MAX);
    let baseline_hours = in_range(
        "spike_baseline",
        "KEYGATE_ANOMALY_SPIKE_BASELINE",
        baseline_hours,
        1,
        24 * 14,
    )?;
    let min_requests = parsed(
        env,
        "spike_min_requests",
        "KEYGATE_ANOMALY_SPIKE_MIN_REQUESTS",
        raw.spike_min_requests,
        "a whole number",
    )?
    .unwrap_or(d.spike.min_requests);
    let min_requests = in_range(
        "spike_min_requests",
        "KEYGATE_ANOMALY_SPIKE_MIN_REQUESTS",
        min_requests,
        1,
        1_000_000_000,
    )?;
    let min_usd = parsed(
        env,
        "spike_min_usd",
        "KEYGATE_ANOMALY_SPIKE_MIN_USD",
        raw.spike_min_usd,
        "a number of US dollars",
    )?;
    let min_cost_nanos = match min_usd {
        Some(usd) if usd >= 0.000_001 => match crate::policy::limits::usd_to_nanos(usd) {
            Some(nanos) if usd <= 1e9 => nanos,
            _ => {
                return Err(invalid(
                    name("spike_min_usd", "KEYGATE_ANOMALY_SPIKE_MIN_USD"),
                    "must be between 0.000001 and 1000000000 US dollars",
                ))
            }
        },
        Some(_) => {
            return Err(invalid(
                name("spike_min_usd", "KEYGATE_ANOMALY_SPIKE_MIN_USD"),
                "must be between 0.000001 and 1000000000 US dollars",
            ))
        }
        None => d.spike.min_cost_nanos,
    };
    let network_min_history = duration(
        env,
        "network_min_history",
        "KEYGATE_ANOMALY_NETWORK_MIN_HISTORY",
        raw.network_min_history,
    )?
    .unwrap_or(d.network_min_history);
    let odd_hour_min_days = parsed(
        env,
        "odd_hour_min_days",
        "KEYGATE_ANOMALY_ODD_HOUR_MIN_DAYS",
        raw.odd_hour_min_days,
        "a whole number of days",
    )?
    .unwrap_or(d.odd_hour_min_days);
    let odd_hour_min_days = in_range(
        "odd_hour_min_days",
        "KEYGATE_ANOMALY_ODD_HOUR_MIN_DAYS",
        odd_hour_min_days,
        1,
        365,
    )?;
    for (field, var, needed) in [
        (
            "spike_baseline",
            "KEYGATE_ANOMALY_SPIKE_BASELINE",
            Duration::from_secs(u64::from(baseline_hours) * 3600),
        ),
        (
            "odd_hour_min_days",
            "KEYGATE_ANOMALY_ODD_HOUR_MIN_DAYS",
            Duration::from_secs(u64::from(odd_hour_min_days) * 86_400),
        ),
        (
            "network_min_history",
            "KEYGATE_ANOMALY_NETWORK_MIN_HISTORY",
            network_min_history,
        ),
    ] {
        if needed > history {
            return Err(invalid(
                name(field, var),
                "must not exceed anomaly.history / KEYGATE_ANOMALY_HISTORY (the history read back)",
            ));
        }
    }
    let failures = parsed(
        env,
        "stuffing_failures",
        "KEYGATE_ANOMALY_STUFFING_FAILURES",
        raw.stuffing_failures,
        "a whole number",
    )?
    .unwrap_or(d.stuffing.failures);
    let failures = in_range(
        "stuffing_failures",
        "KEYGATE_ANOMALY_STUFFING_FAILURES",
        failures,
        1,
        1_000_000,
    )?;
    let window = duration(
        env,
        "stuffing_window",
        "KEYGATE_ANOMALY_STUFFING_WINDOW",
        raw.stuffing_window,
    )?
    .unwrap_or(d.stuffing.window);
    let lockout = duration(env, "lockout", "KEYGATE_ANOMALY_LOCKOUT", raw.lockout)?
        .unwrap_or(d.stuffing.lockout);
    for (field, var, value) in [
        ("stuffing_window", "KEYGATE_ANOMALY_STUFFING_WINDOW", window),
        ("lockout", "KEYGATE_ANOMALY_LOCKOUT", lockout),
    ] {
        duration_in_range(
            field,
            var,
            value,
            Duration::from_secs(1),
            Duration::from_secs(7 * 86_400),
        )?;
    }
    let exempt = match env
        .var("KEYGATE_ANOMALY_LOCKOUT_EXEMPT")
        .map(|v| {
            v.split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect::<Vec<_>>()
        })
        .or(raw.lockout_exempt)
    {
        Some(list) => list
            .iter()
            .map(|entry| crate::policy::parse_network(entry))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| invalid(name("lockout_exempt", "KEYGATE_ANOMALY_LOCKOUT_EXEMPT"), e))?,
        None => d.stuffing.exempt,
    };
    Ok(AnomalyConfig {
        enabled,
        queue,
        history,
        spike: SpikeConfig {
            factor,
            baseline_hours,
            min_requests,
            min_cost_nanos,
        },
        network_min_history,
        odd_hour_min_days,
        stuffing: StuffingConfig {
            failures,
            window,
            lockout,
            exempt,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_are_documented_values() {
        let config = validate(RawAnomaly::default(), &env(&[])).unwrap();
        assert_eq!(config, AnomalyConfig::default());
        assert_eq!(config.spike.min_cost_nanos, 1_000_000_000);
    }

    #[test]
    fn the_environment_wins_over_the_file() {
        let raw: RawAnomaly = toml::from_str(
            "enabled = true\nspike_factor = 3.0\nlockout = \"1h\"\nstuffing_failures = 9",
        )
        .unwrap();
        let config = validate(
            raw,
            &env(&[
                ("KEYGATE_ANOMALY_ENABLED", "false"),
                ("KEYGATE_ANOMALY_SPIKE_BASELINE", "6h"),
                ("KEYGATE_ANOMALY_SPIKE_MIN_USD", "0.5"),
                ("KEYGATE_ANOMALY_STUFFING_FAILURES", "5"),
            ]),
        )
        .unwrap();
        assert!(!config.enabled);
        assert_eq!(config.spike.factor, 3.0);
        assert_eq!(config.spike.baseline_hours, 6);
        assert_eq!(config.spike.min_cost_nanos, 500_000_000);
        assert_eq!(config.stuffing.failures, 5);
        assert_eq!(config.stuffing.lockout, Duration::from_secs(3600));
        let config = validate(
            RawAnomaly::default(),
            &env(&[("KEYGATE_ANOMALY_LOCKOUT_EXEMPT", " 10.0.0.0/8, ")]),
        )
        .unwrap();
        assert_eq!(config.stuffing.exempt.len(), 1);
        let loopback = AnomalyConfig::default().stuffing.exempt;
        assert!(loopback
            .iter()
            .any(|n| n.contains(&"127.0.0.1".parse::<std::net::IpAddr>().unwrap())));
        assert!(loopback
            .iter()
            .any(|n| n.contains(&"::1".parse::<std::net::IpAddr>().unwrap())));
    }

    #[test]
    fn bad_settings_name_themselves() {
        for (var, value) in [
            ("KEYGATE_ANOMALY_ENABLED", "maybe"),
            ("KEYGATE_ANOMALY_QUEUE", "0"),
            ("KEYGATE_ANOMALY_SPIKE_FACTOR", "0.5"),
            ("KEYGATE_ANOMALY_SPIKE_FACTOR", "NaN"),
            ("KEYGATE_ANOMALY_SPIKE_BASELINE", "90m"),
            ("KEYGATE_ANOMALY_SPIKE_MIN_USD", "-1"),
            ("KEYGATE_ANOMALY_ODD_HOUR_MIN_DAYS", "60"),
            ("KEYGATE_ANOMALY_STUFFING_FAILURES", "0"),
            ("KEYGATE_ANOMALY_LOCKOUT", "soon"),
            ("KEYGATE_ANOMALY_HISTORY", "10m"),
            ("KEYGATE_ANOMALY_LOCKOUT_EXEMPT", "10.0.0.0/99"),
        ] {
            let error = validate(RawAnomaly::default(), &env(&[(var, value)]))
                .unwrap_err()
                .to_string();
            assert!(error.contains(var), "{var}={value}: {error}");
        }
        assert!(toml::from_str::<RawAnomaly>("spike = 3").is_err());
    }
}
