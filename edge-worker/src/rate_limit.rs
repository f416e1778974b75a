//! The per-user request limit on `/api/actions/*`: one token bucket per JWT `sub`, kept in the
//! guild's hub (a Durable Object is single-threaded, so the count is exact).

use std::collections::HashMap;

/// More users than this and buckets that have refilled completely are forgotten (a full bucket
/// is the same as no bucket).
const PRUNE_AT: usize = 10_000;

#[derive(Clone, Copy, Debug)]
struct Bucket {
    tokens: f64,
    at_ms: u64,
}

#[derive(Debug)]
pub struct Limiter {
    per_sec: f64,
    burst: f64,
    buckets: HashMap<String, Bucket>,
}

impl Limiter {
    /// `per_sec` tokens refill each second, up to `burst`.
    pub fn new(per_sec: u64, burst: u64) -> Limiter {
        Limiter {
            per_sec: per_sec.max(1) as f64,
            burst: burst.max(1) as f64,
            buckets: HashMap::new(),
        }
    }

    /// Takes one token for `user`; `Err(seconds)` is the `Retry-After` (at least 1) when empty.
    pub fn check(&mut self, user: &str, now_ms: u64) -> Result<(), u64> {
        if self.buckets.len() >= PRUNE_AT && !self.buckets.contains_key(user) {
            self.prune(now_ms);
        }
        let (per_sec, burst) = (self.per_sec, self.burst);
        let b = self.buckets.entry(user.to_string()).or_insert(Bucket {
            tokens: burst,
            at_ms: now_ms,
        });
        let elapsed = now_ms.saturating_sub(b.at_ms) as f64 / 1000.0;
        b.tokens = (b.tokens + elapsed * per_sec).min(burst);
        b.at_ms = b.at_ms.max(now_ms);
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Ok(())
        } else {
            let wait = (1.0 - b.tokens) / per_sec;
            Err((wait.ceil() as u64).max(1))
        }
    }

    fn prune(&mut self, now_ms: u64) {
        let (per_sec, burst) = (self.per_sec, self.burst);
        self.buckets.retain(|_, b| {
            let elapsed = now_ms.saturating_sub(b.at_ms) as f64 / 1000.0;
            b.tokens + elapsed * per_sec < burst
        });
    }

    pub fn users(&self) -> usize {
        self.buckets.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_rate_per_user() {
        let mut l = Limiter::new(10, 20);
        for _ in 0..20 {
            assert!(l.check("a", 0).is_ok());
        }
        assert_eq!(l.check("a", 0), Err(1));
        assert!(l.check("b", 0).is_ok(), "users are independent");
        // 100 ms refills one token at 10/s.
        assert!(l.check("a", 100).is_ok());
        assert!(l.check("a", 100).is_err());
        // Never more than the burst.
        for _ in 0..20 {
            assert!(l.check("c", 1_000_000).is_ok());
        }
        assert!(l.check("c", 1_000_000).is_err());
    }

    #[test]
    fn forgets_full_buckets() {
        let mut l = Limiter::new(1, 1);
        for i in 0..PRUNE_AT {
            l.check(&i.to_string(), 0).unwrap();
        }
        assert_eq!(l.users(), PRUNE_AT);
        l.check("new", 10_000).unwrap();
        assert_eq!(l.users(), 1);
    }
}
