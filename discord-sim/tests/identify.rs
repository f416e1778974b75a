//! IDENTIFY pacing and the session-start budget, per Discord's docs: `max_concurrency` IDENTIFYs
//! per 5 s, one per bucket `rate_limit_key = shard_id % max_concurrency`; "If your app exceeds
//! this limit, Discord will respond with a Invalid Session (opcode 9) event". `GET /gateway/bot`
//! reports `shards` and `session_start_limit`; every IDENTIFY is in the identify log.

mod common;

use std::time::Duration;

use common::{identify_shard_payload, ShardClient, ALL_INTENTS, WAIT};
use discord_sim::{GuildSeed, IdentifyRecord, Sim, SimConfig};
use serde_json::Value;
use tokio::time::timeout;

async fn paced(max_concurrency: u32, window: Duration, guilds: usize) -> Sim {
    common::start(SimConfig {
        max_concurrency,
        identify_window: window,
        recommended_shards: 4,
        guilds: (0..guilds).map(GuildSeed::numbered).collect(),
        ..common::fast_config()
    })
    .await
}

/// Sends IDENTIFY for `[shard, n]` on a fresh connection and returns the first answer (READY or
/// op 9) with the connection.
async fn identify(sim: &Sim, shard: u64, n: u64) -> (common::Raw, Value) {
    let mut raw = common::Raw::connect(&sim.gateway_url(), false).await;
    raw.hello().await;
    raw.send(identify_shard_payload("sim-token", ALL_INTENTS, shard, n))
        .await;
    let v = raw.payload().await;
    (raw, v)
}

fn is_invalid_session(v: &Value) -> bool {
    v["op"] == 9 && v["d"] == false
}

#[tokio::test]
async fn the_default_is_one_identify_per_5_s_and_a_second_gets_op_9_false() {
    let config = SimConfig::default();
    assert_eq!(config.max_concurrency, 1);
    assert_eq!(config.identify_window, Duration::from_secs(5));
    assert_eq!(config.max_guilds_per_shard, 2500);
    let sim = common::start(SimConfig {
        heartbeat_interval: Duration::from_millis(5000),
        ..SimConfig::default()
    })
    .await;
    let (_a, ready) = identify(&sim, 0, 1).await;
    assert_eq!(ready["t"], "READY");
    let (_b, refused) = identify(&sim, 0, 1).await;
    assert!(is_invalid_session(&refused), "{refused}");
    assert_eq!(sim.stats().identifies_rate_limited, 1);
    assert_eq!(sim.identifies(), 1);
}

#[tokio::test]
async fn an_identify_too_soon_gets_op_9_and_one_after_the_window_succeeds() {
    let window = Duration::from_millis(400);
    let sim = paced(1, window, 2).await;
    let (_zero, ready) = identify(&sim, 0, 2).await;
    assert_eq!(ready["t"], "READY");
    // Shard 1 is in the same bucket (1 % 1 == 0): too soon.
    let (mut one, first) = identify(&sim, 1, 2).await;
    assert!(is_invalid_session(&first), "{first}");
    // Retry on the same connection (no session was made) until the window has passed; the
    // retries themselves are refused without moving the window.
    let ready = loop {
        tokio::time::sleep(Duration::from_millis(50)).await;
        one.send(identify_shard_payload("sim-token", ALL_INTENTS, 1, 2))
            .await;
        let v = timeout(WAIT, one.payload()).await.unwrap();
        if !is_invalid_session(&v) {
            break v;
        }
    };
    assert_eq!(ready["t"], "READY");
    assert_eq!(ready["d"]["shard"], serde_json::json!([1, 2]));
    let log = sim.identify_log();
    let ok: Vec<&IdentifyRecord> = log.iter().filter(|r| r.outcome == "ready").collect();
    assert_eq!(ok.len(), 2);
    let spacing = Duration::from_micros(ok[1].at_us - ok[0].at_us);
    assert!(spacing >= window, "spaced {spacing:?}");
    let refused = log.iter().filter(|r| r.outcome == "rate_limited").count() as u64;
    assert!(refused >= 1);
    assert_eq!(sim.stats().identifies_rate_limited, refused);
    assert!(log.iter().all(|r| r.bucket == 0));
    // Refused IDENTIFYs use no session start.
    let v = common::rest(&sim, "GET", "/gateway/bot", None).await.json();
    assert_eq!(v["session_start_limit"]["remaining"], 1000 - 2);
}

