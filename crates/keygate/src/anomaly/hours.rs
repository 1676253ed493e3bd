//! Hours of the day a key is active, in the budget time zone
//! (`KEYGATE_BUDGET_TIMEZONE`): a use at an hour the key has never been
//! active is worth a look once the key has enough history to have a habit.

use chrono::{TimeZone, Timelike};
use chrono_tz::Tz;

/// The local hour (0-23) of Unix ms `ms` in `zone`.
pub fn local_hour(ms: i64, zone: Tz) -> u32 {
    zone.timestamp_millis_opt(ms)
        .single()
        .map_or(0, |t| t.hour())
}

/// The local calendar date and hour of `ms`, `YYYY-MM-DDTHH`, for messages
/// and dedupe keys.
pub fn local_date_hour(ms: i64, zone: Tz) -> String {
    zone.timestamp_millis_opt(ms)
        .single()
        .map(|t| t.format("%Y-%m-%dT%H").to_string())
        .unwrap_or_default()
}

/// A set of hours of the day.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Hours(u32);

impl Hours {
    /// Whether `hour` (0-23) is in the set.
    pub fn contains(self, hour: u32) -> bool {
        hour < 24 && self.0 & (1 << hour) != 0
    }

    /// Add `hour` (0-23).
    pub fn insert(&mut self, hour: u32) {
        if hour < 24 {
            self.0 |= 1 << hour;
        }
    }

    /// How many hours are in the set.
    pub fn len(self) -> u32 {
        self.0.count_ones()
    }

    /// Whether the set is empty.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hours_follow_the_time_zone() {
        // 2026-01-01T10:45:00Z
        let ms = 1_767_264_300_000;
        assert_eq!(local_hour(ms, Tz::UTC), 10);
        // India is 5:30 ahead: 16:15.
        assert_eq!(local_hour(ms, chrono_tz::Asia::Kolkata), 16);
        assert_eq!(
            local_date_hour(ms, chrono_tz::Asia::Kolkata),
            "2026-01-01T16"
        );
        let mut hours = Hours::default();
        assert!(hours.is_empty());
        hours.insert(16);
        hours.insert(16);
        hours.insert(99);
        assert!(hours.contains(16) && !hours.contains(15) && !hours.contains(99));
        assert_eq!(hours.len(), 1);
    }
}
