//! When to try a failed delivery again.
//!
//! The schedule lists the delays *between* attempts; the first attempt is immediate, so a
//! schedule of seven delays allows eight attempts. Each delay is spread by ±jitter so that
//! many deliveries failing together do not retry together. A receiver's `Retry-After` (on 429
//! or 503) is honoured: the next try is never earlier than it asks, up to a bound.

use std::time::Duration;

#[derive(Debug, Clone, PartialEq)]
pub struct RetrySchedule {
    delays: Vec<Duration>,
    jitter: f64,
}

impl RetrySchedule {
    pub fn new(delays: Vec<Duration>, jitter: f64) -> Self {
        RetrySchedule {
            delays,
            jitter: jitter.clamp(0.0, 1.0),
        }
    }

    pub fn delays(&self) -> &[Duration] {
        &self.delays
    }

    pub fn max_attempts(&self) -> u32 {
        self.delays.len() as u32 + 1
    }

    /// After `attempts_made` attempts have failed, the wait before the next one, or `None`
    /// when the schedule is spent. `unit` is a uniform random number in `[0, 1)`.
    pub fn next_delay(
        &self,
        attempts_made: u32,
        retry_after: Option<Duration>,
        retry_after_max: Duration,
        unit: f64,
    ) -> Option<Duration> {
        let base = *self.delays.get(attempts_made.checked_sub(1)? as usize)?;
        let spread = 1.0 + self.jitter * (2.0 * unit.clamp(0.0, 1.0) - 1.0);
        let jittered = base.mul_f64(spread.max(0.0));
        let floor = retry_after
            .map(|r| r.min(retry_after_max))
            .unwrap_or_default();
        Some(jittered.max(floor))
    }
}

/// `Retry-After` as delay-seconds or an HTTP date.
pub fn parse_retry_after(value: &str, now: chrono::DateTime<chrono::Utc>) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    let wait = at.with_timezone(&chrono::Utc) - now;
    Some(wait.to_std().unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schedule(jitter: f64) -> RetrySchedule {
        RetrySchedule::new(
            vec![Duration::from_secs(5), Duration::from_secs(300)],
            jitter,
        )
    }

    #[test]
    fn follows_the_schedule_then_gives_up() {
        let s = schedule(0.0);
        let max = Duration::from_secs(3600);
        assert_eq!(s.max_attempts(), 3);
        assert_eq!(
            s.next_delay(1, None, max, 0.5),
            Some(Duration::from_secs(5))
        );
        assert_eq!(
            s.next_delay(2, None, max, 0.5),
            Some(Duration::from_secs(300))
        );
        assert_eq!(s.next_delay(3, None, max, 0.5), None);
        assert_eq!(s.next_delay(0, None, max, 0.5), None);
    }

    #[test]
    fn jitter_stays_within_its_spread() {
        let s = schedule(0.2);
        let max = Duration::from_secs(3600);
        assert_eq!(
            s.next_delay(1, None, max, 0.0),
            Some(Duration::from_secs(4))
        );
        assert_eq!(
            s.next_delay(1, None, max, 1.0),
            Some(Duration::from_secs(6))
        );
    }

    #[test]
    fn retry_after_is_a_floor_with_a_bound() {
        let s = schedule(0.0);
        let max = Duration::from_secs(60);
        let d = |r| {
            s.next_delay(1, Some(Duration::from_secs(r)), max, 0.5)
                .unwrap()
        };
        assert_eq!(d(30), Duration::from_secs(30));
        assert_eq!(d(1), Duration::from_secs(5));
        assert_eq!(d(86_400), Duration::from_secs(60));
    }

    #[test]
    fn parses_retry_after_forms() {
        let now = chrono::DateTime::parse_from_rfc3339("2015-10-21T07:28:00Z")
            .unwrap()
            .to_utc();
        assert_eq!(
            parse_retry_after("120", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:30 GMT", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(parse_retry_after("soon", now), None);
    }
}
