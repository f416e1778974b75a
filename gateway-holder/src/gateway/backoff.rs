//! Jittered, capped exponential backoff for reconnects (and the forwarder's retries). Full jitter
//! spreads many holders (or many shards) apart after a shared outage, and the cap plus the reset on
//! success keep a flapping link from either hammering Discord or waiting for minutes.

use rand::Rng;
use std::time::Duration;

#[derive(Clone, Debug)]
pub struct Backoff {
    base: Duration,
    max: Duration,
    attempt: u32,
}

impl Backoff {
    pub fn new(base: Duration, max: Duration) -> Self {
        Backoff {
            base,
            max: max.max(base),
            attempt: 0,
        }
    }

    /// The ceiling of the next delay: `base × 2^attempt`, capped at `max`.
    pub fn ceiling(&self) -> Duration {
        let factor = 1u32 << self.attempt.min(20);
        self.base.saturating_mul(factor).min(self.max)
    }

    /// The next delay: uniform in `[ceiling/2, ceiling]` (never zero, so a failing peer is never
    /// retried in a tight loop), then doubles the ceiling.
    pub fn next_delay(&mut self) -> Duration {
        let ceiling = self.ceiling();
        self.attempt = self.attempt.saturating_add(1);
        let half = ceiling / 2;
        let spread = ceiling - half;
        half + spread.mul_f64(rand::thread_rng().gen::<f64>())
    }

    pub fn attempts(&self) -> u32 {
        self.attempt
    }

    /// After a success: the next failure starts from `base` again.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_jittered_and_capped_then_resets() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
        let mut ceilings = vec![];
        for _ in 0..8 {
            let c = b.ceiling();
            let d = b.next_delay();
            assert!(d >= c / 2 && d <= c, "{d:?} outside [{:?}, {c:?}]", c / 2);
            ceilings.push(c.as_millis());
        }
        assert_eq!(ceilings, [100, 200, 400, 800, 1600, 2000, 2000, 2000]);
        b.reset();
        assert_eq!(b.ceiling(), Duration::from_millis(100));
        assert_eq!(b.attempts(), 0);
    }

    #[test]
    fn jitter_spreads_delays() {
        let mut seen = std::collections::HashSet::new();
        for _ in 0..20 {
            let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(1));
            seen.insert(b.next_delay().as_micros());
        }
        assert!(seen.len() > 10, "delays are not jittered: {seen:?}");
    }

    #[test]
    fn huge_attempt_counts_do_not_overflow() {
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(60));
        for _ in 0..1000 {
            assert!(b.next_delay() <= Duration::from_secs(60));
        }
    }
}
