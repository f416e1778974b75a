//! Discord REST rate limits, enforced before Discord has to: a proactive global limit (governor,
//! 50 requests/s), per-route buckets learned from every response's `X-RateLimit-*` headers and keyed
//! by `X-RateLimit-Bucket` plus the route's major parameter, pauses after a 429 by its scope, a
//! guard that stops calling before Discord's 10,000 invalid requests per 10 minutes ban, and a full
//! stop after a 401 (the token is wrong or revoked: retrying only feeds the ban counter).
//!
//! One request per bucket is in flight at a time (the bucket's lock is held across the call), which
//! keeps a channel's messages in order and makes `Remaining` exact without guessing.

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use std::collections::{HashMap, VecDeque};
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::OwnedMutexGuard;
use tokio::time::Instant;

/// A Discord route: the method and path template identify the bucket until Discord names it; the
/// major parameter (channel, guild, webhook) splits buckets per resource.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Route {
    pub method: &'static str,
    pub template: &'static str,
    pub major: String,
    /// The concrete path, e.g. `/channels/1/messages`.
    pub path: String,
}

/// The rate-limit facts of one response.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RateHeaders {
    pub limit: Option<u32>,
    pub remaining: Option<u32>,
    pub reset_after: Option<Duration>,
    pub bucket: Option<String>,
    pub retry_after: Option<Duration>,
    pub scope: Option<String>,
    pub global: bool,
}

impl RateHeaders {
    /// Reads the headers through `get` (header name, lower case → value).
    pub fn parse(get: impl Fn(&str) -> Option<String>) -> RateHeaders {
        let secs = |v: Option<String>| {
            v.and_then(|s| s.trim().parse::<f64>().ok())
                .filter(|s| s.is_finite() && *s >= 0.0)
                .map(|s| Duration::from_secs_f64(s.min(86_400.0)))
        };
        RateHeaders {
            limit: get("x-ratelimit-limit").and_then(|v| v.trim().parse().ok()),
            remaining: get("x-ratelimit-remaining").and_then(|v| v.trim().parse().ok()),
            reset_after: secs(get("x-ratelimit-reset-after")),
            bucket: get("x-ratelimit-bucket"),
            retry_after: secs(get("retry-after")),
            scope: get("x-ratelimit-scope"),
            global: get("x-ratelimit-global").is_some_and(|v| v.trim() == "true"),
        }
    }
}

/// Why a call may not be made now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Discord answered 401: the bot token is not valid. Nothing more is sent until restart.
    Unauthorized,
    /// Too many invalid requests in the last 10 minutes; calls resume after `retry_after`.
    InvalidRequestGuard { retry_after: Duration },
    /// Waiting for the rate limit would pass the command's deadline.
    WouldMissDeadline { wait: Duration },
}

#[derive(Debug)]
struct Bucket {
    remaining: Option<u32>,
    reset_at: Option<Instant>,
    lock: Arc<tokio::sync::Mutex<()>>,
}

impl Bucket {
    fn new() -> Self {
        Bucket {
            remaining: None,
            reset_at: None,
            lock: Arc::new(tokio::sync::Mutex::new(())),
        }
    }
}

/// Settings of [`RestLimits`].
#[derive(Clone, Debug)]
pub struct LimitSettings {
    pub global_per_second: u32,
    /// Invalid requests allowed per window before calls stop (Discord bans at 10,000 / 10 min).
    pub invalid_limit: usize,
    pub invalid_window: Duration,
}

impl Default for LimitSettings {
    fn default() -> Self {
        LimitSettings {
            global_per_second: 50,
            invalid_limit: 9_000,
            invalid_window: Duration::from_secs(600),
        }
    }
}

