//! The guilds the bot is in, as Discord told the holder: GUILD_CREATE makes a guild `available`
//! (or `unavailable` when marked so), GUILD_DELETE with `unavailable: true` `unavailable` (an
//! outage: the bot is still in it), GUILD_DELETE without it `removed` (the bot left). Kept in the
//! BotHub's storage; a change is written when it happens. Each guild's name (GUILD_CREATE, and
//! GUILD_UPDATE when it is renamed) is kept with it, for `GET /api/guilds` ([`super::guilds`]).
//!
//! [`serve`] is the rule for `?guild=`: a guild the edge serves is the default guild (`GUILD_ID`),
//! or a guild the bot is in, and in both cases allowed by `GUILD_IDS` when that is set; a removed
//! guild is not served until a new GUILD_CREATE.

use contracts::{GuildAvailability, Snowflake};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One guild's membership.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub availability: GuildAvailability,
    /// Unix ms of the last change of `availability`.
    pub since: u64,
    /// The guild's name, from its last GUILD_CREATE or GUILD_UPDATE (entries stored before names
    /// were kept have none until the next one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Registry {
    guilds: BTreeMap<Snowflake, Entry>,
}

impl Registry {
    pub fn from_entries(entries: impl IntoIterator<Item = (Snowflake, Entry)>) -> Registry {
        Registry {
            guilds: entries.into_iter().collect(),
        }
    }

    /// Records what a GUILD_CREATE / GUILD_DELETE said (`availability`) and the name it carried,
    /// or a GUILD_UPDATE's new name (`availability` `None`: only for a guild the bot is in; a
    /// dispatch without a name keeps the known one). Returns the entry to store when it changed
    /// anything.
    pub fn apply(
        &mut self,
        guild: Snowflake,
        availability: Option<GuildAvailability>,
        name: Option<&str>,
        now: u64,
    ) -> Option<Entry> {
        let known = self.guilds.get(&guild);
        let availability = match (availability, known) {
            (Some(a), _) => a,
            (None, Some(e)) if e.availability != GuildAvailability::Removed => e.availability,
            (None, _) => return None,
        };
        let name = name
            .map(str::to_owned)
            .or_else(|| known.and_then(|e| e.name.clone()));
        let since = match known {
            Some(e) if e.availability == availability => {
                if e.name == name {
                    return None;
                }
                e.since
            }
            _ => now,
        };
        let e = Entry {
            availability,
            since,
            name,
        };
        self.guilds.insert(guild, e.clone());
        Some(e)
    }

    pub fn get(&self, guild: Snowflake) -> Option<&Entry> {
        self.guilds.get(&guild)
    }

    /// Guilds the bot is in (available or in an outage), in id order.
    pub fn members(&self) -> impl Iterator<Item = Snowflake> + '_ {
        self.guilds
            .iter()
            .filter(|(_, e)| e.availability != GuildAvailability::Removed)
            .map(|(g, _)| *g)
    }

    pub fn iter(&self) -> impl Iterator<Item = (Snowflake, &Entry)> + '_ {
        self.guilds.iter().map(|(g, e)| (*g, e))
    }

    pub fn len(&self) -> usize {
        self.guilds.len()
    }

    pub fn is_empty(&self) -> bool {
        self.guilds.is_empty()
    }
}

/// Why a guild is not served.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NotServed {
    /// `GUILD_IDS` is set and does not list it.
    NotAllowed,
    /// No GUILD_CREATE for it ever reached the edge.
    NotMember,
    /// GUILD_DELETE: the bot left (until a new GUILD_CREATE).
    Left,
}

impl NotServed {
    /// The 404 message, naming the guild.
    pub fn message(self, guild: impl std::fmt::Display) -> String {
        match self {
            NotServed::NotAllowed => {
                format!("guild {guild} is not served by this edge (GUILD_IDS)")
            }
            NotServed::NotMember => format!("the bot is not in guild {guild}"),
            NotServed::Left => format!("the bot left guild {guild}"),
        }
    }
}

/// Whether `guild` may be opened: allowed by `allow` (empty: everything) or the default guild,
/// and a guild the bot is in. The default guild is served before the edge has seen its
/// GUILD_CREATE (a single-guild setup streams from the first batch), but not once it was removed.
pub fn allowed(guild: Snowflake, default: Option<Snowflake>, allow: &[Snowflake]) -> bool {
    allow.is_empty() || allow.contains(&guild) || default == Some(guild)
}

