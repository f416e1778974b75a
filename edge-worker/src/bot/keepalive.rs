//! Keep-alives for quiet guild hubs. A hub marks its holder link down after `LINK_QUIET_MS`
//! without a batch; with many guilds, a guild with no traffic of its own must still hear from the
//! holder while the holder is busy with other guilds. The BotHub sees every batch, so it knows
//! when each guild's hub last got one ([`Touches`]); for each batch it names the quiet guilds of
//! that holder's shards that are due a keep-alive ([`Touches::due`]): at most one per
//! `HUB_KEEPALIVE_MS` per hub, the longest-quiet first, and at most `cap` per batch (a Worker
//! request has a bounded number of subrequests). The Worker sends them (an empty batch carrying
//! the shard's state, so a state change reaches quiet hubs too).
//!
//! Touches live in memory only: after a BotHub restart every hub is due once.

use contracts::Snowflake;
use std::collections::HashMap;

#[derive(Clone, Debug, Default)]
pub struct Touches {
    last: HashMap<Snowflake, u64>,
}

impl Touches {
    /// `guild`'s hub got a batch now.
    pub fn touch(&mut self, guild: Snowflake, now: u64) {
        self.last.insert(guild, now);
    }

    /// Of `candidates`, those whose hub got nothing for `every_ms`, longest-quiet first, at most
    /// `cap`; they count as touched now (the caller sends them a keep-alive).
    pub fn due(
        &mut self,
        now: u64,
        every_ms: u64,
        candidates: impl IntoIterator<Item = Snowflake>,
        cap: usize,
    ) -> Vec<Snowflake> {
        let mut quiet: Vec<(u64, Snowflake)> = candidates
            .into_iter()
            .filter_map(|g| {
                let last = self.last.get(&g).copied();
                match last {
                    Some(t) if now.saturating_sub(t) < every_ms => None,
                    _ => Some((last.unwrap_or(0), g)),
                }
            })
            .collect();
        quiet.sort_unstable();
        quiet.truncate(cap);
        for (_, g) in &quiet {
            self.last.insert(*g, now);
        }
        quiet.into_iter().map(|(_, g)| g).collect()
    }

    pub fn forget(&mut self, guild: Snowflake) {
        self.last.remove(&guild);
    }

    pub fn last(&self, guild: Snowflake) -> Option<u64> {
        self.last.get(&guild).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quiet_hubs_are_due_at_most_once_per_interval() {
        let (a, b, c) = (Snowflake(1), Snowflake(2), Snowflake(3));
        let mut t = Touches::default();
        // Never heard from: all due at once.
        assert_eq!(t.due(1_000, 500, [a, b, c], 10), [a, b, c]);
        assert!(
            t.due(1_200, 500, [a, b, c], 10).is_empty(),
            "not again within 500 ms"
        );
        // `a` has traffic of its own: it never needs a keep-alive.
        for now in (1_300..=2_000).step_by(100) {
            t.touch(a, now);
            let due = t.due(now, 500, [a, b, c], 10);
            assert!(!due.contains(&a));
            if now == 1_500 || now == 2_000 {
                assert_eq!(due, [b, c]);
            } else {
                assert!(due.is_empty(), "at {now}: {due:?}");
            }
        }
    }

    #[test]
    fn a_cap_per_batch_serves_the_longest_quiet_first() {
        let gs: Vec<Snowflake> = (1..=5).map(Snowflake).collect();
        let mut t = Touches::default();
        t.touch(gs[0], 900);
        t.touch(gs[1], 100);
        // gs[2..] never touched: quietest of all.
        assert_eq!(t.due(1_000, 50, gs.clone(), 2), [gs[2], gs[3]]);
        assert_eq!(t.due(1_001, 50, gs.clone(), 2), [gs[4], gs[1]]);
        assert_eq!(t.due(1_002, 50, gs.clone(), 2), [gs[0]]);
        t.forget(gs[0]);
        assert_eq!(t.last(gs[0]), None);
    }
}