/// The proactive global limit as a GCRA quota that never lets more than `per_second` calls into
/// any one-second window: a tenth of the limit as burst, the rest as the steady rate. A plain
/// `per_second(50)` also allows a burst of 50, so a backlog released at once (after a pause, or a
/// stalled sender) puts up to 100 calls into one second; Discord (and discord-sim) then answer a
/// global 429, the pause that follows builds the next backlog, and every command waits a second.
fn global_quota(per_second: u32) -> Quota {
    let per_second = per_second.max(1);
    let burst = (per_second / 10).max(1);
    let steady = per_second.saturating_sub(burst).max(1);
    Quota::per_second(NonZeroU32::new(steady).expect("at least 1"))
        .allow_burst(NonZeroU32::new(burst).expect("at least 1"))
}

/// Counters for metrics.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LimitCounts {
    pub invalid_in_window: usize,
    pub rate_limited_global: u64,
    pub rate_limited_user: u64,
    pub rate_limited_shared: u64,
}

struct State {
    /// Route key (`METHOD template`) → Discord's bucket hash, once learned.
    hashes: HashMap<String, String>,
    /// (bucket hash or route key, major) → bucket.
    buckets: HashMap<(String, String), Bucket>,
    global_pause_until: Option<Instant>,
    invalid: VecDeque<Instant>,
    unauthorized: bool,
    counts: LimitCounts,
}

pub struct RestLimits {
    settings: LimitSettings,
    global: DefaultDirectRateLimiter,
    state: Mutex<State>,
}

/// Held while a request is in flight on its bucket.
pub struct BucketPermit {
    _guard: OwnedMutexGuard<()>,
}

