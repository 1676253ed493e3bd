//! The rolling baseline behind spike detection: a key's requests and spend
//! in hourly buckets (hours since the Unix epoch, so the same on every
//! node), compared with the average of the trailing buckets.
//!
//! An hour is a spike when its requests exceed `factor` × the trailing
//! average and the floor (`spike_min_requests`), or its spend exceeds
//! `factor` × the trailing average spend and the floor (`spike_min_usd`).
//! The trailing window is the `spike_baseline` hours before the current
//! one; an hour with no use counts as zero. A key is only judged once it
//! has a full window of history, so a new key's first busy hour is not a
//! spike. A spike that goes on into the next hour is the same episode and
//! is not reported again.

use crate::config::anomaly::SpikeConfig;
use std::collections::VecDeque;

/// One hour in milliseconds.
pub const HOUR_MS: i64 = 3_600_000;

/// The hourly bucket of Unix ms `ms`.
pub fn hour_of(ms: i64) -> i64 {
    ms.div_euclid(HOUR_MS)
}

/// Use within one bucket.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    /// Requests.
    pub requests: u64,
    /// Spend, nanodollars.
    pub cost_nanos: i64,
}

impl Usage {
    fn add(&mut self, other: Usage) {
        self.requests = self.requests.saturating_add(other.requests);
        self.cost_nanos = self.cost_nanos.saturating_add(other.cost_nanos);
    }
}

/// The trailing average per hour.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Average {
    /// Requests per hour.
    pub requests: f64,
    /// Spend per hour, nanodollars.
    pub cost_nanos: f64,
}

/// A spike: what exceeded its baseline.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Spike {
    /// The hourly bucket.
    pub hour: i64,
    /// Its use so far.
    pub current: Usage,
    /// The trailing average.
    pub average: Average,
    /// Requests exceeded the baseline and the floor.
    pub requests: bool,
    /// Spend exceeded the baseline and the floor.
    pub spend: bool,
}

/// A key's hourly buckets: the current hour and the trailing window.
#[derive(Clone, Debug, Default)]
pub struct Baseline {
    /// Ascending by hour, at most `window + 1` of them.
    buckets: VecDeque<(i64, Usage)>,
    /// The last hour found spiking (the current episode).
    spiking: Option<i64>,
}

impl Baseline {
    /// Count `usage` in bucket `hour` (out-of-order hours are placed where
    /// they belong); buckets older than the window before the newest are
    /// dropped.
    pub fn add(&mut self, hour: i64, usage: Usage, window: u32) {
        match self.buckets.iter().rposition(|(h, _)| *h <= hour) {
            Some(i) if self.buckets[i].0 == hour => self.buckets[i].1.add(usage),
            Some(i) => self.buckets.insert(i + 1, (hour, usage)),
            None => self.buckets.push_front((hour, usage)),
        }
        let newest = self.buckets.back().map_or(hour, |(h, _)| *h);
        let oldest_kept = newest.saturating_sub(i64::from(window));
        while self.buckets.front().is_some_and(|(h, _)| *h < oldest_kept) {
            self.buckets.pop_front();
        }
    }

    /// Use in bucket `hour`.
    pub fn current(&self, hour: i64) -> Usage {
        self.buckets
            .iter()
            .find(|(h, _)| *h == hour)
            .map(|(_, u)| *u)
            .unwrap_or_default()
    }

    /// The average per hour over the `window` buckets before `hour`.
    pub fn trailing_average(&self, hour: i64, window: u32) -> Average {
        let from = hour.saturating_sub(i64::from(window));
        let mut total = Usage::default();
        for (_, usage) in self.buckets.iter().filter(|(h, _)| *h >= from && *h < hour) {
            total.add(*usage);
        }
        let n = f64::from(window.max(1));
        #[allow(clippy::cast_precision_loss)]
        Average {
            requests: total.requests as f64 / n,
            cost_nanos: total.cost_nanos as f64 / n,
        }
    }

