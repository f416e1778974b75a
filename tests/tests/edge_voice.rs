//! End-to-end: voice tracking in the edge under the real `wrangler dev`. The test acts as the
//! holder, posting GUILD_CREATE and VOICE_STATE_UPDATE dispatches shaped like Discord's (and
//! discord-sim's), and as browsers (SSE, `GET /api/voice`) and an old client (the deprecated
//! WebSocket `/api/internal/events`). Two instances: one for events, drop-outs by alarm,
//! recovery and the legacy socket; one for re-identify corrections, a restart with a pending
//! drop-out, and the legacy socket switched off.

use e2e_tests::edge::Edge;
use e2e_tests::holder::{dispatch, session, Dispatch, Holder};
use e2e_tests::http;
use e2e_tests::now_ms;
use e2e_tests::sse::{Event, Item, SseClient};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::net::TcpStream;
use std::time::{Duration, Instant};
use tungstenite::client::IntoClientRequest;

const T: Duration = Duration::from_secs(15);
const GUILD: &str = "1000000000000000001";
const C1: &str = "2000000000000000001";
const C2: &str = "2000000000000000002";
const U1: &str = "3000000000000000001";
const U2: &str = "3000000000000000002";
const U3: &str = "3000000000000000003";
const U4: &str = "3000000000000000004";
const U5: &str = "3000000000000000005";

/// A voice state as Discord (and discord-sim) sends it; dispatches carry the member object.
fn voice_state(user: &str, channel: Option<&str>, self_mute: bool, with_member: bool) -> Value {
    let mut v = json!({
        "guild_id": GUILD,
        "channel_id": channel,
        "user_id": user,
        "session_id": format!("voice-{user}"),
        "deaf": false,
        "mute": false,
        "self_deaf": false,
        "self_mute": self_mute,
        "self_video": false,
        "suppress": false,
        "request_to_speak_timestamp": null,
    });
    if with_member {
        v["member"] = json!({"user": {"id": user, "username": format!("user{user}")}, "roles": [],
                             "joined_at": "2026-01-01T00:00:00.000000+00:00", "deaf": false, "mute": false});
    }
    v
}

fn vsu(user: &str, channel: Option<&str>, self_mute: bool) -> Dispatch {
    let d = voice_state(user, channel, self_mute, true).to_string();
    dispatch("VOICE_STATE_UPDATE", channel, &d)
}

/// A GUILD_CREATE with the given voice members (`(user, channel)`).
fn guild_create(members: &[(&str, &str)]) -> Dispatch {
    let states: Vec<Value> = members
        .iter()
        .map(|(u, c)| voice_state(u, Some(c), false, false))
        .collect();
    let d = json!({
        "id": GUILD, "name": "Voice Test", "unavailable": false, "member_count": 5,
        "channels": [{"id": C1, "type": 2, "name": "lobby"}, {"id": C2, "type": 2, "name": "raid"}],
        "members": [], "roles": [], "emojis": [],
        "voice_states": states,
    });
    dispatch("GUILD_CREATE", None, &d.to_string())
}

fn stream(port: u16, path: &str, auth: &str) -> SseClient {
    let mut c = SseClient::connect(port, path, &[("Authorization", auth)]).expect("connect");
    assert_eq!(c.status, 200, "stream refused: {}", c.error_body);
    // `retry:`, any replay, then the connect status whose id is the head.
    match c.next_item(T) {
        Some(Item::Retry(_)) => {}
        other => panic!("expected retry first, got {other:?}"),
    }
    c
}

/// The next `n` voice events (skipping everything else), within `T`.
fn voice_events(c: &mut SseClient, n: usize) -> Vec<Event> {
    let mut got = Vec::new();
    if n == 0 {
        return got;
    }
    c.events_until(T, |e| {
        if e.event.starts_with("voice.") {
            got.push(e.clone());
        }
        got.len() == n
    });
    got
}

