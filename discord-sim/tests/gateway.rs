//! Gateway rules provoked with a raw websocket client (so the test controls every byte): each
//! close code, heartbeats, op 1/7/9, RESUME replay with byte-identical `d`, zlib-stream with split
//! frames, and intent filtering.

mod common;

use std::time::Duration;

use common::{d_text, identify_payload, resume_payload, Got, Raw, ALL_INTENTS, WAIT};
use discord_sim::config::demo;
use discord_sim::{Fault, SimConfig, SimEvent};
use serde_json::json;
use tokio::time::timeout;

const TOKEN: &str = "sim-token";

fn message(content: &str) -> SimEvent {
    SimEvent::MessageCreate {
        channel_id: demo::GENERAL,
        author_id: demo::ALICE,
        content: content.to_owned(),
    }
}

async fn expect_close(raw: &mut Raw, code: u16) {
    assert_eq!(raw.close_code().await, Some(code));
}

#[tokio::test]
async fn hello_first_then_heartbeat_ack() {
    let sim = common::start_fast().await;
    let mut raw = Raw::connect(&sim.gateway_url(), false).await;
    assert_eq!(raw.hello().await, 5000);
    raw.send(json!({"op": 1, "d": null})).await;
    let ack = raw.payload().await;
    assert_eq!(ack["op"], 11);
    let (session, resume_url) = raw.handshake_after_hello(TOKEN, ALL_INTENTS).await;
    assert_eq!(resume_url, sim.resume_gateway_url());
    raw.send(json!({"op": 1, "d": 2})).await;
    assert_eq!(raw.payload().await["op"], 11);
    let received = sim.gateway_received();
    assert_eq!(received.len(), 3);
    assert_eq!(received[1].op, Some(2));
    assert_eq!(received[2].session_id.as_deref(), Some(session.as_str()));
    sim.shutdown().await;
}

#[tokio::test]
async fn payload_before_identify_is_4003() {
    let sim = common::start_fast().await;
    let mut raw = Raw::connect(&sim.gateway_url(), false).await;
    raw.hello().await;
    raw.send(
        json!({"op": 3, "d": {"since": null, "activities": [], "status": "online", "afk": false}}),
    )
    .await;
    expect_close(&mut raw, 4003).await;
}

#[tokio::test]
async fn bad_token_is_4004_and_bot_prefix_is_accepted() {
    let sim = common::start_fast().await;
    let mut raw = Raw::connect(&sim.gateway_url(), false).await;
    raw.hello().await;
    raw.identify("not-the-token", ALL_INTENTS).await;
    expect_close(&mut raw, 4004).await;
    let mut raw = Raw::connect(&sim.gateway_url(), false).await;
    raw.handshake("Bot sim-token", ALL_INTENTS).await;
    assert_eq!(sim.identifies(), 1);
}

#[tokio::test]
async fn second_identify_is_4005() {
    let sim = common::start_fast().await;
    let mut raw = Raw::connect(&sim.gateway_url(), false).await;
    raw.handshake(TOKEN, ALL_INTENTS).await;
    raw.identify(TOKEN, ALL_INTENTS).await;
    expect_close(&mut raw, 4005).await;
}

#[tokio::test]
async fn resume_with_seq_from_the_future_is_4007_and_ends_the_session() {
    let sim = common::start_fast().await;
    let mut raw = Raw::connect(&sim.gateway_url(), false).await;
    let (session, url) = raw.handshake(TOKEN, ALL_INTENTS).await;
    raw.close(4000).await;
    let mut raw = Raw::connect(&url, false).await;
    raw.hello().await;
    raw.send(resume_payload(TOKEN, &session, 99)).await;
    expect_close(&mut raw, 4007).await;
    assert_eq!(sim.sessions()[0].ended.as_deref(), Some("invalidated"));
}

