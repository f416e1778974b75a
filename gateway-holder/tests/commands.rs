//! End to end: commands through the real holder binary's `POST /commands` to an in-process
//! discord-sim. Each test checks what Discord (the sim) actually received.

mod common;

use common::*;
use discord_sim::{config::demo, Fault, RateLimitScope, Sim};
use serde_json::{json, Value};
use std::time::Duration;

const T: Duration = Duration::from_secs(20);
const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

struct Setup {
    sim: Sim,
    _ingest: Ingest,
    holder: Holder,
    addr: String,
    client: reqwest::Client,
    _dir: tempfile::TempDir,
}

async fn setup(extra: &[(&str, &str)]) -> Setup {
    setup_with(sim_config(), false, extra).await
}

fn command(id: &str, user: &str, kind: &str, body: Value, wait_ms: u64) -> Value {
    json!({
        "version": "1.0", "command_id": id, "user": user, "guild_id": demo::GUILD_ID.to_string(),
        "traceparent": TRACEPARENT, "wait_ms": wait_ms, "command": {"kind": kind, "body": body},
    })
}

fn send(id: &str, content: &str, nonce: Option<&str>) -> Value {
    let mut body = json!({"channel_id": demo::GENERAL.to_string(), "content": content});
    if let Some(n) = nonce {
        body["nonce"] = json!(n);
    }
    command(id, "user-1", "send_message", body, 5000)
}

impl Setup {
    async fn post(&self, body: &Value) -> (u16, Value, Option<String>) {
        self.post_as(body, &format!("Bearer {LINK_TOKEN}")).await
    }

    async fn post_as(&self, body: &Value, auth: &str) -> (u16, Value, Option<String>) {
        let r = self
            .client
            .post(format!("http://{}/commands", self.addr))
            // Beyond the holder's longest wait (10 s), so its answer always arrives.
            .timeout(T)
            .header("authorization", auth)
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let tp = r
            .headers()
            .get("traceparent")
            .map(|v| v.to_str().unwrap().to_string());
        let text = r.text().await.unwrap_or_default();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::Null),
            tp,
        )
    }

    fn calls(&self, path_part: &str) -> Vec<discord_sim::RestRecord> {
        self.sim
            .rest_calls()
            .into_iter()
            .filter(|c| c.path.contains(path_part))
            .collect()
    }
}

#[tokio::test]
async fn each_command_reaches_discord_as_discord_expects() {
    let s = setup(&[]).await;
    let (status, answer, tp) = s.post(&send("cmd-a", "hello from a browser", None)).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["status"], "sent");
    assert_eq!(answer["result"]["content"], "hello from a browser");
    assert_eq!(
        tp.as_deref(),
        Some(TRACEPARENT),
        "the trace context comes back on the answer"
    );

    let msg_id = answer["result"]["id"].as_str().unwrap().to_string();
    let react = command(
        "cmd-b",
        "user-1",
        "add_reaction",
        json!({"channel_id": demo::GENERAL.to_string(), "message_id": msg_id, "emoji": "👍"}),
        5000,
    );
    let (status, answer, _) = s.post(&react).await;
    assert_eq!(status, 200, "{answer}");
    let typing = command(
        "cmd-c",
        "user-1",
        "typing_start",
        json!({"channel_id": demo::GENERAL.to_string()}),
        5000,
    );
    let (status, answer, _) = s.post(&typing).await;
    assert_eq!(status, 200, "{answer}");

    let sends = s.calls("/messages");
    let post = sends
        .iter()
        .find(|c| c.method == "POST")
        .expect("message send recorded");
    assert_eq!(
        post.path,
        format!("/api/v10/channels/{}/messages", demo::GENERAL)
    );
    assert_eq!(post.authorization.as_deref(), Some("Bot sim-token"));
    assert_eq!(
        post.traceparent.as_deref(),
        Some(TRACEPARENT),
        "trace id reaches the Discord call"
    );
    let body: Value = serde_json::from_str(&post.body).unwrap();
    assert_eq!(body["content"], "hello from a browser");
    assert_eq!(body["enforce_nonce"], true);
    assert!(body["nonce"]
        .as_str()
        .is_some_and(|n| !n.is_empty() && n.len() <= 25));

    let reaction = s.calls("/reactions/").pop().expect("reaction recorded");
    assert_eq!(reaction.method, "PUT");
    assert_eq!(
        reaction.path,
        format!(
            "/api/v10/channels/{}/messages/{msg_id}/reactions/%F0%9F%91%8D/@me",
            demo::GENERAL
        )
    );
    let typing = s.calls("/typing").pop().expect("typing recorded");
    assert_eq!(typing.method, "POST");

    // One log line per hop, with the trace id.
    let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    s.holder.wait_line("command received", T).await;
    let log = s.holder.stderr_text();
    assert!(
        log.lines()
            .any(|l| l.contains("command received") && l.contains(trace)),
        "{log}"
    );
    assert!(
        log.lines()
            .any(|l| l.contains("discord call") && l.contains(trace)),
        "{log}"
    );
    assert!(
        !log.contains("sim-token") && !log.contains(LINK_TOKEN),
        "a secret reached the log"
    );
}

