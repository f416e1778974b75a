//! Which channels belong to the hub's guild, so a browser command can't make the bot act in a
//! channel of another guild it happens to be in. Learned from ingested dispatches: GUILD_CREATE
//! (the full list of channels and active threads) and CHANNEL_/THREAD_ CREATE and DELETE. Plain
//! data, stored by the hub beside its other state.

use contracts::Snowflake;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuildChannels {
    /// False until the first GUILD_CREATE: nothing can be checked before it.
    pub known: bool,
    pub ids: BTreeSet<Snowflake>,
}

/// Why a command's channel is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChannelRefusal {
    /// No GUILD_CREATE yet: the channel list is unknown.
    Unknown,
    NotInGuild,
}

#[derive(Deserialize)]
struct Id {
    id: Snowflake,
}

#[derive(Deserialize)]
struct GuildCreate {
    id: Snowflake,
    #[serde(default)]
    unavailable: Option<bool>,
    #[serde(default)]
    channels: Vec<Id>,
    #[serde(default)]
    threads: Vec<Id>,
}

#[derive(Deserialize)]
struct ChannelEvent {
    id: Snowflake,
    #[serde(default)]
    guild_id: Option<Snowflake>,
}

impl GuildChannels {
    /// Learns from one dispatch of guild `guild` (when the hub knows its id); returns whether
    /// anything changed. Malformed payloads change nothing.
    pub fn feed(&mut self, kind: &str, guild: Option<Snowflake>, d: &str) -> bool {
        let ours = |g: Option<Snowflake>| match (guild, g) {
            (Some(mine), Some(g)) => mine == g,
            (_, None) => false,
            (None, Some(_)) => true,
        };
        match kind {
            "GUILD_CREATE" => {
                let Ok(gc) = serde_json::from_str::<GuildCreate>(d) else {
                    return false;
                };
                if gc.unavailable == Some(true) || !ours(Some(gc.id)) {
                    return false;
                }
                let ids: BTreeSet<Snowflake> = gc
                    .channels
                    .iter()
                    .chain(&gc.threads)
                    .map(|c| c.id)
                    .collect();
                let changed = !self.known || ids != self.ids;
                self.known = true;
                self.ids = ids;
                changed
            }
            "CHANNEL_CREATE" | "THREAD_CREATE" => match serde_json::from_str::<ChannelEvent>(d) {
                Ok(c) if ours(c.guild_id) => self.ids.insert(c.id),
                _ => false,
            },
            "CHANNEL_DELETE" | "THREAD_DELETE" => match serde_json::from_str::<ChannelEvent>(d) {
                Ok(c) if ours(c.guild_id) => self.ids.remove(&c.id),
                _ => false,
            },
            _ => false,
        }
    }

    pub fn check(&self, channel: Snowflake) -> Result<(), ChannelRefusal> {
        if !self.known {
            Err(ChannelRefusal::Unknown)
        } else if self.ids.contains(&channel) {
            Ok(())
        } else {
            Err(ChannelRefusal::NotInGuild)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const G: Option<Snowflake> = Some(Snowflake(1));

    #[test]
    fn learns_from_guild_create_and_channel_events() {
        let mut c = GuildChannels::default();
        assert_eq!(c.check(Snowflake(10)), Err(ChannelRefusal::Unknown));
        let gc = r#"{"id":"1","channels":[{"id":"10","type":0},{"id":"11","type":2}],"threads":[{"id":"12"}]}"#;
        assert!(c.feed("GUILD_CREATE", G, gc));
        assert_eq!(c.check(Snowflake(10)), Ok(()));
        assert_eq!(c.check(Snowflake(12)), Ok(()), "active threads count");
        assert_eq!(c.check(Snowflake(99)), Err(ChannelRefusal::NotInGuild));
        assert!(c.feed("CHANNEL_CREATE", G, r#"{"id":"99","guild_id":"1"}"#));
        assert_eq!(c.check(Snowflake(99)), Ok(()));
        assert!(c.feed("CHANNEL_DELETE", G, r#"{"id":"10","guild_id":"1"}"#));
        assert_eq!(c.check(Snowflake(10)), Err(ChannelRefusal::NotInGuild));
        // A later GUILD_CREATE (a re-identify) is the whole truth again.
        assert!(c.feed("GUILD_CREATE", G, r#"{"id":"1","channels":[{"id":"13"}]}"#));
        assert_eq!(c.check(Snowflake(13)), Ok(()));
        assert_eq!(c.check(Snowflake(99)), Err(ChannelRefusal::NotInGuild));
    }

    #[test]
    fn other_guilds_and_outages_change_nothing() {
        let mut c = GuildChannels::default();
        assert!(!c.feed("GUILD_CREATE", G, r#"{"id":"2","channels":[{"id":"20"}]}"#));
        assert!(!c.feed("GUILD_CREATE", G, r#"{"id":"1","unavailable":true}"#));
        assert!(!c.known);
        c.feed("GUILD_CREATE", G, r#"{"id":"1","channels":[{"id":"10"}]}"#);
        assert!(!c.feed("CHANNEL_CREATE", G, r#"{"id":"20","guild_id":"2"}"#));
        assert!(
            !c.feed("CHANNEL_CREATE", G, r#"{"id":"21"}"#),
            "a DM channel has no guild"
        );
        assert!(!c.feed("CHANNEL_CREATE", G, "not json"));
        assert_eq!(c.check(Snowflake(20)), Err(ChannelRefusal::NotInGuild));
    }
}