#[tokio::test]
async fn more_than_120_payloads_a_minute_is_4008() {
    let sim = common::start_fast().await;
    let mut raw = Raw::connect(&sim.gateway_url(), false).await;
    raw.handshake(TOKEN, ALL_INTENTS).await;
    // IDENTIFY was payload 1; 119 heartbeats make 120, all allowed.
    for _ in 0..119 {
        raw.send(json!({"op": 1, "d": 2})).await;
    }
    for _ in 0..119 {
        assert_eq!(raw.payload().await["op"], 11);
    }
    raw.send(json!({"op": 1, "d": 2})).await;
    expect_close(&mut raw, 4008).await;
}

async fn expect_op9_false(raw: &mut Raw) {
    let p = raw.payload().await;
    assert_eq!(
        (p["op"].as_u64(), p["d"].as_bool()),
        (Some(9), Some(false)),
        "{p}"
    );
}

#[tokio::test]
async fn silent_connection_is_closed_4009_and_its_session_cannot_resume() {
    for closes_4009 in [false, true] {
        let sim = common::start(SimConfig {
            heartbeat_interval: Duration::from_millis(200),
            heartbeat_slack: Some(Duration::from_millis(100)),
            expired_resume_closes_4009: closes_4009,
            ..SimConfig::default()
        })
        .await;
        let mut raw = Raw::connect(&sim.gateway_url(), false).await;
        let (session, url) = raw.handshake(TOKEN, ALL_INTENTS).await;
        // No heartbeats: closed after interval + slack.
        expect_close(&mut raw, 4009).await;
        assert_eq!(sim.sessions()[0].ended.as_deref(), Some("timed_out"));
        let mut raw = Raw::connect(&url, false).await;
        raw.hello().await;
        raw.send(resume_payload(TOKEN, &session, 2)).await;
        if closes_4009 {
            expect_close(&mut raw, 4009).await;
        } else {
            // Discord's docs: a RESUME that can't succeed gets op 9 false.
            expect_op9_false(&mut raw).await;
        }
        assert_eq!(sim.stats().resumes_refused, 1);
    }
}

#[tokio::test]
async fn heartbeats_keep_a_connection_alive_past_the_timeout() {
    let sim = common::start(SimConfig {
        heartbeat_interval: Duration::from_millis(200),
        heartbeat_slack: Some(Duration::from_millis(100)),
        ..SimConfig::default()
    })
    .await;
    let mut raw = Raw::connect(&sim.gateway_url(), false).await;
    raw.handshake(TOKEN, ALL_INTENTS).await;
    let mut ticker = tokio::time::interval(Duration::from_millis(150));
    for _ in 0..8 {
        ticker.tick().await;
        raw.send(json!({"op": 1, "d": 2})).await;
        assert_eq!(raw.payload().await["op"], 11);
    }
    assert_eq!(sim.stats().closes_sent, 0);
}

#[tokio::test]
async fn resume_after_the_resume_window_is_refused() {
    for closes_4009 in [false, true] {
        let sim = common::start(SimConfig {
            resume_window: Duration::from_millis(100),
            expired_resume_closes_4009: closes_4009,
            ..SimConfig::default()
        })
        .await;
        let mut raw = Raw::connect(&sim.gateway_url(), false).await;
        let (session, url) = raw.handshake(TOKEN, ALL_INTENTS).await;
        raw.close(4000).await;
        timeout(WAIT, sim.wait_for(|s| s.connections_live == 0))
            .await
            .unwrap();
        // The condition under test is time passing.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let mut raw = Raw::connect(&url, false).await;
        raw.hello().await;
        raw.send(resume_payload(TOKEN, &session, 2)).await;
        if closes_4009 {
            expect_close(&mut raw, 4009).await;
        } else {
            expect_op9_false(&mut raw).await;
        }
    }
}

#[tokio::test]
async fn invalid_intents_4013_and_disallowed_privileged_intents_4014() {
    let sim = common::start(SimConfig {
        privileged_intents_allowed: 1 << 1, // GUILD_MEMBERS only
        ..SimConfig::default()
    })
    .await;
    let mut raw = Raw::connect(&sim.gateway_url(), false).await;
    raw.hello().await;
    raw.identify(TOKEN, 1 << 17).await;
    expect_close(&mut raw, 4013).await;
    let mut raw = Raw::connect(&sim.gateway_url(), false).await;
    raw.hello().await;
    raw.identify(TOKEN, (1 << 0) | (1 << 15)).await; // MESSAGE_CONTENT not enabled
    expect_close(&mut raw, 4014).await;
    let mut raw = Raw::connect(&sim.gateway_url(), false).await;
    raw.hello().await;
    raw.send(json!({"op": 2, "d": {"token": TOKEN, "properties": {}}}))
        .await;
    expect_close(&mut raw, 4013).await;
    let mut raw = Raw::connect(&sim.gateway_url(), false).await;
    raw.handshake(TOKEN, (1 << 0) | (1 << 1)).await;
}

