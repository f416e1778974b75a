//! The edge: a Cloudflare Worker (workers-rs) with one `GuildHub` Durable Object per guild and
//! one `BotHub` per bot.
//!
//! A tour, in the order a request travels:
//!
//! - `entry` (wasm32 only): the Worker's `fetch`. Matches the route ([`router`]), answers CORS
//!   preflights ([`cors`]), checks the holder's `LINK_TOKEN` or the browser's session ([`auth`],
//!   [`jwt`]) and forwards guild-scoped requests to that guild's hub. Auth runs here, in the
//!   stateless Worker, so the single-threaded hubs spend their CPU on fan-out.
//! - `entry_ingest` (wasm32 only): `POST /link/ingest`. Deals the holder's batch out by guild
//!   ([`routing`], pure) and writes the parts in parallel ([`join`]): each guild's sub-batch to
//!   its `GuildHub`, the guildless dispatches, gaps and GUILD_CREATE/DELETE to the `BotHub`; then
//!   the gaps and keep-alives the BotHub names for guilds not in the batch. 2xx only when every
//!   part is stored.
//! - `entry_bot` (wasm32 only): which `?guild=` is served (a BotHub lookup, cached briefly),
//!   the readers' `GET /api/guilds`, `POST /link/register`, `POST /link/identify`, the admin
//!   routes `GET /api/bot/stream` and `GET /api/bot/registry`, and the requests the Worker makes
//!   to a hub (`X-Rt-Guild`).
//! - `hub` (wasm32 only): the `GuildHub` Durable Object, one file per concern: `hub/store.rs`
//!   (SQLite replay window, cursor, dedup marks per epoch and shard, the hub's guild),
//!   `hub/ingest.rs`, `hub/stream.rs`, `hub/pump.rs` (client queues into native response
//!   streams), `hub/ticker.rs` (pings and link-quiet checks), `hub/voice.rs` (voice tracker,
//!   drop-out alarm, legacy WebSocket), `hub/mod.rs` (state and dispatch; the same `Hub` serves
//!   the bot-wide record in bot mode).
//! - [`bot`]: the `BotHub` (`bot/object.rs`, wasm32 only) and its pure parts: the guild
//!   registry (with the guilds' names) and the list of guilds a reader may open, keep-alive
//!   scheduling for quiet hubs, holder registrations and command routing, and the bot-wide
//!   IDENTIFY queue.
//! - Pure logic, unit-tested natively by `cargo test`: [`config`] (vars), [`ingest`] (dedup by
//!   epoch, shard and id, gaps in place), [`routing`] (a batch split by guild), [`event`] (the
//!   stored record and its JSON), [`window`] (replay arithmetic), [`link`] (holder link
//!   up/down, guild availability), [`filter`] (stream query), [`sse`] (framing), [`voice`]
//!   (voice membership and drop-outs), [`queue`] (bounded per-client queue), [`fanout`] (the
//!   client set; the seam where fan-out shard objects plug in), [`metrics`] (Prometheus text).
//! - Commands: `entry_actions` (wasm32 only: `/api/actions/*?guild=` → the guild's hub's
//!   per-user limit → the `/commands` of the holder whose shards carry the guild;
//!   `/link/command-result` → the guild's hub), `hub/commands.rs` (the limit and per-user
//!   `command.result` delivery), and the pure [`actions`] (parsing, ids, frames),
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