#[tokio::test]
async fn buckets_are_shard_id_mod_max_concurrency() {
    // A window far longer than the test: nothing in a used bucket gets through.
    let sim = paced(2, Duration::from_secs(60), 4).await;
    let v = common::rest(&sim, "GET", "/gateway/bot", None).await.json();
    assert_eq!(v["session_start_limit"]["max_concurrency"], 2);
    let (_a, r0) = identify(&sim, 0, 4).await;
    let (_b, r1) = identify(&sim, 1, 4).await;
    assert_eq!(r0["t"], "READY", "bucket 0");
    assert_eq!(r1["t"], "READY", "bucket 1, at the same time as bucket 0");
    let (_c, r2) = identify(&sim, 2, 4).await;
    let (_d, r3) = identify(&sim, 3, 4).await;
    assert!(is_invalid_session(&r2), "shard 2 is bucket 0: {r2}");
    assert!(is_invalid_session(&r3), "shard 3 is bucket 1: {r3}");
    let log = sim.identify_log();
    let seen: Vec<(u64, u64, &str)> = log
        .iter()
        .map(|r| (r.shard, r.bucket, r.outcome.as_str()))
        .collect();
    assert_eq!(
        seen,
        vec![
            (0, 0, "ready"),
            (1, 1, "ready"),
            (2, 0, "rate_limited"),
            (3, 1, "rate_limited"),
        ]
    );
    // Every record names its connection; connections are distinct.
    let mut conns: Vec<u64> = log.iter().map(|r| r.conn_id).collect();
    conns.dedup();
    assert_eq!(conns.len(), 4);
    assert!(log.iter().all(|r| r.num_shards == 4 && r.shard_sent));
    assert!(log.windows(2).all(|w| w[0].at_us <= w[1].at_us));
    let started: Vec<String> = sim.sessions().into_iter().map(|s| s.session_id).collect();
    for r in &log[..2] {
        assert!(started.contains(r.session_id.as_ref().unwrap()));
    }
    assert!(log[2].session_id.is_none() && log[3].session_id.is_none());
}

#[tokio::test]
async fn gateway_bot_reports_shards_concurrency_and_the_budget_counting_down() {
    let sim = common::start(SimConfig {
        recommended_shards: 4,
        max_concurrency: 16,
        session_start_total: 5,
        guilds: (0..4).map(GuildSeed::numbered).collect(),
        ..common::fast_config()
    })
    .await;
    let v = common::rest(&sim, "GET", "/gateway/bot", None).await.json();
    assert_eq!(v["shards"], 4);
    let limit = &v["session_start_limit"];
    assert_eq!(limit["max_concurrency"], 16);
    assert_eq!(limit["total"], 5);
    assert_eq!(limit["remaining"], 5);
    let reset = limit["reset_after"].as_u64().unwrap();
    assert!(reset > 0 && reset <= 86_400_000, "reset_after {reset}");
    for k in 0..2 {
        ShardClient::connect(&sim, k, 4).await;
        let v = common::rest(&sim, "GET", "/gateway/bot", None).await.json();
        assert_eq!(v["session_start_limit"]["remaining"], 4 - k);
    }
}

#[tokio::test]
async fn the_identify_log_is_served_and_cleared_over_http() {
    let sim = paced(1, Duration::from_secs(60), 1).await;
    let _ok = identify(&sim, 0, 1).await;
    let _refused = identify(&sim, 0, 1).await;
    let r = common::http(sim.addr(), "GET", "/_sim/records/identify", &[], None).await;
    assert_eq!(r.status, 200);
    let served = r.json();
    assert_eq!(served, serde_json::to_value(sim.identify_log()).unwrap());
    assert_eq!(served[0]["outcome"], "ready");
    assert_eq!(served[1]["outcome"], "rate_limited");
    assert_eq!(served[0]["shard"], 0);
    assert_eq!(served[0]["num_shards"], 1);
    assert_eq!(served[0]["shard_sent"], true);
    assert!(served[0]["conn_id"].as_u64().is_some() && served[0]["at_us"].as_u64().is_some());
    assert!(served[0]["session_id"].is_string() && served[1]["session_id"].is_null());
    let r = common::http(sim.addr(), "DELETE", "/_sim/records", &[], None).await;
    assert_eq!(r.status, 204);
    assert!(sim.identify_log().is_empty());
    assert_eq!(sim.stats().identify_attempts, 2, "counters stay");
}
