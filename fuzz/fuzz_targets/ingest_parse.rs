//! `POST /link/ingest` bodies: `contracts::validate::parse::<IngestBatch>` on arbitrary bytes.
//!
//! Checks: never panics; an accepted batch satisfies the rules `validate` promises (ids strictly
//! increase, `type` not empty, gaps not reversed); it carries no key the contract doesn't know; it
//! serializes, and the serialization parses again to the same batch with every `d` byte-identical;
//! serializing is a fixed point. The edge's own ingest rules (`edge_worker::ingest::check` and
//! `plan`) then run on it without panicking and keep ids in order.

#![no_main]

use contracts::{validate, IngestBatch};
use libfuzzer_sys::fuzz_target;

#[path = "common/keys.rs"]
mod keys;

fuzz_target!(|data: &[u8]| {
    let Ok(batch) = validate::parse::<IngestBatch>(data) else {
        return;
    };

    for pair in batch.envelopes.windows(2) {
        assert!(pair[0].id < pair[1].id, "ids must increase");
    }
    for e in &batch.envelopes {
        assert!(!e.kind.is_empty(), "empty type accepted");
    }
    for g in &batch.gaps {
        assert!(g.from_id <= g.to_id, "reversed gap accepted");
    }

    let json = serde_json::to_vec(&batch).expect("an accepted batch serializes");
    let input = std::str::from_utf8(data).expect("accepted input is UTF-8");
    let output = std::str::from_utf8(&json).expect("serde_json writes UTF-8");
    keys::input_keys_survive(input, output, &["d"], "");

    let again = validate::parse::<IngestBatch>(&json).unwrap_or_else(|e| {
        panic!(
            "serialized batch refused: {e}\n{}",
            String::from_utf8_lossy(&json)
        )
    });
    assert_eq!(batch.holder_id, again.holder_id);
    assert_eq!(batch.epoch, again.epoch);
    assert_eq!(batch.batch, again.batch);
    assert_eq!(batch.gaps, again.gaps);
    assert_eq!(batch.gateway, again.gateway);
    assert_eq!(batch.envelopes.len(), again.envelopes.len());
    for (a, b) in batch.envelopes.iter().zip(&again.envelopes) {
        assert_eq!(a.id, b.id);
        assert_eq!(a.shard, b.shard);
        assert_eq!(a.session_id, b.session_id);
        assert_eq!(a.seq, b.seq);
        assert_eq!(a.kind, b.kind);
        assert_eq!(a.guild_id, b.guild_id);
        assert_eq!(a.channel_id, b.channel_id);
        assert_eq!(a.received_at, b.received_at);
        assert_eq!(a.d.get().as_bytes(), b.d.get().as_bytes(), "d changed");
    }
    let json2 = serde_json::to_vec(&again).expect("serializes");
    assert_eq!(json, json2, "serialization is not a fixed point");

    // The edge's rules on top of the contract's: dedup marks are per (epoch, shard).
    if edge_worker::ingest::check(&batch).is_ok() {
        let mut marks: std::collections::BTreeMap<u32, u64> = std::collections::BTreeMap::new();
        for e in &batch.envelopes {
            marks
                .entry(e.shard)
                .or_insert_with(|| e.id.wrapping_add(batch.batch % 3));
        }
        let high_water = |shard: u32| marks.get(&shard).copied();
        let plan =
            edge_worker::ingest::plan(batch.envelopes.clone(), batch.gaps.clone(), high_water);
        let mut last: std::collections::BTreeMap<u32, u64> = std::collections::BTreeMap::new();
        for item in &plan.items {
            match item {
                edge_worker::ingest::Item::Dispatch(e) => {
                    if let Some(l) = last.insert(e.shard, e.id) {
                        assert!(
                            e.id > l,
                            "dispatches out of order on shard {}: {} after {l}",
                            e.shard,
                            e.id
                        );
                    }
                    if let Some(hw) = high_water(e.shard) {
                        assert!(e.id > hw, "duplicate {} (high-water {hw}) kept", e.id);
                    }
                }
                edge_worker::ingest::Item::Gap(g) => {
                    assert!(g.from_id <= g.to_id, "gap reversed by plan");
                    let shard = edge_worker::ingest::gap_shard(g);
                    if let Some(hw) = high_water(shard) {
                        assert!(g.from_id > hw, "gap from {} at or below {hw}", g.from_id);
                    }
                }
            }
        }
    }
});
