//! Turning a validated [`IngestBatch`] into what the hub stores: duplicates dropped by
//! (`epoch`, `shard`, holder `id`), order kept, and the holder's [`HolderGap`]s placed where the
//! lost events would have been.
//!
//! Holder ids strictly increase within an (`epoch`, `shard`) (each shard numbers its dispatches
//! from Discord's `s`, so ids of different shards interleave and may repeat), and the holder
//! retries a batch until it gets a 2xx, so the highest id stored per (epoch, shard) (the
//! "high-water mark") is enough to recognise every duplicate. A new epoch, or a shard new to the
//! hub, has no mark, so none of its events is ever dropped.
//!
//! A gap names its shard. The Worker gives every gap a shard before a hub sees it (a gap for
//! "every shard" becomes one per shard of the holder, `routing::gaps_for`); a gap without one is
//! taken to be shard 0's, which is what a single-shard holder's gaps are.

use contracts::{Envelope, HolderGap, IngestBatch, ValidationError};
use std::collections::{BTreeMap, VecDeque};

/// One thing to store, in holder-id order per shard.
#[derive(Debug)]
pub enum Item {
    Dispatch(Envelope),
    Gap(HolderGap),
}

#[derive(Debug)]
pub struct Plan {
    pub items: Vec<Item>,
    /// The marks this batch raised, by shard (only shards whose mark changed).
    pub high_water: BTreeMap<u32, u64>,
    pub duplicates: u64,
}

/// The shard a gap's ids belong to.
pub fn gap_shard(g: &HolderGap) -> u32 {
    g.shard.unwrap_or(0)
}

/// Rules the contract's validation leaves to the edge: a dispatch's `type` becomes an SSE
/// `event:` name, so it must be Discord-shaped (upper-case letters, digits, `_`), which also keeps
/// it apart from the edge's own lower-case event names.
pub fn check(batch: &IngestBatch) -> Result<(), ValidationError> {
    if batch.epoch.is_empty() || batch.epoch.len() > 128 {
        return Err(ValidationError::field(
            "epoch",
            "must be 1 to 128 characters",
        ));
    }
    if batch.holder_id.len() > 128 {
        return Err(ValidationError::field(
            "holder_id",
            "must be at most 128 characters",
        ));
    }
    for (i, e) in batch.envelopes.iter().enumerate() {
        let ok = (1..=64).contains(&e.kind.len())
            && e.kind
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_');
        if !ok {
            return Err(ValidationError::field(
                format!("envelopes[{i}].type"),
                "must be a Discord event name (A-Z, 0-9, _; at most 64)",
            ));
        }
    }
    Ok(())
}

