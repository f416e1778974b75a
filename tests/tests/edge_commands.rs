//! End-to-end: browser commands (REST ones and the Gateway ones: voice state, presence) through
//! the real `wrangler dev` (edge), the real `gateway-holder` binary and an in-process discord-sim.
//! One edge, one holder and one sim serve every assertion (starting wrangler costs about a second
//! of CPU); users are separate JWT `sub`s, so the per-user limit tested with one user does not
//! touch the others.

use discord_sim::config::demo::{BOT, GENERAL, GUILD_ID, LOUNGE};
use discord_sim::{Fault, Sim};
use e2e_tests::edge::{Edge, JWT_SECRET, LINK_TOKEN};
use e2e_tests::http;
use e2e_tests::sse::{Event, Item, SseClient};
use e2e_tests::stack::HolderProc;
use e2e_tests::{free_port, now_ms};
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(15);
/// The edge's `COMMAND_WAIT_MS` in this test; the slow-Discord case delays REST well beyond it.
const WAIT_MS: u64 = 1_000;
const PREVIOUS_LINK_TOKEN: &str = "previous-link-token";
const TRACEPARENT: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
const TRACE_ID: &str = "0af7651916cd43dd8448eb211c80319c";

fn session_for(sub: &str, scope: &str) -> String {
    let exp = now_ms() / 1000 + 3600;
    edge_worker::jwt::sign(
        &format!(r#"{{"sub":"{sub}","exp":{exp},"scope":"{scope}"}}"#),
        JWT_SECRET.as_bytes(),
    )
}

fn post_action(
    port: u16,
    action: &str,
    token: Option<&str>,
    traceparent: Option<&str>,
    body: &str,
) -> http::Response {
    let bearer = token.map(|t| format!("Bearer {t}"));
    let mut headers: Vec<(&str, &str)> = vec![("Content-Type", "application/json")];
    if let Some(b) = bearer.as_deref() {
        headers.push(("Authorization", b));
    }
    if let Some(tp) = traceparent {
        headers.push(("traceparent", tp));
    }
    http::request(
        port,
        "POST",
        &format!("/api/actions/{action}"),
        &headers,
        body.as_bytes(),
    )
    .expect("POST action")
}

fn error_of(r: &http::Response) -> (String, Option<String>) {
    let v = r.json();
    assert_eq!(v["version"], "1.0", "{v}");
    (
        v["error"]["code"].as_str().unwrap_or_default().to_string(),
        v["error"]["field"].as_str().map(str::to_string),
    )
}

/// A stream of `token`'s user, past its preamble; also the connect status' id (its position).
fn stream_for(port: u16, token: &str) -> (SseClient, Option<u64>) {
    let auth = format!("Bearer {token}");
    let mut c = SseClient::connect(port, "/api/stream", &[("Authorization", &auth)])
        .expect("connect stream");
    assert_eq!(c.status, 200, "stream refused: {}", c.error_body);
    match c.next_item(T) {
        Some(Item::Retry(_)) => {}
        other => panic!("expected retry first, got {other:?}"),
    }
    let status = c.next_event(T).expect("connect status");
    assert_eq!(status.event, "status");
    (c, status.id)
}

fn is_traceparent(v: &str) -> bool {
    edge_worker::traceparent::is_valid(v)
}

/// The holder's post of a failed command's `command.result` for `user`, sent with `token`.
fn post_failed_result(
    port: u16,
    token: &str,
    guild: &str,
    user: &str,
    command_id: &str,
) -> http::Response {
    let post = format!(
        r#"{{"version":"1.0","guild_id":"{guild}","user":"{user}","event":{{"version":"1.0","command_id":"{command_id}","status":"failed","error":{{"code":"deadline_exceeded","message":"late"}}}}}}"#
    );
    let auth = format!("Bearer {token}");
    http::request(
        port,
        "POST",
        "/link/command-result",
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/json"),
        ],
        post.as_bytes(),
    )
    .expect("POST command-result")
}

