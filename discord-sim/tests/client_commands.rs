//! Ops 3, 4 and 8 with a raw websocket client: the bot's voice state moves and is announced, member
//! requests are answered in chunks carrying the nonce, and a second request for the guild within
//! the window gets a `RATE_LIMITED` dispatch instead.

mod common;

use std::time::Duration;

use common::{Raw, ALL_INTENTS};
use discord_sim::config::{demo, GuildSeed, UserSeed};
use discord_sim::SimConfig;
use serde_json::{json, Value};

const TOKEN: &str = "sim-token";

async fn connected(sim: &discord_sim::Sim) -> Raw {
    let mut raw = Raw::connect(&sim.gateway_url(), false).await;
    raw.handshake(TOKEN, ALL_INTENTS).await;
    raw
}

fn voice(channel: Value, self_mute: bool, self_deaf: bool) -> Value {
    json!({"op": 4, "d": {"guild_id": demo::GUILD_ID.to_string(), "channel_id": channel,
        "self_mute": self_mute, "self_deaf": self_deaf}})
}

#[tokio::test]
async fn voice_state_update_moves_the_bot_and_is_announced() {
    let sim = common::start_fast().await;
    let mut raw = connected(&sim).await;
    let lounge = demo::LOUNGE.to_string();
    raw.send(voice(json!(lounge), false, true)).await;
    let vsu = raw.dispatch().await;
    assert_eq!(vsu["t"], "VOICE_STATE_UPDATE", "{vsu}");
    assert_eq!(vsu["d"]["user_id"], demo::BOT.to_string());
    assert_eq!(vsu["d"]["channel_id"], lounge);
    assert_eq!(vsu["d"]["guild_id"], demo::GUILD_ID.to_string());
    assert_eq!(vsu["d"]["self_deaf"], true);
    assert_eq!(vsu["d"]["self_mute"], false);
    // Joining is followed by the voice server's credentials, as on Discord.
    let server = raw.dispatch().await;
    assert_eq!(server["t"], "VOICE_SERVER_UPDATE", "{server}");
    assert_eq!(server["d"]["guild_id"], demo::GUILD_ID.to_string());
    assert_eq!(server["d"]["endpoint"], "sim-voice.invalid:443");
    assert_eq!(
        server["d"]["token"].as_str().map(str::len),
        Some(16),
        "{server}"
    );

    // Kept: a session that identifies now finds the bot in the lounge.
    let mut later = Raw::connect(&sim.gateway_url(), false).await;
    later.hello().await;
    later.identify(TOKEN, ALL_INTENTS).await;
    assert_eq!(later.dispatch().await["t"], "READY");
    let gc = later.dispatch().await;
    let states = gc["d"]["voice_states"].as_array().unwrap();
    let bot = demo::BOT.to_string();
    assert!(
        states
            .iter()
            .any(|v| v["user_id"].as_str() == Some(&bot) && v["channel_id"] == lounge),
        "{states:?}"
    );

    // Leaving: channel_id null.
    raw.send(voice(Value::Null, false, false)).await;
    let left = raw.dispatch().await;
    // Leaving brings no VOICE_SERVER_UPDATE.
    assert_eq!(left["t"], "VOICE_STATE_UPDATE");
    assert_eq!(left["d"]["channel_id"], Value::Null);
    assert_eq!(sim.stats().voice_state_updates, 2);

    // A text channel is not a voice channel: nothing happens; the next valid one is answered.
    raw.send(voice(json!(demo::GENERAL.to_string()), false, false))
        .await;
    raw.send(voice(json!(demo::GAMING.to_string()), true, false))
        .await;
    let next = raw.dispatch().await;
    assert_eq!(next["d"]["channel_id"], demo::GAMING.to_string());
    assert_eq!(raw.dispatch().await["t"], "VOICE_SERVER_UPDATE");

    // A malformed d closes with 4002, like Discord.
    raw.send(json!({"op": 4, "d": {"guild_id": demo::GUILD_ID.to_string(), "channel_id": null}}))
        .await;
    assert_eq!(raw.close_code().await, Some(4002));
}

#[tokio::test]
async fn presence_updates_are_counted_and_malformed_ones_closed() {
    let sim = common::start_fast().await;
    let mut raw = connected(&sim).await;
    raw.send(json!({"op": 3, "d": {"since": null, "activities": [{"name": "x", "type": 0}], "status": "idle", "afk": false}}))
        .await;
    sim.wait_for(|s| s.presence_updates == 1).await;
    raw.send(json!({"op": 3, "d": {"status": "idle"}})).await;
    assert_eq!(raw.close_code().await, Some(4002));
}

