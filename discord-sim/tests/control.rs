//! The control API over HTTP (`/_sim/...`) and generated traffic: what tests in other processes
//! (the e2e suite, the holder's tests) use.

mod common;

use std::time::Duration;

use common::{http, Raw, ALL_INTENTS, WAIT};
use discord_sim::config::demo;
use discord_sim::{Burst, TrafficMix, TrafficSpec};
use serde_json::{json, Value};
use tokio::time::timeout;

async fn post(sim: &discord_sim::Sim, path: &str, body: Value) -> common::HttpResponse {
    http(sim.addr(), "POST", path, &[], Some(&body.to_string())).await
}

#[tokio::test]
async fn emit_fault_and_records_over_http() {
    let sim = common::start_fast().await;
    let mut raw = Raw::connect(&sim.gateway_url(), false).await;
    let (session, _) = raw.handshake("sim-token", ALL_INTENTS).await;

    let r = post(
        &sim,
        "/_sim/emit",
        json!({"type": "MESSAGE_CREATE", "channel_id": demo::GENERAL.to_string(),
               "author_id": demo::BOB.to_string(), "content": "via control"}),
    )
    .await;
    assert_eq!(r.status, 200);
    let emitted = r.json();
    assert_eq!(emitted[0]["session_id"], session);
    assert_eq!(emitted[0]["seq"], 3);
    let got = raw.dispatch().await;
    assert_eq!(got["d"]["content"], "via control");
    assert_eq!(
        common::d_text(&raw.last_text),
        emitted[0]["d"].as_str().unwrap()
    );

    let r = post(
        &sim,
        "/_sim/emit",
        json!({"type": "VOICE_JOIN", "user_id": demo::ERIN, "channel_id": demo::GAMING}),
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(raw.dispatch().await["t"], "VOICE_STATE_UPDATE");

    // Bad control input is a 4xx, never a crash.
    let r = post(&sim, "/_sim/emit", json!({"type": "NOPE"})).await;
    assert!((400..500).contains(&r.status));

    let r = post(&sim, "/_sim/fault", json!({"kind": "reconnect"})).await;
    assert_eq!(r.json()["connections"], 1);
    assert_eq!(raw.payload().await["op"], 7);

    let r = http(sim.addr(), "GET", "/_sim/records/gateway", &[], None).await;
    let records = r.json();
    assert_eq!(records[0]["op"], 2);
    let r = http(sim.addr(), "GET", "/_sim/records/emitted", &[], None).await;
    assert_eq!(r.json().as_array().unwrap().len(), 4);
    let r = http(sim.addr(), "GET", "/_sim/sessions", &[], None).await;
    assert_eq!(r.json()[0]["session_id"], session);
    let r = http(sim.addr(), "GET", "/_sim/stats", &[], None).await;
    assert_eq!(r.json()["identifies"], 1);
    let r = http(sim.addr(), "GET", "/_sim/records/connections", &[], None).await;
    assert_eq!(r.json()[0]["path"], "/");

    let r = post(&sim, "/_sim/fault", json!({"kind": "close", "code": 4000})).await;
    assert_eq!(r.status, 200);
    assert_eq!(raw.close_code().await, Some(4000));
}

#[tokio::test]
async fn traffic_with_bursts_is_paced_and_stamped() {
    let sim = common::start_fast().await;
    let mut raw = Raw::connect(&sim.gateway_url(), true).await;
    raw.handshake("sim-token", ALL_INTENTS).await;
    let spec = TrafficSpec {
        rate_per_sec: 100.0,
        burst: Some(Burst {
            rate_per_sec: 1000.0,
            length: Duration::from_millis(100),
            every: Duration::from_millis(500),
        }),
        duration: Duration::from_millis(1000),
        max_events: None,
        mix: TrafficMix::chat(),
        guilds: Default::default(),
    };
    // 2 bursts × 100 ms × 1000/s + 800 ms × 100/s = 280.
    let expected = spec.due_at(Duration::from_millis(1000));
    let report = timeout(WAIT, sim.traffic(spec)).await.unwrap();
    assert_eq!(report.sent, expected, "the whole schedule is emitted");
    assert_eq!(expected, 280);
    assert!(report.elapsed >= Duration::from_millis(1000));
    let mut kinds = std::collections::BTreeSet::new();
    for _ in 0..report.sent {
        let d = raw.dispatch().await;
        let sent_us = d["d"]["_sim_sent_us"].as_u64().expect("stamped");
        assert!(sent_us > 1_700_000_000_000_000);
        kinds.insert(d["t"].as_str().unwrap().to_owned());
    }
    assert!(kinds.contains("MESSAGE_CREATE"));
    assert!(kinds.len() >= 2, "a chat mix: {kinds:?}");
}

#[tokio::test]
async fn traffic_over_http_waits_for_the_report() {
    let sim = common::start_fast().await;
    let r = post(
        &sim,
        "/_sim/traffic?wait=true",
        json!({"rate_per_sec": 200, "duration_ms": 300, "max_events": 25}),
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["sent"], 25);
}

#[tokio::test]
async fn demo_scenario_produces_activity() {
    // The raw client doesn't heartbeat; give it time.
    let sim = common::start(discord_sim::SimConfig {
        heartbeat_interval: Duration::from_secs(30),
        ..discord_sim::SimConfig::default()
    })
    .await;
    let mut raw = Raw::connect(&sim.gateway_url(), false).await;
    raw.handshake("sim-token", ALL_INTENTS).await;
    let scenario = sim.run_demo_scenario();
    for _ in 0..3 {
        let d = raw.dispatch().await;
        assert!(
            [
                "MESSAGE_CREATE",
                "MESSAGE_REACTION_ADD",
                "TYPING_START",
                "VOICE_STATE_UPDATE"
            ]
            .contains(&d["t"].as_str().unwrap()),
            "{d}"
        );
    }
    scenario.abort();
}