/// Waits (bounded) until `cond` holds for the sim's REST records.
fn rest_call(
    rt: &tokio::runtime::Runtime,
    sim: &Sim,
    what: &str,
    pred: impl Fn(&discord_sim::RestRecord) -> bool,
) -> discord_sim::RestRecord {
    let deadline = Instant::now() + T;
    loop {
        if let Some(r) = sim.rest_calls().into_iter().find(|r| pred(r)) {
            return r;
        }
        assert!(Instant::now() < deadline, "the sim never got {what}");
        // Each REST call bumps the sim's counters: wait for the next one, bounded.
        let seen = sim.stats().rest_calls;
        let _ = rt.block_on(async {
            tokio::time::timeout(
                Duration::from_millis(500),
                sim.wait_for(|s| s.rest_calls > seen),
            )
            .await
        });
    }
}

/// The payloads with `op` the holder sent the sim's gateway, in order.
fn gateway_payloads(sim: &Sim, op: u64) -> Vec<serde_json::Value> {
    sim.gateway_received()
        .into_iter()
        .filter(|g| g.op == Some(op))
        .map(|g| serde_json::from_str(&g.payload).expect("the holder sends JSON"))
        .collect()
}

/// Waits (bounded) until the sim's counters satisfy `pred`.
fn sim_reaches(
    rt: &tokio::runtime::Runtime,
    sim: &Sim,
    pred: impl FnMut(&discord_sim::SimStats) -> bool,
) {
    rt.block_on(async { tokio::time::timeout(T, sim.wait_for(pred)).await })
        .expect("the sim never got there");
}

