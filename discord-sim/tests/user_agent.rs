//! Discord's "User Agent" rule for the HTTP API: "Clients using the HTTP API must provide a valid
//! User Agent ... `DiscordBot ($url, $versionNumber)` ... Clients may append more information".
//! The sim refuses REST calls without one (400, a body naming User-Agent, counted) unless
//! `require_user_agent` is off, and records the User-Agent of every REST call and gateway
//! handshake (the gateway never requires one).

mod common;

use common::{http, ALL_INTENTS, USER_AGENT};
use discord_sim::SimConfig;

#[tokio::test]
async fn rest_without_a_discord_user_agent_is_refused_with_400_before_anything_else() {
    let sim = common::start_fast().await;
    let auth = "Bot sim-token";
    let cases: [(&str, &str); 5] = [
        ("", "/api/v10/gateway/bot"),
        ("reqwest/0.12", "/api/v10/gateway/bot"),
        (
            "DiscordBot (https://example.com)",
            "/api/v10/channels/1/messages",
        ),
        ("DiscordBot", "/api/v10/gateway"),
        ("Mozilla/5.0 DiscordBot (x, 1)", "/api/v10/gateway/bot"),
    ];
    for (ua, path) in cases {
        let r = http(
            sim.addr(),
            "GET",
            path,
            &[("authorization", auth), ("user-agent", ua)],
            None,
        )
        .await;
        assert_eq!(r.status, 400, "{ua:?} on {path}: {}", r.body);
        let body = r.json();
        assert!(
            body["message"].as_str().unwrap().contains("User-Agent"),
            "{body}"
        );
        assert_eq!(body["code"], 0);
    }
    // Checked before the token: a wrong token without a User-Agent is still a 400.
    let r = http(
        sim.addr(),
        "GET",
        "/api/v10/gateway/bot",
        &[("authorization", "Bot wrong"), ("user-agent", "")],
        None,
    )
    .await;
    assert_eq!(r.status, 400);
    assert_eq!(sim.stats().rest_bad_user_agent, 6);

    // The documented form, with or without text after it, passes.
    for ua in [
        USER_AGENT,
        "DiscordBot (https://github.com/x/y, 2.0.1) extra/1 (linux)",
    ] {
        let r = http(
            sim.addr(),
            "GET",
            "/api/v10/gateway/bot",
            &[("authorization", auth), ("user-agent", ua)],
            None,
        )
        .await;
        assert_eq!(r.status, 200, "{ua}: {}", r.body);
    }
    let calls = sim.rest_calls();
    assert_eq!(calls.len(), 8);
    assert_eq!(calls[0].user_agent, None);
    assert_eq!(calls[1].user_agent.as_deref(), Some("reqwest/0.12"));
    assert_eq!(calls[0].status, 400);
    assert_eq!(calls[6].user_agent.as_deref(), Some(USER_AGENT));
    assert_eq!(calls[6].status, 200);
    // The control API is not Discord's: no User-Agent needed.
    let r = http(
        sim.addr(),
        "GET",
        "/_sim/stats",
        &[("user-agent", "")],
        None,
    )
    .await;
    assert_eq!(r.status, 200);
}

#[tokio::test]
async fn the_requirement_can_be_switched_off() {
    let sim = common::start(SimConfig {
        require_user_agent: false,
        ..common::fast_config()
    })
    .await;
    let r = http(
        sim.addr(),
        "GET",
        "/api/v10/gateway/bot",
        &[("authorization", "Bot sim-token"), ("user-agent", "")],
        None,
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(sim.stats().rest_bad_user_agent, 0);
    assert!(
        SimConfig::default().require_user_agent,
        "required by default"
    );
}

#[tokio::test]
async fn gateway_handshakes_record_their_user_agent_and_need_none() {
    let sim = common::start_fast().await;
    let url = format!("{}/?v=10&encoding=json", sim.gateway_url());
    let mut with = common::Raw::connect_with(
        &url,
        false,
        &[("user-agent", "DiscordBot (https://example.com, 1.2.3)")],
    )
    .await;
    with.handshake("sim-token", ALL_INTENTS).await;
    let mut without = common::Raw::connect(&sim.gateway_url(), false).await;
    without.handshake("sim-token", ALL_INTENTS).await;
    let conns = sim.connections();
    assert_eq!(
        conns[0].user_agent.as_deref(),
        Some("DiscordBot (https://example.com, 1.2.3)")
    );
    assert_eq!(
        conns[1].user_agent, None,
        "tungstenite sends none; still served"
    );
    let r = http(sim.addr(), "GET", "/_sim/records/connections", &[], None).await;
    assert_eq!(
        r.json()[0]["user_agent"],
        "DiscordBot (https://example.com, 1.2.3)"
    );
}
