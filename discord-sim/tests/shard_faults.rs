//! Faults aimed at one shard (`Fault::OnShard`, or `"shard": N` in the control API's JSON): op 7,
//! a close code, a TCP drop and stopped heartbeat ACKs hit only the connections of that shard;
//! and the close-before-READY fault (everywhere or on one shard), for clients that must keep
//! retrying an IDENTIFY that never gets READY.

mod common;

use common::{guild_marker, marker, Got, ShardClient, ALL_INTENTS, WAIT};
use discord_sim::{Fault, GuildSeed, Sim, SimConfig};
use serde_json::{json, Value};
use tokio::time::timeout;

/// Two guilds, one per shard of two (guild 0 on shard 1, guild 1 on shard 0).
async fn two_shards() -> (Sim, ShardClient, ShardClient) {
    let sim = common::start(SimConfig {
        guilds: (0..2).map(GuildSeed::numbered).collect(),
        ..common::fast_config()
    })
    .await;
    let s0 = ShardClient::connect(&sim, 0, 2).await;
    let s1 = ShardClient::connect(&sim, 1, 2).await;
    assert_eq!((s0.guilds.len(), s1.guilds.len()), (1, 1));
    (sim, s0, s1)
}

/// A marker only shard 1 gets (guild 0 is on shard 1 of 2).
fn shard1_marker(tag: &str) -> discord_sim::SimEvent {
    guild_marker(tag, GuildSeed::numbered(0).id)
}

async fn post_fault(sim: &Sim, body: Value) -> common::HttpResponse {
    common::http(
        sim.addr(),
        "POST",
        "/_sim/fault",
        &[],
        Some(&body.to_string()),
    )
    .await
}

#[tokio::test]
async fn a_close_code_on_one_shard_closes_only_its_connections() {
    let (sim, mut s0, mut s1) = two_shards().await;
    let r = post_fault(&sim, json!({"kind": "close", "code": 4000, "shard": 1})).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["connections"], 1);
    assert_eq!(s1.raw.close_code().await, Some(4000));
    sim.emit(marker("still here")).await;
    let d = s0.raw.dispatch().await;
    assert_eq!(d["d"]["tag"], "still here", "shard 0 stays connected: {d}");
    drop(s1);
    timeout(WAIT, sim.wait_for(|s| s.connections_live == 1))
        .await
        .expect("only shard 1's connection ended");
    assert_eq!(
        sim.connections()
            .iter()
            .filter(|c| c.close_code == Some(4000))
            .count(),
        1
    );
}

#[tokio::test]
async fn reconnect_and_tcp_drop_on_one_shard() {
    let (sim, mut s0, mut s1) = two_shards().await;
    sim.fault(Fault::Reconnect.on_shard(0)).await;
    let op7 = s0.raw.payload().await;
    assert_eq!(op7["op"], 7);
    sim.emit(shard1_marker("no op 7 here")).await;
    let d = s1.raw.payload().await;
    assert_eq!(d["d"]["tag"], "no op 7 here", "shard 1 got no op 7: {d}");

    sim.fault(Fault::DropTcp.on_shard(1)).await;
    assert!(
        matches!(s1.raw.next().await, Got::Ended),
        "dropped without a close frame"
    );
    sim.emit(marker("alive")).await;
    let d = s0.raw.dispatch().await;
    assert_eq!(d["d"]["tag"], "alive");
}

#[tokio::test]
async fn stopped_acks_on_one_shard_leave_the_others_acked() {
    let (sim, mut s0, mut s1) = two_shards().await;
    sim.fault(Fault::StopAcks(true).on_shard(1)).await;
    for c in [&mut s0, &mut s1] {
        c.raw.send(json!({"op": 1, "d": 3})).await;
    }
    timeout(WAIT, sim.wait_for(|s| s.heartbeats >= 2))
        .await
        .unwrap();
    assert_eq!(s0.raw.payload().await["op"], 11, "shard 0 is acked");
    // Any ACK would have been written before this marker.
    sim.emit(shard1_marker("after the heartbeat")).await;
    let next = s1.raw.payload().await;
    assert_eq!(
        next["d"]["tag"], "after the heartbeat",
        "no ACK on shard 1: {next}"
    );
    // Off again.
    let r = post_fault(&sim, json!({"kind": "stop_acks", "on": false, "shard": 1})).await;
    assert_eq!(r.status, 200);
    s1.raw.send(json!({"op": 1, "d": 4})).await;
    assert_eq!(s1.raw.payload().await["op"], 11);
}