#[tokio::test]
async fn oversized_payload_and_bad_json_are_4002() {
    let sim = common::start_fast().await;
    let mut raw = Raw::connect(&sim.gateway_url(), false).await;
    raw.handshake(TOKEN, ALL_INTENTS).await;
    let big = json!({"op": 3, "d": {"since": null, "activities": [{"name": "x".repeat(5000), "type": 0}], "status": "online", "afk": false}});
    raw.send(big).await;
    expect_close(&mut raw, 4002).await;
    let mut raw = Raw::connect(&sim.gateway_url(), false).await;
    raw.hello().await;
    raw.send_text("{not json".to_owned()).await;
    expect_close(&mut raw, 4002).await;
    let mut raw = Raw::connect(&sim.gateway_url(), false).await;
    raw.hello().await;
    raw.send_text("[1,2]".to_owned()).await;
    expect_close(&mut raw, 4002).await;
    // The sim is still fine.
    let mut raw = Raw::connect(&sim.gateway_url(), false).await;
    raw.handshake(TOKEN, ALL_INTENTS).await;
}

#[tokio::test]
async fn unknown_or_receive_only_opcode_is_4001() {
    let sim = common::start_fast().await;
    for op in [99, 11, 0] {
        let mut raw = Raw::connect(&sim.gateway_url(), false).await;
        raw.handshake(TOKEN, ALL_INTENTS).await;
        raw.send(json!({"op": op, "d": null})).await;
        expect_close(&mut raw, 4001).await;
    }
}

#[tokio::test]
async fn invalid_shard_4010_and_api_version_4012() {
    let sim = common::start_fast().await;
    let mut raw = Raw::connect(&sim.gateway_url(), false).await;
    raw.hello().await;
    let mut p = identify_payload(TOKEN, ALL_INTENTS);
    p["d"]["shard"] = json!([2, 2]);
    raw.send(p).await;
    expect_close(&mut raw, 4010).await;
    let mut raw =
        Raw::connect_url(&format!("{}/?v=9&encoding=json", sim.gateway_url()), false).await;
    raw.hello().await;
    expect_close(&mut raw, 4012).await;
}

#[tokio::test]
async fn sharding_sends_the_guild_only_to_its_shard() {
    let sim = common::start_fast().await;
    let owner = (demo::GUILD_ID >> 22) % 2;
    for shard in 0..2u64 {
        let mut raw = Raw::connect(&sim.gateway_url(), false).await;
        raw.hello().await;
        let mut p = identify_payload(TOKEN, ALL_INTENTS);
        p["d"]["shard"] = json!([shard, 2]);
        raw.send(p).await;
        let ready = raw.dispatch().await;
        assert_eq!(ready["d"]["shard"], json!([shard, 2]));
        let guilds = ready["d"]["guilds"].as_array().unwrap().len();
        assert_eq!(guilds, usize::from(shard == owner));
    }
}