#[tokio::test]
async fn a_bucket_is_honoured_without_a_single_429() {
    let s = setup(&[]).await;
    // The sim allows 5 sends per 5 s per channel; 8 sends must wait for the reset, not get 429s.
    let posts: Vec<_> = (0..8)
        .map(|i| {
            let mut p = send(&format!("cmd-{i}"), &format!("m{i}"), None);
            p["wait_ms"] = json!(500);
            p
        })
        .collect();
    let before = s.sim.stats().rest_calls;
    let answers = futures::future::join_all(posts.iter().map(|p| s.post(p))).await;
    for (status, answer, _) in &answers {
        assert!(*status == 200 || *status == 202, "{status} {answer}");
    }
    let ok = s.sim.wait_for(|st| st.rest_calls >= before + 8).await;
    assert_eq!(ok.rest_429s, 0, "the holder ran into the sim's limit");
    let at: Vec<u64> = s.calls("/messages").iter().map(|c| c.at_us).collect();
    assert_eq!(at.len(), 8);
    assert!(
        at[5] - at[0] >= 4_000_000,
        "the 6th send waited for the bucket's reset: {at:?}"
    );
}

#[tokio::test]
async fn a_429_storm_is_retried_within_bounds_and_reported() {
    let s = setup(&[]).await;
    s.sim
        .fault(Fault::RateLimitStormFor {
            count: 2,
            scope: RateLimitScope::User,
            retry_after: Duration::from_millis(200),
        })
        .await;
    let (status, answer, _) = s.post(&send("cmd-s1", "after two 429s", None)).await;
    assert_eq!(status, 200, "retried past a short storm: {answer}");
    assert_eq!(
        s.calls("/messages").len(),
        3,
        "two refused calls and one that went through"
    );

    s.sim
        .fault(Fault::RateLimitStormFor {
            count: 50,
            scope: RateLimitScope::User,
            retry_after: Duration::from_millis(100),
        })
        .await;
    let (status, answer, _) = s.post(&send("cmd-s2", "never lands", None)).await;
    assert_eq!(status, 429, "{answer}");
    assert_eq!(answer["error"]["code"], "rate_limited");
    assert_eq!(
        s.calls("/messages").len(),
        3 + 4,
        "one call and at most three retries"
    );
    let metrics = metrics_text(&s.client, s.addr).await;
    assert!(
        metrics.contains("holder_discord_rate_limited_total{scope=\"user\"} 6"),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_retried_send_with_the_same_nonce_creates_one_message() {
    let s = setup(&[]).await;
    let (a, first, _) = s
        .post(&send("cmd-n1", "exactly once", Some("tab-7-msg-1")))
        .await;
    let (b, second, _) = s
        .post(&send("cmd-n2", "exactly once", Some("tab-7-msg-1")))
        .await;
    assert_eq!((a, b), (200, 200), "{first} {second}");
    assert_eq!(
        first["result"]["id"], second["result"]["id"],
        "Discord returned the first message"
    );
    // A later send's MESSAGE_CREATE comes after any the two above caused.
    let (c, _, _) = s.post(&send("cmd-n3", "marker", None)).await;
    assert_eq!(c, 200);
    let marker = |s: &Setup| {
        s.sim
            .emitted()
            .iter()
            .any(|e| e.t == "MESSAGE_CREATE" && e.d.contains("marker"))
    };
    tokio::time::timeout(T, async {
        while !marker(&s) {
            s.sim
                .wait_for({
                    let n = s.sim.stats().emitted;
                    move |st| st.emitted > n
                })
                .await;
        }
    })
    .await
    .expect("the marker message was emitted");
    let created = s
        .sim
        .emitted()
        .into_iter()
        .filter(|e| e.t == "MESSAGE_CREATE" && e.d.contains("exactly once"))
        .count();
    assert_eq!(created, 1);
}

#[tokio::test]
async fn a_full_queue_refuses_at_once() {
    let s = setup(&[]).await;
    // Discord slows to 20 s per call: nothing finishes while 1001 commands arrive.
    s.sim.fault(Fault::SlowRest(Duration::from_secs(20))).await;
    let posts: Vec<Value> = (0..1001)
        .map(|i| {
            command(
                &format!("q{i}"),
                &format!("user-{}", i % 7),
                "typing_start",
                json!({"channel_id": demo::GENERAL.to_string()}),
                0,
            )
        })
        .collect();
    let answers: Vec<(u16, Value, Option<String>)> =
        futures::stream::iter(posts.iter().map(|p| s.post(p)))
            .buffer_unordered(64)
            .collect()
            .await;
    let accepted = answers.iter().filter(|a| a.0 == 202).count();
    let full: Vec<_> = answers.iter().filter(|a| a.0 == 503).collect();
    assert_eq!(accepted, 1000, "1000 accepted");
    assert_eq!(full.len(), 1, "one refused");
    assert_eq!(full[0].1["error"]["code"], "queue_full");
}

#[tokio::test]
async fn a_401_stops_every_later_call() {
    let s = setup(&[]).await;
    s.sim.fault(Fault::RevokeToken(true)).await;
    let (status, answer, _) = s.post(&send("cmd-u1", "refused", None)).await;
    assert_eq!(status, 502, "{answer}");
    assert!(
        answer["error"]["message"].as_str().unwrap().contains("401"),
        "{answer}"
    );
    let calls = s.sim.rest_calls().len();
    let (status, answer, _) = s.post(&send("cmd-u2", "not even tried", None)).await;
    assert_eq!(status, 502, "{answer}");
    assert_eq!(s.sim.rest_calls().len(), calls, "no call after the 401");
}

#[tokio::test]
async fn bad_bodies_and_tokens_are_refused_with_the_field_named() {
    let s = setup(&[]).await;
    let mut bad = send("cmd-x", "", None);
    let (status, answer, _) = s.post(&bad).await;
    assert_eq!(status, 400);
    assert_eq!(answer["error"]["field"], "command.body.content");
    bad = send("cmd-x", "ok", None);
    bad["command"]["body"]["channel_id"] = json!("nope");
    let (status, answer, _) = s.post(&bad).await;
    assert_eq!(status, 400);
    // Inside the tagged `command` serde reports the enclosing field; the message names the rule.
    assert_eq!(answer["error"]["field"], "command");
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .contains("snowflake"),
        "{answer}"
    );
    let (status, answer, _) = s.post_as(&send("cmd-y", "hi", None), "Bearer wrong").await;
    assert_eq!(status, 401, "{answer}");
    assert!(s.calls("/channels/").is_empty(), "nothing reached Discord");
}

use futures::StreamExt;

#[tokio::test]
async fn during_a_rotation_both_link_tokens_are_accepted() {
    let s = setup(&[("LINK_TOKEN_PREVIOUS", "the-previous-link-token")]).await;
    let typing = |id: &str| {
        command(
            id,
            "user-1",
            "typing_start",
            json!({"channel_id": demo::GENERAL.to_string()}),
            5000,
        )
    };
    let (status, answer, _) = s.post(&typing("cmd-r1")).await;
    assert_eq!(status, 200, "current token: {answer}");
    let (status, answer, _) = s
        .post_as(&typing("cmd-r2"), "Bearer the-previous-link-token")
        .await;
    assert_eq!(status, 200, "previous token: {answer}");
    let (status, _, _) = s
        .post_as(&typing("cmd-r3"), "Bearer the-previous-link-tokeN")
        .await;
    assert_eq!(status, 401, "any other token is refused");
    assert_eq!(s.calls("/typing").len(), 2);
    assert!(
        !s.holder.stderr_text().contains("the-previous-link-token"),
        "a secret reached the log"
    );
}

#[tokio::test]
async fn oversized_bodies_and_headers_are_refused() {
    let s = setup(&[]).await;
    let huge = send("cmd-big", &"x".repeat(40 * 1024), None);
    let (status, answer, _) = s.post(&huge).await;
    assert_eq!(status, 413, "{answer}");
    assert_eq!(answer["error"]["code"], "too_large");
    // A megabyte of headers never reaches the handler (hyper's header limit answers first).
    let r = s
        .client
        .post(format!("http://{}/commands", s.addr))
        .header("authorization", format!("Bearer {LINK_TOKEN}"))
        .header("x-padding", "y".repeat(1 << 20))
        .body(send("cmd-hdr", "hi", None).to_string())
        .send()
        .await;
    match r {
        Ok(resp) => assert!(resp.status().as_u16() >= 400, "accepted: {}", resp.status()),
        Err(e) => assert!(e.is_request() || e.is_body() || e.is_connect(), "{e}"),
    }
    assert!(s.calls("/channels/").is_empty(), "nothing reached Discord");
}

// ---- Gateway commands (ops 3, 4, 8): through the same queue to the session's socket ----

/// The `d` of every payload the holder sent the sim with `op`, with its receipt time (µs).
/// The `d` and arrival time of every payload with `op` the sim got, once it has handled at least
/// `at_least` of them ("sent" means the holder wrote the frame; the sim reads it a moment later).
async fn gateway_sent(sim: &Sim, op: u64, at_least: u64) -> Vec<(Value, u64)> {
    let handled = move |st: &discord_sim::SimStats| match op {
        3 => st.presence_updates,
        4 => st.voice_state_updates,
        8 => st.member_requests,
        _ => unreachable!("op {op} is not a gateway command the tests send"),
    };
    tokio::time::timeout(T, sim.wait_for(|st| handled(st) >= at_least))
        .await
        .unwrap_or_else(|_| panic!("the sim never got {at_least} op {op} payload(s)"));
    sim.gateway_received()
        .into_iter()
        .filter(|r| r.op == Some(op))
        .map(|r| {
            let v: Value = serde_json::from_str(&r.payload).unwrap();
            (v["d"].clone(), r.at_us)
        })
        .collect()
}

fn voice(id: &str, channel: Option<u64>, wait_ms: u64) -> Value {
    command(
        id,
        "user-1",
        "update_voice_state",
        json!({"channel_id": channel.map(|c| c.to_string()), "self_mute": false, "self_deaf": true}),
        wait_ms,
    )
}

async fn setup_with(
    sim_config: discord_sim::SimConfig,
    zlib: bool,
    extra: &[(&str, &str)],
) -> Setup {
    let sim = start_sim(sim_config).await;
    let ingest = Ingest::start().await;
    let dir = tempfile::tempdir().unwrap();
    let holder = Holder::spawn(&HolderEnv::new(&sim, &ingest, dir.path(), zlib, extra));
    let addr = holder.http_addr().await;
    // Identified: the holder's own start-up calls (GET /gateway/bot) are behind us.
    sim.wait_for(|st| st.identifies >= 1).await;
    Setup {
        sim,
        _ingest: ingest,
        holder,
        addr,
        client: http_client(),
        _dir: dir,
    }
}

#[tokio::test]
async fn each_gateway_command_reaches_the_gateway_with_its_op_and_d() {
    let s = setup(&[]).await;
    let guild = demo::GUILD_ID.to_string();

    let (status, answer, tp) = s.post(&voice("cmd-v1", Some(demo::LOUNGE), 5000)).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["status"], "sent");
    assert_eq!(answer["result"], json!({"op": 4}));
    assert_eq!(tp.as_deref(), Some(TRACEPARENT));
    let (d, _) = gateway_sent(&s.sim, 4, 1)
        .await
        .pop()
        .expect("op 4 reached the sim");
    assert_eq!(
        d,
        json!({"guild_id": guild, "channel_id": demo::LOUNGE.to_string(), "self_mute": false, "self_deaf": true})
    );
    // Discord's answer is the bot's VOICE_STATE_UPDATE, forwarded like any dispatch.
    s._ingest
        .wait_for("the bot's VOICE_STATE_UPDATE", T, |i| {
            i.unique().iter().any(|e| {
                e.kind == "VOICE_STATE_UPDATE"
                    && e.d.get().contains(&demo::BOT.to_string())
                    && e.d.get().contains(&demo::LOUNGE.to_string())
            })
        })
        .await;

    let presence = command(
        "cmd-p1",
        "user-1",
        "update_presence",
        json!({"status": "dnd", "afk": false, "activities": [{"name": "the tests", "type": 0}]}),
        5000,
    );
    let (status, answer, _) = s.post(&presence).await;
    assert_eq!(status, 200, "{answer}");
    let (d, _) = gateway_sent(&s.sim, 3, 1)
        .await
        .pop()
        .expect("op 3 reached the sim");
    assert_eq!(
        d,
        json!({"since": null, "activities": [{"name": "the tests", "type": 0}], "status": "dnd", "afk": false})
    );

    let members = command(
        "cmd-m1",
        "user-1",
        "request_guild_members",
        json!({"query": "al", "limit": 5}),
        5000,
    );
    let (status, answer, _) = s.post(&members).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["result"], json!({"op": 8, "nonce": "cmd-m1"}));
    let (d, _) = gateway_sent(&s.sim, 8, 1)
        .await
        .pop()
        .expect("op 8 reached the sim");
    assert_eq!(
        d,
        json!({"guild_id": guild, "query": "al", "limit": 5, "nonce": "cmd-m1"})
    );
    s._ingest
        .wait_for("the GUILD_MEMBERS_CHUNK with the nonce", T, |i| {
            i.unique().iter().any(|e| {
                e.kind == "GUILD_MEMBERS_CHUNK" && e.d.get().contains(r#""nonce":"cmd-m1""#)
            })
        })
        .await;

    // A bad gateway body is refused with the field named, and nothing reaches the socket.
    let before = s.sim.gateway_received().len();
    let bad = command(
        "cmd-bad",
        "user-1",
        "request_guild_members",
        json!({"query": "al", "user_ids": [demo::BOB.to_string()], "limit": 5}),
        5000,
    );
    let (status, answer, _) = s.post(&bad).await;
    assert_eq!(status, 400, "{answer}");
    assert_eq!(answer["error"]["field"], "command.body.user_ids");
    let heartbeats_only = s.sim.gateway_received()[before..]
        .iter()
        .all(|r| r.op == Some(1));
    assert!(heartbeats_only, "a refused command reached the gateway");

    let line = s.holder.wait_line("gateway command", T).await;
    assert!(line.contains("4bf92f3577b34da6a3ce929d0e0e4736"), "{line}");
    assert!(!s.holder.stderr_text().contains("sim-token"));
}

