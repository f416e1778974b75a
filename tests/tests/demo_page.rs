//! The demo console in Chromium against the whole running stack: discord-sim → the real holder
//! binary → `wrangler dev` serving the page → the page's EventSource and command buttons. One
//! browser walks through the checks with the test, which plays the guild (tests/browser/
//! demo.mjs has the protocol): the feed shows the sim's messages, a message sent from the page
//! reaches the sim and comes back in the feed, a voice drop-out raises an alert, and a holder
//! killed and restarted shows Discord offline then ready with no duplicated or missing rows.
//! The sim seats the bot in three guilds: the guild picker lists them by name (as `/api/guilds`
//! does), switching to the second shows its voice snapshot and its messages and not the first
//! guild's, sends its commands to it, and the bot leaving it shows it removed; switching back
//! works. Screenshots go to target/artifacts/demo-*.png.

use discord_sim::config::demo::{ALICE, BOB, CAROL, GENERAL};
use discord_sim::config::{ChannelKind, GuildSeed};
use discord_sim::{Sim, SimConfig, SimEvent};
use e2e_tests::browser::PageScript;
use e2e_tests::edge::{Edge, JWT_SECRET, LINK_TOKEN};
use e2e_tests::http;
use e2e_tests::sse::{Event, Item, SseClient};
use e2e_tests::stack::HolderProc;
use e2e_tests::{free_port, repo_root};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(30);
/// An origin in the test edge's `ALLOWED_ORIGINS`.
const ORIGIN: &str = "http://127.0.0.1:9";

fn emit_messages(rt: &tokio::runtime::Runtime, sim: &Sim, tag: &str, n: usize) {
    emit_in(rt, sim, GENERAL, tag, n);
}

fn emit_in(rt: &tokio::runtime::Runtime, sim: &Sim, channel: u64, tag: &str, n: usize) {
    rt.block_on(async {
        for i in 0..n {
            sim.emit(SimEvent::MessageCreate {
                channel_id: channel,
                author_id: BOB,
                content: format!("{tag} {i}"),
            })
            .await;
        }
    });
}

fn channel_of(seed: &GuildSeed, kind: ChannelKind) -> u64 {
    seed.channels
        .iter()
        .find(|c| c.kind == kind)
        .expect("a channel of that kind")
        .id
}

/// A public (`PUBLIC_READ`) stream of `guild`, past its `retry:` and connect `status`.
fn observe(port: u16, guild: u64) -> SseClient {
    let mut c = SseClient::connect(port, &format!("/api/stream?guild={guild}"), &[])
        .expect("connect stream");
    assert_eq!(c.status, 200, "guild {guild}: {}", c.error_body);
    assert!(matches!(c.next_item(T), Some(Item::Retry(_))));
    let status = c.next_event(T).expect("connect status");
    assert_eq!(status.event, "status", "{status:?}");
    c
}

fn is_message(e: &Event, content: &str) -> bool {
    e.event == "MESSAGE_CREATE" && e.json()["d"]["content"] == content
}

/// `GET /api/guilds` as a reader from an allowed origin.
fn guild_list(port: u16) -> Value {
    let r = http::get(port, "/api/guilds", &[("Origin", ORIGIN)]).expect("GET /api/guilds");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("access-control-allow-origin"), Some(ORIGIN));
    assert_eq!(r.header("cache-control"), Some("no-store"));
    r.json()
}

fn listed(seeds: &[&GuildSeed]) -> Value {
    seeds
        .iter()
        .map(|g| json!({"guild_id": g.id.to_string(), "name": g.name, "availability": "available"}))
        .collect()
}

/// The page's picker as `(value, text, disabled, selected)`.
fn picker(state: &Value) -> Vec<(String, String, bool, bool)> {
    state["picker"]
        .as_array()
        .expect("picker")
        .iter()
        .map(|o| {
            (
                o["value"].as_str().unwrap().to_string(),
                o["text"].as_str().unwrap().to_string(),
                o["disabled"].as_bool().unwrap(),
                o["selected"].as_bool().unwrap(),
            )
        })
        .collect()
}

