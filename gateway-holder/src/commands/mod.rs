//! The one outbound command queue and its execution against Discord: REST calls, and Gateway
//! commands (voice state, presence, member requests) written by the session task.
//!
//! - [`queue`]: bounded, fair across users, deadlines.
//! - [`ratelimit`]: global limit, per-route buckets, 429 scopes, invalid-request guard, 401 stop.
//! - [`discord_call`]: command → Discord route, path and body (nonce on every send).
//! - [`gateway_call`]: Gateway command → op, payload and pacing class.
//! - [`gateway_link`]: executor → session hand-over with deadlines (never sent after failing).
//! - [`gateway_outbox`]: the session's side: send limit, presence and member-request pacing.
//! - [`executor`]: one command's REST call with bounded retries, or its hand-over to the session.
//! - [`service`]: queue + executor with bounded concurrency; outcomes back to the waiter.
//! - [`results`]: outcomes of commands answered `queued`, posted to the edge.
//! - [`http`]: `POST /commands`, the edge's way in.

pub mod discord_call;
pub mod executor;
pub mod gateway_call;
pub mod gateway_link;
pub mod gateway_outbox;
pub mod http;
pub mod queue;
pub mod ratelimit;
pub mod results;
pub mod service;
