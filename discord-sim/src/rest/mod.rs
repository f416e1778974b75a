//! Discord REST v10 under `/api/v10`: the pipeline every call goes through, in Discord's order
//! (route, auth, global limit, route bucket, handler), with the injected faults (slow answers,
//! 429 storms, revoked token) in front, and a record of every call.
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
        body: String::from_utf8_lossy(&body).into_owned(),
        at_us,
        status: resp.status().as_u16(),
    });
    resp
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