/// `(event name, user, channel, from)` of voice events.
fn facts(events: &[Event]) -> Vec<(String, String, String, Option<String>)> {
    events
        .iter()
        .map(|e| {
            let v = e.json();
            assert_eq!(v["version"], "1.0", "{v}");
            assert_eq!(v["guild_id"], GUILD, "{v}");
            (
                e.event.clone(),
                v["user_id"].as_str().unwrap().to_string(),
                v["channel_id"].as_str().unwrap().to_string(),
                v["from_channel_id"].as_str().map(str::to_string),
            )
        })
        .collect()
}

fn fact(
    name: &str,
    user: &str,
    channel: &str,
    from: Option<&str>,
) -> (String, String, String, Option<String>) {
    (
        name.into(),
        user.into(),
        channel.into(),
        from.map(str::to_string),
    )
}

fn get_voice(port: u16, query: &str, auth: &str) -> http::Response {
    http::get(
        port,
        &format!("/api/voice{query}"),
        &[("Authorization", auth)],
    )
    .expect("GET /api/voice")
}

/// channel → sorted users, from a snapshot.
fn membership(v: &Value) -> BTreeMap<String, Vec<String>> {
    assert_eq!(v["version"], "1.0", "{v}");
    v["channels"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(c, ms)| {
            let mut users: Vec<String> = ms
                .as_array()
                .unwrap()
                .iter()
                .map(|m| {
                    assert_eq!(m["channel_id"].as_str(), Some(c.as_str()));
                    m["user_id"].as_str().unwrap().to_string()
                })
                .collect();
            users.sort();
            (c.clone(), users)
        })
        .collect()
}

fn truth(pairs: &[(&str, &[&str])]) -> BTreeMap<String, Vec<String>> {
    pairs
        .iter()
        .map(|(c, us)| (c.to_string(), us.iter().map(|u| u.to_string()).collect()))
        .collect()
}

