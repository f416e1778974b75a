//! The bot's guild membership changing while sessions run, as Discord tells a bot about it
//! (Discord's "Guild Create" / "Guild Delete" events):
//!
//! - joining a guild: GUILD_CREATE (the whole guild, shaped by each session's intents);
//! - leaving or being removed: GUILD_DELETE `{id}` without `unavailable`;
//! - an outage: GUILD_DELETE `{id, unavailable: true}`; while it lasts nothing is sent for the
//!   guild and sessions that identify get that GUILD_DELETE instead of its GUILD_CREATE;
//! - the end of an outage: GUILD_CREATE.
//!
//! Each goes to the sessions of the guild's shard, like every event about the guild.

use serde::Serialize;

use crate::clock::snowflake;
use crate::config::GuildSeed;
use crate::events;
use crate::state::{lock, SimState};

/// A guild as tests see it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct GuildInfo {
    /// Guild id.
    #[serde(with = "snowflake")]
    pub id: u64,
    /// Name.
    pub name: String,
    /// `false`: the bot left it.
    pub member: bool,
    /// In an outage.
    pub unavailable: bool,
    /// Its channel ids (text and voice).
    pub channel_ids: Vec<String>,
}

/// Every guild the bot is in (first) and has left.
pub fn infos(state: &SimState) -> Vec<GuildInfo> {
    let guilds = lock(&state.guilds);
    let info = |g: &crate::guild::GuildState, member: bool| GuildInfo {
        id: g.id,
        name: g.name().to_owned(),
        member,
        unavailable: g.unavailable,
        channel_ids: g.channels().iter().map(|c| c.id.to_string()).collect(),
    };
    guilds
        .list()
        .iter()
        .map(|g| info(g, true))
        .chain(guilds.left().iter().map(|g| info(g, false)))
        .collect()
}

/// The bot joins `seed`'s guild (one it left comes back with its old state); sends its
/// GUILD_CREATE. Returns how many sessions got it, `None` if the bot is already in it.
pub fn join(state: &SimState, seed: &GuildSeed) -> Option<usize> {
    let mut guilds = lock(&state.guilds);
    guilds.join(seed)?;
    Some(state.fan_out(&guilds, &events::guild_create(seed.id)).len())
}

/// The bot leaves `guild_id`; sends GUILD_DELETE `{id}`. `None` if it wasn't in it.
pub fn leave(state: &SimState, guild_id: u64) -> Option<usize> {
    let mut guilds = lock(&state.guilds);
    if !guilds.leave(guild_id) {
        return None;
    }
    Some(
        state
            .fan_out(&guilds, &events::guild_delete(guild_id, false))
            .len(),
    )
}

/// `guild_id` goes down (`true`, GUILD_DELETE `unavailable: true`) or comes back (`false`,
/// GUILD_CREATE). `None` if the bot isn't in it or it already was in that state.
pub fn set_outage(state: &SimState, guild_id: u64, down: bool) -> Option<usize> {
    let mut guilds = lock(&state.guilds);
    let g = guilds.get_mut(guild_id)?;
    if g.unavailable == down {
        return None;
    }
    g.unavailable = down;
    let r = if down {
        events::guild_delete(guild_id, true)
    } else {
        events::guild_create(guild_id)
    };
    Some(state.fan_out(&guilds, &r).len())
}
