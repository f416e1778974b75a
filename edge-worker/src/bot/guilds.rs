//! `GET /api/guilds`: the guilds a reader may open, for the demo page's guild picker.
//!
//! A guild is listed exactly when [`registry::serve`] would serve it: a guild of the registry the
//! bot is in (available or in an outage) that `GUILD_IDS` (when set) allows, plus the default
//! guild before its GUILD_CREATE (served from the first batch; listed without availability). The
//! BotHub answers from its registry; the Worker checks read access first, as for the stream.

use super::registry::{self, Registry};
use contracts::{GuildAvailability, GuildList, ListedGuild, Snowflake, Version};

/// The list, in id order; `default` only when the default guild is in it.
pub fn list(registry: &Registry, default: Option<Snowflake>, allow: &[Snowflake]) -> GuildList {
    let mut guilds: Vec<ListedGuild> = registry
        .iter()
        .filter(|(g, e)| {
            e.availability != GuildAvailability::Removed && registry::allowed(*g, default, allow)
        })
        .map(|(g, e)| ListedGuild {
            guild_id: g,
            name: e.name.clone(),
            availability: Some(e.availability),
        })
        .collect();
    if let Some(d) = default.filter(|d| registry.get(*d).is_none()) {
        let at = guilds.partition_point(|g| g.guild_id < d);
        guilds.insert(
            at,
            ListedGuild {
                guild_id: d,
                name: None,
                availability: None,
            },
        );
    }
    let default = default.filter(|d| guilds.iter().any(|g| g.guild_id == *d));
    GuildList {
        version: Version,
        default,
        guilds,
    }
}

/// [`list`] as the JSON body.
pub fn body(registry: &Registry, default: Option<Snowflake>, allow: &[Snowflake]) -> String {
    serde_json::to_string(&list(registry, default, allow)).expect("a guild list serializes")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bot::registry::{serve, Entry};
    use GuildAvailability::*;

    const D: Snowflake = Snowflake(1000000000000000001);
    const A: Snowflake = Snowflake(1000000000001835009);
    const B: Snowflake = Snowflake(1000000000006029313);
    const C: Snowflake = Snowflake(1000000000010223617);

    fn entry(availability: GuildAvailability, name: Option<&str>) -> Entry {
        Entry {
            availability,
            since: 1,
            name: name.map(str::to_owned),
        }
    }

    fn ids(l: &GuildList) -> Vec<Snowflake> {
        l.guilds.iter().map(|g| g.guild_id).collect()
    }

    #[test]
    fn members_with_names_and_the_default() {
        let r = Registry::from_entries([
            (B, entry(Unavailable, Some("Gaming Night"))),
            (D, entry(Available, Some("Sim Guild"))),
            (A, entry(Available, None)),
            (C, entry(Removed, Some("Left"))),
        ]);
        let l = list(&r, Some(D), &[]);
        assert_eq!(
            ids(&l),
            [D, A, B],
            "id order; the removed guild is not listed"
        );
        assert_eq!(l.default, Some(D));
        assert_eq!(l.guilds[0].name.as_deref(), Some("Sim Guild"));
        assert_eq!(l.guilds[1].name, None, "no name known yet");
        assert_eq!(l.guilds[2].availability, Some(Unavailable));
        let v: serde_json::Value = serde_json::from_str(&body(&r, Some(D), &[])).unwrap();
        assert_eq!(
            v,
            serde_json::json!({
                "version": "1.0",
                "default": "1000000000000000001",
                "guilds": [
                    {"guild_id": "1000000000000000001", "name": "Sim Guild", "availability": "available"},
                    {"guild_id": "1000000000001835009", "availability": "available"},
                    {"guild_id": "1000000000006029313", "name": "Gaming Night", "availability": "unavailable"},
                ]
            })
        );
    }

    #[test]
    fn the_default_before_its_guild_create_and_after_it_was_removed() {
        let r = Registry::from_entries([(B, entry(Available, Some("b")))]);
        let l = list(&r, Some(D), &[]);
        assert_eq!(ids(&l), [D, B], "served from the first batch, so listed");
        assert_eq!(
            (l.guilds[0].name.as_ref(), l.guilds[0].availability),
            (None, None)
        );
        assert_eq!(l.default, Some(D));
        let r =
            Registry::from_entries([(D, entry(Removed, Some("d"))), (B, entry(Available, None))]);
        let l = list(&r, Some(D), &[]);
        assert_eq!(ids(&l), [B]);
        assert_eq!(
            l.default, None,
            "the default is named only when it can be opened"
        );
        // No GUILD_ID at all.
        let l = list(&r, None, &[]);
        assert_eq!((ids(&l), l.default), (vec![B], None));
        assert_eq!(
            body(&Registry::default(), None, &[]),
            r#"{"version":"1.0","guilds":[]}"#
        );
    }

    #[test]
    fn the_allow_list_applies_and_the_list_agrees_with_serve() {
        let r = Registry::from_entries([
            (D, entry(Available, None)),
            (A, entry(Available, None)),
            (B, entry(Unavailable, None)),
            (C, entry(Removed, None)),
        ]);
        let allow = [B, C];
        let l = list(&r, Some(D), &allow);
        assert_eq!(ids(&l), [D, B], "A is not allowed; the default always is");
        // Listed exactly when a `?guild=` for it would be served, for every configuration.
        let unknown = Snowflake(1000000000014417921);
        for default in [None, Some(D), Some(A), Some(unknown)] {
            for allow in [&[][..], &[B, C][..], &[A][..]] {
                let listed = ids(&list(&r, default, allow));
                for g in [D, A, B, C, unknown] {
                    let known = r.get(g).map(|e| e.availability);
                    assert_eq!(
                        listed.contains(&g),
                        serve(g, default, allow, known).is_ok(),
                        "guild {g}, default {default:?}, allow {allow:?}"
                    );
                }
            }
        }
    }
}
