//! Discord REST v10 under `/api/v10`: the pipeline every call goes through, in Discord's order
//! (`User-Agent`, route, auth, global limit, route bucket, handler), with the injected faults
//! (slow answers, 429 storms, revoked token) in front, and a record of every call.
//!
//! Discord's "User Agent" rule: clients must send `User-Agent: DiscordBot ($url,
//! $versionNumber)`, optionally followed by more text; requests without one "may be blocked".
//! With `SimConfig::require_user_agent` (default) the sim refuses them with 400 before anything
//! else, counted in `rest_bad_user_agent`.
//!
//! - `routes.rs`: the endpoints and their validation.
//! - `ratelimit.rs`: buckets, the global limit, 429 answers.
//! - `errors.rs`: Discord's error bodies.

pub mod errors;
pub mod ratelimit;
pub mod routes;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, Uri};
use axum::response::Response;
use axum::routing::any;
use axum::Router;

use crate::clock::unix_micros;
use crate::faults::RateLimitScope;
use crate::records::RestRecord;
use crate::state::{lock, SimState};

/// REST routes (everything under `/api/v10`).
pub fn router() -> Router<Arc<SimState>> {
    Router::new()
        .route("/api/v10/{*rest}", any(handle))
        .route("/api/v10", any(handle))
}

async fn handle(
    State(state): State<Arc<SimState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let at_us = unix_micros();
    let resp = pipeline(&state, &method, &uri, &headers, &body).await;
    let header = |name: &str| {
        headers
            .get(name)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
    };
    state.records.rest(RestRecord {
        method: method.to_string(),
        path: uri.path().to_owned(),
        query: uri.query().map(str::to_owned),
        headers: headers
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_owned(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
        authorization: header("authorization"),
        traceparent: header("traceparent"),
        user_agent: header("user-agent"),
        body: String::from_utf8_lossy(&body).into_owned(),
        at_us,
        status: resp.status().as_u16(),
    });
    resp
}

/// Whether `ua` matches `^DiscordBot \(\S+, \S+\)` (Discord's documented form; anything may
/// follow).
pub fn valid_user_agent(ua: &str) -> bool {
    let Some(rest) = ua.strip_prefix("DiscordBot (") else {
        return false;
    };
    // `\S+, ` : the first whitespace in `rest` must be preceded by a comma, with something
    // before that comma.
    let Some(space) = rest.find(char::is_whitespace) else {
        return false;
    };
    let (url, after) = rest.split_at(space);
    if url.len() < 2 || !url.ends_with(',') || !after.starts_with(' ') {
        return false;
    }
    // `\S+\)` : a `)` after at least one non-space character, before any whitespace.
    let version: &str = after[1..].split(char::is_whitespace).next().unwrap_or("");
    version.char_indices().any(|(i, c)| c == ')' && i > 0)
}

fn authorized(state: &SimState, headers: &HeaderMap) -> bool {
    headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bot "))
        .is_some_and(|t| state.token_ok(t))
}

async fn pipeline(
    state: &SimState,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Response {
    let slow = state.faults.slow_rest_us.load(Ordering::Relaxed);
    if slow > 0 {
        tokio::time::sleep(Duration::from_micros(slow)).await;
    }
    if state.config.require_user_agent {
        let ua = headers.get("user-agent").and_then(|v| v.to_str().ok());
        if !ua.is_some_and(valid_user_agent) {
            state.records.count(|s| s.rest_bad_user_agent += 1);
            return errors::bad_user_agent(ua);
        }
    }
    let path = uri.path().strip_prefix("/api/v10").unwrap_or("");
    let route = match routes::Route::parse(method, path) {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    let storm = {
        let mut storm = lock(&state.faults.storm);
        match storm.as_mut() {
            Some(s) if s.remaining > 0 => {
                s.remaining -= 1;
                Some(*s)
            }
            _ => None,
        }
    };
    if let Some(s) = storm {
        let bucket = route
            .bucket(state)
            .map(|(name, _, limit)| ratelimit::BucketState {
                limit: limit.limit,
                remaining: 0,
                reset_after: s.retry_after,
                bucket: ratelimit::bucket_hash(name),
            });
        return ratelimit::too_many(s.scope, s.retry_after, bucket.as_ref());
    }
    if route.needs_auth() && !authorized(state, headers) {
        return errors::unauthorized();
    }
    if let Err(retry_after) = state.ratelimit.global() {
        return ratelimit::too_many(RateLimitScope::Global, retry_after, None);
    }
    let bucket = match route.bucket(state) {
        Some((name, major, limit)) => match state.ratelimit.route(name, major, limit) {
            Ok(b) => Some(b),
            Err(b) => {
                let retry_after = b.reset_after;
                return ratelimit::too_many(RateLimitScope::User, retry_after, Some(&b));
            }
        },
        None => None,
    };
    let mut resp = routes::run(state, route, body);
    if let Some(b) = bucket {
        ratelimit::bucket_headers(resp.headers_mut(), &b);
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::valid_user_agent;

    #[test]
    fn user_agent_follows_discords_form() {
        for ok in [
            "DiscordBot (https://github.com/twilight-rs/twilight, 0.18.0) Twilight-rs",
            "DiscordBot (https://example.com, 1.0)",
            "DiscordBot (x, 1))",
            "DiscordBot (https://example.com, v2)extra",
        ] {
            assert!(valid_user_agent(ok), "{ok}");
        }
        for bad in [
            "",
            "reqwest/0.12",
            "DiscordBot",
            "DiscordBot ()",
            "DiscordBot (https://example.com)",
            "DiscordBot (https://example.com,1.0)",
            "DiscordBot (, 1.0)",
            "DiscordBot (https://example.com, )",
            "DiscordBot (https://example.com, 1.0",
            "discordbot (https://example.com, 1.0)",
            "DiscordBot  (https://example.com, 1.0)",
        ] {
            assert!(!valid_user_agent(bad), "{bad}");
        }
    }
}