impl RestLimits {
    pub fn new(settings: LimitSettings) -> Self {
        RestLimits {
            global: RateLimiter::direct(global_quota(settings.global_per_second)),
            settings,
            state: Mutex::new(State {
                hashes: HashMap::new(),
                buckets: HashMap::new(),
                global_pause_until: None,
                invalid: VecDeque::new(),
                unauthorized: false,
                counts: LimitCounts::default(),
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn bucket_key(state: &State, route: &Route) -> (String, String) {
        let route_key = format!("{} {}", route.method, route.template);
        let id = state.hashes.get(&route_key).cloned().unwrap_or(route_key);
        (id, route.major.clone())
    }

    pub fn counts(&self) -> LimitCounts {
        let mut state = self.lock();
        self.expire_invalid(&mut state, Instant::now());
        let mut counts = state.counts.clone();
        counts.invalid_in_window = state.invalid.len();
        counts
    }

    fn expire_invalid(&self, state: &mut State, now: Instant) {
        while state
            .invalid
            .front()
            .is_some_and(|t| now.duration_since(*t) >= self.settings.invalid_window)
        {
            state.invalid.pop_front();
        }
    }

    /// Refusals that don't depend on the route.
    fn check_refusals(&self, state: &mut State, now: Instant) -> Result<(), Refusal> {
        if state.unauthorized {
            return Err(Refusal::Unauthorized);
        }
        self.expire_invalid(state, now);
        if state.invalid.len() >= self.settings.invalid_limit {
            let oldest = *state.invalid.front().expect("non-empty at the limit");
            return Err(Refusal::InvalidRequestGuard {
                retry_after: self
                    .settings
                    .invalid_window
                    .saturating_sub(now.duration_since(oldest)),
            });
        }
        Ok(())
    }

    /// Waits until `route` may be called (its bucket, any global pause, the global limit), or
    /// refuses when that would pass `deadline`. Hold the permit until the response is observed.
    pub async fn acquire(&self, route: &Route, deadline: Instant) -> Result<BucketPermit, Refusal> {
        let lock = {
            let mut state = self.lock();
            self.check_refusals(&mut state, Instant::now())?;
            let key = Self::bucket_key(&state, route);
            state
                .buckets
                .entry(key)
                .or_insert_with(Bucket::new)
                .lock
                .clone()
        };
        let guard = tokio::time::timeout_at(deadline, lock.lock_owned())
            .await
            .map_err(|_| Refusal::WouldMissDeadline {
                wait: Duration::ZERO,
            })?;
        // With the bucket held, wait out its reset and any global pause.
        loop {
            let now = Instant::now();
            let wait_until = {
                let mut state = self.lock();
                self.check_refusals(&mut state, now)?;
                let key = Self::bucket_key(&state, route);
                let bucket = state.buckets.entry(key).or_insert_with(Bucket::new);
                let mut until = None;
                if let (Some(0), Some(reset)) = (bucket.remaining, bucket.reset_at) {
                    if reset > now {
                        until = Some(reset);
                    } else {
                        bucket.remaining = None;
                    }
                }
                match (until, state.global_pause_until) {
                    (u, Some(g)) if g > now => Some(u.map_or(g, |u: Instant| u.max(g))),
                    (u, _) => u,
                }
            };
            match wait_until {
                None => break,
                Some(t) if t > deadline => {
                    return Err(Refusal::WouldMissDeadline { wait: t - now });
                }
                Some(t) => tokio::time::sleep_until(t).await,
            }
        }
        if tokio::time::timeout_at(deadline, self.global.until_ready())
            .await
            .is_err()
        {
            return Err(Refusal::WouldMissDeadline {
                wait: Duration::from_millis(20),
            });
        }
        let mut state = self.lock();
        let key = Self::bucket_key(&state, route);
        if let Some(bucket) = state.buckets.get_mut(&key) {
            if let Some(r) = bucket.remaining.as_mut() {
                *r = r.saturating_sub(1);
            }
        }
        Ok(BucketPermit { _guard: guard })
    }

    /// Learns from a response to `route`.
    pub fn observe(&self, route: &Route, status: u16, headers: &RateHeaders) {
        let now = Instant::now();
        let mut state = self.lock();
        if let Some(hash) = &headers.bucket {
            let route_key = format!("{} {}", route.method, route.template);
            if state.hashes.get(&route_key) != Some(hash) {
                // Carry what was learned under the route key (including its lock) to the hash.
                let old_key = Self::bucket_key(&state, route);
                let old = state.buckets.remove(&old_key);
                state.hashes.insert(route_key, hash.clone());
                let key = Self::bucket_key(&state, route);
                if let Some(old) = old {
                    state.buckets.entry(key).or_insert(old);
                }
            }
        }
        let key = Self::bucket_key(&state, route);
        let bucket = state.buckets.entry(key).or_insert_with(Bucket::new);
        if let Some(remaining) = headers.remaining {
            bucket.remaining = Some(remaining);
        }
        if let Some(after) = headers.reset_after {
            bucket.reset_at = Some(now + after);
        }
        match status {
            401 => {
                state.unauthorized = true;
                state.invalid.push_back(now);
            }
            403 => state.invalid.push_back(now),
            429 => {
                let retry = headers
                    .retry_after
                    .or(headers.reset_after)
                    .unwrap_or(Duration::from_secs(1));
                let scope = headers.scope.as_deref().unwrap_or(if headers.global {
                    "global"
                } else {
                    "user"
                });
                match scope {
                    "global" => {
                        state.counts.rate_limited_global += 1;
                        state.global_pause_until = Some(now + retry);
                    }
                    "shared" => state.counts.rate_limited_shared += 1,
                    _ => state.counts.rate_limited_user += 1,
                }
                if headers.global {
                    state.global_pause_until = Some(now + retry);
                } else {
                    let key = Self::bucket_key(&state, route);
                    let bucket = state.buckets.entry(key).or_insert_with(Bucket::new);
                    bucket.remaining = Some(0);
                    bucket.reset_at = Some(now + retry);
                }
                // Shared-resource 429s don't count toward Discord's invalid-request ban.
                if scope != "shared" {
                    state.invalid.push_back(now);
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(major: &str) -> Route {
        Route {
            method: "POST",
            template: "/channels/{channel_id}/messages",
            major: major.into(),
            path: format!("/channels/{major}/messages"),
        }
    }

    fn later() -> Instant {
        Instant::now() + Duration::from_secs(3600)
    }

    fn headers(pairs: &[(&str, &str)]) -> RateHeaders {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        RateHeaders::parse(|k| map.get(k).cloned())
    }

    #[test]
    fn parses_discord_headers() {
        let h = headers(&[
            ("x-ratelimit-limit", "5"),
            ("x-ratelimit-remaining", "0"),
            ("x-ratelimit-reset-after", "1.250"),
            ("x-ratelimit-bucket", "abcd"),
            ("retry-after", "0.5"),
            ("x-ratelimit-scope", "shared"),
            ("x-ratelimit-global", "true"),
        ]);
        assert_eq!(h.limit, Some(5));
        assert_eq!(h.remaining, Some(0));
        assert_eq!(h.reset_after, Some(Duration::from_millis(1250)));
        assert_eq!(h.bucket.as_deref(), Some("abcd"));
        assert_eq!(h.retry_after, Some(Duration::from_millis(500)));
        assert!(h.global);
        assert_eq!(headers(&[("retry-after", "-3")]).retry_after, None);
        assert_eq!(headers(&[("retry-after", "NaN")]).retry_after, None);
    }

    #[tokio::test(start_paused = true)]
    async fn an_exhausted_bucket_waits_for_its_reset() {
        let limits = RestLimits::new(LimitSettings::default());
        let r = route("1");
        drop(limits.acquire(&r, later()).await.unwrap());
        limits.observe(
            &r,
            200,
            &headers(&[
                ("x-ratelimit-remaining", "0"),
                ("x-ratelimit-reset-after", "2"),
                ("x-ratelimit-bucket", "h"),
            ]),
        );
        let start = Instant::now();
        drop(limits.acquire(&r, later()).await.unwrap());
        assert!(
            start.elapsed() >= Duration::from_secs(2),
            "waited {:?}",
            start.elapsed()
        );
        // Another channel (major parameter) is a different bucket: no wait.
        limits.observe(
            &r,
            200,
            &headers(&[
                ("x-ratelimit-remaining", "0"),
                ("x-ratelimit-reset-after", "2"),
                ("x-ratelimit-bucket", "h"),
            ]),
        );
        let start = Instant::now();
        drop(limits.acquire(&route("2"), later()).await.unwrap());
        assert!(start.elapsed() < Duration::from_millis(100));
    }

    #[tokio::test(start_paused = true)]
    async fn remaining_counts_down_without_new_headers() {
        let limits = RestLimits::new(LimitSettings::default());
        let r = route("1");
        drop(limits.acquire(&r, later()).await.unwrap());
        limits.observe(
            &r,
            200,
            &headers(&[
                ("x-ratelimit-remaining", "1"),
                ("x-ratelimit-reset-after", "5"),
            ]),
        );
        let start = Instant::now();
        drop(limits.acquire(&r, later()).await.unwrap()); // uses the last slot
        assert!(start.elapsed() < Duration::from_millis(100));
        drop(limits.acquire(&r, later()).await.unwrap()); // must wait for the reset
        assert!(start.elapsed() >= Duration::from_secs(5));
    }

    #[tokio::test(start_paused = true)]
    async fn refuses_when_the_wait_passes_the_deadline() {
        let limits = RestLimits::new(LimitSettings::default());
        let r = route("1");
        limits.observe(
            &r,
            429,
            &headers(&[("retry-after", "10"), ("x-ratelimit-scope", "user")]),
        );
        let err = limits
            .acquire(&r, Instant::now() + Duration::from_secs(1))
            .await
            .err()
            .expect("refused");
        assert!(matches!(err, Refusal::WouldMissDeadline { .. }), "{err:?}");
        assert_eq!(limits.counts().rate_limited_user, 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_global_429_pauses_every_route() {
        let limits = RestLimits::new(LimitSettings::default());
        limits.observe(
            &route("1"),
            429,
            &headers(&[
                ("retry-after", "3"),
                ("x-ratelimit-global", "true"),
                ("x-ratelimit-scope", "global"),
            ]),
        );
        let start = Instant::now();
        drop(limits.acquire(&route("9"), later()).await.unwrap());
        assert!(start.elapsed() >= Duration::from_secs(3));
        assert_eq!(limits.counts().rate_limited_global, 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_401_stops_everything() {
        let limits = RestLimits::new(LimitSettings::default());
        limits.observe(&route("1"), 401, &RateHeaders::default());
        assert_eq!(
            limits.acquire(&route("2"), later()).await.err(),
            Some(Refusal::Unauthorized)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn the_invalid_request_guard_stops_before_the_ban_and_recovers() {
        let limits = RestLimits::new(LimitSettings {
            invalid_limit: 3,
            invalid_window: Duration::from_secs(600),
            ..LimitSettings::default()
        });
        let r = route("1");
        limits.observe(&r, 403, &RateHeaders::default());
        limits.observe(
            &r,
            429,
            &headers(&[("retry-after", "0"), ("x-ratelimit-scope", "shared")]),
        );
        limits.observe(
            &r,
            429,
            &headers(&[("retry-after", "0"), ("x-ratelimit-scope", "user")]),
        );
        assert_eq!(
            limits.counts().invalid_in_window,
            2,
            "shared 429s are not invalid requests"
        );
        drop(limits.acquire(&r, later()).await.unwrap());
        limits.observe(&r, 403, &RateHeaders::default());
        let err = limits.acquire(&r, later()).await.err().expect("guarded");
        assert!(
            matches!(err, Refusal::InvalidRequestGuard { .. }),
            "{err:?}"
        );
        tokio::time::advance(Duration::from_secs(601)).await;
        drop(limits.acquire(&r, later()).await.unwrap());
    }

    // governor keeps its own (real) clock, so these run in real time.
    #[tokio::test]
    async fn no_second_ever_holds_more_than_the_global_limit() {
        let limits = RestLimits::new(LimitSettings {
            global_per_second: 20,
            ..LimitSettings::default()
        });
        // A backlog of 45 calls released at once, after an idle second.
        tokio::time::sleep(Duration::from_millis(1000)).await;
        let mut at = Vec::new();
        for i in 0..45 {
            drop(
                limits
                    .acquire(&route(&i.to_string()), later())
                    .await
                    .unwrap(),
            );
            at.push(std::time::Instant::now());
        }
        for (i, t) in at.iter().enumerate() {
            let in_window = at[i..]
                .iter()
                .take_while(|u| u.duration_since(*t) < Duration::from_secs(1))
                .count();
            assert!(
                in_window <= 20,
                "{in_window} calls in the second after call {i}"
            );
        }
    }

    #[test]
    fn the_global_quota_splits_burst_and_steady_rate() {
        for (limit, burst, per_cell_ms) in
            [(50, 5, 1000 / 45), (5, 1, 250), (1, 1, 1000), (0, 1, 1000)]
        {
            let q = global_quota(limit);
            assert_eq!(q.burst_size().get(), burst, "limit {limit}");
            assert_eq!(
                q.replenish_interval().as_millis() as u32,
                per_cell_ms,
                "limit {limit}"
            );
        }
    }

    #[tokio::test]
    async fn the_global_limit_spaces_calls() {
        let limits = RestLimits::new(LimitSettings {
            global_per_second: 5,
            ..LimitSettings::default()
        });
        let start = std::time::Instant::now();
        for i in 0..10 {
            drop(
                limits
                    .acquire(&route(&i.to_string()), later())
                    .await
                    .unwrap(),
            );
        }
        assert!(
            start.elapsed() >= Duration::from_millis(900),
            "10 calls at 5/s took {:?}",
            start.elapsed()
        );
    }
}