#[tokio::test]
async fn resume_replays_dispatches_emitted_while_disconnected_byte_for_byte() {
    let sim = common::start_fast().await;
    let mut raw = Raw::connect(&sim.gateway_url(), false).await;
    let (session, url) = raw.handshake(TOKEN, ALL_INTENTS).await;
    let live = sim.emit(message("live")).await;
    let got = raw.dispatch().await;
    assert_eq!(got["s"], 3);
    assert_eq!(d_text(&raw.last_text), live.d, "d as recorded is d as sent");
    raw.close(4000).await;
    timeout(WAIT, sim.wait_for(|s| s.connections_live == 0))
        .await
        .unwrap();
    let mut missed = Vec::new();
    for i in 0..3 {
        let e = sim.emit(message(&format!("missed {i}"))).await;
        assert_eq!(e.session_id.as_deref(), Some(session.as_str()));
        assert_eq!(e.seq, Some(4 + i));
        missed.push(e);
    }
    let mut raw = Raw::connect(&url, false).await;
    raw.hello().await;
    raw.send(resume_payload(TOKEN, &session, 3)).await;
    for e in &missed {
        let got = raw.dispatch().await;
        assert_eq!(got["s"], e.seq.unwrap());
        assert_eq!(got["t"], "MESSAGE_CREATE");
        assert_eq!(d_text(&raw.last_text), e.d, "replayed d is byte-identical");
        assert!(got["d"]["_sim_sent_us"].as_u64().unwrap() > 0);
    }
    let resumed = raw.dispatch().await;
    assert_eq!(resumed["t"], "RESUMED");
    assert_eq!(resumed["s"], 7);
    // Live again.
    sim.emit(message("after")).await;
    assert_eq!(raw.dispatch().await["s"], 8);
    assert_eq!(sim.resumes(), 1);
    let conns = sim.connections();
    assert!(conns[1].path.starts_with("/resume"));
    assert_eq!(conns[0].close_code, Some(4000));
    assert!(conns[0].closed_by_client);
}

#[tokio::test]
async fn client_close_1000_ends_the_session_resume_gets_op9_false() {
    let sim = common::start_fast().await;
    let mut raw = Raw::connect(&sim.gateway_url(), false).await;
    let (session, url) = raw.handshake(TOKEN, ALL_INTENTS).await;
    raw.close(1000).await;
    timeout(WAIT, sim.wait_for(|s| s.connections_live == 0))
        .await
        .unwrap();
    let mut raw = Raw::connect(&url, false).await;
    raw.hello().await;
    raw.send(resume_payload(TOKEN, &session, 2)).await;
    let p = raw.payload().await;
    assert_eq!(p["op"], 9);
    assert_eq!(p["d"], false);
    // A fresh IDENTIFY on the same connection works.
    raw.identify(TOKEN, ALL_INTENTS).await;
    assert_eq!(raw.dispatch().await["t"], "READY");
}

#[tokio::test]
async fn refused_resume_is_op9_false() {
    let sim = common::start_fast().await;
    let mut raw = Raw::connect(&sim.gateway_url(), false).await;
    let (session, url) = raw.handshake(TOKEN, ALL_INTENTS).await;
    raw.close(4000).await;
    sim.fault(Fault::RefuseResume(true)).await;
    let mut raw = Raw::connect(&url, false).await;
    raw.hello().await;
    raw.send(resume_payload(TOKEN, &session, 2)).await;
    let p = raw.payload().await;
    assert_eq!((p["op"].as_u64(), p["d"].as_bool()), (Some(9), Some(false)));
    assert_eq!(sim.stats().resumes_refused, 1);
}

#[tokio::test]
async fn op7_op9_close_and_op1_faults_reach_the_client() {
    let sim = common::start_fast().await;
    let mut raw = Raw::connect(&sim.gateway_url(), false).await;
    let (session, url) = raw.handshake(TOKEN, ALL_INTENTS).await;

    sim.fault(Fault::RequestHeartbeat).await;
    assert_eq!(raw.payload().await["op"], 1);
    raw.send(json!({"op": 1, "d": 2})).await;
    assert_eq!(raw.payload().await["op"], 11);

    sim.fault(Fault::Reconnect).await;
    assert_eq!(raw.payload().await["op"], 7);

    sim.fault(Fault::InvalidSession { resumable: true }).await;
    let p = raw.payload().await;
    assert_eq!((p["op"].as_u64(), p["d"].as_bool()), (Some(9), Some(true)));

    sim.fault(Fault::Close { code: 4000 }).await;
    expect_close(&mut raw, 4000).await;
    // All of those leave the session resumable.
    let mut raw = Raw::connect(&url, false).await;
    raw.hello().await;
    raw.send(resume_payload(TOKEN, &session, 2)).await;
    assert_eq!(raw.dispatch().await["t"], "RESUMED");

    sim.fault(Fault::InvalidSession { resumable: false }).await;
    let p = raw.payload().await;
    assert_eq!((p["op"].as_u64(), p["d"].as_bool()), (Some(9), Some(false)));
    // Discord's docs allow a fresh IDENTIFY on the same connection after op 9 false.
    raw.identify(TOKEN, ALL_INTENTS).await;
    let ready = raw.dispatch().await;
    assert_eq!(
        (ready["t"].as_str(), ready["s"].as_u64()),
        (Some("READY"), Some(1))
    );
    assert_ne!(ready["d"]["session_id"], session.as_str());
    raw.close(4000).await;
    let mut raw = Raw::connect(&url, false).await;
    raw.hello().await;
    raw.send(resume_payload(TOKEN, &session, 3)).await;
    let p = raw.payload().await;
    assert_eq!((p["op"].as_u64(), p["d"].as_bool()), (Some(9), Some(false)));
}

