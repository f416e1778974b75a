//! The bot-wide side of the edge: one `BotHub` Durable Object per bot (`id_from_name("bot")`),
//! the coordinator every holder and every guild hub share. It holds:
//!
//! - the bot-wide record: dispatches with no guild (READY, RESUMED, USER_UPDATE, DMs), stored and
//!   streamed to admin sessions exactly like a guild's stream (`GET /api/bot/stream`), by the same
//!   hub code (`hub::Hub` in bot mode);
//! - [`registry`]: the guilds the bot is in, learned from GUILD_CREATE / GUILD_DELETE, which
//!   decides which `?guild=` the edge serves;
//! - [`keepalive`]: when each guild's hub last heard from the holder, so that quiet hubs get a
//!   keep-alive (at most one per `HUB_KEEPALIVE_MS` each) while other guilds have traffic;
//! - [`holders`]: the holders' registrations (`POST /link/register`): which holder runs which
//!   shards, where its `/commands` is, and whether it is still alive;
//! - [`identify`]: the bot-wide IDENTIFY queue (`POST /link/identify`) for holders with
//!   `IDENTIFY_QUEUE=edge`;
//! - [`guilds`]: `GET /api/guilds`, the registry's guilds a reader may open, with their names.
//!
//! These are plain data with native unit tests; `object.rs` (wasm only) is the Durable
//! Object glue: storage, routes, and the embedded hub.

pub mod guilds;
pub mod holders;
pub mod identify;
pub mod keepalive;
pub mod registry;

#[cfg(target_arch = "wasm32")]
mod object;

#[cfg(target_arch = "wasm32")]
pub use object::BotHub;

/// The name of the one `BotHub` of the bot (`id_from_name`).
pub const BOT_HUB_NAME: &str = "bot";

/// The BotHub's answer to the Worker's `GET /bot/lookup?guild=ID` (internal): what the registry
/// knows of the guild and where its commands go. The Worker caches it briefly (see
/// `entry_bot.rs`).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Lookup {
    pub availability: Option<contracts::GuildAvailability>,
    pub holder: holders::Route,
}