pub fn serve(
    guild: Snowflake,
    default: Option<Snowflake>,
    allow: &[Snowflake],
    known: Option<GuildAvailability>,
) -> Result<(), NotServed> {
    if !allowed(guild, default, allow) {
        return Err(NotServed::NotAllowed);
    }
    match known {
        Some(GuildAvailability::Removed) => Err(NotServed::Left),
        Some(_) => Ok(()),
        None if default == Some(guild) => Ok(()),
        None => Err(NotServed::NotMember),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use GuildAvailability::*;

    const D: Snowflake = Snowflake(1000000000000000001);
    const G: Snowflake = Snowflake(2000000000000000002);

    #[test]
    fn membership_follows_guild_create_and_delete() {
        let mut r = Registry::default();
        assert_eq!(
            r.apply(G, Some(Available), None, 10).map(|e| e.since),
            Some(10)
        );
        assert_eq!(
            r.apply(G, Some(Available), None, 11),
            None,
            "no change, nothing to write"
        );
        assert!(r.apply(G, Some(Unavailable), None, 12).is_some());
        assert_eq!(
            r.members().collect::<Vec<_>>(),
            [G],
            "an outage keeps the guild"
        );
        assert!(r.apply(G, Some(Removed), None, 13).is_some());
        assert_eq!(r.members().count(), 0);
        assert_eq!(r.get(G).map(|e| e.availability), Some(Removed));
        assert!(
            r.apply(G, Some(Available), None, 14).is_some(),
            "joined again"
        );
        assert_eq!(r.members().collect::<Vec<_>>(), [G]);
    }

    #[test]
    fn names_are_kept_with_membership() {
        let mut r = Registry::default();
        let e = r.apply(G, Some(Available), Some("Sim Guild"), 10).unwrap();
        assert_eq!((e.name.as_deref(), e.since), (Some("Sim Guild"), 10));
        assert_eq!(
            r.apply(G, Some(Available), Some("Sim Guild"), 11),
            None,
            "the same GUILD_CREATE again: nothing to write"
        );
        // GUILD_UPDATE: the name changes, `since` (of the availability) does not.
        let e = r.apply(G, None, Some("Renamed"), 12).unwrap();
        assert_eq!((e.name.as_deref(), e.since), (Some("Renamed"), 10));
        // An outage (GUILD_DELETE carries no name) keeps it.
        let e = r.apply(G, Some(Unavailable), None, 13).unwrap();
        assert_eq!(
            (e.name.as_deref(), e.availability),
            (Some("Renamed"), Unavailable)
        );
        // A rename of a guild the bot is not in (or left) records nothing.
        assert_eq!(r.apply(D, None, Some("x"), 14), None);
        assert!(r.get(D).is_none());
        r.apply(G, Some(Removed), None, 15).unwrap();
        assert_eq!(r.apply(G, None, Some("y"), 16), None);
        // Entries stored before names were kept still load.
        let old: Entry = serde_json::from_str(r#"{"availability":"available","since":5}"#).unwrap();
        assert_eq!(old.name, None);
        let stored = serde_json::to_string(&r.get(G).unwrap()).unwrap();
        assert!(stored.contains(r#""name":"Renamed""#), "{stored}");
    }

    #[test]
    fn which_guilds_are_served() {
        // No allow-list: the default guild (even before its GUILD_CREATE) and member guilds.
        assert_eq!(serve(D, Some(D), &[], None), Ok(()));
        assert_eq!(serve(G, Some(D), &[], None), Err(NotServed::NotMember));
        assert_eq!(serve(G, Some(D), &[], Some(Available)), Ok(()));
        assert_eq!(
            serve(G, Some(D), &[], Some(Unavailable)),
            Ok(()),
            "shown as unavailable"
        );
        assert_eq!(serve(G, Some(D), &[], Some(Removed)), Err(NotServed::Left));
        assert_eq!(serve(D, Some(D), &[], Some(Removed)), Err(NotServed::Left));
        // With an allow-list, a member guild not on it is refused; the default always allowed.
        let allow = [Snowflake(3)];
        assert_eq!(
            serve(G, Some(D), &allow, Some(Available)),
            Err(NotServed::NotAllowed)
        );
        assert_eq!(serve(D, Some(D), &allow, None), Ok(()));
        assert!(NotServed::NotMember
            .message(G)
            .contains("2000000000000000002"));
    }
}
