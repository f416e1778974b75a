//! `first_seq`: Discord numbers a session's dispatches from 1; with `first_seq: 0` READY goes out
//! with `s: 0` and later dispatches count from there, for clients that must not mistake `s: 0`
//! for "no sequence" (issue #21). RESUME and replay work the same from there.

mod common;

use common::{resume_payload, Raw, ALL_INTENTS, WAIT};
use discord_sim::config::demo;
use discord_sim::{SimConfig, SimEvent};
use tokio::time::timeout;

#[tokio::test]
async fn ready_is_s_0_and_later_dispatches_count_from_there() {
    let sim = common::start(SimConfig {
        first_seq: 0,
        ..common::fast_config()
    })
    .await;
    let mut raw = Raw::connect(&sim.gateway_url(), false).await;
    raw.hello().await;
    raw.identify("sim-token", ALL_INTENTS).await;
    let ready = raw.dispatch().await;
    assert_eq!(
        (ready["t"].as_str(), ready["s"].as_u64()),
        (Some("READY"), Some(0))
    );
    let gc = raw.dispatch().await;
    assert_eq!(
        (gc["t"].as_str(), gc["s"].as_u64()),
        (Some("GUILD_CREATE"), Some(1))
    );
    let session = ready["d"]["session_id"].as_str().unwrap().to_owned();
    let e = sim
        .emit(SimEvent::MessageCreate {
            channel_id: demo::GENERAL,
            author_id: demo::ALICE,
            content: "two".into(),
        })
        .await;
    assert_eq!(e.seq, Some(2));
    assert_eq!(raw.dispatch().await["s"], 2);
    assert_eq!(sim.sessions()[0].seq, 2);

    // Resume from s 0 (READY seen, nothing after): GUILD_CREATE and the message are replayed.
    raw.close(4000).await;
    timeout(WAIT, sim.wait_for(|s| s.connections_live == 0))
        .await
        .unwrap();
    let mut again = Raw::connect(&sim.resume_gateway_url(), false).await;
    again.hello().await;
    again.send(resume_payload("sim-token", &session, 0)).await;
    let replayed: Vec<u64> = [again.dispatch().await, again.dispatch().await]
        .iter()
        .map(|d| d["s"].as_u64().unwrap())
        .collect();
    assert_eq!(replayed, vec![1, 2]);
    let resumed = again.dispatch().await;
    assert_eq!(
        (resumed["t"].as_str(), resumed["s"].as_u64()),
        (Some("RESUMED"), Some(3))
    );
}

#[tokio::test]
async fn the_default_starts_at_1() {
    assert_eq!(SimConfig::default().first_seq, 1);
    let sim = common::start_fast().await;
    let mut raw = Raw::connect(&sim.gateway_url(), false).await;
    raw.handshake("sim-token", ALL_INTENTS).await; // asserts READY s 1, GUILD_CREATE s 2
}
