//! `[limits]` and `redis_url`: where limit counters live and how budgets
//! are reckoned.
//!
//! ```toml
//! redis_url = "redis://127.0.0.1:6379"   # KEYGATE_REDIS_URL: share counters between nodes
//! redis_prefix = "keygate"               # KEYGATE_REDIS_PREFIX: names of keygate's Redis keys
//! [limits]
//! timezone = "Europe/Paris"              # KEYGATE_BUDGET_TIMEZONE (default UTC)
//! default_max_tokens = 4096              # KEYGATE_DEFAULT_MAX_TOKENS
//! reservation_ttl = "1h"                 # KEYGATE_RESERVATION_TTL
//! alert_thresholds = [50, 80, 100]       # KEYGATE_BUDGET_ALERTS (comma-separated)
//! ```

use super::{duration, invalid, ConfigError, Env};
use crate::policy::governor::GovernorConfig;
use secrecy::SecretString;
use serde::Deserialize;

/// The `[limits]` table of the file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLimits {
    /// `KEYGATE_BUDGET_TIMEZONE`: IANA zone budget periods follow.
    pub timezone: Option<String>,
    /// `KEYGATE_DEFAULT_MAX_TOKENS`: output tokens reserved for a request
    /// that sets no limit of its own.
    pub default_max_tokens: Option<u64>,
    /// `KEYGATE_RESERVATION_TTL`: how long reservations and leases of a
    /// crashed node hold in Redis.
    pub reservation_ttl: Option<String>,
    /// `KEYGATE_BUDGET_ALERTS`: default alert thresholds, percent.
    pub alert_thresholds: Option<Vec<u8>>,
}

/// Parse a threshold list: 1..=100, ascending, at most ten.
pub fn thresholds(list: &[u8]) -> Result<Vec<u8>, String> {
    if list.len() > 10 {
        return Err("at most 10 thresholds".into());
    }
    if list.iter().any(|t| !(1..=100).contains(t)) {
        return Err("each threshold is a percentage from 1 to 100".into());
    }
    if list.windows(2).any(|w| w[0] >= w[1]) {
        return Err("thresholds must be in ascending order without repeats".into());
    }
    Ok(list.to_vec())
}

/// Where limit counters live.
#[derive(Clone, Debug)]
pub struct CountersConfig {
    /// Redis shared by the nodes; `None`: in-process counters.
    pub redis_url: Option<SecretString>,
    /// First part of every Redis key keygate writes (several gateways, or
    /// tests, may share one Redis).
    pub redis_prefix: String,
}

