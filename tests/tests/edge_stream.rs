//! End-to-end: the edge Worker under the real `wrangler dev`, driven as the holder (ingest) and
//! as browsers (SSE). Each test owns one wrangler instance (own port, own storage) and groups
//! several assertions on it, since starting one costs about a second of CPU.

use e2e_tests::edge::{Edge, LINK_TOKEN};
use e2e_tests::holder::{self, batch_body, dispatch, envelope, session, Holder};
use e2e_tests::http;
use e2e_tests::sse::{Event, Item, SseClient};
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(10);

fn stream(port: u16, path: &str, headers: &[(&str, &str)]) -> SseClient {
    let c = SseClient::connect(port, path, headers).expect("connect stream");
    assert_eq!(c.status, 200, "stream refused: {}", c.error_body);
    c
}

/// Reads the connect preamble (`retry:`, the replay after `from`, then the connect `status`,
/// whose id is the position the client has reached) and returns the replay and that status.
fn preamble_from(c: &mut SseClient, from: Option<u64>) -> (Vec<Event>, Event) {
    match c.next_item(T) {
        Some(Item::Retry(ms)) => assert!(ms > 0),
        other => panic!("expected retry first, got {other:?}"),
    }
    let mut events: Vec<Event> = Vec::new();
    loop {
        let e = c.next_event(T).expect("preamble event");
        let position = events.last().and_then(|p| p.id).or(from);
        // A fresh client's first event is the connect status; a resuming client's connect
        // status repeats the id of the last replayed event (a stored status has a new id).
        if e.event == "status" && (position.is_none() || e.id == position) {
            return (events, e);
        }
        events.push(e);
    }
}

fn preamble(c: &mut SseClient) -> (Vec<Event>, Event) {
    preamble_from(c, None)
}

fn error_code(r: &http::Response) -> (String, Option<String>) {
    let v = r.json();
    assert_eq!(v["version"], "1.0", "{v}");
    (
        v["error"]["code"].as_str().unwrap_or_default().to_string(),
        v["error"]["field"].as_str().map(str::to_string),
    )
}

fn metrics(port: u16) -> String {
    let auth = format!("Bearer {LINK_TOKEN}");
    let r = http::get(port, "/metrics", &[("Authorization", &auth)]).unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    r.text()
}

fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("metric {name} missing"))
}

fn assert_contiguous(events: &[Event], after: u64) {
    let ids: Vec<u64> = events
        .iter()
        .map(|e| e.id.expect("every event has an id"))
        .collect();
    let want: Vec<u64> = (after + 1..after + 1 + ids.len() as u64).collect();
    assert_eq!(
        ids, want,
        "cursors must continue from {after} with no gap or duplicate"
    );
}

