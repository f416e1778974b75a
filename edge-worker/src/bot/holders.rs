//! The holders of the bot and where commands go. A holder registers (`POST /link/register`) its
//! shard range and the URL of its `/commands` when it starts and every `HOLDER_REGISTER_MS`
//! (default 10 s); its ingest batches count as signs of life too.
//!
//! [`Holders::route`] picks where a guild's command goes:
//! - no holder ever registered: the edge's `HOLDER_URL` (one holder, as before registration);
//! - the alive holder whose range holds the guild's shard (`(guild_id >> 22) % count`), the one
//!   heard from last if several do;
//! - none alive (the covering holder missed three registration intervals with no ingest either,
//!   or its link went quiet: no batch for `LINK_QUIET_MS` after it had sent some; a restarted
//!   holder that registered again counts once its first batch arrives, within its keep-alive
//!   interval), or no holder runs that shard at all: unavailable (`503 holder_unavailable` for
//!   that guild alone).
//!
//! Registrations are kept in storage; a holder silent for [`FORGET_AFTER_MS`] is forgotten, as
//! is one whose exact range another holder id registered since (a restart under a new id).

use contracts::{RegisterHolder, ShardRange, Snowflake};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A holder not heard from for this long is dropped from the table.
pub const FORGET_AFTER_MS: u64 = 3_600_000;
/// Intervals a holder may miss before it counts as gone.
pub const MISSED_INTERVALS: u64 = 3;

/// One holder as stored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holder {
    pub holder_id: String,
    pub url: String,
    pub shards: ShardRange,
    pub registered_at: u64,
    /// The last ingest batch from it (memory only; not stored).
    #[serde(skip)]
    pub last_ingest: Option<u64>,
}

impl Holder {
    fn last_contact(&self) -> u64 {
        self.registered_at.max(self.last_ingest.unwrap_or(0))
    }

    /// Alive: heard from within three registration intervals, and its link not quiet.
    pub fn alive(&self, now: u64, register_ms: u64, quiet_ms: u64) -> bool {
        let recent = now.saturating_sub(self.last_contact()) < MISSED_INTERVALS * register_ms;
        let link_ok = self
            .last_ingest
            .is_none_or(|t| now.saturating_sub(t) < quiet_ms);
        recent && link_ok
    }
}

/// Where a command for a guild goes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Route {
    /// No holder registered: `HOLDER_URL`.
    Default,
    /// This holder's base URL.
    Holder { holder_id: String, url: String },
    /// 503 `holder_unavailable`, with the reason.
    Unavailable { reason: String },
}

impl Route {
    /// The base URL commands for this route go to, given the edge's `HOLDER_URL`.
    pub fn url<'a>(&'a self, default: &'a str) -> std::result::Result<&'a str, &'a str> {
        match self {
            Route::Default => Ok(default),
            Route::Holder { url, .. } => Ok(url),
            Route::Unavailable { reason } => Err(reason),
        }
    }
}

#[derive(Clone, Debug, Default)]
pub struct Holders {
    list: BTreeMap<String, Holder>,
}

impl Holders {
    pub fn from_stored(list: impl IntoIterator<Item = Holder>) -> Holders {
        Holders {
            list: list.into_iter().map(|h| (h.holder_id.clone(), h)).collect(),
        }
    }

    /// Records a registration; returns the holder ids to delete from storage (superseded or
    /// forgotten).
    pub fn register(&mut self, reg: &RegisterHolder, now: u64) -> Vec<String> {
        let last_ingest = self.list.get(&reg.holder_id).and_then(|h| h.last_ingest);
        self.list.insert(
            reg.holder_id.clone(),
            Holder {
                holder_id: reg.holder_id.clone(),
                url: reg.url.trim_end_matches('/').to_string(),
                shards: reg.shards,
                registered_at: now,
                last_ingest,
            },
        );
        let gone: Vec<String> = self
            .list
            .values()
            .filter(|h| {
                h.holder_id != reg.holder_id
                    && (h.shards == reg.shards
                        || now.saturating_sub(h.last_contact()) >= FORGET_AFTER_MS)
            })
            .map(|h| h.holder_id.clone())
            .collect();
        for id in &gone {
            self.list.remove(id);
        }
        gone
    }

    /// An ingest batch from `holder_id` arrived.
    pub fn on_ingest(&mut self, holder_id: &str, now: u64) {
        if let Some(h) = self.list.get_mut(holder_id) {
            h.last_ingest = Some(now);
        }
    }

