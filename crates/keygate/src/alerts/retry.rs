//! When a failed delivery is tried again: exponential backoff with jitter,
//! then giving up.

use std::time::Duration;

/// Retry schedule of failed deliveries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Delay after the first failed attempt; it doubles after each further
    /// failure.
    pub first_delay: Duration,
    /// Longest delay between two attempts.
    pub max_delay: Duration,
    /// No attempt is scheduled later than this after the alert was raised.
    pub give_up_after: Duration,
    /// No more attempts than this, whatever the time.
    pub max_attempts: u32,
}

impl Default for RetryPolicy {
    /// 5 s, 10 s, 20 s, … capped at 1 h, for up to 24 h (about 33 attempts).
    fn default() -> Self {
        RetryPolicy {
            first_delay: Duration::from_secs(5),
            max_delay: Duration::from_secs(3600),
            give_up_after: Duration::from_secs(24 * 3600),
            max_attempts: 48,
        }
    }
}

/// Share of a delay that jitter may take off, so that deliveries failing
/// together (a receiver's outage) do not retry in lockstep. Taking off
/// rather than adding keeps the cap a cap, and with a quarter at most each
/// delay is still longer than the one before (0.75 × 2 > 1).
const JITTER: f64 = 0.25;

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl RetryPolicy {
    /// The delay after failed attempt `attempt` (1 for the first):
    /// `min(first_delay × 2^(attempt−1), max_delay)`, less `unit × 25 %`,
    /// with `unit` a random draw in `[0, 1)`. Whole milliseconds.
    pub fn delay(&self, attempt: u32, unit: f64) -> Duration {
        let doublings = attempt.saturating_sub(1);
        let nominal = 2u32
            .checked_pow(doublings)
            .map_or(self.max_delay, |factor| {
                self.first_delay.saturating_mul(factor)
            })
            .min(self.max_delay);
        let unit = if unit.is_finite() {
            unit.clamp(0.0, 1.0)
        } else {
            0.0
        };
        let jittered = nominal.mul_f64(1.0 - JITTER * unit);
        Duration::from_millis(u64::try_from(jittered.as_millis()).unwrap_or(u64::MAX))
    }

    /// When to try again (Unix ms) after attempt `attempt` failed at `now`,
    /// for an alert raised at `raised_at`; `None` to give up. A receiver's
    /// `Retry-After` (`at_least`, itself capped at `max_delay`) lengthens the
    /// delay, never shortens it.
    pub fn next_attempt(
        &self,
        attempt: u32,
        raised_at: i64,
        now: i64,
        unit: f64,
        at_least: Option<Duration>,
    ) -> Option<i64> {
        if attempt >= self.max_attempts {
            return None;
        }
        let floor = at_least.unwrap_or_default().min(self.max_delay);
        let delay = self.delay(attempt, unit).max(floor);
        let next = now.saturating_add(millis(delay));
        (next <= raised_at.saturating_add(millis(self.give_up_after))).then_some(next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn delays_double_from_five_seconds_up_to_an_hour() {
        let policy = RetryPolicy::default();
        let nominal: Vec<Duration> = (1..=12).map(|n| policy.delay(n, 0.0)).collect();
        assert_eq!(
            nominal,
            [5, 10, 20, 40, 80, 160, 320, 640, 1280, 2560, 3600, 3600].map(secs)
        );
        assert_eq!(policy.delay(1_000, 0.0), secs(3600));
        assert_eq!(policy.delay(u32::MAX, 0.5), secs(3150));
    }

    #[test]
    fn jitter_takes_off_at_most_a_quarter_and_keeps_delays_growing() {
        let policy = RetryPolicy::default();
        assert_eq!(policy.delay(1, 0.5), Duration::from_millis(4375));
        assert_eq!(policy.delay(1, 0.999_999), Duration::from_millis(3750));
        for attempt in 1..10 {
            // The longest possible delay is shorter than the next shortest.
            assert!(policy.delay(attempt, 0.0) < policy.delay(attempt + 1, 0.999_999));
        }
        for unit in [-1.0, 2.0, f64::NAN] {
            let d = policy.delay(3, unit);
            assert!(d >= secs(15) && d <= secs(20), "{unit}: {d:?}");
        }
    }

    #[test]
    fn gives_up_after_a_day_or_too_many_attempts() {
        let policy = RetryPolicy::default();
        let raised = 1_000_000;
        // Failing forever at the scheduled times, with the longest delays.
        let mut now = raised;
        let mut attempt = 1;
        while let Some(next) = policy.next_attempt(attempt, raised, now, 0.0, None) {
            now = next;
            attempt += 1;
        }
        let day = 24 * 3600 * 1000;
        assert!(now <= raised + day && now > raised + day - 3_600_000);
        assert_eq!(attempt, 33);
        let few = RetryPolicy {
            max_attempts: 3,
            ..policy
        };
        assert!(few.next_attempt(2, 0, 0, 0.0, None).is_some());
        assert_eq!(few.next_attempt(3, 0, 0, 0.0, None), None);
    }

    #[test]
    fn retry_after_lengthens_but_is_capped() {
        let policy = RetryPolicy::default();
        assert_eq!(
            policy.next_attempt(1, 0, 0, 0.0, Some(secs(60))),
            Some(60_000)
        );
        assert_eq!(
            policy.next_attempt(1, 0, 0, 0.0, Some(secs(1))),
            Some(5_000)
        );
        assert_eq!(
            policy.next_attempt(1, 0, 0, 0.0, Some(secs(86_400 * 7))),
            Some(3_600_000)
        );
    }
}