#[tokio::test]
async fn member_requests_are_paced_per_guild_and_discord_never_says_rate_limited() {
    let s = setup_with(
        discord_sim::SimConfig {
            member_request_window: Duration::from_millis(1000),
            ..sim_config()
        },
        true,
        &[("HOLDER_MEMBER_REQUEST_INTERVAL_MS", "1100")],
    )
    .await;
    let posts: Vec<Value> = (0..3)
        .map(|i| {
            command(
                &format!("cmd-m{i}"),
                &format!("user-{i}"),
                "request_guild_members",
                json!({"query": "", "limit": 0}),
                5000,
            )
        })
        .collect();
    let answers = futures::future::join_all(posts.iter().map(|p| s.post(p))).await;
    for (status, answer, _) in &answers {
        assert_eq!(*status, 200, "{answer}");
    }
    let at: Vec<u64> = gateway_sent(&s.sim, 8, 3)
        .await
        .iter()
        .map(|(_, at)| *at)
        .collect();
    assert_eq!(at.len(), 3);
    for pair in at.windows(2) {
        assert!(
            pair[1] - pair[0] >= 1_000_000,
            "requests for one guild closer than the sim's window: {at:?}"
        );
    }
    // Every request was answered with chunks, none with RATE_LIMITED.
    s._ingest
        .wait_for("three member chunks", T, |i| {
            i.unique()
                .iter()
                .filter(|e| e.kind == "GUILD_MEMBERS_CHUNK")
                .count()
                == 3
        })
        .await;
    let st = s.sim.stats();
    assert_eq!(
        (st.member_requests, st.member_requests_rate_limited),
        (3, 0)
    );
}

