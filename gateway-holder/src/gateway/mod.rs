//! The Discord Gateway side: one session per shard held across reconnects, exactly as Discord
//! documents it.
//!
//! - [`shards`]: which shards this holder runs and their shared states; [`identify_queue`]:
//!   "may this shard IDENTIFY now" (in-process, or the edge's bot-wide queue).
//! - [`session`]: one shard's reconnect loop and the per-connection protocol (HELLO, IDENTIFY/RESUME,
//!   dispatches, op 7/9/11) and the id numbering that survives restarts.
//! - [`connection`]: the WebSocket itself.
//! - [`compression`]: the connection's zstd-stream or zlib-stream decompressor.
//! - [`heartbeat`], [`send_limit`], [`close_code`], [`backoff`]: one rule each.
//! - [`frame`]: one pass over a gateway message that checks it is JSON and finds `op`, `s`, `t`,
//!   the bytes of `d` and its `guild_id`/`channel_id`; [`envelope`]: the envelope spliced from them.
//! - [`start_limit`]: `GET /gateway/bot` and the session-start budget guard.

pub mod backoff;
pub mod close_code;
pub mod compression;
pub mod connection;
pub mod envelope;
pub mod frame;
pub mod heartbeat;
pub mod identify_queue;
pub mod send_limit;
pub mod session;
pub mod shards;
pub mod start_limit;