    /// Judge bucket `hour` after a use was added to it: `Some` when it is
    /// a spike that starts a new episode (the caller alerts once).
    /// `judged` is false while the key lacks a full window of history.
    pub fn judge(&mut self, hour: i64, config: &SpikeConfig, judged: bool) -> Option<Spike> {
        if !judged {
            return None;
        }
        let current = self.current(hour);
        let average = self.trailing_average(hour, config.baseline_hours);
        #[allow(clippy::cast_precision_loss)]
        let requests = current.requests >= config.min_requests
            && current.requests as f64 > config.factor * average.requests;
        #[allow(clippy::cast_precision_loss)]
        let spend = current.cost_nanos >= config.min_cost_nanos
            && current.cost_nanos as f64 > config.factor * average.cost_nanos;
        if !(requests || spend) {
            return None;
        }
        let episode_goes_on = self
            .spiking
            .is_some_and(|h| h == hour || h == hour.saturating_sub(1));
        self.spiking = Some(hour);
        if episode_goes_on {
            return None;
        }
        Some(Spike {
            hour,
            current,
            average,
            requests,
            spend,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> SpikeConfig {
        SpikeConfig {
            factor: 3.0,
            baseline_hours: 3,
            min_requests: 5,
            min_cost_nanos: 1_000,
        }
    }

    fn requests(n: u64) -> Usage {
        Usage {
            requests: n,
            cost_nanos: 0,
        }
    }

    #[test]
    fn buckets_are_hours_since_the_epoch() {
        assert_eq!(hour_of(0), 0);
        assert_eq!(hour_of(HOUR_MS - 1), 0);
        assert_eq!(hour_of(HOUR_MS), 1);
        assert_eq!(hour_of(-1), -1);
    }

    #[test]
    fn the_average_counts_empty_hours_as_zero_and_keeps_only_the_window() {
        let mut b = Baseline::default();
        b.add(10, requests(6), 3);
        b.add(12, requests(3), 3);
        b.add(11, requests(0), 3);
        // Out of order: placed where it belongs.
        b.add(10, requests(3), 3);
        assert_eq!(b.current(10), requests(9));
        assert_eq!(b.trailing_average(13, 3).requests, 4.0);
        // Hour 14 leaves 10 behind (window 3: 11, 12, 13 and 14 are kept).
        b.add(14, requests(1), 3);
        assert_eq!(b.current(10), Usage::default());
        assert_eq!(b.trailing_average(14, 3).requests, 1.0);
    }

    #[test]
    fn a_spike_needs_the_factor_and_the_floor_and_alerts_once_per_episode() {
        let c = config();
        let mut b = Baseline::default();
        for hour in 0..3 {
            b.add(hour, requests(2), 3);
        }
        // Average 2/h: more than 6 and at least 5 requests is a spike.
        for n in 1..=6 {
            b.add(3, requests(1), 3);
            assert_eq!(b.judge(3, &c, true), None, "{n} requests");
        }
        b.add(3, requests(1), 3);
        let spike = b.judge(3, &c, true).unwrap();
        assert!(spike.requests && !spike.spend);
        assert_eq!(spike.current.requests, 7);
        assert_eq!(spike.average.requests, 2.0);
        // Further requests in the hour: the same episode.
        b.add(3, requests(10), 3);
        assert_eq!(b.judge(3, &c, true), None);
        // The next hour still spiking: the same episode.
        b.add(4, requests(100), 3);
        assert_eq!(b.judge(4, &c, true), None);
        // A quiet hour ends it; a later spike is new.
        b.add(5, requests(1), 3);
        assert_eq!(b.judge(5, &c, true), None);
        b.add(7, requests(1000), 3);
        assert!(b.judge(7, &c, true).is_some());
    }

    #[test]
    fn the_floor_holds_off_quiet_keys_and_history_is_required() {
        let c = config();
        let mut b = Baseline::default();
        // From nothing to 4 requests: above 3 × 0, under the floor of 5.
        b.add(3, requests(4), 3);
        assert_eq!(b.judge(3, &c, true), None);
        b.add(3, requests(10), 3);
        assert_eq!(b.judge(3, &c, false), None, "not judged without history");
        assert!(b.judge(3, &c, true).is_some());
    }

    #[test]
    fn spend_spikes_on_its_own() {
        let c = config();
        let mut b = Baseline::default();
        for hour in 0..3 {
            b.add(
                hour,
                Usage {
                    requests: 10,
                    cost_nanos: 500,
                },
                3,
            );
        }
        b.add(
            3,
            Usage {
                requests: 10,
                cost_nanos: 1_600,
            },
            3,
        );
        let spike = b.judge(3, &c, true).unwrap();
        assert!(spike.spend && !spike.requests);
    }
}