#[tokio::test]
async fn a_second_member_request_within_the_window_is_rate_limited() {
    let sim = common::start_fast().await;
    let mut raw = connected(&sim).await;
    let guild = demo::GUILD_ID.to_string();
    raw.send(
        json!({"op": 8, "d": {"guild_id": guild, "query": "a", "limit": 5, "nonce": "first"}}),
    )
    .await;
    let chunk = raw.dispatch().await;
    assert_eq!(chunk["t"], "GUILD_MEMBERS_CHUNK");
    assert_eq!(chunk["d"]["nonce"], "first");
    assert_eq!(chunk["d"]["chunk_index"], 0);
    assert_eq!(chunk["d"]["chunk_count"], 1);
    assert_eq!(chunk["d"]["members"][0]["user"]["username"], "alice");

    raw.send(json!({"op": 8, "d": {"guild_id": guild, "user_ids": [demo::BOB.to_string()], "limit": 0, "nonce": "second"}}))
        .await;
    let limited = raw.dispatch().await;
    assert_eq!(limited["t"], "RATE_LIMITED", "{limited}");
    assert_eq!(limited["d"]["opcode"], 8);
    let retry = limited["d"]["retry_after"].as_f64().unwrap();
    assert!(retry > 0.0 && retry <= 30.0, "{retry}");
    assert_eq!(limited["d"]["meta"]["guild_id"], guild);
    assert_eq!(limited["d"]["meta"]["nonce"], "second");
    let st = sim.stats();
    assert_eq!(
        (st.member_requests, st.member_requests_rate_limited),
        (2, 1)
    );
}

#[tokio::test]
async fn large_member_lists_come_in_chunks_and_unknown_ids_are_named() {
    let mut guild = GuildSeed::default();
    guild.members.extend(
        (0..1500u64).map(|i| UserSeed::human(2_000_000_000_000_000_000 + i, &format!("m{i}"), "M")),
    );
    let sim = common::start(SimConfig {
        heartbeat_interval: Duration::from_millis(5000),
        member_request_window: Duration::ZERO,
        guilds: vec![guild],
        ..SimConfig::default()
    })
    .await;
    let mut raw = connected(&sim).await;
    let id = demo::GUILD_ID.to_string();
    raw.send(json!({"op": 8, "d": {"guild_id": id, "query": "", "limit": 0, "nonce": "all"}}))
        .await;
    let mut total = 0;
    for i in 0..2 {
        let chunk = raw.dispatch().await;
        assert_eq!(chunk["t"], "GUILD_MEMBERS_CHUNK");
        assert_eq!(chunk["d"]["chunk_index"], i);
        assert_eq!(chunk["d"]["chunk_count"], 2);
        assert_eq!(chunk["d"]["nonce"], "all");
        total += chunk["d"]["members"].as_array().unwrap().len();
    }
    assert_eq!(total, 1500 + 6, "every member (and the bot) once");

    raw.send(json!({"op": 8, "d": {"guild_id": id, "user_ids": [demo::ALICE.to_string(), "42"], "limit": 0}}))
        .await;
    let chunk = raw.dispatch().await;
    assert_eq!(chunk["d"]["members"].as_array().unwrap().len(), 1);
    assert_eq!(chunk["d"]["not_found"], json!(["42"]));
}

#[tokio::test]
async fn the_refuse_gateway_fault_keeps_the_gateway_down_until_lifted() {
    let sim = common::start_fast().await;
    let _raw = connected(&sim).await;
    sim.fault(discord_sim::Fault::RefuseGateway(true)).await;
    sim.fault(discord_sim::Fault::Close { code: 4000 }).await;
    let url = format!("{}/?v=10&encoding=json", sim.gateway_url());
    match tokio_tungstenite::connect_async(url.as_str()).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => assert_eq!(r.status(), 503),
        other => panic!(
            "connected while the gateway is down: {:?}",
            other.map(|_| ())
        ),
    }
    sim.fault(discord_sim::Fault::RefuseGateway(false)).await;
    let _again = connected(&sim).await;
    let on: discord_sim::Fault =
        serde_json::from_str(r#"{"kind":"refuse_gateway","on":true}"#).unwrap();
    assert_eq!(on, discord_sim::Fault::RefuseGateway(true));
}