#[tokio::test]
async fn a_burst_of_gateway_commands_never_trips_the_send_limit_and_heartbeats_go_on() {
    let s = setup(&[("HOLDER_COMMAND_DEADLINE_MS", "3000")]).await;
    let posts: Vec<Value> = (0..150)
        .map(|i| {
            let channel = if i % 2 == 0 {
                demo::LOUNGE
            } else {
                demo::GAMING
            };
            let mut c = voice(&format!("cmd-b{i}"), Some(channel), 5000);
            c["user"] = json!(format!("user-{}", i % 5));
            c
        })
        .collect();
    let answers: Vec<(u16, Value, Option<String>)> =
        futures::stream::iter(posts.iter().map(|p| s.post(p)))
            .buffer_unordered(150)
            .collect()
            .await;
    let sent = answers.iter().filter(|a| a.0 == 200).count();
    for (status, answer, _) in answers.iter().filter(|a| a.0 != 200) {
        assert_eq!(*status, 504, "{answer}");
        assert_eq!(answer["error"]["code"], "deadline_exceeded", "{answer}");
    }
    assert!(
        (40..150).contains(&sent),
        "{sent} of 150 sent: the send limit's command share (120 minus heartbeat slots) in a minute"
    );
    assert_eq!(
        gateway_sent(&s.sim, 4, sent as u64).await.len(),
        sent,
        "one op 4 per sent command"
    );
    eprintln!("burst: {sent} of 150 sent, {} failed at once", 150 - sent);
    // Heartbeats still flow on the same connection, and the sim never closed it (4008).
    let beats = s.sim.stats().heartbeats;
    let st = s.sim.wait_for(|st| st.heartbeats >= beats + 2).await;
    assert_eq!(
        st.closes_sent, 0,
        "the sim closed a connection: {:?}",
        st.last_close_code
    );
    assert_eq!(st.connections_opened, 1);
}

