//! The one outbound command queue and its execution against Discord's REST API.
//!
//! - [`queue`]: bounded, fair across users, deadlines.
//! - [`ratelimit`]: global limit, per-route buckets, 429 scopes, invalid-request guard, 401 stop.
//! - [`discord_call`]: command → Discord route, path and body (nonce on every send).
//! - [`executor`]: one command's call with bounded retries.
//! - [`service`]: queue + executor with bounded concurrency; outcomes back to the waiter.
//! - [`results`]: outcomes of commands answered `queued`, posted to the edge.
//! - [`http`]: `POST /commands`, the edge's way in.

pub mod discord_call;
pub mod executor;
pub mod http;
pub mod queue;
pub mod ratelimit;
pub mod results;
pub mod service;