fn rows(state: &Value) -> Vec<String> {
    state["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect()
}

fn state_of(line: &str) -> Value {
    let json = line.split_once(' ').expect("a step with its state").1;
    serde_json::from_str(json).unwrap()
}

fn option(value: u64, text: &str, disabled: bool, selected: bool) -> (String, String, bool, bool) {
    (value.to_string(), text.to_string(), disabled, selected)
}

#[test]
fn demo_console_feed_commands_voice_and_holder_restart() {
    let config = SimConfig {
        heartbeat_interval: Duration::from_millis(1500),
        ..SimConfig::with_guilds(3)
    };
    let seeds = config.guilds.clone();
    let (first, second, third) = (&seeds[0], &seeds[1], &seeds[2]);
    assert_eq!(
        first.id,
        discord_sim::config::demo::GUILD_ID,
        "GUILD_ID's guild"
    );
    let second_text = channel_of(second, ChannelKind::Text);
    let second_voice = channel_of(second, ChannelKind::Voice);
    let (rt, sim) = e2e_tests::stack::start_sim_with(2, config);
    let holder_port = free_port();
    let holder_url = format!("http://127.0.0.1:{holder_port}");
    let edge = Edge::start(
        "demo",
        &[
            ("PUBLIC_READ", "true"),
            ("DEV_LOGIN", "true"),
            ("HOLDER_URL", &holder_url),
            ("VOICE_GRACE_MS", "1500"),
            ("LINK_QUIET_MS", "1500"),
            ("SSE_HEARTBEAT_MS", "1000"),
        ],
    );
    let mut holder = HolderProc::start("demo", holder_port, edge.port, &sim.api_url());

    let artifacts = repo_root().join("target").join("artifacts");
    std::fs::create_dir_all(&artifacts).unwrap();
    let profile = tempdir("demo-chromium");
    let edge_origin = format!("http://127.0.0.1:{}", edge.port);
    let general = GENERAL.to_string();
    let count = seeds.len().to_string();
    let (first_id, second_id) = (first.id.to_string(), second.id.to_string());
    let second_channel = second_text.to_string();
    let page = PageScript::start(
        "demo.mjs",
        &[
            edge_origin.as_ref(),
            general.as_ref(),
            profile.as_os_str(),
            artifacts.as_os_str(),
            count.as_ref(),
            first_id.as_ref(),
            second_id.as_ref(),
            second_channel.as_ref(),
        ],
    );
    let mut browser_saw = String::new();
    let expect = |step: &str| page.expect(step, || edge.log_tail());

    expect("LIVE");
    emit_messages(&rt, &sim, "sim says", 3);
    page.next();

    expect("FEED");
    page.next();

    expect("SENT");
    let sent = sim
        .rest_calls()
        .into_iter()
        .filter(|c| c.method == "POST" && c.body.contains("hello from the page"))
        .count();
    assert_eq!(sent, 1, "the page's message reached Discord once");
    // Alice leaves voice and does not come back: a drop-out after the grace period.
    rt.block_on(sim.emit(SimEvent::VoiceLeave { user_id: ALICE }));
    page.next();

    expect("DROPOUT");
    holder.kill();
    page.next();

    expect("OFFLINE");
    // Sent while no holder is connected: Discord replays them when the holder resumes.
    emit_messages(&rt, &sim, "while down", 3);
    holder.restart();
    emit_messages(&rt, &sim, "after restart", 5);
    page.next();

    let done = expect("DONE");
    browser_saw.push_str(&done);
    let state: serde_json::Value = serde_json::from_str(done.trim_start_matches("DONE ")).unwrap();
    assert_eq!(state["guild"], first_id, "the default guild is open");
    let ids: Vec<u64> = state["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect();
    assert!(
        ids.windows(2).all(|w| w[0] < w[1]),
        "cursors repeat or go back: {ids:?}"
    );
    let shown = rows(&state);
    for tag in ["sim says", "while down", "after restart"] {
        let n = if tag == "after restart" { 5 } else { 3 };
        for i in 0..n {
            let text = format!("bob: {tag} {i}");
            let count = shown.iter().filter(|r| **r == text).count();
            assert_eq!(count, 1, "{text:?} shown {count} times; rows: {shown:#?}");
        }
    }
    assert_eq!(
        shown
            .iter()
            .filter(|r| r.ends_with("hello from the page"))
            .count(),
        1
    );

    // The guilds a reader may open: the sim's three, by name, the first the default; a bad
    // token is refused even with PUBLIC_READ.
    assert_eq!(
        guild_list(edge.port),
        json!({"version": "1.0", "default": first_id, "guilds": listed(&[first, second, third])})
    );
    let bad = http::get(
        edge.port,
        "/api/guilds",
        &[("Authorization", "Bearer nope")],
    )
    .unwrap();
    assert_eq!(bad.status, 401, "{}", bad.text());
    page.next();

    let line = expect("GUILDS");
    browser_saw.push_str(&line);
    assert_eq!(
        picker(&state_of(&line)),
        [
            option(first.id, &first.name, false, true),
            option(second.id, &second.name, false, false),
            option(third.id, &third.name, false, false),
        ],
        "the picker lists every guild by name, the default selected"
    );
    // Someone joins the second guild's voice before the page switches (stored by its hub once the
    // observer sees it), so only that guild's /api/voice snapshot can show it.
    let carol = CAROL.to_string();
    let mut second_obs = observe(edge.port, second.id);
    rt.block_on(sim.emit(SimEvent::VoiceJoin {
        user_id: CAROL,
        channel_id: second_voice,
    }));
    second_obs.events_until(T, |e| {
        e.event == "voice.join" && e.json()["user_id"] == carol.as_str()
    });
    drop(second_obs);
    page.next();

    let line = expect("SWITCHED");
    browser_saw.push_str(&line);
    let state = state_of(&line);
    assert_eq!(state["guild"], second_id);
    assert_eq!(
        state["voiceGuild"], second_id,
        "the second guild's voice snapshot"
    );
    assert_eq!(
        state["voice"],
        json!([{"user": carol, "channel": format!("#{second_voice}")}]),
        "only the second guild's voice (Bob is in the first guild's Lounge)"
    );
    for r in rows(&state) {
        assert!(
            !r.contains("sim says") && !r.contains("after restart") && !r.contains("hello"),
            "a first-guild row after the switch: {r:?}"
        );
    }
    // A message in the first guild, delivered by the edge (a first-guild stream has it) before the
    // second guild's: the page, on the second guild now, must show the latter only.
    let mut first_obs = observe(edge.port, first.id);
    emit_messages(&rt, &sim, "first guild after switch", 1);
    first_obs.events_until(T, |e| is_message(e, "first guild after switch 0"));
    drop(first_obs);
    emit_in(&rt, &sim, second_text, "second guild", 3);
    page.next();

    let line = expect("SECOND");
    browser_saw.push_str(&line);
    let state = state_of(&line);
    let shown = rows(&state);
    for i in 0..3 {
        let text = format!("bob: second guild {i}");
        let n = shown.iter().filter(|r| **r == text).count();
        assert_eq!(n, 1, "{text:?} shown {n} times; rows: {shown:#?}");
    }
    assert!(
        !shown.iter().any(|r| r.contains("first guild after switch")),
        "the first guild's message reached the second guild's view: {shown:#?}"
    );
    let ids: Vec<u64> = state["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
    page.next();

    expect("SENT2");
    let to = |channel: u64| {
        sim.rest_calls()
            .into_iter()
            .filter(|c| {
                c.method == "POST"
                    && c.path == format!("/api/v10/channels/{channel}/messages")
                    && c.body.contains("hello guild two")
            })
            .count()
    };
    assert_eq!(
        to(second_text),
        1,
        "the command went to the second guild's channel"
    );
    assert_eq!(to(GENERAL), 0);
    // The bot leaves the guild the page shows.
    assert!(rt.block_on(sim.leave_guild(second.id)).is_some());
    page.next();

    let line = expect("REMOVED");
    browser_saw.push_str(&line);
    let state = state_of(&line);
    assert_eq!(
        (&state["discord"], &state["conn"]),
        (&json!("removed"), &json!("closed"))
    );
    let options = picker(&state);
    assert!(
        options.contains(&option(
            second.id,
            &format!("{} (removed)", second.name),
            true,
            true
        )),
        "{options:?}"
    );
    assert!(
        rows(&state).contains(&format!("the bot left {}: pick another guild", second.name)),
        "{state}"
    );
    // The registry (written in parallel with the guild's hub, which told the page) drops it too.
    // No event tells the test when that write is done: poll, bounded.
    let deadline = Instant::now() + T;
    loop {
        let list = guild_list(edge.port);
        if list["guilds"] == listed(&[first, third]) {
            break;
        }
        assert!(Instant::now() < deadline, "still listed: {list}");
        std::thread::sleep(Duration::from_millis(100));
    }
    page.next();

    expect("BACK");
    emit_messages(&rt, &sim, "first guild again", 1);
    page.next();

    let line = expect("END");
    browser_saw.push_str(&line);
    let state = state_of(&line);
    assert_eq!(state["guild"], first_id);
    let shown = rows(&state);
    assert_eq!(
        shown
            .iter()
            .filter(|r| *r == "bob: first guild again 0")
            .count(),
        1,
        "{shown:#?}"
    );
    assert!(
        !shown.iter().any(|r| r.contains("second guild")),
        "{shown:#?}"
    );
    assert_eq!(
        picker(&state),
        [
            option(first.id, &first.name, false, true),
            option(third.id, &third.name, false, false),
        ]
    );
    page.finish();
    // No secret reaches a log or anything the browser received.
    for (place, text) in [
        ("edge log", edge.log_text()),
        ("holder log", holder.log_text()),
        ("browser", browser_saw),
    ] {
        for secret in [LINK_TOKEN, JWT_SECRET, "sim-token"] {
            assert!(
                !text.contains(secret),
                "{place} contains the secret {secret:?}"
            );
        }
    }
    for shot in [
        "demo-feed.png",
        "demo-dropout.png",
        "demo-offline.png",
        "demo-back.png",
        "demo-guilds.png",
        "demo-second-guild.png",
        "demo-removed.png",
    ] {
        assert!(artifacts.join(shot).exists(), "no screenshot {shot}");
    }
    let _ = std::fs::remove_dir_all(profile);
}

fn tempdir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
