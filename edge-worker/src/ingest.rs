//! Turning a validated [`IngestBatch`] into what the hub stores: duplicates dropped by
//! (`epoch`, holder `id`), order kept, and the holder's [`HolderGap`]s placed where the lost
//! events would have been.
//!
//! Holder ids strictly increase within an epoch and the holder retries a batch until it gets a
//! 2xx, so the highest id stored per epoch (the "high-water mark") is enough to recognise every
//! duplicate. A new epoch has no mark, so none of its events is ever dropped.

use contracts::{Envelope, HolderGap, IngestBatch, ValidationError};

/// One thing to store, in holder-id order.
#[derive(Debug)]
pub enum Item {
    Dispatch(Envelope),
    Gap(HolderGap),
}

#[derive(Debug)]
pub struct Plan {
    pub items: Vec<Item>,
    /// The epoch's high-water mark after this batch (unchanged when nothing was new).
    pub high_water: Option<u64>,
    pub duplicates: u64,
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

/// Drops what the epoch's `high_water` mark says was stored already and merges gaps into place.
pub fn plan(envelopes: Vec<Envelope>, mut gaps: Vec<HolderGap>, high_water: Option<u64>) -> Plan {
    let seen = |id: u64| high_water.is_some_and(|hw| id <= hw);
    gaps.sort_by_key(|g| g.from_id);
    let mut gaps = gaps.into_iter().peekable();
    let mut items = Vec::with_capacity(envelopes.len());
    let mut duplicates = 0;
    let mut top = high_water;
    let push_gap = |g: HolderGap, items: &mut Vec<Item>, top: &mut Option<u64>| {
        if seen(g.to_id) {
            return;
        }
        let from_id = match high_water {
            Some(hw) if g.from_id <= hw => hw + 1,
            _ => g.from_id,
        };
        *top = Some(top.map_or(g.to_id, |t| t.max(g.to_id)));
        items.push(Item::Gap(HolderGap { from_id, ..g }));
    };
    for env in envelopes {
        while let Some(g) = gaps.next_if(|g| g.from_id < env.id) {
            push_gap(g, &mut items, &mut top);
        }
        if seen(env.id) {
            duplicates += 1;
            continue;
        }
        top = Some(top.map_or(env.id, |t| t.max(env.id)));
        items.push(Item::Dispatch(env));
    }
    for g in gaps {
        push_gap(g, &mut items, &mut top);
    }
    Plan {
        items,
        high_water: top,
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

    #[test]
    fn new_epoch_keeps_everything_in_order() {
        let p = plan(vec![env(1), env(2), env(6)], vec![gap(3, 5)], None);
        assert_eq!(ids(&p), ["1", "2", "gap3-5", "6"]);
        assert_eq!(p.high_water, Some(6));
        assert_eq!(p.duplicates, 0);
    }

    #[test]
    fn drops_what_was_seen_and_clips_gaps() {
        let p = plan(
            vec![env(4), env(5), env(9)],
            vec![gap(2, 3), gap(4, 8)],
            Some(5),
        );
        assert_eq!(ids(&p), ["gap6-8", "9"]);
        assert_eq!(p.duplicates, 2);
        assert_eq!(p.high_water, Some(9));
        let again = plan(vec![env(4), env(5)], vec![], Some(9));
        assert!(again.items.is_empty());
        assert_eq!(again.high_water, Some(9));
        let trailing = plan(vec![], vec![gap(10, 12)], Some(9));
        assert_eq!(ids(&trailing), ["gap10-12"]);
        assert_eq!(trailing.high_water, Some(12));
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
