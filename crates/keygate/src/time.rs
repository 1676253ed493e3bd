//! Wall-clock helpers. Timestamps are stored as Unix milliseconds so that the
//! SQLite and PostgreSQL schemas stay identical.

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// RFC 3339 rendering of a Unix-millisecond timestamp, for API output.
pub fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_default()
}

/// Parse either an RFC 3339 time or a duration from now (`30d`, `12h`) into
/// Unix milliseconds.
pub fn parse_time_or_duration(text: &str, now: i64) -> Result<i64, String> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(text) {
        return Ok(t.timestamp_millis());
    }
    let d = humantime::parse_duration(text).map_err(|_| {
        format!("'{text}' is neither an RFC 3339 time nor a duration like 30d or 12h")
    })?;
    let ms = i64::try_from(d.as_millis()).map_err(|_| format!("duration '{text}' is too long"))?;
    now.checked_add(ms)
        .ok_or_else(|| format!("duration '{text}' is too long"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_durations_and_times() {
        assert_eq!(parse_time_or_duration("1h", 1000), Ok(1000 + 3_600_000));
        assert_eq!(
            parse_time_or_duration("2026-01-01T00:00:00Z", 0),
            Ok(1_767_225_600_000)
        );
        assert!(parse_time_or_duration("soon", 0).is_err());
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
    }
}