#[tokio::test]
async fn commands_wait_for_the_gateway_to_come_back_or_fail_at_their_deadline() {
    let s = setup(&[("HOLDER_COMMAND_DEADLINE_MS", "6000")]).await;
    // Ready first (the VOICE_STATE_UPDATE answer proves it).
    let (status, answer, _) = s.post(&voice("cmd-w0", None, 5000)).await;
    assert_eq!(status, 200, "{answer}");

    s.sim.fault(Fault::RefuseGateway(true)).await;
    s.sim.fault(Fault::Close { code: 4000 }).await;
    s.sim.wait_for(|st| st.connections_live == 0).await;

    // Down for longer than its deadline: fails with a clear reason and is never sent.
    let started = std::time::Instant::now();
    let (status, answer, _) = s.post(&voice("cmd-late", Some(demo::GAMING), 10_000)).await;
    let waited = started.elapsed();
    assert_eq!(status, 504, "{answer}");
    assert_eq!(answer["error"]["code"], "deadline_exceeded");
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .contains("unavailable"),
        "{answer}"
    );
    assert!(
        waited >= Duration::from_millis(5500) && waited < Duration::from_secs(9),
        "failed after {waited:?}, not at its 6 s deadline"
    );

    // Issued while down, sent once the gateway is back (RESUME).
    let back = voice("cmd-back", Some(demo::LOUNGE), 10_000);
    let post = s.post(&back);
    tokio::pin!(post);
    let answer = tokio::select! {
        a = &mut post => panic!("answered while the gateway was down: {a:?}"),
        _ = s.holder.wait_line("command_id=cmd-back", T) => {
            s.sim.fault(Fault::RefuseGateway(false)).await;
            post.await
        }
    };
    assert_eq!(answer.0, 200, "{}", answer.1);
    assert!(s.sim.stats().resumes >= 1, "the session was resumed");
    // cmd-w0 and cmd-back.
    let voice_payloads = gateway_sent(&s.sim, 4, 2).await;
    assert!(
        voice_payloads
            .iter()
            .any(|(d, _)| d["channel_id"].as_str() == Some(&demo::LOUNGE.to_string())),
        "{voice_payloads:?}"
    );
    assert!(
        !voice_payloads
            .iter()
            .any(|(d, _)| d["channel_id"].as_str() == Some(&demo::GAMING.to_string())),
        "a command that failed at its deadline was sent later: {voice_payloads:?}"
    );
}
