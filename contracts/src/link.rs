//! Holder ↔ edge coordination for bots that run several holders: `POST /link/register` (which
//! shards a holder runs and where the edge reaches its `POST /commands`) and `POST /link/identify`
//! (the bot-wide IDENTIFY queue a holder with `IDENTIFY_QUEUE=edge` asks before every IDENTIFY).
//! Both need the `LINK_TOKEN`.

use crate::Version;
use serde::{Deserialize, Serialize};

/// A contiguous range of shards out of `count`: shards `first..=last`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShardRange {
    pub first: u32,
    /// Inclusive.
    pub last: u32,
    /// How many shards the bot runs in all (`num_shards`).
    pub count: u32,
}

impl ShardRange {
    /// Whether guild `guild_id` lives on one of these shards (`(guild_id >> 22) % count`).
    pub fn holds_guild(&self, guild_id: u64) -> bool {
        let shard = shard_of(guild_id, self.count);
        self.first <= shard && shard <= self.last
    }
}

/// Discord's formula: the shard that carries guild `guild_id` when the bot runs `count` shards.
pub fn shard_of(guild_id: u64, count: u32) -> u32 {
    ((guild_id >> 22) % u64::from(count.max(1))) as u32
}

/// `POST /link/register`: sent when the holder starts and again every
/// [`RegisterAnswer::register_every_ms`]; the edge sends commands for a guild to the holder whose
/// range holds that guild's shard.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegisterHolder {
    pub version: Version,
    /// The holder's stable name; the same `holder_id` its ingest batches carry.
    pub holder_id: String,
    /// Base URL of the holder's HTTP server (`HOLDER_PUBLIC_URL`): commands go to `{url}/commands`.
    pub url: String,
    pub shards: ShardRange,
}

/// The answer to `POST /link/register`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegisterAnswer {
    pub version: Version,
    /// Register again within this many milliseconds; after three missed intervals with no
    /// registration and no ingest (or once its link went quiet) the holder counts as gone and its
    /// guilds' commands get `503 holder_unavailable`.
    pub register_every_ms: u64,
}

/// `POST /link/identify`: may shard `shard` of `count` IDENTIFY now?
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdentifyAsk {
    pub version: Version,
    pub holder_id: String,
    pub shard: u32,
    pub count: u32,
    /// `session_start_limit.max_concurrency` from `GET /gateway/bot`; the bucket is
    /// `shard % max_concurrency`.
    pub max_concurrency: u32,
    /// Not a request: the IDENTIFY this shard was granted has just been written, so the bucket's
    /// window starts now rather than at the grant (the connect in between takes a different
    /// time for each holder, and Discord counts arrivals).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub identified: bool,
}

/// The answer to `POST /link/identify`: `granted` (IDENTIFY now), or ask again after
/// `retry_after_ms`. A waiter that does not ask again within about 3 s of that time loses its
/// place; asking again for the same (`holder_id`, `shard`) keeps it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdentifyAnswer {
    pub version: Version,
    pub granted: bool,
    /// Present when `granted` is false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_ms: Option<u64>,
}

/// `GET /api/bot/registry` (admin): the guilds the bot is in and the holders registered.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BotRegistry {
    pub version: Version,
    pub guilds: Vec<RegistryGuild>,
    pub holders: Vec<RegistryHolder>,
}

/// One guild of [`BotRegistry`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistryGuild {
    pub guild_id: crate::Snowflake,
    pub availability: crate::GuildAvailability,
    /// Unix ms of the GUILD_CREATE / GUILD_DELETE that set `availability`.
    pub since: u64,
}

/// One holder of [`BotRegistry`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistryHolder {
    pub holder_id: String,
    pub url: String,
    pub shards: ShardRange,
    /// Unix ms of its last registration.
    pub registered_at: u64,
    /// Unix ms of its last ingest batch seen by this edge object since it started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_ingest: Option<u64>,
    /// Whether commands for its guilds go to it now.
    pub alive: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shard_formula_and_ranges() {
        // (id >> 22) % count, as Discord documents it.
        let g = (7u64 << 22) | 12345;
        assert_eq!(shard_of(g, 4), 3);
        assert_eq!(shard_of(g, 1), 0);
        assert_eq!(shard_of(g, 0), 0, "a zero count is treated as one shard");
        let r = ShardRange {
            first: 2,
            last: 3,
            count: 4,
        };
        assert!(r.holds_guild(g));
        assert!(!r.holds_guild(1 << 22));
    }
}
