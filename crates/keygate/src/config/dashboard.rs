//! `[dashboard]`: sign-in sessions of the web dashboard.
//!
//! ```toml
//! [dashboard]
//! session_idle = "30m"      # KEYGATE_DASHBOARD_SESSION_IDLE: signed out after this long without a request
//! session_lifetime = "12h"  # KEYGATE_DASHBOARD_SESSION_LIFETIME: signed out this long after sign-in, however active
//! ```

use super::{invalid, ConfigError, Env};
use serde::Deserialize;
use std::time::Duration;

/// The `[dashboard]` table of the file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDashboard {
    /// `KEYGATE_DASHBOARD_SESSION_IDLE`.
    pub session_idle: Option<String>,
    /// `KEYGATE_DASHBOARD_SESSION_LIFETIME`.
    pub session_lifetime: Option<String>,
}

/// Validated `[dashboard]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DashboardConfig {
    /// A session unused this long is over.
    pub session_idle: Duration,
    /// A session this old is over.
    pub session_lifetime: Duration,
}

impl Default for DashboardConfig {
    fn default() -> Self {
        DashboardConfig {
            session_idle: Duration::from_secs(30 * 60),
            session_lifetime: Duration::from_secs(12 * 3600),
        }
    }
}

fn duration(
    env: &dyn Env,
    field: &str,
    var: &str,
    file: Option<String>,
    default: Duration,
) -> Result<Duration, ConfigError> {
    let Some(text) = env.var(var).or(file) else {
        return Ok(default);
    };
    humantime::parse_duration(text.trim())
        .ok()
        .filter(|d| *d >= Duration::from_secs(60) && *d <= Duration::from_secs(30 * 86_400))
        .ok_or_else(|| {
            invalid(
                format!("dashboard.{field} / {var}"),
                format!(
                    "'{}' is not a duration between 1m and 30d",
                    crate::error::printable(&text)
                ),
            )
        })
}

/// Validate `[dashboard]` with its environment overrides.
pub fn validate(raw: RawDashboard, env: &dyn Env) -> Result<DashboardConfig, ConfigError> {
    let defaults = DashboardConfig::default();
    let session_idle = duration(
        env,
        "session_idle",
        "KEYGATE_DASHBOARD_SESSION_IDLE",
        raw.session_idle,
        defaults.session_idle,
    )?;
    let session_lifetime = duration(
        env,
        "session_lifetime",
        "KEYGATE_DASHBOARD_SESSION_LIFETIME",
        raw.session_lifetime,
        defaults.session_lifetime,
    )?;
    if session_idle > session_lifetime {
        return Err(invalid(
            "dashboard.session_idle / KEYGATE_DASHBOARD_SESSION_IDLE",
            "the idle timeout may not be longer than the session lifetime",
        ));
    }
    Ok(DashboardConfig {
        session_idle,
        session_lifetime,
    })
}
