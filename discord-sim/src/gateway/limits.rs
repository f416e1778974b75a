//! Limits on what a client may send on one connection: payload size (4096 bytes, else 4002) and
//! the send rate (120 payloads per 60 s, else 4008).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::config::RouteLimit;

/// Largest payload a client may send, in bytes.
pub const MAX_PAYLOAD_BYTES: usize = 4096;

/// Sliding-window counter of payloads a client sent on one connection.
#[derive(Debug)]
pub struct SendLimiter {
    limit: u32,
    per: Duration,
    sent: VecDeque<Instant>,
}

impl SendLimiter {
    /// A limiter for `limit` payloads per `per`.
    pub fn new(limit: RouteLimit) -> Self {
        Self {
            limit: limit.limit,
            per: limit.per,
            sent: VecDeque::new(),
        }
    }

    /// Counts one payload at `now`; `false` when it goes over the limit.
    pub fn allow(&mut self, now: Instant) -> bool {
        while let Some(&oldest) = self.sent.front() {
            if now.duration_since(oldest) >= self.per {
                self.sent.pop_front();
            } else {
                break;
            }
        }
        if self.sent.len() >= self.limit as usize {
            return false;
        }
        self.sent.push_back(now);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_slides() {
        let mut l = SendLimiter::new(RouteLimit::new(3, Duration::from_secs(60)));
        let t0 = Instant::now();
        assert!(l.allow(t0));
        assert!(l.allow(t0));
        assert!(l.allow(t0 + Duration::from_secs(1)));
        assert!(!l.allow(t0 + Duration::from_secs(2)));
        // The first two fall out of the window after 60 s.
        assert!(l.allow(t0 + Duration::from_secs(60)));
        assert!(l.allow(t0 + Duration::from_secs(60)));
        assert!(!l.allow(t0 + Duration::from_secs(60)));
    }
}