#[test]
fn delivery_filters_auth_replay_handover_and_restart() {
    let mut edge = Edge::start(
        "delivery",
        &[
            ("MAX_INGEST_BYTES", "65536"),
            ("ALLOWED_ORIGINS", "http://app.test"),
        ],
    );
    let port = edge.port;
    let read = session("read", 3600);
    let bearer = format!("Bearer {read}");

    // --- Browser auth with PUBLIC_READ off.
    let refused = |headers: &[(&str, &str)], code: u16| {
        let c = SseClient::connect(port, "/api/stream", headers).unwrap();
        assert_eq!(c.status, code, "{headers:?}: {}", c.error_body);
        assert!(
            c.error_body.contains("\"version\":\"1.0\""),
            "{}",
            c.error_body
        );
    };
    refused(&[], 401);
    refused(
        &[("Authorization", &format!("Bearer {}", session("read", -10)))],
        401,
    );
    let forged = edge_worker::jwt::sign(
        r#"{"sub":"x","exp":9999999999,"scope":"read"}"#,
        b"not-the-secret",
    );
    refused(&[("Authorization", &format!("Bearer {forged}"))], 401);
    refused(&[("Cookie", &format!("rt_session={forged}"))], 401);
    refused(&[("Authorization", "Bearer not.a.jwt")], 401);
    refused(
        &[(
            "Authorization",
            &format!("Bearer {}", session("write", 3600)),
        )],
        403,
    );

    let cookie = format!("theme=dark; rt_session={read}");
    let mut all = stream(port, "/api/stream", &[("Cookie", &cookie)]);
    assert_eq!(
        all.header("content-type"),
        Some("text/event-stream; charset=utf-8")
    );
    assert_eq!(all.header("cache-control"), Some("no-cache, no-transform"));
    assert_eq!(all.header("x-accel-buffering"), Some("no"));
    assert!(all.header("content-encoding").is_none());
    let (replayed, status) = preamble(&mut all);
    assert!(replayed.is_empty());
    assert_eq!(status.json()["link"], "down", "no holder yet");
    let mut types = stream(
        port,
        "/api/stream?types=MESSAGE_CREATE",
        &[("Authorization", &bearer)],
    );
    preamble(&mut types);
    let mut chans = stream(
        port,
        "/api/stream?channels=222",
        &[("Authorization", &bearer)],
    );
    preamble(&mut chans);
    let bad = SseClient::connect(
        port,
        "/api/stream?channels=abc",
        &[("Authorization", &bearer)],
    )
    .unwrap();
    assert_eq!(bad.status, 400);
    assert!(
        bad.error_body.contains("\"field\":\"channels\""),
        "{}",
        bad.error_body
    );

    // --- Bad ingest: 401, 400 naming the field, 413; none of it reaches a client.
    let mut h1 = Holder::new("epoch-one");
    let good = h1.build(&[dispatch("MESSAGE_CREATE", Some("111"), r#"{"n":1}"#)]);
    h1.next_id = 1;
    h1.batch = 0;
    let r = holder::post_with(port, good.as_bytes(), "Bearer wrong-token");
    assert_eq!(r.status, 401);
    assert_eq!(error_code(&r).0, "unauthorized");
    assert!(!r.text().contains(LINK_TOKEN));
    let r = http::request(port, "POST", "/link/ingest", &[], good.as_bytes()).unwrap();
    assert_eq!(r.status, 401);
    // A browser session, however privileged, is not the holder's token.
    let browser = session("read write", 3600);
    let r = holder::post_with(port, good.as_bytes(), &format!("Bearer {browser}"));
    assert_eq!(r.status, 401, "a browser session reached /link/ingest");
    let cookie_only = http::request(
        port,
        "POST",
        "/link/ingest",
        &[("Cookie", &format!("rt_session={browser}"))],
        good.as_bytes(),
    )
    .unwrap();
    assert_eq!(cookie_only.status, 401);
    let r = holder::post(port, b"{\"version\":\"1.0\",");
    assert_eq!(r.status, 400);
    assert!(r.text().contains("not valid JSON"), "{}", r.text());
    let r = holder::post(port, good.replacen("\"1.0\"", "\"2.0\"", 1).as_bytes());
    assert_eq!(
        error_code(&r),
        ("invalid_request".into(), Some("version".into()))
    );
    let r = holder::post(
        port,
        good.replace("\"epoch\":\"epoch-one\",", "").as_bytes(),
    );
    assert_eq!(
        error_code(&r),
        ("invalid_request".into(), Some("epoch".into()))
    );
    let r = holder::post(port, good.replace(",\"seq\":1", "").as_bytes());
    assert_eq!(
        error_code(&r),
        ("invalid_request".into(), Some("envelopes[0].seq".into()))
    );
    let r = holder::post(
        port,
        good.replace("MESSAGE_CREATE", "message create").as_bytes(),
    );
    assert_eq!(
        error_code(&r),
        ("invalid_request".into(), Some("envelopes[0].type".into()))
    );
    let big = format!(r#"{{"pad":"{}"}}"#, "x".repeat(70_000));
    let r = holder::post(
        port,
        h1.build(&[dispatch("MESSAGE_CREATE", None, &big)])
            .as_bytes(),
    );
    assert_eq!(r.status, 413, "{}", r.text());
    assert_eq!(error_code(&r).0, "too_large");
    h1.next_id = 1;
    h1.batch = 0;

    // --- Delivery: order kept, duplicates dropped, a new epoch never dropped, d verbatim.
    let raw_d = r#"{"content":"caf\u00e9 \"quoted\"",  "n":1.50,"nested":{"a":[1, 2]}}"#;
    let b1 = h1.build(&[
        dispatch("MESSAGE_CREATE", Some("111"), r#"{"n":1}"#),
        dispatch("TYPING_START", Some("222"), r#"{"n":2}"#),
        dispatch("MESSAGE_CREATE", Some("222"), raw_d),
    ]);
    let a = holder::post(port, b1.as_bytes());
    assert_eq!(a.status, 200, "{}", a.text());
    assert_eq!(a.json()["accepted"], 3);
    let again = holder::post(port, b1.as_bytes()).json();
    assert_eq!(
        (again["accepted"].as_u64(), again["duplicates"].as_u64()),
        (Some(0), Some(3))
    );
    h1.send(port, &[dispatch("GUILD_MEMBER_ADD", None, r#"{"n":4}"#)]);
    // The holder lost its state: a new epoch restarts ids at 1, and they are all delivered.
    let mut h2 = Holder::new("epoch-two");
    h2.send(
        port,
        &[dispatch("MESSAGE_CREATE", Some("222"), r#"{"n":5}"#)],
    );

    let got = all.events_until(T, |e| e.data.contains(r#""n":5"#));
    let names: Vec<&str> = got.iter().map(|e| e.event.as_str()).collect();
    assert_eq!(
        names,
        [
            "status",
            "MESSAGE_CREATE",
            "TYPING_START",
            "MESSAGE_CREATE",
            "GUILD_MEMBER_ADD",
            "MESSAGE_CREATE"
        ]
    );
    assert_contiguous(&got, status.id.unwrap());
    assert_eq!(got[0].json()["link"], "up");
    assert_eq!(got[0].json()["gateway"], "ready");
    assert!(
        got[3].data.contains(raw_d),
        "d must be byte-for-byte: {}",
        got[3].data
    );
    let d3 = got[3].json();
    assert_eq!(d3["type"], "MESSAGE_CREATE");
    assert_eq!(d3["channel_id"], "222");
    assert_eq!(d3["version"], "1.0");
    let t = types.events_until(T, |e| e.data.contains(r#""n":5"#));
    assert_eq!(
        t.iter().map(|e| e.event.as_str()).collect::<Vec<_>>(),
        [
            "status",
            "MESSAGE_CREATE",
            "MESSAGE_CREATE",
            "MESSAGE_CREATE"
        ]
    );
    let c = chans.events_until(T, |e| e.data.contains(r#""n":5"#));
    assert_eq!(
        c.iter()
            .map(|e| e.data.contains("\"222\"") || e.event == "status")
            .collect::<Vec<_>>(),
        [true; 4]
    );
    assert_eq!(
        c.len(),
        4,
        "status, TYPING_START 222, MESSAGE_CREATE 222 twice"
    );
    assert!(
        all.drain_for(Duration::from_millis(300)).is_empty(),
        "no duplicates follow"
    );

    // --- Replay after a disconnect, then live with no gap and no duplicate.
    let seen = got[2].id.unwrap();
    let head_then = got.last().unwrap().id.unwrap();
    drop(all);
    h2.send(
        port,
        &[dispatch("MESSAGE_CREATE", Some("333"), r#"{"n":6}"#)],
    );
    h2.send(
        port,
        &[dispatch("MESSAGE_CREATE", Some("333"), r#"{"n":7}"#)],
    );
    let last = seen.to_string();
    let mut back = stream(
        port,
        "/api/stream",
        &[("Cookie", &cookie), ("Last-Event-ID", &last)],
    );
    let (replayed, st) = preamble_from(&mut back, Some(seen));
    assert_contiguous(&replayed, seen);
    assert_eq!(replayed.last().unwrap().id, Some(head_then + 2));
    assert!(replayed.last().unwrap().data.contains(r#""n":7"#));
    assert_eq!(st.id, Some(head_then + 2));
    h2.send(
        port,
        &[dispatch("MESSAGE_CREATE", Some("333"), r#"{"n":8}"#)],
    );
    let live = back.next_event(T).unwrap();
    assert_eq!(live.id, Some(head_then + 3));
    assert!(back.drain_for(Duration::from_millis(300)).is_empty());
    // The query form, for clients that can't set the header.
    let mut q = stream(
        port,
        &format!("/api/stream?last_event_id={}", head_then + 1),
        &[("Authorization", &bearer)],
    );
    let (replayed, _) = preamble_from(&mut q, Some(head_then + 1));
    assert_contiguous(&replayed, head_then + 1);
    assert_eq!(replayed.len(), 2);
    drop(q);
    drop(back);

    // --- Hand-over under concurrent ingest: reconnect repeatedly while batches keep coming.
    let ingest = std::thread::spawn(move || {
        let mut h = Holder::new("epoch-three");
        for i in 0..60 {
            let d = format!(r#"{{"burst":{i}}}"#);
            h.send(
                port,
                &[
                    dispatch("MESSAGE_CREATE", Some("444"), &d),
                    dispatch("MESSAGE_UPDATE", Some("444"), &d),
                ],
            );
        }
    });
    let mut position = head_then + 3;
    let mut reconnects = 0;
    while !ingest.is_finished() || reconnects < 3 {
        let id = position.to_string();
        let mut c = stream(
            port,
            "/api/stream",
            &[("Authorization", &bearer), ("Last-Event-ID", &id)],
        );
        let (replayed, st) = preamble_from(&mut c, Some(position));
        assert_contiguous(&replayed, position);
        let at = replayed.last().and_then(|e| e.id).unwrap_or(position);
        assert_eq!(st.id, Some(at), "connect status carries the position");
        let live = c.drain_for(Duration::from_millis(150));
        assert_contiguous(&live, at);
        position = live.last().and_then(|e| e.id).unwrap_or(at);
        reconnects += 1;
        assert!(reconnects < 200, "ingest thread never finished");
    }
    ingest.join().unwrap();
    let id = position.to_string();
    let mut c = stream(
        port,
        "/api/stream",
        &[("Authorization", &bearer), ("Last-Event-ID", &id)],
    );
    let (replayed, st) = preamble_from(&mut c, Some(position));
    assert_contiguous(&replayed, position);
    let head = st.id.unwrap();
    assert_eq!(head, head_then + 3 + 120, "every burst event exactly once");
    drop(c);

    // --- Metrics need the link token.
    assert_eq!(http::get(port, "/metrics", &[]).unwrap().status, 401);
    assert_eq!(
        http::get(port, "/metrics", &[("Authorization", &bearer)])
            .unwrap()
            .status,
        401
    );
    let m = metrics(port);
    assert_eq!(metric(&m, "edge_ingest_duplicates_total"), 3.0);
    assert!(metric(&m, "edge_replays_total") >= 2.0);
    assert_eq!(metric(&m, "edge_events_in_total"), 8.0 + 120.0);
    assert!(metric(&m, "edge_ingest_duration_seconds_count") >= 65.0);
    assert!(!m.contains(LINK_TOKEN) && !m.contains(e2e_tests::edge::JWT_SECRET));

    // --- CORS: exact origins, credentials, never `*`; /link/* never answers a preflight.
    let pre = http::request(
        port,
        "OPTIONS",
        "/api/stream",
        &[
            ("Origin", "http://app.test"),
            ("Access-Control-Request-Method", "GET"),
            ("Access-Control-Request-Headers", "last-event-id"),
        ],
        b"",
    )
    .unwrap();
    assert_eq!(pre.status, 204);
    assert_eq!(
        pre.header("access-control-allow-origin"),
        Some("http://app.test")
    );
    assert_eq!(pre.header("access-control-allow-credentials"), Some("true"));
    assert!(pre
        .header("access-control-allow-headers")
        .unwrap()
        .contains("Last-Event-ID"));
    let evil = http::request(
        port,
        "OPTIONS",
        "/api/stream",
        &[("Origin", "http://evil.test")],
        b"",
    )
    .unwrap();
    assert_eq!(evil.status, 403);
    assert!(evil.header("access-control-allow-origin").is_none());
    let link = http::request(
        port,
        "OPTIONS",
        "/link/ingest",
        &[("Origin", "http://app.test")],
        b"",
    )
    .unwrap();
    assert_eq!(link.status, 405);
    assert!(link.header("access-control-allow-origin").is_none());
    let mut cors = stream(
        port,
        "/api/stream",
        &[("Origin", "http://app.test"), ("Cookie", &cookie)],
    );
    assert_eq!(
        cors.header("access-control-allow-origin"),
        Some("http://app.test")
    );
    assert_eq!(
        cors.header("access-control-allow-credentials"),
        Some("true")
    );
    preamble(&mut cors);
    drop(cors);
    let r = http::get(port, "/nope", &[]).unwrap();
    assert_eq!((r.status, error_code(&r).0.as_str()), (404, "not_found"));
    let r = http::get(port, "/link/ingest", &[]).unwrap();
    assert_eq!(
        (r.status, error_code(&r).0.as_str()),
        (405, "method_not_allowed")
    );
    assert_eq!(r.header("allow"), Some("POST"));

    // --- Restart wrangler on the same storage: the window, the cursor and dedup survive.
    let resend = h1.build(&[dispatch("MESSAGE_CREATE", Some("111"), r#"{"n":"late"}"#)]);
    assert_eq!(holder::post(port, resend.as_bytes()).json()["accepted"], 1);
    let head = head + 1;
    edge.restart();
    let from = (head - 3).to_string();
    let mut after = stream(
        port,
        &format!("/api/stream?last_event_id={from}"),
        &[("Authorization", &bearer)],
    );
    let (replayed, st) = preamble_from(&mut after, Some(head - 3));
    assert_contiguous(&replayed, head - 3);
    assert_eq!(replayed.len(), 3);
    assert!(replayed[2].data.contains(r#""n":"late""#));
    assert_eq!(st.id, Some(head));
    let dup = holder::post(port, resend.as_bytes()).json();
    assert_eq!(
        (dup["accepted"].as_u64(), dup["duplicates"].as_u64()),
        (Some(0), Some(1))
    );
    let next = h1.send(
        port,
        &[dispatch("MESSAGE_DELETE", Some("111"), r#"{"n":"after"}"#)],
    );
    assert_eq!(
        next["cursor"].as_u64(),
        Some(head + 1),
        "the cursor continues after a restart"
    );
    let e = after.next_event(T).unwrap();
    assert_eq!((e.id, e.event.as_str()), (Some(head + 1), "MESSAGE_DELETE"));
}

#[test]
fn window_gap_pings_link_status_and_slow_clients() {
    let heartbeat = 400u64;
    let edge = Edge::start(
        "window",
        &[
            ("PUBLIC_READ", "true"),
            ("REPLAY_MAX_EVENTS", "20"),
            ("SSE_HEARTBEAT_MS", "400"),
            ("LINK_QUIET_MS", "1500"),
            ("CLIENT_QUEUE_MAX", "8"),
        ],
    );
    let port = edge.port;
    let mut h = Holder::new("window-epoch");
    // One batch of 50: more rows than one statement may bind (a Durable Object's SQLite takes at
    // most 100 bound parameters), as after a long RESUME replay.
    let batch: Vec<_> = (0..50)
        .map(|i| dispatch("MESSAGE_CREATE", Some("1"), &format!(r#"{{"i":{i}}}"#)))
        .collect();
    h.send(port, &batch);
    // Cursor 1 is the link-up status, 2..=51 the dispatches; the window keeps 32..=51.

    // --- A cursor older than the window: a gap, then what is left, then live.
    let mut c = stream(port, "/api/stream?last_event_id=5", &[]);
    assert_eq!(c.next_item(T), Some(Item::Retry(500)));
    let gap = c.next_event(T).unwrap();
    assert_eq!(gap.event, "gap");
    let g = gap.json();
    assert_eq!(g["reason"], "replay_window");
    assert_eq!(
        (
            g["after"].as_u64(),
            g["before"].as_u64(),
            g["missing"].as_u64()
        ),
        (Some(5), Some(32), Some(26))
    );
    assert_eq!(gap.id, Some(31), "Last-Event-ID moves past the hole");
    let rest = c.events_until(T, |e| e.event == "status");
    assert_contiguous(&rest[..rest.len() - 1], 31);
    assert_eq!(rest.len(), 21);
    assert_eq!(rest.last().unwrap().id, Some(51));
    let last_ingest = Instant::now();

    // --- Pings at least every SSE_HEARTBEAT_MS on an idle stream; then the link goes quiet.
    let mut last = Instant::now();
    let mut pings = 0;
    let mut longest = Duration::ZERO;
    let down = loop {
        let (item, at) = c
            .next_timed(Duration::from_millis(heartbeat * 3))
            .expect("the stream went silent for 3 heartbeats");
        longest = longest.max(at - last);
        last = at;
        match item {
            Item::Comment(t) if t == "ping" => pings += 1,
            Item::Event(e) if e.event == "status" => break e,
            other => panic!("unexpected {other:?}"),
        }
        assert!(
            last_ingest.elapsed() < Duration::from_secs(6),
            "no link-down status"
        );
    };
    assert!(pings >= 2, "{pings} pings");
    assert!(
        longest <= Duration::from_millis(heartbeat),
        "longest silence {longest:?}"
    );
    let s = down.json();
    assert_eq!(
        (s["link"].as_str(), s["gateway"].as_str()),
        (Some("down"), Some("ready"))
    );
    let quiet_for = last_ingest.elapsed();
    assert!(
        quiet_for >= Duration::from_millis(1400),
        "down too early: {quiet_for:?}"
    );
    assert_eq!(down.id, Some(52), "stored with its own cursor");
    // A keep-alive brings it back.
    h.keepalive(port);
    let up = c.next_event(T).unwrap();
    assert_eq!(
        (up.event.as_str(), up.json()["link"].as_str()),
        ("status", Some("up"))
    );

    // --- Events the holder had to drop become a `gap` in their place.
    let n = h.next_id;
    let envs = [
        envelope(n, &dispatch("MESSAGE_CREATE", Some("1"), r#"{"g":1}"#)),
        envelope(n + 4, &dispatch("MESSAGE_CREATE", Some("1"), r#"{"g":2}"#)),
    ];
    let gaps = format!(
        r#","gaps":[{{"from_id":{},"to_id":{},"reason":"buffer_full"}}]"#,
        n + 1,
        n + 3
    );
    h.next_id = n + 5;
    let r = holder::post(
        port,
        batch_body(&h.epoch, 99, "ready", &envs, &gaps).as_bytes(),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let got = c.events_until(T, |e| e.data.contains(r#""g":2"#));
    let names: Vec<&str> = got.iter().map(|e| e.event.as_str()).collect();
    assert_eq!(names, ["MESSAGE_CREATE", "gap", "MESSAGE_CREATE"]);
    let g = got[1].json();
    assert_eq!(
        (g["reason"].as_str(), g["missing"].as_u64()),
        (Some("holder_buffer"), Some(3))
    );
    assert_eq!(
        (g["after"].as_u64(), g["before"].as_u64()),
        (got[0].id, got[2].id)
    );
    drop(c);

    // --- A client that never reads does not delay the others, and is closed with a gap.
    let slow = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    {
        use std::io::Write;
        (&slow)
            .write_all(
                format!("GET /api/stream HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n").as_bytes(),
            )
            .unwrap();
    }
    let mut fast = stream(port, "/api/stream", &[]);
    let (_, st) = preamble(&mut fast);
    let start_cursor = st.id.unwrap();
    let pad = "y".repeat(60_000);
    let mut worst = Duration::ZERO;
    let mut closed_after = None;
    for i in 0..400u64 {
        let d = format!(r#"{{"i":{i},"pad":"{pad}"}}"#);
        let sent = Instant::now();
        let r = h.send(port, &[dispatch("MESSAGE_CREATE", Some("9"), &d)]);
        let want = r["cursor"].as_u64().unwrap();
        let e = fast
            .events_until(T, |e| e.id == Some(want))
            .into_iter()
            .filter(|e| e.event != "status")
            .count();
        assert!(e >= 1);
        worst = worst.max(sent.elapsed());
        if i % 20 == 19 {
            let m = metrics(port);
            if metric(&m, "edge_slow_clients_closed_total") >= 1.0 {
                closed_after = Some(i);
                break;
            }
        }
    }
    let closed_after = closed_after.expect("the never-reading client was never closed");
    assert!(
        worst < Duration::from_secs(1),
        "a fast client waited {worst:?}"
    );
    let m = metrics(port);
    assert!(metric(&m, "edge_events_dropped_total") >= 1.0);
    assert_eq!(
        metric(&m, "edge_clients_connected"),
        1.0,
        "only the fast client remains"
    );
    // The slow client's socket holds what was in flight, then the final gap, then the end.
    let slow_port_reader = {
        let mut c = SseClient::from_raw(slow);
        let mut events = Vec::new();
        while let Some(e) = c.next_event(Duration::from_secs(5)) {
            events.push(e);
        }
        assert!(c.closed, "the slow client's stream ends after the gap");
        events
    };
    let final_gap = slow_port_reader.last().expect("slow client got something");
    assert_eq!(final_gap.event, "gap");
    assert_eq!(final_gap.json()["reason"], "slow_client");
    let delivered: Vec<&Event> = slow_port_reader
        .iter()
        .filter(|e| e.event == "MESSAGE_CREATE")
        .collect();
    let last_delivered = delivered.last().and_then(|e| e.id).unwrap_or(start_cursor);
    assert_eq!(
        final_gap.id,
        Some(last_delivered),
        "resume from exactly what it got"
    );
    eprintln!(
        "slow client closed after {} batches; {} events reached it; worst fast delivery {worst:?}",
        closed_after + 1,
        delivered.len()
    );
}
