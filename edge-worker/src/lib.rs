//! The edge: a Cloudflare Worker (workers-rs) with one `GuildHub` Durable Object per guild.
//!
//! The Worker entry point ([`entry`], wasm32 only) authenticates and routes requests; every
//! guild-scoped route is forwarded to that guild's `GuildHub` object ([`hub`]), which owns the
//! replay window, the SSE clients and the voice state. Logic that does not need the Workers runtime
//! lives in plain modules that `cargo test` runs natively.

#[cfg(target_arch = "wasm32")]
mod entry;
#[cfg(target_arch = "wasm32")]
mod hub;

#[cfg(target_arch = "wasm32")]
pub use hub::GuildHub;