/// Drops what the epoch's marks (`high_water(shard)`) say was stored already and merges gaps into
/// place: a gap goes right before the first envelope of its shard with a higher id, or at the end.
pub fn plan(
    envelopes: Vec<Envelope>,
    mut gaps: Vec<HolderGap>,
    high_water: impl Fn(u32) -> Option<u64>,
) -> Plan {
    gaps.sort_by_key(|g| (gap_shard(g), g.from_id));
    let mut pending: BTreeMap<u32, VecDeque<HolderGap>> = BTreeMap::new();
    for g in gaps {
        pending.entry(gap_shard(&g)).or_default().push_back(g);
    }
    let mut marks: BTreeMap<u32, Option<u64>> = BTreeMap::new();
    let mut top: BTreeMap<u32, u64> = BTreeMap::new();
    let mut items = Vec::with_capacity(envelopes.len());
    let mut duplicates = 0;
    let mut mark = |shard: u32| *marks.entry(shard).or_insert_with(|| high_water(shard));
    let raise = |top: &mut BTreeMap<u32, u64>, shard: u32, id: u64| {
        let t = top.entry(shard).or_insert(id);
        *t = (*t).max(id);
    };
    let push_gap =
        |g: HolderGap, hw: Option<u64>, items: &mut Vec<Item>, top: &mut BTreeMap<u32, u64>| {
            if hw.is_some_and(|hw| g.to_id <= hw) {
                return;
            }
            let from_id = match hw {
                Some(hw) if g.from_id <= hw => hw + 1,
                _ => g.from_id,
            };
            raise(top, gap_shard(&g), g.to_id);
            items.push(Item::Gap(HolderGap { from_id, ..g }));
        };
    for env in envelopes {
        let hw = mark(env.shard);
        if let Some(queue) = pending.get_mut(&env.shard) {
            while queue.front().is_some_and(|g| g.from_id < env.id) {
                let g = queue.pop_front().expect("front exists");
                push_gap(g, hw, &mut items, &mut top);
            }
        }
        if hw.is_some_and(|hw| env.id <= hw) {
            duplicates += 1;
            continue;
        }
        raise(&mut top, env.shard, env.id);
        items.push(Item::Dispatch(env));
    }
    for (shard, queue) in pending {
        let hw = mark(shard);
        for g in queue {
            push_gap(g, hw, &mut items, &mut top);
        }
    }
    let high_water = top
        .into_iter()
        .filter(|(shard, t)| marks.get(shard).copied().flatten() != Some(*t))
        .collect();
    Plan {
        items,
        high_water,
        duplicates,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::value::RawValue;

    fn env(id: u64) -> Envelope {
        Envelope {
            version: contracts::Version,
            id,
            shard: 0,
            session_id: "s".into(),
            seq: id,
            kind: "MESSAGE_CREATE".into(),
            guild_id: None,
            channel_id: None,
            received_at: 1,
            d: RawValue::from_string("{}".into()).unwrap(),
        }
    }

    fn gap(from_id: u64, to_id: u64) -> HolderGap {
        HolderGap {
            from_id,
            to_id,
            reason: "buffer".into(),
            shard: None,
        }
    }

    fn ids(p: &Plan) -> Vec<String> {
        p.items
            .iter()
            .map(|i| match i {
                Item::Dispatch(e) => e.id.to_string(),
                Item::Gap(g) => format!("gap{}-{}", g.from_id, g.to_id),
            })
            .collect()
    }

    fn on(shard: u32, id: u64) -> Envelope {
        Envelope { shard, ..env(id) }
    }

    fn gap_on(shard: u32, from_id: u64, to_id: u64) -> HolderGap {
        HolderGap {
            shard: Some(shard),
            ..gap(from_id, to_id)
        }
    }

    fn marks(m: &[(u32, u64)]) -> impl Fn(u32) -> Option<u64> + '_ {
        move |s| m.iter().find(|(k, _)| *k == s).map(|(_, v)| *v)
    }

    #[test]
    fn new_epoch_keeps_everything_in_order() {
        let p = plan(vec![env(1), env(2), env(6)], vec![gap(3, 5)], |_| None);
        assert_eq!(ids(&p), ["1", "2", "gap3-5", "6"]);
        assert_eq!(p.high_water, BTreeMap::from([(0, 6)]));
        assert_eq!(p.duplicates, 0);
    }

    #[test]
    fn drops_what_was_seen_and_clips_gaps() {
        let p = plan(
            vec![env(4), env(5), env(9)],
            vec![gap(2, 3), gap(4, 8)],
            marks(&[(0, 5)]),
        );
        assert_eq!(ids(&p), ["gap6-8", "9"]);
        assert_eq!(p.duplicates, 2);
        assert_eq!(p.high_water, BTreeMap::from([(0, 9)]));
        let again = plan(vec![env(4), env(5)], vec![], marks(&[(0, 9)]));
        assert!(again.items.is_empty());
        assert!(again.high_water.is_empty(), "nothing new: no mark to write");
        let trailing = plan(vec![], vec![gap(10, 12)], marks(&[(0, 9)]));
        assert_eq!(ids(&trailing), ["gap10-12"]);
        assert_eq!(trailing.high_water, BTreeMap::from([(0, 12)]));
    }

    #[test]
    fn dedup_is_per_shard() {
        // Shards number their own ids: shard 1's id 3 is new even though shard 0 is past 5.
        let p = plan(
            vec![on(0, 4), on(1, 3), on(0, 6), on(1, 4)],
            vec![],
            marks(&[(0, 5)]),
        );
        let got: Vec<(u32, u64)> = p
            .items
            .iter()
            .map(|i| match i {
                Item::Dispatch(e) => (e.shard, e.id),
                Item::Gap(_) => unreachable!(),
            })
            .collect();
        assert_eq!(got, [(1, 3), (0, 6), (1, 4)], "order kept across shards");
        assert_eq!(p.duplicates, 1);
        assert_eq!(p.high_water, BTreeMap::from([(0, 6), (1, 4)]));
        // The same batch again (a retry): everything is a duplicate, on both shards.
        let again = plan(
            vec![on(0, 4), on(1, 3), on(0, 6), on(1, 4)],
            vec![],
            marks(&[(0, 6), (1, 4)]),
        );
        assert!(again.items.is_empty());
        assert_eq!(again.duplicates, 4);
    }

    #[test]
    fn gaps_are_placed_among_their_own_shard() {
        let p = plan(
            vec![on(0, 1), on(1, 1), on(0, 5), on(1, 9)],
            vec![gap_on(1, 2, 8), gap_on(0, 2, 4), gap_on(2, 1, 1)],
            |_| None,
        );
        assert_eq!(ids(&p), ["1", "1", "gap2-4", "5", "gap2-8", "9", "gap1-1"]);
        assert_eq!(p.high_water, BTreeMap::from([(0, 5), (1, 9), (2, 1)]));
        // A gap of shard 1 is not clipped by shard 0's mark.
        let p = plan(vec![], vec![gap_on(1, 2, 3)], marks(&[(0, 50)]));
        assert_eq!(ids(&p), ["gap2-3"]);
    }

    #[test]
    fn event_names_must_be_discord_shaped() {
        let mut e = env(1);
        e.kind = "status".into();
        let b = IngestBatch {
            version: contracts::Version,
            holder_id: "h".into(),
            epoch: "e".into(),
            batch: 1,
            envelopes: vec![env(0), e],
            gaps: vec![],
            gateway: None,
            shards: vec![],
        };
        assert_eq!(
            check(&b).unwrap_err().field.as_deref(),
            Some("envelopes[1].type")
        );
    }
}
