//! End-to-end: one bot in several guilds over several shards, through the real holder binary(ies),
//! the real edge under `wrangler dev` and an in-process discord-sim that shards like Discord.
//!
//! - One holder, three guilds on four shards: each guild's events exactly once, in order, on its
//!   own `?guild=` stream and no other, through faults on one shard; the bot leaving a guild
//!   (final `status`, the stream closes, 404 after), joining a new one (it streams with no edge
//!   restart), a guild outage and its recovery, an unknown guild's 404.
//! - Two holders (`0-1/4` and `2-3/4`) sharing the edge's IDENTIFY queue: no bucket ever sees two
//!   IDENTIFYs within 5 s across both; each guild's commands go through the holder of its shard;
//!   SIGKILL one: its guilds show Discord offline and get 503 for commands, the other's don't
//!   notice; restarted, it RESUMEs and its guilds' streams get everything once.

use discord_sim::config::{guild_id_on_shard, shard_of, ChannelKind, GuildSeed};
use discord_sim::{Fault, Sim, SimConfig, SimEvent};
use e2e_tests::edge::{Edge, JWT_SECRET};
use e2e_tests::http;
use e2e_tests::sse::{Event, Item, SseClient};
use e2e_tests::stack::HolderProc;
use e2e_tests::{free_port, now_ms};
use std::collections::HashMap;
use std::time::Duration;

const T: Duration = Duration::from_secs(30);