/// Validate `[limits]`, `redis_url` and `redis_prefix` over the environment.
pub fn validate(
    raw: RawLimits,
    redis_url: Option<String>,
    redis_prefix: Option<String>,
    env: &dyn Env,
) -> Result<(GovernorConfig, CountersConfig), ConfigError> {
    let defaults = GovernorConfig::default();
    let zone = env.var("KEYGATE_BUDGET_TIMEZONE").or(raw.timezone);
    let timezone = match zone {
        Some(name) => name.parse::<chrono_tz::Tz>().map_err(|_| {
            invalid(
                "limits.timezone / KEYGATE_BUDGET_TIMEZONE",
                format!(
                    "'{}' is not an IANA time zone like UTC or Europe/Paris",
                    crate::error::printable(&name)
                ),
            )
        })?,
        None => defaults.timezone,
    };
    let default_max_tokens = match env.var("KEYGATE_DEFAULT_MAX_TOKENS") {
        Some(text) => text.parse::<u64>().ok().filter(|n| *n > 0).ok_or_else(|| {
            invalid(
                "KEYGATE_DEFAULT_MAX_TOKENS",
                format!("'{text}' is not a positive whole number"),
            )
        })?,
        None => raw
            .default_max_tokens
            .unwrap_or(defaults.default_max_tokens),
    };
    if default_max_tokens == 0 || default_max_tokens > 10_000_000 {
        return Err(invalid(
            "limits.default_max_tokens",
            "must be between 1 and 10000000",
        ));
    }
    let lease_ttl = duration(env, "KEYGATE_RESERVATION_TTL", raw.reservation_ttl, "1h")?;
    let listed = match env.var("KEYGATE_BUDGET_ALERTS") {
        Some(text) => Some(
            text.split(',')
                .map(|t| t.trim().parse::<u8>())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|_| {
                    invalid(
                        "KEYGATE_BUDGET_ALERTS",
                        "must be comma-separated percentages, like 50,80,100",
                    )
                })?,
        ),
        None => raw.alert_thresholds,
    };
    let alert_thresholds = match listed {
        Some(list) => thresholds(&list)
            .map_err(|e| invalid("limits.alert_thresholds / KEYGATE_BUDGET_ALERTS", e))?,
        None => defaults.alert_thresholds,
    };
    let redis_url = env.var("KEYGATE_REDIS_URL").or(redis_url);
    if let Some(url) = &redis_url {
        if !(url.starts_with("redis://") || url.starts_with("rediss://")) {
            return Err(invalid(
                "redis_url / KEYGATE_REDIS_URL",
                "must be a redis:// or rediss:// URL",
            ));
        }
    }
    let redis_prefix = env
        .var("KEYGATE_REDIS_PREFIX")
        .or(redis_prefix)
        .unwrap_or_else(|| "keygate".into());
    if redis_prefix.is_empty()
        || redis_prefix.len() > 64
        || !redis_prefix
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    {
        return Err(invalid(
            "redis_prefix / KEYGATE_REDIS_PREFIX",
            "must be 1-64 letters, digits, '-', '_' or '.'",
        ));
    }
    Ok((
        GovernorConfig {
            timezone,
            default_max_tokens,
            lease_ttl,
            alert_thresholds,
        },
        CountersConfig {
            redis_url: redis_url.map(SecretString::from),
            redis_prefix,
        },
    ))
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
    fn defaults_are_utc_4096_tokens_an_hour_and_50_80_100() {
        let (config, redis) = validate(RawLimits::default(), None, None, &env(&[])).unwrap();
        assert_eq!(config.timezone, chrono_tz::Tz::UTC);
        assert_eq!(config.default_max_tokens, 4096);
        assert_eq!(config.lease_ttl, std::time::Duration::from_secs(3600));
        assert_eq!(config.alert_thresholds, vec![50, 80, 100]);
        assert!(redis.redis_url.is_none());
        assert_eq!(redis.redis_prefix, "keygate");
    }

    #[test]
    fn the_environment_sets_every_limit_setting() {
        let (config, redis) = validate(
            RawLimits::default(),
            None,
            None,
            &env(&[
                ("KEYGATE_BUDGET_TIMEZONE", "Europe/Paris"),
                ("KEYGATE_DEFAULT_MAX_TOKENS", "1000"),
                ("KEYGATE_RESERVATION_TTL", "5m"),
                ("KEYGATE_BUDGET_ALERTS", "25, 90"),
                ("KEYGATE_REDIS_URL", "redis://127.0.0.1:6379"),
            ]),
        )
        .unwrap();
        assert_eq!(config.timezone, chrono_tz::Europe::Paris);
        assert_eq!(config.default_max_tokens, 1000);
        assert_eq!(config.lease_ttl, std::time::Duration::from_secs(300));
        assert_eq!(config.alert_thresholds, vec![25, 90]);
        assert!(redis.redis_url.is_some());
    }

    #[test]
    fn bad_settings_name_themselves() {
        for (var, value) in [
            ("KEYGATE_BUDGET_TIMEZONE", "Mars/Olympus"),
            ("KEYGATE_DEFAULT_MAX_TOKENS", "0"),
            ("KEYGATE_BUDGET_ALERTS", "80,50"),
            ("KEYGATE_BUDGET_ALERTS", "150"),
            ("KEYGATE_REDIS_URL", "http://x"),
            ("KEYGATE_REDIS_PREFIX", "a b"),
        ] {
            let error = validate(RawLimits::default(), None, None, &env(&[(var, value)]))
                .unwrap_err()
                .to_string();
            assert!(
                error.contains(var) || error.contains("limits."),
                "{var}={value}: {error}"
            );
        }
    }
}