#[tokio::test]
async fn close_fault_with_a_session_ending_code_ends_the_session() {
    let sim = common::start_fast().await;
    let mut raw = Raw::connect(&sim.gateway_url(), false).await;
    let (session, url) = raw.handshake(TOKEN, ALL_INTENTS).await;
    sim.fault(Fault::Close { code: 4009 }).await;
    expect_close(&mut raw, 4009).await;
    let mut raw = Raw::connect(&url, false).await;
    raw.hello().await;
    raw.send(resume_payload(TOKEN, &session, 2)).await;
    expect_op9_false(&mut raw).await;
}

#[tokio::test]
async fn request_guild_members_gets_a_chunk() {
    // No per-guild window here (tests/client_commands.rs covers it).
    let sim = common::start(SimConfig {
        member_request_window: Duration::ZERO,
        ..common::fast_config()
    })
    .await;
    let mut raw = Raw::connect(&sim.gateway_url(), false).await;
    raw.handshake(TOKEN, ALL_INTENTS).await;
    let guild = demo::GUILD_ID.to_string();
    raw.send(json!({"op": 8, "d": {"guild_id": guild, "query": "", "limit": 0, "nonce": "n1"}}))
        .await;
    let chunk = raw.dispatch().await;
    assert_eq!(chunk["t"], "GUILD_MEMBERS_CHUNK");
    assert_eq!(chunk["d"]["members"].as_array().unwrap().len(), 6);
    assert_eq!(chunk["d"]["nonce"], "n1");
    raw.send(json!({"op": 8, "d": {"guild_id": guild, "query": "ca", "limit": 10}}))
        .await;
    let chunk = raw.dispatch().await;
    assert_eq!(chunk["d"]["members"][0]["user"]["username"], "carol");
    // Without GUILD_MEMBERS the whole list is refused.
    let mut raw = Raw::connect(&sim.gateway_url(), false).await;
    raw.handshake(TOKEN, 1 << 0).await;
    raw.send(json!({"op": 8, "d": {"guild_id": guild, "query": "", "limit": 0}}))
        .await;
    expect_close(&mut raw, 4014).await;
}

#[tokio::test]
async fn stop_acks_then_resume_acks() {
    let sim = common::start_fast().await;
    let mut raw = Raw::connect(&sim.gateway_url(), false).await;
    raw.handshake(TOKEN, ALL_INTENTS).await;
    sim.fault(Fault::StopAcks(true)).await;
    raw.send(json!({"op": 1, "d": 2})).await;
    timeout(WAIT, sim.wait_for(|s| s.heartbeats == 1))
        .await
        .unwrap();
    sim.emit(message("marker")).await;
    // The heartbeat got no ACK: the next thing on the wire is the dispatch.
    let p = raw.payload().await;
    assert_eq!(p["t"], "MESSAGE_CREATE");
    sim.fault(Fault::StopAcks(false)).await;
    raw.send(json!({"op": 1, "d": 3})).await;
    assert_eq!(raw.payload().await["op"], 11);
}

