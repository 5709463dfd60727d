//! Per-endpoint rate limits (`rate_limit_per_s`) as a generic cell rate algorithm: a burst of
//! up to one second's worth, then evenly spaced. `reserve` books a slot and says how long to
//! wait for it, so a caller that waits never needs to ask again.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

#[derive(Default)]
pub struct RateLimiter {
    /// Theoretical arrival time of the next request, per endpoint.
    next: Mutex<HashMap<String, Instant>>,
}

impl RateLimiter {
    pub fn reserve(&self, endpoint_id: &str, per_second: u32, now: Instant) -> Duration {
        if per_second == 0 {
            return Duration::ZERO;
        }
        let interval = Duration::from_secs(1) / per_second;
        let burst = interval * per_second.saturating_sub(1);
        let mut next = self.next.lock().expect("rate limiter lock");
        let tat = next.get(endpoint_id).copied().unwrap_or(now).max(now);
        let allowed_at = tat.checked_sub(burst).unwrap_or(now).max(now);
        next.insert(endpoint_id.to_string(), tat + interval);
        if next.len() > 100_000 {
            next.retain(|_, t| *t > now);
        }
        allowed_at - now
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allows_a_burst_then_spaces_requests() {
        let limiter = RateLimiter::default();
        let now = Instant::now();
        let waits: Vec<_> = (0..5).map(|_| limiter.reserve("ep", 2, now)).collect();
        assert_eq!(waits[0], Duration::ZERO);
        assert_eq!(waits[1], Duration::ZERO);
        assert_eq!(waits[2], Duration::from_millis(500));
        assert_eq!(waits[3], Duration::from_millis(1000));
        assert_eq!(waits[4], Duration::from_millis(1500));
        assert_eq!(limiter.reserve("other", 2, now), Duration::ZERO);
    }
}