#[tokio::test]
async fn close_before_ready_answers_every_identify_with_the_code_until_switched_off() {
    let sim = common::start_fast().await;
    let r = post_fault(&sim, json!({"kind": "close_before_ready", "code": 4000})).await;
    assert_eq!(r.status, 200);
    for _ in 0..3 {
        let mut raw = common::Raw::connect(&sim.gateway_url(), false).await;
        raw.hello().await;
        raw.identify("sim-token", ALL_INTENTS).await;
        match raw.next().await {
            Got::Close(code) => assert_eq!(code, Some(4000)),
            other => panic!("expected a close before READY, got {other:?}"),
        }
    }
    let stats = sim.stats();
    assert_eq!(stats.identifies_closed_before_ready, 3);
    assert_eq!(stats.identifies, 0, "no session was made");
    assert!(sim.sessions().is_empty());
    let log = sim.identify_log();
    assert!(log.iter().all(|r| r.outcome == "closed_before_ready"));
    // Each one was an IDENTIFY Discord counted.
    let v = common::rest(&sim, "GET", "/gateway/bot", None).await.json();
    assert_eq!(v["session_start_limit"]["remaining"], 1000 - 3);

    sim.fault(Fault::CloseBeforeReady(None)).await;
    let mut raw = common::Raw::connect(&sim.gateway_url(), false).await;
    raw.handshake("sim-token", ALL_INTENTS).await;
    assert_eq!(sim.identifies(), 1);
}

#[tokio::test]
async fn close_before_ready_on_one_shard() {
    let sim = common::start(SimConfig {
        guilds: (0..2).map(GuildSeed::numbered).collect(),
        ..common::fast_config()
    })
    .await;
    sim.fault(Fault::CloseBeforeReady(Some(4000)).on_shard(1))
        .await;
    let ok = ShardClient::connect(&sim, 0, 2).await;
    assert_eq!(ok.guilds.len(), 1);
    let mut raw = common::Raw::connect(&sim.gateway_url(), false).await;
    raw.hello().await;
    raw.send(common::identify_shard_payload(
        "sim-token",
        ALL_INTENTS,
        1,
        2,
    ))
    .await;
    assert!(matches!(raw.next().await, Got::Close(Some(4000))));
    let outcomes: Vec<(u64, String)> = sim
        .identify_log()
        .into_iter()
        .map(|r| (r.shard, r.outcome))
        .collect();
    assert_eq!(
        outcomes,
        vec![
            (0, "ready".to_owned()),
            (1, "closed_before_ready".to_owned())
        ]
    );
}

#[tokio::test]
async fn faults_that_cannot_be_aimed_at_a_shard_are_refused() {
    let sim = common::start_fast().await;
    let r = post_fault(
        &sim,
        json!({"kind": "slow_rest", "delay_ms": 10, "shard": 0}),
    )
    .await;
    assert_eq!(r.status, 422, "rejected while parsing: {}", r.body);
    // Unchanged JSON of the existing faults still works.
    let r = post_fault(&sim, json!({"kind": "reconnect"})).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["connections"], 0);
}

#[tokio::test]
async fn switching_a_fault_off_everywhere_also_ends_it_per_shard() {
    let (sim, _s0, mut s1) = two_shards().await;
    sim.fault(Fault::StopAcks(true).on_shard(1)).await;
    sim.fault(Fault::CloseBeforeReady(Some(4000)).on_shard(1))
        .await;
    sim.fault(Fault::StopAcks(false)).await;
    sim.fault(Fault::CloseBeforeReady(None)).await;
    s1.raw.send(json!({"op": 1, "d": 3})).await;
    assert_eq!(s1.raw.payload().await["op"], 11);
    let again = ShardClient::connect(&sim, 1, 2).await;
    assert_eq!(again.guilds.len(), 1, "READY and GUILD_CREATE, no close");
}
