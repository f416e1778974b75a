//! Discord's REST rate limits: per-route buckets keyed by the major parameter (the channel id),
//! reported in `X-RateLimit-*` headers, plus a global requests-per-second limit. Over a limit:
//! 429 with `Retry-After`, `X-RateLimit-Scope` and the JSON body Discord sends.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use crate::clock::unix_micros;
use crate::config::{RestLimits, RouteLimit};
use crate::faults::RateLimitScope;
use crate::state::lock;

#[derive(Debug, Clone, Copy)]
struct Window {
    start: Instant,
    count: u32,
}

/// Where a route's bucket stands after a request.
#[derive(Debug, Clone)]
pub struct BucketState {
    /// `X-RateLimit-Limit`.
    pub limit: u32,
    /// `X-RateLimit-Remaining`.
    pub remaining: u32,
    /// Time until the window resets.
    pub reset_after: Duration,
    /// `X-RateLimit-Bucket`.
    pub bucket: String,
}

/// Fixed-window counters for the global limit and every (bucket, major parameter).
#[derive(Debug)]
pub struct RateLimiter {
    limits: RestLimits,
    global: Mutex<Window>,
    buckets: Mutex<HashMap<(&'static str, u64), Window>>,
}

/// An opaque bucket hash derived from the route's name (Discord's are opaque too).
pub fn bucket_hash(name: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in name.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

impl RateLimiter {
    /// A limiter enforcing `limits`.
    pub fn new(limits: RestLimits) -> Self {
        Self {
            limits,
            // Already expired, so the first request opens the first window.
            global: Mutex::new(Window {
                start: Instant::now()
                    .checked_sub(Duration::from_secs(2))
                    .unwrap_or_else(Instant::now),
                count: 0,
            }),
            buckets: Mutex::default(),
        }
    }

    /// Counts a request against the global limit; `Err(retry_after)` when over it.
    pub fn global(&self) -> Result<(), Duration> {
        let now = Instant::now();
        let mut w = lock(&self.global);
        let per = Duration::from_secs(1);
        if now.duration_since(w.start) >= per {
            *w = Window {
                start: now,
                count: 0,
            };
        }
        if w.count >= self.limits.global_per_sec {
            return Err(per.saturating_sub(now.duration_since(w.start)));
        }
        w.count += 1;
        Ok(())
    }

    /// Counts a request against a route bucket; `Err` (with the exhausted state) when over it.
    pub fn route(
        &self,
        name: &'static str,
        major: u64,
        limit: RouteLimit,
    ) -> Result<BucketState, BucketState> {
        let now = Instant::now();
        let mut buckets = lock(&self.buckets);
        let w = buckets.entry((name, major)).or_insert(Window {
            start: now,
            count: 0,
        });
        if now.duration_since(w.start) >= limit.per {
            *w = Window {
                start: now,
                count: 0,
            };
        }
        let reset_after = limit.per.saturating_sub(now.duration_since(w.start));
        let mut state = BucketState {
            limit: limit.limit,
            remaining: 0,
            reset_after,
            bucket: bucket_hash(name),
        };
        if w.count >= limit.limit {
            return Err(state);
        }
        w.count += 1;
        state.remaining = limit.limit - w.count;
        Ok(state)
    }
}

fn put(h: &mut HeaderMap, name: &'static str, value: String) {
    if let Ok(v) = HeaderValue::from_str(&value) {
        h.insert(HeaderName::from_static(name), v);
    }
}

/// Adds `X-RateLimit-Limit/-Remaining/-Reset/-Reset-After/-Bucket`.
pub fn bucket_headers(h: &mut HeaderMap, b: &BucketState) {
    let reset_at = unix_micros() as f64 / 1e6 + b.reset_after.as_secs_f64();
    put(h, "x-ratelimit-limit", b.limit.to_string());
    put(h, "x-ratelimit-remaining", b.remaining.to_string());
    put(h, "x-ratelimit-reset", format!("{reset_at:.3}"));
    put(
        h,
        "x-ratelimit-reset-after",
        format!("{:.3}", b.reset_after.as_secs_f64()),
    );
    put(h, "x-ratelimit-bucket", b.bucket.clone());
}

/// A 429 as Discord sends it. `bucket` is reported for `user` and `shared` scopes.
pub fn too_many(
    scope: RateLimitScope,
    retry_after: Duration,
    bucket: Option<&BucketState>,
) -> Response {
    let global = scope == RateLimitScope::Global;
    let secs = retry_after.as_secs_f64();
    let mut resp = (
        StatusCode::TOO_MANY_REQUESTS,
        Json(json!({
            "message": "You are being rate limited.",
            "retry_after": (secs * 1000.0).round() / 1000.0,
            "global": global,
        })),
    )
        .into_response();
    let h = resp.headers_mut();
    put(h, "retry-after", (secs.ceil() as u64).max(1).to_string());
    put(h, "x-ratelimit-scope", scope.as_str().to_owned());
    if global {
        put(h, "x-ratelimit-global", "true".to_owned());
    } else if let Some(b) = bucket {
        let b = BucketState {
            remaining: 0,
            reset_after: retry_after,
            ..b.clone()
        };
        bucket_headers(h, &b);
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_bucket_counts_per_major_parameter() {
        let rl = RateLimiter::new(RestLimits::default());
        let lim = RouteLimit::new(2, Duration::from_secs(5));
        assert_eq!(rl.route("a", 1, lim).unwrap().remaining, 1);
        assert_eq!(rl.route("a", 1, lim).unwrap().remaining, 0);
        let e = rl.route("a", 1, lim).unwrap_err();
        assert!(e.reset_after > Duration::from_secs(4));
        // Another channel has its own bucket.
        assert!(rl.route("a", 2, lim).is_ok());
    }

    #[test]
    fn global_limit() {
        let rl = RateLimiter::new(RestLimits {
            global_per_sec: 3,
            ..RestLimits::default()
        });
        for _ in 0..3 {
            rl.global().unwrap();
        }
        assert!(rl.global().is_err());
    }
}
