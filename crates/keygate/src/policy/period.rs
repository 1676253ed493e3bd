//! Calendar windows of budget periods in the configured time zone.

use super::limits::Period;
use chrono::{Datelike, Duration, NaiveDate, TimeZone};
use chrono_tz::Tz;

/// The window of one period that contains a moment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Window {
    /// Names the window in counter names and alerts: `2026-11-28`,
    /// `2026-W48`, `2026-11`, `total`.
    pub label: String,
    /// Start, Unix ms (inclusive).
    pub since_ms: i64,
    /// End, Unix ms (exclusive); `None` for a total budget.
    pub until_ms: Option<i64>,
}

/// Midnight at the start of `date` in `tz`, Unix ms. A zone that skips
/// midnight (a daylight-saving change at 00:00) starts the day at its first
/// existing instant.
fn start_of(date: NaiveDate, tz: Tz) -> i64 {
    let mut time = date.and_hms_opt(0, 0, 0).unwrap_or_default();
    for _ in 0..4 {
        if let Some(start) = tz.from_local_datetime(&time).earliest() {
            return start.timestamp_millis();
        }
        time += Duration::minutes(30);
    }
    time.and_utc().timestamp_millis()
}

/// The window of `period` containing `now_ms`, calendar-aligned in `tz`:
/// days start at midnight, weeks on Monday, months on the first.
pub fn window(period: Period, now_ms: i64, tz: Tz) -> Window {
    let local = tz
        .timestamp_millis_opt(now_ms)
        .single()
        .map(|t| t.date_naive())
        .unwrap_or_default();
    let (label, first, next) = match period {
        Period::Total => {
            return Window {
                label: "total".into(),
                since_ms: 0,
                until_ms: None,
            }
        }
        Period::Day => (
            local.format("%Y-%m-%d").to_string(),
            local,
            local + Duration::days(1),
        ),
        Period::Week => {
            let monday = local - Duration::days(i64::from(local.weekday().num_days_from_monday()));
            let iso = local.iso_week();
            (
                format!("{}-W{:02}", iso.year(), iso.week()),
                monday,
                monday + Duration::days(7),
            )
        }
        Period::Month => {
            let first = local.with_day(1).unwrap_or(local);
            let next = if first.month() == 12 {
                NaiveDate::from_ymd_opt(first.year() + 1, 1, 1)
            } else {
                NaiveDate::from_ymd_opt(first.year(), first.month() + 1, 1)
            }
            .unwrap_or(first);
            (local.format("%Y-%m").to_string(), first, next)
        }
    };
    Window {
        label,
        since_ms: start_of(first, tz),
        until_ms: Some(start_of(next, tz)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(text: &str) -> i64 {
        chrono::DateTime::parse_from_rfc3339(text)
            .unwrap()
            .timestamp_millis()
    }

    #[test]
    fn months_weeks_and_days_follow_the_calendar_in_utc() {
        let now = ms("2026-11-28T13:45:00Z");
        let month = window(Period::Month, now, Tz::UTC);
        assert_eq!(month.label, "2026-11");
        assert_eq!(month.since_ms, ms("2026-11-01T00:00:00Z"));
        assert_eq!(month.until_ms, Some(ms("2026-12-01T00:00:00Z")));
        let week = window(Period::Week, now, Tz::UTC);
        assert_eq!(week.label, "2026-W48");
        assert_eq!(week.since_ms, ms("2026-11-23T00:00:00Z"));
        assert_eq!(week.until_ms, Some(ms("2026-11-30T00:00:00Z")));
        let day = window(Period::Day, now, Tz::UTC);
        assert_eq!(day.label, "2026-11-28");
        assert_eq!(day.until_ms, Some(ms("2026-11-29T00:00:00Z")));
        let december = window(Period::Month, ms("2026-12-31T23:59:59Z"), Tz::UTC);
        assert_eq!(december.until_ms, Some(ms("2027-01-01T00:00:00Z")));
        assert_eq!(window(Period::Total, now, Tz::UTC).until_ms, None);
    }

    #[test]
    fn a_time_zone_moves_the_boundaries() {
        let tz: Tz = "America/New_York".parse().unwrap();
        // 03:00 UTC on the 1st is still the 31st of October in New York.
        let now = ms("2026-11-01T03:00:00Z");
        let month = window(Period::Month, now, tz);
        assert_eq!(month.label, "2026-10");
        assert_eq!(month.since_ms, ms("2026-10-01T00:00:00-04:00"));
        assert_eq!(month.until_ms, Some(ms("2026-11-01T00:00:00-04:00")));
        // The day daylight saving ends is 25 hours long.
        let day = window(Period::Day, ms("2026-11-01T12:00:00Z"), tz);
        assert_eq!(day.until_ms.unwrap() - day.since_ms, 25 * 3_600_000);
    }

    #[test]
    fn a_zone_that_skips_midnight_starts_the_day_at_its_first_instant() {
        // Santiago springs forward at midnight: 2026-09-06 has no 00:00.
        let tz: Tz = "America/Santiago".parse().unwrap();
        let day = window(Period::Day, ms("2026-09-06T12:00:00Z"), tz);
        assert_eq!(day.since_ms, ms("2026-09-06T01:00:00-03:00"));
    }
}
