//! The exposure report of an incident: what a key did while it was
//! exposed, next to what it usually does.
//!
//! The window runs from a time the responder gives, or else the key's first
//! appearance in a leak report, or else its creation, until its revocation.
//! The baseline is the 30 days before the window. "What differs" lists the
//! client addresses, user agents, models and hours of the day (UTC) seen in
//! the window and never in the baseline, and how the request rate compares.

use crate::store::{Exposure, ExposureGroup, LeakReportRecord, Store, StoreError};
use serde::Serialize;
use std::collections::HashSet;

/// Length of the baseline before the window.
pub const BASELINE_MS: i64 = 30 * 86_400_000;

/// Why the window starts where it does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum WindowStart {
    /// The responder gave the time.
    Given,
    /// The key's first leak report.
    FirstLeakReport,
    /// The key's creation (no report, no time given).
    Created,
}

/// What the window shows that the baseline does not.
#[derive(Clone, Debug, Default, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Differences {
    /// Client addresses never seen in the baseline.
    pub new_sources: Vec<String>,
    /// User agents never seen in the baseline.
    pub new_user_agents: Vec<String>,
    /// Models never used in the baseline.
    pub new_models: Vec<String>,
    /// Hours of the day (UTC) with requests in the window and none in the
    /// baseline.
    pub new_hours: Vec<String>,
    /// Requests per hour in the window.
    pub requests_per_hour: f64,
    /// Requests per hour in the baseline.
    pub baseline_requests_per_hour: f64,
}

/// The exposure report.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct Report {
    /// The key.
    pub key_id: String,
    /// Window start, Unix ms.
    pub since: i64,
    /// Window end (the revocation), Unix ms.
    pub until: i64,
    /// Why the window starts there.
    pub window_start: WindowStart,
    /// Leak reports of the key.
    pub leak_reports: Vec<LeakReportView>,
    /// What the key did in the window.
    pub exposure: Exposure,
    /// What it did in the baseline.
    pub baseline: Exposure,
    /// What differs.
    pub differences: Differences,
}

/// A leak report as the incident report shows it.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct LeakReportView {
    /// Where it was found.
    pub url: Option<String>,
    /// What kind of place.
    pub source: Option<String>,
    /// Who reported it.
    pub reporter: String,
    /// When, RFC 3339.
    pub reported_at: String,
}

impl From<&LeakReportRecord> for LeakReportView {
    fn from(r: &LeakReportRecord) -> Self {
        LeakReportView {
            url: r.url.clone(),
            source: r.source.clone(),
            reporter: r.reporter.clone(),
            reported_at: crate::time::rfc3339(r.reported_at),
        }
    }
}

fn names(groups: &[ExposureGroup]) -> HashSet<&str> {
    groups.iter().map(|g| g.name.as_str()).collect()
}

fn new_names(window: &[ExposureGroup], baseline: &[ExposureGroup]) -> Vec<String> {
    let seen = names(baseline);
    window
        .iter()
        .filter(|g| !seen.contains(g.name.as_str()))
        .map(|g| g.name.clone())
        .collect()
}

fn per_hour(requests: i64, since: i64, until: i64) -> f64 {
    let hours = (until - since).max(1) as f64 / 3_600_000.0;
    (requests as f64 / hours * 100.0).round() / 100.0
}

/// Build the report of `key_id` (created at `created_at`) for the window
/// ending at `until`, starting at `given` when the responder named a time.
pub async fn report(
    store: &dyn Store,
    key_id: &str,
    created_at: i64,
    given: Option<i64>,
    until: i64,
) -> Result<Report, StoreError> {
    let reports = store.leak_reports(key_id).await?;
    let (since, window_start) = match (given, reports.first()) {
        (Some(since), _) => (since, WindowStart::Given),
        (None, Some(first)) => (first.reported_at, WindowStart::FirstLeakReport),
        (None, None) => (created_at, WindowStart::Created),
    };
    let since = since.min(until);
    let exposure = store
        .exposure(key_id, since, until.saturating_add(1))
        .await?;
    let baseline_since = since.saturating_sub(BASELINE_MS).max(created_at.min(since));
    let baseline = store.exposure(key_id, baseline_since, since).await?;
    let differences = Differences {
        new_sources: new_names(&exposure.sources, &baseline.sources),
        new_user_agents: new_names(&exposure.user_agents, &baseline.user_agents),
        new_models: new_names(&exposure.models, &baseline.models),
        new_hours: new_names(&exposure.hours, &baseline.hours),
        requests_per_hour: per_hour(exposure.requests, since, until),
        baseline_requests_per_hour: per_hour(baseline.requests, baseline_since, since),
    };
    Ok(Report {
        key_id: key_id.to_string(),
        since,
        until,
        window_start,
        leak_reports: reports.iter().map(LeakReportView::from).collect(),
        exposure,
        baseline,
        differences,
    })
}

/// A past time: RFC 3339, or a duration ago (`36h`, `7d`).
pub fn parse_since(text: &str, now: i64) -> Result<i64, String> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(text) {
        return Ok(t.timestamp_millis());
    }
    let ago = humantime::parse_duration(text).map_err(|_| {
        format!("'{text}' is neither an RFC 3339 time nor a duration like 36h or 7d")
    })?;
    let ms = i64::try_from(ago.as_millis()).map_err(|_| format!("'{text}' is too long ago"))?;
    Ok(now.saturating_sub(ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_names_and_rates() {
        let g = |name: &str| ExposureGroup {
            name: name.into(),
            ..Default::default()
        };
        assert_eq!(
            new_names(&[g("a"), g("b")], &[g("a")]),
            vec!["b".to_string()]
        );
        assert_eq!(per_hour(10, 0, 3_600_000 * 2), 5.0);
        assert_eq!(parse_since("1h", 7_200_000), Ok(3_600_000));
        assert!(parse_since("later", 0).is_err());
    }
}
