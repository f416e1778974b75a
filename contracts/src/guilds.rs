//! `GET /api/guilds`: the guilds a reader may open (`?guild=` on `/api/stream`, `/api/voice`,
//! `/api/actions/*`), for a page that lets its user pick one. Read access, as for the stream.

use crate::{GuildAvailability, Snowflake, Version};
use serde::{Deserialize, Serialize};

/// The answer to `GET /api/guilds`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GuildList {
    pub version: Version,
    /// The edge's default guild (`GUILD_ID`, opened when a request names no `?guild=`), when it
    /// is one of `guilds`; absent otherwise (no `GUILD_ID`, or the bot left it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<Snowflake>,
    /// In id order. Guilds the bot left are not listed.
    pub guilds: Vec<ListedGuild>,
}

/// One guild of [`GuildList`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListedGuild {
    pub guild_id: Snowflake,
    /// Its name, from its last GUILD_CREATE / GUILD_UPDATE; absent until the edge has seen one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `available` or `unavailable` (a Discord outage); absent only for the default guild before
    /// its GUILD_CREATE reached the edge (it is served from the first batch anyway).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub availability: Option<GuildAvailability>,
}