    pub fn get(&self, holder_id: &str) -> Option<&Holder> {
        self.list.get(holder_id)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Holder> {
        self.list.values()
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    pub fn route(&self, guild: Snowflake, now: u64, register_ms: u64, quiet_ms: u64) -> Route {
        if self.list.is_empty() {
            return Route::Default;
        }
        let covering: Vec<&Holder> = self
            .list
            .values()
            .filter(|h| h.shards.holds_guild(guild.get()))
            .collect();
        if covering.is_empty() {
            let counts: Vec<String> = {
                let mut c: Vec<u32> = self.list.values().map(|h| h.shards.count).collect();
                c.sort_unstable();
                c.dedup();
                c.iter()
                    .map(|n| {
                        format!(
                            "shard {} of {n}",
                            contracts::link::shard_of(guild.get(), *n)
                        )
                    })
                    .collect()
            };
            return Route::Unavailable {
                reason: format!(
                    "no registered holder runs {} (guild {guild})",
                    counts.join(" / ")
                ),
            };
        }
        match covering
            .iter()
            .filter(|h| h.alive(now, register_ms, quiet_ms))
            .max_by_key(|h| h.last_contact())
        {
            Some(h) => Route::Holder {
                holder_id: h.holder_id.clone(),
                url: h.url.clone(),
            },
            None => {
                let h = covering
                    .iter()
                    .max_by_key(|h| h.last_contact())
                    .expect("not empty");
                Route::Unavailable {
                    reason: format!(
                        "holder {} (shards {}-{} of {}) for guild {guild} is not responding",
                        h.holder_id, h.shards.first, h.shards.last, h.shards.count
                    ),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use contracts::Version;

    fn reg(id: &str, first: u32, last: u32, count: u32) -> RegisterHolder {
        RegisterHolder {
            version: Version,
            holder_id: id.into(),
            url: format!("http://{id}:8790/"),
            shards: ShardRange { first, last, count },
        }
    }

    /// A guild on shard `shard` of 4.
    fn guild(shard: u64) -> Snowflake {
        Snowflake(((8 + shard) << 22) | 77)
    }

    const REG: u64 = 10_000;
    const QUIET: u64 = 30_000;

    #[test]
    fn no_registration_means_the_default_holder() {
        let r = Holders::default().route(guild(0), 0, REG, QUIET);
        assert_eq!(r, Route::Default);
        assert_eq!(r.url("http://d"), Ok("http://d"));
        let gone = Route::Unavailable { reason: "x".into() };
        assert_eq!(gone.url("http://d"), Err("x"));
    }

    #[test]
    fn commands_go_to_the_holder_of_the_guilds_shard() {
        let mut h = Holders::default();
        h.register(&reg("a", 0, 1, 4), 1_000);
        h.register(&reg("b", 2, 3, 4), 1_000);
        let url = |r: Route| match r {
            Route::Holder { url, .. } => url,
            other => panic!("{other:?}"),
        };
        assert_eq!(url(h.route(guild(1), 2_000, REG, QUIET)), "http://a:8790");
        assert_eq!(url(h.route(guild(3), 2_000, REG, QUIET)), "http://b:8790");
    }

    #[test]
    fn a_gone_holder_makes_only_its_guilds_unavailable() {
        let mut h = Holders::default();
        h.register(&reg("a", 0, 1, 4), 0);
        h.register(&reg("b", 2, 3, 4), 0);
        h.on_ingest("a", 1_000);
        h.on_ingest("b", 1_000);
        // b keeps registering and ingesting; a stops (SIGKILL) after t=1000.
        for t in (10_000..=40_000).step_by(10_000) {
            h.register(&reg("b", 2, 3, 4), t);
            h.on_ingest("b", t);
        }
        // a's link went quiet at 31 s (last batch at 1 s + 30 s).
        assert!(matches!(
            h.route(guild(0), 30_000, REG, QUIET),
            Route::Holder { .. }
        ));
        match h.route(guild(0), 31_000, REG, QUIET) {
            Route::Unavailable { reason: why } => assert!(why.contains("holder a"), "{why}"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            h.route(guild(2), 40_000, REG, QUIET),
            Route::Holder { .. }
        ));
        // a restarts and registers: its link counts as quiet until its first batch arrives.
        h.register(&reg("a", 0, 1, 4), 41_000);
        assert!(matches!(
            h.route(guild(0), 41_000, REG, QUIET),
            Route::Unavailable { .. }
        ));
        h.on_ingest("a", 41_500);
        assert!(matches!(
            h.route(guild(0), 41_500, REG, QUIET),
            Route::Holder { .. }
        ));
    }

    #[test]
    fn registration_alone_counts_until_three_intervals_pass() {
        let mut h = Holders::default();
        h.register(&reg("a", 0, 3, 4), 0);
        assert!(matches!(
            h.route(guild(0), 29_999, REG, QUIET),
            Route::Holder { .. }
        ));
        assert!(matches!(
            h.route(guild(0), 30_000, REG, QUIET),
            Route::Unavailable { .. }
        ));
    }

    #[test]
    fn no_holder_for_the_shard_and_restarts_under_a_new_id() {
        let mut h = Holders::default();
        h.register(&reg("a", 0, 1, 4), 0);
        match h.route(guild(3), 1, REG, QUIET) {
            Route::Unavailable { reason: why } => assert!(why.contains("shard 3 of 4"), "{why}"),
            other => panic!("{other:?}"),
        }
        // Same range under a new id (state lost): the old registration is dropped.
        assert_eq!(h.register(&reg("a2", 0, 1, 4), 5), ["a"]);
        assert!(h.get("a").is_none());
        match h.route(guild(0), 6, REG, QUIET) {
            Route::Holder { holder_id, .. } => assert_eq!(holder_id, "a2"),
            other => panic!("{other:?}"),
        }
        // Silent for an hour: forgotten at the next registration of anyone.
        h.register(&reg("c", 2, 3, 4), 10);
        assert_eq!(h.register(&reg("c", 2, 3, 4), FORGET_AFTER_MS + 10), ["a2"]);
    }
}