fn pending_users(v: &Value) -> Vec<String> {
    v["pending_dropouts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["user_id"].as_str().unwrap().to_string())
        .collect()
}

type Ws = tungstenite::WebSocket<TcpStream>;

/// Opens the legacy WebSocket with the session cookie (old clients may only have that).
fn legacy_ws(
    port: u16,
    cookie: &str,
) -> Result<(Ws, tungstenite::handshake::client::Response), tungstenite::Error> {
    let mut req = format!("ws://127.0.0.1:{port}/api/internal/events")
        .into_client_request()
        .unwrap();
    if !cookie.is_empty() {
        req.headers_mut().insert("Cookie", cookie.parse().unwrap());
    }
    let tcp = TcpStream::connect(("127.0.0.1", port)).unwrap();
    tcp.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    match tungstenite::client(req, tcp) {
        Ok(ok) => Ok(ok),
        Err(tungstenite::HandshakeError::Failure(e)) => Err(e),
        Err(tungstenite::HandshakeError::Interrupted(_)) => panic!("handshake timed out"),
    }
}

/// The next `n` text messages on the legacy socket, within `T`.
fn ws_messages(ws: &mut Ws, n: usize) -> Vec<Value> {
    let deadline = Instant::now() + T;
    let mut out = Vec::new();
    while out.len() < n {
        assert!(
            Instant::now() < deadline,
            "legacy socket: got {out:?}, wanted {n}"
        );
        match ws.read() {
            Ok(tungstenite::Message::Text(t)) => {
                out.push(serde_json::from_str(t.as_str()).unwrap())
            }
            Ok(_) => {}
            Err(tungstenite::Error::Io(e))
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => panic!("legacy socket: {e}"),
        }
    }
    out
}

/// The old message for a stream fact, as the old clients know it.
fn old(kind: &str, user: &str, channel: &str) -> (String, String, String) {
    (kind.into(), user.into(), channel.into())
}

fn old_facts(msgs: &[Value]) -> Vec<(String, String, String)> {
    msgs.iter()
        .map(|m| {
            assert!(
                m.get("version").is_none(),
                "the old protocol is unversioned: {m}"
            );
            assert!(m["at"].as_u64().is_some(), "{m}");
            (
                m["type"].as_str().unwrap().to_string(),
                m["userId"].as_str().unwrap().to_string(),
                m["channelId"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

const GRACE_A: u64 = 3_000;

#[test]
fn membership_events_dropout_recovery_and_legacy_socket() {
    let grace = GRACE_A.to_string();
    let edge = Edge::start("voice", &[("VOICE_GRACE_MS", grace.as_str())]);
    let port = edge.port;
    let read = session("read", 3600);
    let auth = format!("Bearer {read}");

    // Auth like the stream; a bad channel is a 400 naming it.
    assert_eq!(http::get(port, "/api/voice", &[]).unwrap().status, 401);
    let bad = get_voice(port, "?channel=abc", &auth);
    assert_eq!(bad.status, 400, "{}", bad.text());
    assert_eq!(bad.json()["error"]["field"], "channel");
    match legacy_ws(port, "") {
        Err(tungstenite::Error::Http(r)) => assert_eq!(r.status().as_u16(), 401),
        Err(e) => panic!("expected 401, got {e}"),
        Ok(_) => panic!("the legacy socket needs read access"),
    }

    let mut all = stream(port, "/api/stream", &auth);
    let mut lobby = stream(port, &format!("/api/stream?channels={C1}"), &auth);
    let (mut ws, resp) = legacy_ws(port, &format!("rt_session={read}")).expect("legacy socket");
    assert_eq!(resp.status().as_u16(), 101);
    assert_eq!(
        resp.headers()
            .get("deprecation")
            .map(|v| v.to_str().unwrap()),
        Some("true")
    );
    let link = resp
        .headers()
        .get("link")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    assert!(
        link.contains("/api/stream") && link.contains("successor-version"),
        "{link}"
    );

    // The first GUILD_CREATE seeds silently.
    let mut h = Holder::new("voice-epoch");
    h.send(port, &[guild_create(&[(U1, C1), (U2, C1), (U3, C2)])]);
    let seeded = get_voice(port, "", &auth);
    assert_eq!(seeded.status, 200);
    assert_eq!(
        membership(&seeded.json()),
        truth(&[(C1, &[U1, U2]), (C2, &[U3])])
    );

    // Join, move, update, leave in one batch: each voice event right after its dispatch.
    let before = h.send(port, &[])["cursor"].as_u64().unwrap();
    h.send(
        port,
        &[
            vsu(U4, Some(C2), false),
            vsu(U2, Some(C2), false),
            vsu(U1, Some(C1), true),
            vsu(U3, None, false),
        ],
    );
    let batch = all.events_until(T, |e| e.event == "voice.leave");
    let batch: Vec<&Event> = batch.iter().filter(|e| e.id.unwrap() > before).collect();
    let names: Vec<&str> = batch.iter().map(|e| e.event.as_str()).collect();
    assert_eq!(
        names,
        [
            "VOICE_STATE_UPDATE",
            "voice.join",
            "VOICE_STATE_UPDATE",
            "voice.move",
            "VOICE_STATE_UPDATE",
            "voice.update",
            "VOICE_STATE_UPDATE",
            "voice.leave"
        ]
    );
    let ids: Vec<u64> = batch.iter().map(|e| e.id.unwrap()).collect();
    assert_eq!(
        ids,
        (before + 1..=before + 8).collect::<Vec<_>>(),
        "stored, contiguous cursors"
    );
    let voice: Vec<Event> = batch
        .iter()
        .filter(|e| e.event.starts_with("voice."))
        .map(|e| (*e).clone())
        .collect();
    assert_eq!(
        facts(&voice),
        [
            fact("voice.join", U4, C2, None),
            fact("voice.move", U2, C2, Some(C1)),
            fact("voice.update", U1, C1, None),
            fact("voice.leave", U3, C2, None),
        ]
    );
    assert_eq!(voice[2].json()["flags"]["self_mute"], true);
    let left_at = voice[3].json()["at"].as_u64().unwrap();

    // A quick rejoin (another channel, within the grace): join + recovered, and no dropout.
    h.send(port, &[vsu(U3, Some(C1), false)]);
    let back = voice_events(&mut all, 2);
    assert_eq!(
        facts(&back),
        [
            fact("voice.join", U3, C1, None),
            fact("voice.recovered", U3, C1, Some(C2))
        ]
    );
    assert!(back[1].json()["at"].as_u64().unwrap() < left_at + GRACE_A);

    // A leave with no traffic after it: the alarm fires the dropout after the grace.
    h.send(port, &[vsu(U4, None, false)]);
    let leave = voice_events(&mut all, 1);
    assert_eq!(facts(&leave), [fact("voice.leave", U4, C2, None)]);
    let u4_left = leave[0].json()["at"].as_u64().unwrap();
    let pending = get_voice(port, "", &auth).json();
    assert_eq!(pending_users(&pending), [U4]);
    let drop = voice_events(&mut all, 1);
    let dropped_seen = now_ms();
    assert_eq!(facts(&drop), [fact("voice.dropout", U4, C2, None)]);
    assert_eq!(
        drop[0].json()["at"].as_u64(),
        Some(u4_left),
        "dated by the leave"
    );
    assert!(
        dropped_seen >= u4_left + GRACE_A,
        "not before the grace ended"
    );
    assert!(drop[0].id.unwrap() > leave[0].id.unwrap());
    // U3's grace ended before U4's: its dropout would have come first, and none came.

    // Membership matches the truth; one channel; nothing pending.
    let now = get_voice(port, "", &auth).json();
    assert_eq!(membership(&now), truth(&[(C1, &[U1, U3]), (C2, &[U2])]));
    assert!(pending_users(&now).is_empty());
    let one = get_voice(port, &format!("?channel={C2}"), &auth).json();
    assert_eq!(membership(&one), truth(&[(C2, &[U2])]));

    // The channel-filtered stream got only C1's voice events.
    let lobby_voice = voice_events(&mut lobby, 3);
    assert_eq!(
        facts(&lobby_voice),
        [
            fact("voice.update", U1, C1, None),
            fact("voice.join", U3, C1, None),
            fact("voice.recovered", U3, C1, Some(C2)),
        ]
    );

    // The legacy socket got the same facts in the old format (a move is leave + join; flag
    // updates have no old form).
    let msgs = ws_messages(&mut ws, 8);
    assert_eq!(
        old_facts(&msgs),
        [
            old("voice_join", U4, C2),
            old("voice_leave", U2, C1),
            old("voice_join", U2, C2),
            old("voice_leave", U3, C2),
            old("voice_join", U3, C1),
            old("voice_recovered", U3, C1),
            old("voice_leave", U4, C2),
            old("voice_dropout", U4, C2),
        ]
    );
    assert_eq!(msgs[7]["at"].as_u64(), Some(u4_left));
    ws.send(tungstenite::Message::text("ping")).unwrap();
    let deadline = Instant::now() + T;
    loop {
        assert!(Instant::now() < deadline, "no pong");
        match ws.read() {
            Ok(tungstenite::Message::Text(t)) => {
                assert_eq!(t.as_str(), "pong");
                break;
            }
            Ok(_) => {}
            Err(tungstenite::Error::Io(e))
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => panic!("legacy socket: {e}"),
        }
    }

    // Replay: a client resuming before the batch gets the same voice events with the same ids.
    let mut again = SseClient::connect(
        port,
        &format!("/api/stream?types=voice.join,voice.dropout&last_event_id={before}"),
        &[("Authorization", &auth)],
    )
    .unwrap();
    let replayed = again.events_until(T, |e| e.event == "voice.dropout");
    let replayed: Vec<Event> = replayed
        .into_iter()
        .filter(|e| e.event.starts_with("voice."))
        .collect();
    assert_eq!(
        facts(&replayed),
        [
            fact("voice.join", U4, C2, None),
            fact("voice.join", U3, C1, None),
            fact("voice.dropout", U4, C2, None)
        ]
    );
    assert_eq!(replayed[0].id, voice[0].id);
    assert_eq!(replayed[2].id, drop[0].id);
    let _ = ws.close(None);
}

const GRACE_B: u64 = 20_000;

#[test]
fn reidentify_corrections_restart_and_legacy_switched_off() {
    let grace = GRACE_B.to_string();
    let mut edge = Edge::start(
        "voice-restart",
        &[
            ("VOICE_GRACE_MS", grace.as_str()),
            ("LEGACY_VOICE_WS", "false"),
            ("PUBLIC_READ", "true"),
        ],
    );
    let port = edge.port;
    let auth = format!("Bearer {}", session("read", 3600));

    // Switched off: 410 Gone with an error body.
    match legacy_ws(port, "") {
        Err(tungstenite::Error::Http(r)) => assert_eq!(r.status().as_u16(), 410),
        Err(e) => panic!("expected 410, got {e}"),
        Ok(_) => panic!("the legacy socket is switched off"),
    }
    // The handshake client may not wait for the body: read it with plain HTTP.
    let gone = http::get(port, "/api/internal/events", &[]).unwrap();
    assert_eq!(gone.status, 410);
    let body = gone.json();
    assert_eq!(body["version"], "1.0");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("/api/stream"),
        "{body}"
    );

    let mut all = stream(port, "/api/stream", &auth);
    let mut h = Holder::new("restart-epoch");
    h.send(port, &[guild_create(&[(U1, C1), (U2, C1), (U3, C2)])]);
    // A re-identify: the holder forwards the fresh GUILD_CREATE; while it was away U1 left,
    // U2 moved to C2 and U5 joined C1 (U3 unchanged).
    h.send(port, &[guild_create(&[(U2, C2), (U3, C2), (U5, C1)])]);
    let fixes = voice_events(&mut all, 3);
    assert_eq!(
        facts(&fixes),
        [
            fact("voice.leave", U1, C1, None),
            fact("voice.move", U2, C2, Some(C1)),
            fact("voice.join", U5, C1, None)
        ]
    );
    let last = fixes[2].id.unwrap();
    let snap = get_voice(port, "", &auth).json();
    assert_eq!(membership(&snap), truth(&[(C1, &[U5]), (C2, &[U2, U3])]));
    assert_eq!(
        pending_users(&snap),
        [U1],
        "the ghost's leave starts a grace period"
    );
    let due = snap["pending_dropouts"][0]["due_at"].as_u64().unwrap();
    drop(all);

    // Restart wrangler dev on the same storage: membership and the pending dropout survive.
    edge.restart();
    let after = get_voice(port, "", &auth).json();
    assert_eq!(membership(&after), membership(&snap));
    if now_ms() < due {
        assert_eq!(pending_users(&after), [U1]);
    }
    // ...and the dropout still fires (stored, so a resuming client gets it whenever it came).
    let mut resumed = SseClient::connect(
        port,
        &format!("/api/stream?last_event_id={last}"),
        &[("Authorization", &auth)],
    )
    .unwrap();
    assert_eq!(resumed.status, 200);
    let deadline = Duration::from_millis(GRACE_B) + T;
    let got = resumed.events_until(deadline, |e| e.event == "voice.dropout");
    let dropout = got.last().unwrap();
    assert_eq!(
        facts(std::slice::from_ref(dropout)),
        [fact("voice.dropout", U1, C1, None)]
    );
    assert!(
        dropout.id.unwrap() > last,
        "cursors continue after the restart"
    );
    assert!(now_ms() >= due);
    assert!(pending_users(&get_voice(port, "", &auth).json()).is_empty());
}
