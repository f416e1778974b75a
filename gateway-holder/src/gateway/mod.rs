//! The Discord Gateway side: one session held across reconnects, exactly as Discord documents it.
//!
//! - [`session`]: the reconnect loop and the per-connection protocol (HELLO, IDENTIFY/RESUME,
//!   dispatches, op 7/9/11) and the id numbering that survives restarts.
//! - [`connection`]: the WebSocket itself.
//! - [`heartbeat`], [`inflate`], [`send_limit`], [`close_code`], [`backoff`]: one rule each.
//! - [`route`]: the `guild_id`/`channel_id` hints of a dispatch, without a second parse of `d`.
//! - [`start_limit`]: `GET /gateway/bot` and the session-start budget guard.

pub mod backoff;
pub mod close_code;
pub mod connection;
pub mod heartbeat;
pub mod inflate;
pub mod route;
pub mod send_limit;
pub mod session;
pub mod start_limit;