#[test]
fn commands_end_to_end() {
    let (rt, sim) = e2e_tests::stack::start_sim(1);
    let _ = e2e_tests::stack::holder_binary();

    let holder_port = free_port();
    let holder_url = format!("http://127.0.0.1:{holder_port}");
    let wait = WAIT_MS.to_string();
    let guild = GUILD_ID.to_string();
    let edge = Edge::start_with_log_level(
        "commands",
        &[
            ("HOLDER_URL", &holder_url),
            ("GUILD_ID", &guild),
            ("COMMAND_WAIT_MS", &wait),
            ("ACTION_RATE_PER_SEC", "1"),
            ("ACTION_BURST", "5"),
            ("LINK_TOKEN_PREVIOUS", PREVIOUS_LINK_TOKEN),
        ],
        "log",
    );
    let port = edge.port;
    let mut holder = HolderProc::start("commands", holder_port, port, &sim.api_url());

    let alice = session_for("alice", "read write");
    let bob = session_for("bob", "read write");
    let (mut alice_stream, alice_connected_at) = stream_for(port, &alice);
    let (mut bob_stream, _) = stream_for(port, &bob);
    let general = GENERAL.to_string();

    // 1. send-message: 200 sent with Discord's message, the browser's traceparent carried
    //    through the edge, the holder and to the Discord call, and returned.
    let body = format!(r#"{{"channel_id":"{general}","content":"hello from alice"}}"#);
    let r = post_action(port, "send-message", Some(&alice), Some(TRACEPARENT), &body);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("traceparent"), Some(TRACEPARENT));
    let v = r.json();
    assert_eq!(v["version"], "1.0");
    assert_eq!(v["status"], "sent", "{v}");
    let command_id = v["command_id"].as_str().expect("command_id").to_string();
    assert!(
        !command_id.is_empty() && command_id.len() <= 25,
        "{command_id}"
    );
    assert_eq!(v["result"]["content"], "hello from alice", "{v}");
    let message_id = v["result"]["id"].as_str().expect("message id").to_string();
    let call = rest_call(&rt, &sim, "the message", |c| {
        c.method == "POST" && c.path == format!("/api/v10/channels/{general}/messages")
    });
    assert_eq!(call.authorization.as_deref(), Some("Bot sim-token"));
    let sent: serde_json::Value = serde_json::from_str(&call.body).expect("sim body is JSON");
    assert_eq!(sent["content"], "hello from alice");
    assert!(
        call.traceparent.as_deref().unwrap_or("").contains(TRACE_ID),
        "sim saw traceparent {:?}",
        call.traceparent
    );
    let edge_log = edge.log_text();
    assert!(
        edge_log.contains(&format!("trace={TRACE_ID}")),
        "edge log lacks the trace id:\n{}",
        edge.log_tail()
    );
    assert!(
        holder.log_text().contains(TRACE_ID),
        "holder log lacks the trace id:\n{}",
        holder.log_text()
    );
    for secret in [LINK_TOKEN, JWT_SECRET, "sim-token"] {
        assert!(!edge_log.contains(secret), "the edge log shows a secret");
    }

    // 2. add-reaction and typing-start reach the sim with the right method and path; without a
    //    traceparent the edge makes one and returns it.
    let body = format!(r#"{{"channel_id":"{general}","message_id":"{message_id}","emoji":"👍"}}"#);
    let r = post_action(port, "add-reaction", Some(&alice), None, &body);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["status"], "sent");
    let made = r.header("traceparent").expect("a traceparent").to_string();
    assert!(is_traceparent(&made), "{made}");
    let call = rest_call(&rt, &sim, "the reaction", |c| {
        c.method == "PUT"
            && c.path.starts_with(&format!(
                "/api/v10/channels/{general}/messages/{message_id}/reactions/"
            ))
            && c.path.ends_with("/@me")
    });
    assert_eq!(call.authorization.as_deref(), Some("Bot sim-token"));
    assert!(call
        .traceparent
        .as_deref()
        .unwrap_or("")
        .contains(&made[3..35]));

    let body = format!(r#"{{"channel_id":"{general}"}}"#);
    let r = post_action(port, "typing-start", Some(&alice), None, &body);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["status"], "sent");
    let call = rest_call(&rt, &sim, "typing", |c| {
        c.method == "POST" && c.path == format!("/api/v10/channels/{general}/typing")
    });
    assert_eq!(call.authorization.as_deref(), Some("Bot sim-token"));

    // A retried send with the same nonce (the browser's) creates one message.
    let carol = session_for("carol", "read write");
    let body = format!(r#"{{"channel_id":"{general}","content":"once","nonce":"retry-nonce-1"}}"#);
    let first = post_action(port, "send-message", Some(&carol), None, &body);
    let again = post_action(port, "send-message", Some(&carol), None, &body);
    assert_eq!((first.status, again.status), (200, 200), "{}", again.text());
    assert_eq!(first.json()["result"]["id"], again.json()["result"]["id"]);

    // 3. Invalid bodies: 400 naming the field; too large: 413; none of them reach the holder.
    let before = sim.rest_calls().len();
    for (action, body, field) in [
        (
            "send-message",
            format!(r#"{{"channel_id":"{general}","content":""}}"#),
            "content",
        ),
        (
            "send-message",
            r#"{"content":"x"}"#.to_string(),
            "channel_id",
        ),
        (
            "add-reaction",
            format!(r#"{{"channel_id":"{general}","message_id":"{message_id}"}}"#),
            "emoji",
        ),
        (
            "typing-start",
            r#"{"channel_id":"abc"}"#.to_string(),
            "channel_id",
        ),
    ] {
        let r = post_action(port, action, Some(&alice), None, &body);
        assert_eq!(r.status, 400, "{action} {body}: {}", r.text());
        assert_eq!(
            error_of(&r),
            ("invalid_request".to_string(), Some(field.to_string())),
            "{action} {body}"
        );
    }
    let huge = format!(
        r#"{{"channel_id":"{general}","content":"{}"}}"#,
        "x".repeat(20 * 1024)
    );
    let r = post_action(port, "send-message", Some(&alice), None, &huge);
    assert_eq!(r.status, 413, "{}", r.text());
    assert_eq!(error_of(&r).0, "too_large");
    // A channel that is not one of this guild's (the bot may be in other guilds): 403, never
    // forwarded. The hub learned the guild's channels from the holder's GUILD_CREATE.
    let r = post_action(
        port,
        "send-message",
        Some(&alice),
        None,
        r#"{"channel_id":"999999999999999999","content":"elsewhere"}"#,
    );
    assert_eq!(r.status, 403, "{}", r.text());
    assert_eq!(
        error_of(&r),
        ("forbidden".to_string(), Some("channel_id".to_string()))
    );
    assert_eq!(sim.rest_calls().len(), before, "nothing reached Discord");

    // 4. Auth: no session 401, a read-only session 403. CORS as for the stream: a listed
    //    origin gets its preflight and CORS headers (with traceparent exposed) even on errors.
    let body = format!(r#"{{"channel_id":"{general}"}}"#);
    let origin = "http://127.0.0.1:9";
    let r = http::request(
        port,
        "POST",
        "/api/actions/typing-start",
        &[("Origin", origin), ("Content-Type", "application/json")],
        body.as_bytes(),
    )
    .unwrap();
    assert_eq!(r.status, 401, "{}", r.text());
    assert_eq!(error_of(&r).0, "unauthorized");
    assert_eq!(r.header("Access-Control-Allow-Origin"), Some(origin));
    assert!(r
        .header("Access-Control-Expose-Headers")
        .is_some_and(|h| h.contains("traceparent")));
    let r = http::request(
        port,
        "OPTIONS",
        "/api/actions/send-message",
        &[
            ("Origin", origin),
            ("Access-Control-Request-Method", "POST"),
            (
                "Access-Control-Request-Headers",
                "authorization, content-type, traceparent",
            ),
        ],
        b"",
    )
    .unwrap();
    assert_eq!(r.status, 204);
    assert_eq!(r.header("Access-Control-Allow-Origin"), Some(origin));
    let r = post_action(port, "typing-start", None, None, &body);
    assert_eq!(r.status, 401, "{}", r.text());
    let reader = session_for("reader", "read");
    let r = post_action(port, "typing-start", Some(&reader), None, &body);
    assert_eq!(r.status, 403, "{}", r.text());
    assert_eq!(error_of(&r).0, "forbidden");
    assert_eq!(
        sim.rest_calls().len(),
        before,
        "refused commands reached Discord"
    );

    // 5. Slow Discord: 202 queued, then command.result on alice's streams only.
    rt.block_on(sim.fault(Fault::SlowRest(Duration::from_millis(WAIT_MS * 3))));
    let body = format!(r#"{{"channel_id":"{general}","content":"slow one"}}"#);
    let r = post_action(port, "send-message", Some(&alice), Some(TRACEPARENT), &body);
    assert_eq!(r.status, 202, "{}", r.text());
    let v = r.json();
    assert_eq!(v["status"], "queued", "{v}");
    let queued_id = v["command_id"].as_str().expect("command_id").to_string();
    let events = alice_stream.events_until(T, |e| e.event == "command.result");
    let result = events.last().expect("command.result");
    // Stored (for replay) with the next cursor: ids on alice's stream keep increasing.
    let position = events[..events.len() - 1]
        .iter()
        .rev()
        .find_map(|e| e.id)
        .or(alice_connected_at);
    assert!(
        result.id > position,
        "command.result id {:?} after {position:?}",
        result.id
    );
    let rv = result.json();
    assert_eq!(rv["version"], "1.0");
    assert_eq!(rv["command_id"], queued_id.as_str(), "{rv}");
    assert_eq!(rv["status"], "sent", "{rv}");
    assert_eq!(rv["result"]["content"], "slow one", "{rv}");
    rt.block_on(sim.fault(Fault::SlowRest(Duration::ZERO)));
    // Bob's stream: a marker message he sends after alice's result arrived; nothing of alice's
    // may come before it.
    let body = format!(r#"{{"channel_id":"{general}","content":"bob marker"}}"#);
    let r = post_action(port, "send-message", Some(&bob), None, &body);
    assert!(r.status == 200 || r.status == 202, "{}", r.text());
    let seen: Vec<Event> = bob_stream.events_until(T, |e| {
        e.event == "MESSAGE_CREATE" && e.data.contains("bob marker")
    });
    assert!(
        seen.iter().all(|e| e.event != "command.result"),
        "bob got alice's command.result: {seen:?}"
    );

    // 6. The holder posts results with LINK_TOKEN; the previous token works during a rotation,
    //    anything else is refused.
    for (token, status) in [
        (PREVIOUS_LINK_TOKEN, 204),
        ("wrong-token", 401),
        (LINK_TOKEN, 204),
    ] {
        let r = post_failed_result(port, token, &guild, "alice", "manual");
        assert_eq!(r.status, status, "{token}: {}", r.text());
    }
    let e = alice_stream.events_until(T, |e| e.event == "command.result");
    let manual = e.last().unwrap();
    assert_eq!(manual.json()["command_id"], "manual");
    // Both accepted posts were stored for alice. Resuming from the first one's id replays the
    // second (nothing twice, nothing missed), then the connect status at the head.
    let resume_at = manual.id.expect("command.result has an id").to_string();
    let auth = format!("Bearer {alice}");
    let mut again = SseClient::connect(
        port,
        "/api/stream",
        &[("Authorization", &auth), ("Last-Event-ID", &resume_at)],
    )
    .expect("resume");
    assert_eq!(again.status, 200);
    let first = again.next_event(T).expect("an event");
    assert_eq!(
        (first.event.as_str(), first.json()["command_id"].as_str()),
        ("command.result", Some("manual")),
        "{first:?}"
    );
    assert!(first.id > manual.id, "{first:?} after {manual:?}");
    let rest = again.events_until(T, |e| e.event == "status");
    assert!(rest.iter().all(|e| e.event != "command.result"), "{rest:?}");
    assert!(rest.last().expect("the connect status").id >= first.id);
    drop(again);
    // A result for a user with no open stream is kept for that user alone: carol connects
    // afterwards from an earlier cursor and gets it replayed; bob, from the same cursor, never.
    let from = manual.id.expect("command.result has an id");
    let r = post_failed_result(port, LINK_TOKEN, &guild, "carol", "for-carol");
    assert_eq!(r.status, 204, "{}", r.text());
    let resume = |session: &str| {
        let auth = format!("Bearer {session}");
        let c = SseClient::connect(
            port,
            "/api/stream",
            &[
                ("Authorization", &auth),
                ("Last-Event-ID", &from.to_string()),
            ],
        )
        .expect("resume");
        assert_eq!(c.status, 200);
        c
    };
    let carol = session_for("carol", "read");
    let replayed = resume(&carol).events_until(T, |e| e.event == "command.result");
    let for_carol = replayed.last().expect("carol's command.result replayed");
    assert_eq!(for_carol.json()["command_id"], "for-carol");
    let carol_at = for_carol.id.expect("an id");
    assert!(carol_at > from);
    // Replay is in cursor order: once bob is given anything at or past carol's cursor, he has
    // passed it.
    let bobs = resume(&bob).events_until(T, |e| e.id.is_some_and(|id| id >= carol_at));
    assert!(
        bobs.iter().all(|e| e.event != "command.result"),
        "bob got carol's command.result: {bobs:?}"
    );
    for (token, status) in [(PREVIOUS_LINK_TOKEN, 200), ("wrong-token", 401)] {
        let auth = format!("Bearer {token}");
        let r = http::get(port, "/metrics", &[("Authorization", &auth)]).unwrap();
        assert_eq!(r.status, status, "metrics with {token}");
    }

    // 7. The per-user limit (burst 5, 1/s): ten commands at once from one user, some get 429
    //    with Retry-After, the rest go through.
    let spammer = session_for("spammer", "read write");
    let body = format!(r#"{{"channel_id":"{general}"}}"#);
    let burst_started = Instant::now();
    let answers: Vec<http::Response> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..10)
            .map(|_| s.spawn(|| post_action(port, "typing-start", Some(&spammer), None, &body)))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let burst_took = burst_started.elapsed().as_secs_f64();
    let limited: Vec<&http::Response> = answers.iter().filter(|r| r.status == 429).collect();
    let admitted = answers.len() - limited.len();
    // The burst of 5, plus what refilled (1/s) while the ten requests were being answered.
    assert!(
        !limited.is_empty() && admitted >= 5 && admitted as f64 <= 5.0 + burst_took.ceil(),
        "{admitted} admitted in {burst_took:.2} s: {:?}",
        answers.iter().map(|r| r.status).collect::<Vec<_>>()
    );
    for r in &answers {
        assert!([200, 202, 429].contains(&r.status), "{}", r.text());
    }
    let r = limited[0];
    assert_eq!(error_of(r).0, "rate_limited");
    let retry: u64 = r
        .header("Retry-After")
        .expect("Retry-After")
        .parse()
        .expect("seconds");
    assert!(retry >= 1);

    let auth = format!("Bearer {LINK_TOKEN}");
    let m = http::get(port, "/metrics", &[("Authorization", &auth)])
        .unwrap()
        .text();
    let counter = |name: &str| -> u64 {
        m.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in metrics"))
    };
    assert_eq!(
        counter("edge_commands_rate_limited_total"),
        limited.len() as u64
    );
    assert!(counter("edge_commands_admitted_total") >= 10);
    // The slow send and the two manual posts reached alice's stream; the spammer's queued
    // typing (if any) has no stream to go to.
    assert!(counter("edge_command_results_total") >= 3);
    assert_eq!(counter("edge_command_results_delivered_total"), 3);

    // 8. Gateway commands take the same path: update-voice-state reaches the sim as op 4 for the
    //    edge's guild, and Discord's answer (the bot's VOICE_STATE_UPDATE) comes out on the
    //    stream; bad bodies get 400 naming the field and never reach the holder.
    let dave = session_for("dave", "read write");
    let (mut dave_stream, _) = stream_for(port, &dave);
    let lounge = LOUNGE.to_string();
    let ops_before = gateway_payloads(&sim, 4).len();
    let handled_before = sim.stats();
    let body = format!(r#"{{"channel_id":"{lounge}","self_deaf":true}}"#);
    let r = post_action(
        port,
        "update-voice-state",
        Some(&dave),
        Some(TRACEPARENT),
        &body,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("traceparent"), Some(TRACEPARENT));
    let v = r.json();
    assert_eq!(
        (v["status"].as_str(), &v["result"]),
        (Some("sent"), &serde_json::json!({"op": 4})),
        "{v}"
    );
    sim_reaches(&rt, &sim, |s| {
        s.voice_state_updates > handled_before.voice_state_updates
    });
    let sent = gateway_payloads(&sim, 4);
    assert_eq!(sent.len(), ops_before + 1, "one op 4 per command");
    assert_eq!(
        sent.last().unwrap()["d"],
        serde_json::json!({"guild_id": guild, "channel_id": lounge, "self_mute": false, "self_deaf": true})
    );
    let bot = BOT.to_string();
    let seen = dave_stream.events_until(T, |e| {
        e.event == "VOICE_STATE_UPDATE" && e.data.contains(&bot) && e.data.contains(&lounge)
    });
    let vsu = seen.last().expect("the bot's VOICE_STATE_UPDATE").json();
    assert_eq!(vsu["d"]["user_id"], bot.as_str(), "{vsu}");
    assert_eq!(vsu["d"]["self_deaf"], true, "{vsu}");
    // Leaving has no channel to check; presence is bot-wide and needs only `write`.
    let r = post_action(
        port,
        "update-voice-state",
        Some(&dave),
        None,
        r#"{"channel_id":null}"#,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    // Joining made Discord send the voice server's token; it never reaches a browser. The
    // bot's leave comes after it, so by then the edge has taken it in and dropped it.
    let left = dave_stream.events_until(T, |e| {
        e.event == "VOICE_STATE_UPDATE"
            && e.data.contains(&bot)
            && e.json()["d"]["channel_id"].is_null()
    });
    let tokens: Vec<String> = sim
        .emitted()
        .into_iter()
        .filter(|e| e.t == "VOICE_SERVER_UPDATE")
        .map(|e| serde_json::from_str::<serde_json::Value>(&e.d).unwrap()["token"].to_string())
        .collect();
    assert_eq!(tokens.len(), 1, "the sim sent one VOICE_SERVER_UPDATE");
    for e in seen.iter().chain(&left) {
        assert_ne!(e.event, "VOICE_SERVER_UPDATE");
        assert!(!e.data.contains(tokens[0].trim_matches('"')), "{}", e.data);
    }
    let m = http::get(port, "/metrics", &[("Authorization", &auth)])
        .unwrap()
        .text();
    assert!(m.contains("\nedge_withheld_total 1\n"), "{m}");
    let r = post_action(
        port,
        "update-presence",
        Some(&dave),
        None,
        r#"{"status":"idle","activities":[{"name":"e2e","type":3}]}"#,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    // "sent" means the holder wrote the frame; the sim reads it a moment later.
    sim_reaches(&rt, &sim, |s| {
        s.presence_updates > handled_before.presence_updates
    });
    assert_eq!(
        gateway_payloads(&sim, 3).last().unwrap()["d"]["status"],
        "idle"
    );
    let before = sim.gateway_received().len();
    for (action, body, field) in [
        ("update-voice-state", "{}", "channel_id"),
        (
            "update-voice-state",
            r#"{"channel_id":"lounge"}"#,
            "channel_id",
        ),
        (
            "update-voice-state",
            r#"{"channel_id":null,"self_mute":1}"#,
            "self_mute",
        ),
        ("update-presence", r#"{"status":"away"}"#, "status"),
        (
            "update-presence",
            r#"{"status":"online","activities":[{"name":"x","type":9}]}"#,
            "activities[0].type",
        ),
        (
            "request-guild-members",
            r#"{"query":"a","user_ids":["1000000000000001001"],"limit":1}"#,
            "user_ids",
        ),
        (
            "request-guild-members",
            r#"{"query":"a","limit":500}"#,
            "limit",
        ),
    ] {
        let r = post_action(port, action, Some(&dave), None, body);
        assert_eq!(r.status, 400, "{action} {body}: {}", r.text());
        assert_eq!(
            error_of(&r),
            ("invalid_request".to_string(), Some(field.to_string())),
            "{action} {body}"
        );
    }
    // A voice channel of another guild is refused by the hub like any other channel.
    let r = post_action(
        port,
        "update-voice-state",
        Some(&dave),
        None,
        r#"{"channel_id":"999999999999999999"}"#,
    );
    assert_eq!(r.status, 403, "{}", r.text());
    assert!(
        sim.gateway_received()[before..]
            .iter()
            .all(|g| g.op == Some(1)),
        "a refused gateway command reached Discord"
    );
    drop(dave_stream);

    // 9. Holder gone: 503 holder_unavailable with Retry-After.
    holder.kill();
    let body = format!(r#"{{"channel_id":"{general}","content":"nobody home"}}"#);
    let r = post_action(port, "send-message", Some(&bob), None, &body);
    assert_eq!(r.status, 503, "{}", r.text());
    assert_eq!(error_of(&r).0, "holder_unavailable");
    assert!(r.header("Retry-After").is_some());
    assert!(r.header("traceparent").is_some_and(is_traceparent));

    drop(alice_stream);
    drop(bob_stream);
    rt.block_on(sim.shutdown());
}