fn token(sub: &str, scope: &str) -> String {
    let exp = now_ms() / 1000 + 3600;
    edge_worker::jwt::sign(
        &format!(r#"{{"sub":"{sub}","exp":{exp},"scope":"{scope}"}}"#),
        JWT_SECRET.as_bytes(),
    )
}

/// A stream of `guild`, past its `retry:` and the connect `status` (returned).
fn stream(port: u16, guild: u64, auth: &str) -> (SseClient, Event) {
    let bearer = format!("Bearer {auth}");
    let mut c = SseClient::connect(
        port,
        &format!("/api/stream?guild={guild}"),
        &[("Authorization", &bearer)],
    )
    .expect("connect stream");
    assert_eq!(c.status, 200, "guild {guild}: {}", c.error_body);
    match c.next_item(T) {
        Some(Item::Retry(_)) => {}
        other => panic!("expected retry first, got {other:?}"),
    }
    let status = c.next_event(T).expect("connect status");
    assert_eq!(status.event, "status", "{status:?}");
    (c, status)
}

fn text_channel(seed: &GuildSeed) -> u64 {
    seed.channels
        .iter()
        .find(|c| c.kind == ChannelKind::Text)
        .expect("a text channel")
        .id
}

fn emit(rt: &tokio::runtime::Runtime, sim: &Sim, channel: u64, content: &str) {
    rt.block_on(sim.emit(SimEvent::MessageCreate {
        channel_id: channel,
        author_id: discord_sim::config::demo::ALICE,
        content: content.to_string(),
    }));
}

/// The MESSAGE_CREATE contents on `c` until one equals `last` (included).
fn contents_until(c: &mut SseClient, last: &str) -> Vec<(String, String)> {
    c.events_until(T, |e| {
        e.event == "MESSAGE_CREATE" && e.json()["d"]["content"] == last
    })
    .into_iter()
    .filter(|e| e.event == "MESSAGE_CREATE")
    .map(|e| {
        let v = e.json();
        (
            v["guild_id"].as_str().unwrap_or_default().to_string(),
            v["d"]["content"].as_str().unwrap_or_default().to_string(),
        )
    })
    .collect()
}

fn not_found(port: u16, guild: u64, auth: &str) -> serde_json::Value {
    let bearer = format!("Bearer {auth}");
    let r = http::get(
        port,
        &format!("/api/stream?guild={guild}"),
        &[("Authorization", &bearer)],
    )
    .expect("GET stream");
    assert_eq!(r.status, 404, "guild {guild}: {}", r.text());
    let v = r.json();
    assert_eq!(v["error"]["code"], "not_found", "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains(&guild.to_string()),
        "the 404 names the guild: {v}"
    );
    v
}

#[test]
fn three_guilds_on_four_shards_one_holder() {
    let (rt, sim) = e2e_tests::stack::start_sim_with(
        1,
        SimConfig {
            heartbeat_interval: Duration::from_millis(1500),
            recommended_shards: 4,
            max_concurrency: 2,
            ..SimConfig::with_guilds(3)
        },
    );
    let seeds = sim.config().guilds.clone();
    let _ = e2e_tests::stack::holder_binary();
    let holder_port = free_port();
    let holder_url = format!("http://127.0.0.1:{holder_port}");
    let first = seeds[0].id.to_string();
    let edge = Edge::start(
        "many-guilds",
        &[("HOLDER_URL", &holder_url), ("GUILD_ID", &first)],
    );
    let port = edge.port;
    let _holder = HolderProc::start("many-guilds", holder_port, port, &sim.api_url());
    let reader = token("reader", "read");

    // Every guild streams; each stream's connect status says the guild is available.
    let mut streams: Vec<SseClient> = Vec::new();
    for seed in &seeds {
        let (c, status) = stream(port, seed.id, &reader);
        assert_eq!(status.json()["guild"], "available", "{status:?}");
        streams.push(c);
    }
    not_found(port, guild_id_on_shard(1, 4, 50), &reader);

    // Interleaved traffic, and a fault on the first guild's shard halfway through.
    let victim = shard_of(seeds[0].id, 4);
    for i in 0..30 {
        if i == 10 {
            rt.block_on(sim.fault(Fault::Reconnect.on_shard(victim)));
        }
        if i == 20 {
            rt.block_on(sim.fault(Fault::DropTcp.on_shard(victim)));
        }
        for seed in &seeds {
            emit(
                &rt,
                &sim,
                text_channel(seed),
                &format!("m{i} of {}", seed.id),
            );
        }
    }
    for (seed, c) in seeds.iter().zip(&mut streams) {
        let got = contents_until(c, &format!("m29 of {}", seed.id));
        let want: Vec<(String, String)> = (0..30)
            .map(|i| (seed.id.to_string(), format!("m{i} of {}", seed.id)))
            .collect();
        assert_eq!(
            got, want,
            "guild {}: exactly its events, once, in order",
            seed.id
        );
    }

    // An outage of the second guild, then its recovery: its stream says so.
    let g1 = seeds[1].id;
    rt.block_on(sim.guild_outage(g1)).expect("in the guild");
    let down = streams[1].events_until(T, |e| {
        e.event == "status" && e.json()["guild"] == "unavailable"
    });
    assert_eq!(down.last().unwrap().json()["guild"], "unavailable");
    rt.block_on(sim.guild_recover(g1)).expect("in an outage");
    streams[1].events_until(T, |e| {
        e.event == "status" && e.json()["guild"] == "available"
    });

    // The bot leaves the third guild: a final status, the stream closes, and 404 after.
    let g2 = seeds[2].id;
    rt.block_on(sim.leave_guild(g2)).expect("a member");
    let last =
        streams[2].events_until(T, |e| e.event == "status" && e.json()["guild"] == "removed");
    assert_eq!(last.last().unwrap().json()["guild"], "removed");
    assert!(
        streams[2].next_event(Duration::from_secs(5)).is_none(),
        "the stream ends after the final status"
    );
    assert!(streams[2].closed, "closed by the edge");
    not_found(port, g2, &reader);

    // It joins a new guild on another shard: that guild streams at once, no edge restart.
    let new_id = guild_id_on_shard(u64::from(victim as u32 + 1) % 4, 4, 7);
    let seed = GuildSeed::generated(new_id, "Joined Later");
    assert!(rt.block_on(sim.join_guild(seed.clone())).is_some());
    // The registry learns the guild from its GUILD_CREATE (the ingest answers once it is
    // stored): until then the stream is a 404.
    let bearer = format!("Bearer {reader}");
    let deadline = std::time::Instant::now() + T;
    let mut joined = loop {
        let c = SseClient::connect(
            port,
            &format!("/api/stream?guild={new_id}"),
            &[("Authorization", &bearer)],
        )
        .expect("connect stream");
        if c.status == 200 {
            break c;
        }
        assert_eq!(c.status, 404, "{}", c.error_body);
        assert!(
            std::time::Instant::now() < deadline,
            "the new guild never streamed"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    emit(&rt, &sim, text_channel(&seed), "hello new guild");
    assert_eq!(
        contents_until(&mut joined, "hello new guild"),
        [(new_id.to_string(), "hello new guild".to_string())]
    );
    // Nothing of the new guild reached the others.
    for c in &mut streams[..2] {
        for e in c.drain_for(Duration::from_millis(500)) {
            assert_ne!(e.json()["guild_id"], new_id.to_string(), "{e:?}");
        }
    }
}

#[test]
fn two_holders_share_the_identify_queue_and_split_the_guilds() {
    // Four guilds, one per shard; buckets {0, 2} and {1, 3}: each bucket has one shard on each
    // holder, so only the edge's queue can keep their IDENTIFYs apart.
    let (rt, sim) = e2e_tests::stack::start_sim_with(
        1,
        SimConfig {
            heartbeat_interval: Duration::from_millis(1500),
            recommended_shards: 4,
            max_concurrency: 2,
            guilds: (0..4)
                .map(|k| {
                    GuildSeed::generated(guild_id_on_shard(k, 4, 0), &format!("Guild on shard {k}"))
                })
                .collect(),
            ..SimConfig::default()
        },
    );
    let seeds = sim.config().guilds.clone();
    let _ = e2e_tests::stack::holder_binary();
    let (port_a, port_b) = (free_port(), free_port());
    let first = seeds[0].id.to_string();
    let edge = Edge::start(
        "two-holders",
        &[
            // Nobody listens there: with registered holders, the default is never used.
            ("HOLDER_URL", "http://127.0.0.1:9"),
            ("GUILD_ID", &first),
            ("LINK_QUIET_MS", "2000"),
            ("HOLDER_REGISTER_MS", "500"),
        ],
    );
    let port = edge.port;
    let holder = |name: &str, hport: u16, range: &str| {
        let public = format!("http://127.0.0.1:{hport}");
        HolderProc::start_with(
            name,
            hport,
            port,
            &sim.api_url(),
            &[
                ("DISCORD_SHARDS", range),
                ("IDENTIFY_QUEUE", "edge"),
                ("HOLDER_PUBLIC_URL", &public),
                ("HOLDER_USER_AGENT_EXTRA", name),
            ],
        )
    };
    let mut a = holder("holder-a", port_a, "0-1/4");
    let _b = holder("holder-b", port_b, "2-3/4");

    let log = sim.identify_log();
    assert!(
        log.iter().all(|r| r.outcome == "ready"),
        "no IDENTIFY was refused: {log:?}"
    );
    assert_eq!(log.len(), 4, "{log:?}");
    for bucket in 0..2 {
        let times: Vec<u64> = log
            .iter()
            .filter(|r| r.bucket == bucket)
            .map(|r| r.at_us)
            .collect();
        assert_eq!(times.len(), 2, "{log:?}");
        assert!(
            times[1] - times[0] >= 5_000_000,
            "bucket {bucket}: two IDENTIFYs {} ms apart across the holders",
            (times[1] - times[0]) / 1000
        );
    }

    // Each guild's commands go through the holder of its shard.
    let writer = token("writer", "read write");
    let send = |guild: u64, channel: u64, content: &str| {
        let bearer = format!("Bearer {writer}");
        let body = format!(r#"{{"channel_id":"{channel}","content":"{content}"}}"#);
        http::request(
            port,
            "POST",
            &format!("/api/actions/send-message?guild={guild}"),
            &[
                ("Authorization", &bearer),
                ("Content-Type", "application/json"),
            ],
            body.as_bytes(),
        )
        .expect("POST send-message")
    };
    let by_holder = |content: &str| -> Option<String> {
        sim.rest_calls()
            .into_iter()
            .find(|c| c.method == "POST" && c.body.contains(content))
            .and_then(|c| c.user_agent)
    };
    for (k, seed) in seeds.iter().enumerate() {
        let content = format!("cmd for shard {k}");
        let r = send(seed.id, text_channel(seed), &content);
        assert!(matches!(r.status, 200 | 202), "{}", r.text());
        let deadline = std::time::Instant::now() + T;
        let ua = loop {
            if let Some(ua) = by_holder(&content) {
                break ua;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{content} never reached Discord"
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        let expected = if k < 2 { "holder-a" } else { "holder-b" };
        assert!(ua.ends_with(expected), "{content} went through {ua}");
    }

    // SIGKILL holder A: its guilds go offline and refuse commands; B's guilds don't notice.
    let reader = token("reader", "read");
    let mut streams: HashMap<u64, SseClient> = seeds
        .iter()
        .map(|s| (s.id, stream(port, s.id, &reader).0))
        .collect();
    a.kill();
    for seed in &seeds[..2] {
        let c = streams.get_mut(&seed.id).unwrap();
        c.events_until(T, |e| e.event == "status" && e.json()["link"] == "down");
        let r = send(seed.id, text_channel(seed), "while a is down");
        assert_eq!(r.status, 503, "{}", r.text());
        assert_eq!(r.json()["error"]["code"], "holder_unavailable");
        assert!(r.header("Retry-After").is_some());
    }
    for seed in &seeds[2..] {
        emit(&rt, &sim, text_channel(seed), "b still flows");
        let c = streams.get_mut(&seed.id).unwrap();
        let got = c.events_until(T, |e| e.event == "MESSAGE_CREATE");
        assert!(
            got.iter()
                .all(|e| !(e.event == "status" && e.json()["link"] == "down")),
            "B's guild saw the link down: {got:?}"
        );
        let r = send(seed.id, text_channel(seed), "b takes commands");
        assert!(matches!(r.status, 200 | 202), "{}", r.text());
    }
    // While A is down, its guilds get messages; Discord replays them on A's RESUME.
    for seed in &seeds[..2] {
        for i in 0..5 {
            emit(&rt, &sim, text_channel(seed), &format!("missed {i}"));
        }
    }
    let resumes = sim.stats().resumes;
    a.restart();
    let _ = rt.block_on(async {
        tokio::time::timeout(T, sim.wait_for(|s| s.resumes >= resumes + 2)).await
    });
    assert_eq!(
        sim.stats().identifies,
        4,
        "holder A resumed, never identified again"
    );
    for seed in &seeds[..2] {
        let c = streams.get_mut(&seed.id).unwrap();
        let got = contents_until(c, "missed 4");
        let want: Vec<(String, String)> = (0..5)
            .map(|i| (seed.id.to_string(), format!("missed {i}")))
            .collect();
        assert_eq!(
            got, want,
            "guild {}: everything once after the RESUME",
            seed.id
        );
    }
}
