//! REST behaviour provoked with a raw HTTP client: auth, Discord's error bodies, per-route and
//! global rate limits with their headers, nonce idempotency, the dispatches each call emits, and
//! the REST faults (slow answers, 429 storms, revoked token).

mod common;

use std::time::{Duration, Instant};

use common::{http, rest, Raw, ALL_INTENTS, WAIT};
use discord_sim::config::demo;
use discord_sim::{Fault, RateLimitScope, RestLimits, RouteLimit, SimConfig, SimEvent};
use serde_json::json;
use tokio::time::timeout;

fn messages_path(channel: u64) -> String {
    format!("/channels/{channel}/messages")
}

#[tokio::test]
async fn missing_or_wrong_token_is_401_with_discords_body() {
    let sim = common::start_fast().await;
    let path = format!("/api/v10{}", messages_path(demo::GENERAL));
    let body = Some(r#"{"content":"x"}"#);
    for headers in [
        vec![],
        vec![("authorization", "Bot wrong")],
        vec![("authorization", "sim-token")],
    ] {
        let r = http(sim.addr(), "POST", &path, &headers, body).await;
        assert_eq!(r.status, 401);
        assert_eq!(r.json(), json!({"message": "401: Unauthorized", "code": 0}));
    }
    let r = http(sim.addr(), "GET", "/api/v10/gateway/bot", &[], None).await;
    assert_eq!(r.status, 401);
    // GET /gateway needs no auth.
    let r = http(sim.addr(), "GET", "/api/v10/gateway", &[], None).await;
    assert_eq!(r.json()["url"], sim.gateway_url());
}

#[tokio::test]
async fn unknown_channel_message_route_and_bad_bodies() {
    let sim = common::start_fast().await;
    let r = rest(&sim, "POST", &messages_path(42), Some(r#"{"content":"x"}"#)).await;
    assert_eq!(r.status, 404);
    assert_eq!(
        r.json(),
        json!({"message": "Unknown Channel", "code": 10003})
    );

    let r = rest(&sim, "GET", "/nope", None).await;
    assert_eq!((r.status, r.json()["code"].as_u64()), (404, Some(0)));

    let long = "x".repeat(2001);
    let r = rest(
        &sim,
        "POST",
        &messages_path(demo::GENERAL),
        Some(&json!({"content": long}).to_string()),
    )
    .await;
    assert_eq!(r.status, 400);
    let v = r.json();
    assert_eq!(v["code"], 50035);
    assert_eq!(
        v["errors"]["content"]["_errors"][0]["code"],
        "BASE_TYPE_MAX_LENGTH"
    );

    // Exactly 2000 characters (multi-byte) is fine.
    let ok = "é".repeat(2000);
    let r = rest(
        &sim,
        "POST",
        &messages_path(demo::GENERAL),
        Some(&json!({"content": ok}).to_string()),
    )
    .await;
    assert_eq!(r.status, 200);

    let r = rest(
        &sim,
        "POST",
        &messages_path(demo::GENERAL),
        Some(&json!({"content": "x", "nonce": "n".repeat(26)}).to_string()),
    )
    .await;
    assert_eq!(r.status, 400);
    assert_eq!(
        r.json()["errors"]["nonce"]["_errors"][0]["code"],
        "BASE_TYPE_MAX_LENGTH"
    );

    let r = rest(&sim, "POST", &messages_path(demo::GENERAL), Some("{nope")).await;
    assert_eq!((r.status, r.json()["code"].as_u64()), (400, Some(50109)));

    let r = rest(&sim, "POST", &messages_path(demo::GENERAL), Some("{}")).await;
    assert_eq!((r.status, r.json()["code"].as_u64()), (400, Some(50006)));

    let r = rest(&sim, "POST", "/channels/abc/messages", Some("{}")).await;
    assert_eq!((r.status, r.json()["code"].as_u64()), (400, Some(50035)));

    let r = rest(
        &sim,
        "PUT",
        &format!(
            "/channels/{}/messages/123/reactions/%F0%9F%91%8D/@me",
            demo::GENERAL
        ),
        None,
    )
    .await;
    assert_eq!((r.status, r.json()["code"].as_u64()), (404, Some(10008)));
}

#[tokio::test]
async fn send_reaction_typing_emit_dispatches_and_record_traceparent() {
    let sim = common::start_fast().await;
    let mut raw = Raw::connect(&sim.gateway_url(), false).await;
    raw.handshake("sim-token", ALL_INTENTS).await;
    let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let auth = "Bot sim-token";
    let r = http(
        sim.addr(),
        "POST",
        &format!("/api/v10{}", messages_path(demo::GENERAL)),
        &[("authorization", auth), ("traceparent", tp)],
        Some(r#"{"content":"hi from rest","nonce":"abc"}"#),
    )
    .await;
    assert_eq!(r.status, 200);
    let msg = r.json();
    assert_eq!(msg["content"], "hi from rest");
    assert_eq!(msg["nonce"], "abc");
    assert_eq!(r.header("x-ratelimit-limit"), Some("5"));
    assert_eq!(r.header("x-ratelimit-remaining"), Some("4"));
    assert!(r.header("x-ratelimit-bucket").is_some());
    assert!(r.header("x-ratelimit-reset").is_some());
    assert!(r.header("x-ratelimit-reset-after").is_some());
    let d = raw.dispatch().await;
    assert_eq!(d["t"], "MESSAGE_CREATE");
    assert_eq!(d["d"]["id"], msg["id"]);
    assert_eq!(d["d"]["nonce"], "abc");
    let call = &sim.rest_calls()[0];
    assert_eq!(call.traceparent.as_deref(), Some(tp));
    assert_eq!(call.authorization.as_deref(), Some(auth));
    assert!(call.body.contains("hi from rest"));

    let mid = msg["id"].as_str().unwrap();
    let r = rest(
        &sim,
        "PUT",
        &format!(
            "/channels/{}/messages/{mid}/reactions/%F0%9F%91%8D/@me",
            demo::GENERAL
        ),
        None,
    )
    .await;
    assert_eq!(r.status, 204);
    let d = raw.dispatch().await;
    assert_eq!(d["t"], "MESSAGE_REACTION_ADD");
    assert_eq!(d["d"]["emoji"]["name"], "👍");
    assert_eq!(d["d"]["user_id"], demo::BOT.to_string());

    let r = rest(
        &sim,
        "POST",
        &format!("/channels/{}/typing", demo::GENERAL),
        None,
    )
    .await;
    assert_eq!(r.status, 204);
    assert_eq!(raw.dispatch().await["t"], "TYPING_START");
}

#[tokio::test]
async fn enforce_nonce_returns_the_first_message_and_emits_once() {
    let sim = common::start_fast().await;
    let mut raw = Raw::connect(&sim.gateway_url(), false).await;
    raw.handshake("sim-token", ALL_INTENTS).await;
    let body = r#"{"content":"once","nonce":"retry-1","enforce_nonce":true}"#;
    let a = rest(&sim, "POST", &messages_path(demo::GENERAL), Some(body))
        .await
        .json();
    let b = rest(&sim, "POST", &messages_path(demo::GENERAL), Some(body))
        .await
        .json();
    assert_eq!(a["id"], b["id"]);
    // Without enforce_nonce the same nonce makes a new message.
    let c = rest(
        &sim,
        "POST",
        &messages_path(demo::GENERAL),
        Some(r#"{"content":"twice","nonce":"retry-1"}"#),
    )
    .await
    .json();
    assert_ne!(a["id"], c["id"]);
    let first = raw.dispatch().await;
    assert_eq!(first["d"]["id"], a["id"]);
    let second = raw.dispatch().await;
    assert_eq!(second["d"]["id"], c["id"], "the repeat emitted nothing");
    let creates = sim
        .emitted()
        .into_iter()
        .filter(|e| e.t == "MESSAGE_CREATE")
        .count();
    assert_eq!(creates, 2);
}

#[tokio::test]
async fn per_channel_bucket_429_with_headers_and_body() {
    let sim = common::start_fast().await;
    for i in 0..5 {
        let r = rest(
            &sim,
            "POST",
            &messages_path(demo::GENERAL),
            Some(&json!({"content": format!("m{i}")}).to_string()),
        )
        .await;
        assert_eq!(r.status, 200);
        assert_eq!(
            r.header("x-ratelimit-remaining"),
            Some((4 - i).to_string().as_str())
        );
    }
    let r = rest(
        &sim,
        "POST",
        &messages_path(demo::GENERAL),
        Some(r#"{"content":"6"}"#),
    )
    .await;
    assert_eq!(r.status, 429);
    assert_eq!(r.header("x-ratelimit-scope"), Some("user"));
    assert_eq!(r.header("x-ratelimit-remaining"), Some("0"));
    assert_eq!(r.header("x-ratelimit-limit"), Some("5"));
    assert!(r.header("x-ratelimit-global").is_none());
    let retry: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=5).contains(&retry));
    let reset_after: f64 = r
        .header("x-ratelimit-reset-after")
        .unwrap()
        .parse()
        .unwrap();
    assert!(reset_after > 0.0 && reset_after <= 5.0);
    let v = r.json();
    assert_eq!(v["message"], "You are being rate limited.");
    assert_eq!(v["global"], false);
    assert!(v["retry_after"].as_f64().unwrap() > 0.0);
    // The bucket is per channel (major parameter): another channel is fine.
    let r = rest(
        &sim,
        "POST",
        &messages_path(demo::RANDOM),
        Some(r#"{"content":"ok"}"#),
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(sim.stats().rest_429s, 1);
}

#[tokio::test]
async fn bucket_resets_after_its_window() {
    let sim = common::start(SimConfig {
        rest: RestLimits {
            message_send: RouteLimit::new(1, Duration::from_millis(300)),
            ..RestLimits::default()
        },
        ..SimConfig::default()
    })
    .await;
    let path = messages_path(demo::GENERAL);
    let send = || rest(&sim, "POST", &path, Some(r#"{"content":"x"}"#));
    assert_eq!(send().await.status, 200);
    let limited = send().await;
    assert_eq!(limited.status, 429);
    let wait: f64 = limited
        .header("x-ratelimit-reset-after")
        .unwrap()
        .parse()
        .unwrap();
    // The condition under test is the window elapsing.
    tokio::time::sleep(Duration::from_secs_f64(wait + 0.05)).await;
    assert_eq!(send().await.status, 200);
}

#[tokio::test]
async fn global_limit_is_429_global() {
    let sim = common::start(SimConfig {
        rest: RestLimits {
            global_per_sec: 50,
            typing: RouteLimit::new(1000, Duration::from_secs(5)),
            ..RestLimits::default()
        },
        ..SimConfig::default()
    })
    .await;
    let path = format!("/channels/{}/typing", demo::GENERAL);
    let mut statuses = Vec::new();
    let start = Instant::now();
    for _ in 0..60 {
        statuses.push(rest(&sim, "POST", &path, None).await);
    }
    let elapsed = start.elapsed();
    if elapsed < Duration::from_millis(900) {
        // All 60 fell in one second: exactly 50 pass.
        let ok = statuses.iter().filter(|r| r.status == 204).count();
        assert_eq!(ok, 50, "60 calls in {elapsed:?}");
    }
    let limited = statuses
        .iter()
        .find(|r| r.status == 429)
        .expect("a global 429");
    assert_eq!(limited.header("x-ratelimit-global"), Some("true"));
    assert_eq!(limited.header("x-ratelimit-scope"), Some("global"));
    assert!(limited.header("retry-after").is_some());
    assert_eq!(limited.json()["global"], true);
}

#[tokio::test]
async fn storm_slow_rest_and_revoked_token() {
    let sim = common::start_fast().await;
    sim.fault(Fault::RateLimitStorm {
        count: 2,
        scope: RateLimitScope::Shared,
    })
    .await;
    let path = messages_path(demo::GENERAL);
    for _ in 0..2 {
        let r = rest(&sim, "POST", &path, Some(r#"{"content":"x"}"#)).await;
        assert_eq!(r.status, 429);
        assert_eq!(r.header("x-ratelimit-scope"), Some("shared"));
        assert!(r.header("x-ratelimit-bucket").is_some());
    }
    assert_eq!(
        rest(&sim, "POST", &path, Some(r#"{"content":"x"}"#))
            .await
            .status,
        200
    );

    sim.fault(Fault::RateLimitStorm {
        count: 1,
        scope: RateLimitScope::Global,
    })
    .await;
    let r = rest(&sim, "POST", &path, Some(r#"{"content":"x"}"#)).await;
    assert_eq!(r.header("x-ratelimit-global"), Some("true"));

    sim.fault(Fault::SlowRest(Duration::from_millis(300))).await;
    let t = Instant::now();
    assert_eq!(rest(&sim, "GET", "/gateway/bot", None).await.status, 200);
    assert!(t.elapsed() >= Duration::from_millis(300));
    sim.fault(Fault::SlowRest(Duration::ZERO)).await;

    sim.fault(Fault::RevokeToken(true)).await;
    assert_eq!(
        rest(&sim, "POST", &path, Some(r#"{"content":"x"}"#))
            .await
            .status,
        401
    );
    let mut raw = Raw::connect(&sim.gateway_url(), false).await;
    raw.hello().await;
    raw.identify("sim-token", ALL_INTENTS).await;
    assert_eq!(raw.close_code().await, Some(4004));
    sim.fault(Fault::RevokeToken(false)).await;
    assert_eq!(
        rest(&sim, "POST", &path, Some(r#"{"content":"x"}"#))
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn reaction_to_a_scripted_message_and_unknown_emoji() {
    // Discord allows one reaction per 250 ms per channel; loosen it so the errors show.
    let sim = common::start(SimConfig {
        rest: RestLimits {
            reaction_add: RouteLimit::new(10, Duration::from_secs(1)),
            ..RestLimits::default()
        },
        ..SimConfig::default()
    })
    .await;
    let m = sim
        .emit(SimEvent::MessageCreate {
            channel_id: demo::GENERAL,
            author_id: demo::ALICE,
            content: "react to me".into(),
        })
        .await;
    let id = serde_json::from_str::<serde_json::Value>(&m.d).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let base = format!("/channels/{}/messages/{id}/reactions", demo::GENERAL);
    let r = rest(&sim, "PUT", &format!("{base}/%E2%9D%A4/@me"), None).await;
    assert_eq!(r.status, 204);
    let r = rest(&sim, "PUT", &format!("{base}/custom%3A123/@me"), None).await;
    assert_eq!((r.status, r.json()["code"].as_u64()), (400, Some(10014)));
    // Wrong channel for that message.
    let r = rest(
        &sim,
        "PUT",
        &format!(
            "/channels/{}/messages/{id}/reactions/%E2%9D%A4/@me",
            demo::RANDOM
        ),
        None,
    )
    .await;
    assert_eq!(r.status, 404);
    timeout(WAIT, sim.wait_for(|s| s.rest_calls == 3))
        .await
        .unwrap();
}

#[tokio::test]
async fn reactions_are_limited_to_one_per_quarter_second_per_channel() {
    let sim = common::start_fast().await;
    let m = sim
        .emit(SimEvent::MessageCreate {
            channel_id: demo::GENERAL,
            author_id: demo::ALICE,
            content: "react".into(),
        })
        .await;
    let id = serde_json::from_str::<serde_json::Value>(&m.d).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let path = format!(
        "/channels/{}/messages/{id}/reactions/%E2%9D%A4/@me",
        demo::GENERAL
    );
    assert_eq!(rest(&sim, "PUT", &path, None).await.status, 204);
    let r = rest(&sim, "PUT", &path, None).await;
    assert_eq!(r.status, 429);
    assert_eq!(r.header("x-ratelimit-limit"), Some("1"));
}