#[tokio::test]
async fn drop_tcp_sends_no_close_frame() {
    let sim = common::start_fast().await;
    let mut raw = Raw::connect(&sim.gateway_url(), false).await;
    raw.handshake(TOKEN, ALL_INTENTS).await;
    sim.fault(Fault::DropTcp).await;
    assert!(matches!(raw.next().await, Got::Ended));
}

#[tokio::test]
async fn zlib_stream_with_messages_split_across_frames() {
    let sim = common::start(SimConfig {
        heartbeat_interval: Duration::from_millis(1000),
        split_zlib_frames: true,
        ..SimConfig::default()
    })
    .await;
    let mut raw = Raw::connect(&sim.gateway_url(), true).await;
    raw.handshake(TOKEN, ALL_INTENTS).await;
    let mut sent = Vec::new();
    for i in 0..20 {
        sent.push(sim.emit(message(&format!("zlib {i}"))).await);
    }
    for e in &sent {
        let got = raw.dispatch().await;
        assert_eq!(got["s"], e.seq.unwrap());
        assert_eq!(d_text(&raw.last_text), e.d);
    }
    // HELLO, READY, GUILD_CREATE and 20 dispatches, each in two websocket messages.
    assert_eq!(raw.ws_messages, 23 * 2);
}

#[tokio::test]
async fn intents_filter_dispatches_and_strip_content() {
    let sim = common::start_fast().await;
    let mut raw = Raw::connect(&sim.gateway_url(), false).await;
    raw.hello().await;
    // GUILDS | GUILD_MESSAGES: no typing, no voice, no member list, no content.
    raw.identify(TOKEN, (1 << 0) | (1 << 9)).await;
    assert_eq!(raw.dispatch().await["t"], "READY");
    let gc = raw.dispatch().await;
    assert_eq!(gc["d"]["voice_states"], json!([]));
    let mut ids: Vec<u64> = gc["d"]["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["user"]["id"].as_str().unwrap().parse().unwrap())
        .collect();
    ids.sort_unstable();
    // Only the bot and the members in voice (alice, bob).
    let mut want = vec![demo::BOT, demo::ALICE, demo::BOB];
    want.sort_unstable();
    assert_eq!(ids, want);
    sim.emit(SimEvent::TypingStart {
        channel_id: demo::GENERAL,
        user_id: demo::ALICE,
    })
    .await;
    sim.emit(SimEvent::VoiceLeave {
        user_id: demo::ALICE,
    })
    .await;
    sim.emit(message("secret")).await;
    let m = raw.dispatch().await;
    assert_eq!(m["t"], "MESSAGE_CREATE");
    assert_eq!(m["s"], 3);
    assert_eq!(m["d"]["content"], "");
}

#[tokio::test]
async fn emit_without_any_session_is_recorded_without_seq() {
    let sim = common::start_fast().await;
    let e = sim.emit(message("nobody")).await;
    assert_eq!(e.session_id, None);
    assert_eq!(e.seq, None);
    assert!(e.d.contains("\"_sim_sent_us\":"));
}

#[tokio::test]
async fn session_start_limit_counts_identifies() {
    let sim = common::start(SimConfig {
        heartbeat_interval: Duration::from_millis(1000),
        session_start_total: 2,
        ..common::fast_config()
    })
    .await;
    let r = common::rest(&sim, "GET", "/gateway/bot", None).await;
    let v = r.json();
    assert_eq!(v["url"], sim.gateway_url());
    assert_eq!(v["shards"], 1);
    assert_eq!(v["session_start_limit"]["remaining"], 2);
    assert_eq!(v["session_start_limit"]["max_concurrency"], 1);
    for _ in 0..2 {
        let mut raw = Raw::connect(&sim.gateway_url(), false).await;
        raw.handshake(TOKEN, ALL_INTENTS).await;
    }
    let v = common::rest(&sim, "GET", "/gateway/bot", None).await.json();
    assert_eq!(v["session_start_limit"]["remaining"], 0);
    // Out of session starts: Discord resets the token.
    let mut raw = Raw::connect(&sim.gateway_url(), false).await;
    raw.hello().await;
    raw.identify(TOKEN, ALL_INTENTS).await;
    expect_close(&mut raw, 4004).await;
}
