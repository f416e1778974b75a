//! The edge: a Cloudflare Worker (workers-rs) with one `GuildHub` Durable Object per guild.
//!
//! A tour, in the order a request travels:
//!
//! - `entry` (wasm32 only): the Worker's `fetch`. Matches the route ([`router`]), answers CORS
//!   preflights ([`cors`]), checks the holder's `LINK_TOKEN` or the browser's session ([`auth`],
//!   [`jwt`]) and forwards guild-scoped requests to that guild's hub. Auth runs here, in the
//!   stateless Worker, so the single-threaded hub spends its CPU on fan-out.
//! - `hub` (wasm32 only): the `GuildHub` Durable Object, one file per concern: `hub/store.rs`
//!   (SQLite replay window, cursor, dedup marks), `hub/ingest.rs`, `hub/stream.rs`,
//!   `hub/pump.rs` (client queues into native response streams), `hub/ticker.rs` (pings and
//!   link-quiet checks), `hub/voice.rs` (voice tracker, drop-out alarm, legacy WebSocket),
//!   `hub/mod.rs` (state and dispatch).
//! - Pure logic, unit-tested natively by `cargo test`: [`config`] (vars), [`ingest`] (dedup by
//!   epoch and id, gaps in place), [`event`] (the stored record and its JSON), [`window`]
//!   (replay arithmetic), [`link`] (holder link up/down), [`filter`] (stream query),
//!   [`sse`] (framing), [`voice`] (voice membership and drop-outs), [`queue`] (bounded
//!   per-client queue), [`fanout`] (the client set; the seam where fan-out shard objects plug
//!   in), [`metrics`] (Prometheus text).
//! - Commands: `entry_actions` (wasm32 only: `/api/actions/*` → the hub's per-user limit →
//!   the holder's `/commands`; `/link/command-result` → the hub), `hub/commands.rs` (the limit
//!   and per-user `command.result` delivery), and the pure [`actions`] (parsing, ids, frames),
//!   [`traceparent`] (W3C trace context) and [`rate_limit`] (token bucket per user).
//! - [`dev_session`]: `POST /api/dev/session`, demo sessions when `DEV_LOGIN=true`.
//! - [`guild_channels`]: the guild's channels, so commands can't target another guild's.

pub mod actions;
pub mod auth;
pub mod bot;
pub mod config;
pub mod cors;
pub mod dev_session;
pub mod event;
pub mod fanout;
pub mod filter;
pub mod guild_channels;
pub mod ingest;
pub mod join;
pub mod jwt;
pub mod link;
pub mod metrics;
pub mod queue;
pub mod rate_limit;
pub mod router;
pub mod routing;
pub mod sse;
pub mod traceparent;
pub mod voice;
pub mod window;

#[cfg(target_arch = "wasm32")]
mod entry;
#[cfg(target_arch = "wasm32")]
mod entry_actions;
#[cfg(target_arch = "wasm32")]
mod entry_bot;
#[cfg(target_arch = "wasm32")]
mod entry_ingest;
#[cfg(target_arch = "wasm32")]
mod hub;

#[cfg(target_arch = "wasm32")]
pub use bot::BotHub;
#[cfg(target_arch = "wasm32")]
pub use hub::GuildHub;
