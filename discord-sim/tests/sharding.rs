//! Sharding as Discord's "Sharding" docs describe it: each session gets READY with its shard's
//! guilds (unavailable) and `shard`, a GUILD_CREATE per guild of its shard, and only the events
//! of guilds with `(guild_id >> 22) % num_shards == shard_id`; events without a guild go to shard
//! 0; an invalid shard closes 4010, a shard holding too many guilds 4011; several sessions may
//! hold the same shard, or use another `num_shards`, at once.
//!
//! "Nothing else arrived" is checked without sleeping: after the events under test, a marker
//! dispatch is sent to each shard, and each client reads up to its marker.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::{guild_marker, guild_of, marker, ShardClient, ALL_INTENTS, WAIT};
use discord_sim::config::demo;
use discord_sim::{
    guild_id_on_shard, shard_of, GuildSeed, Sim, SimConfig, SimEvent, TrafficGuilds, TrafficSpec,
};
use serde_json::{json, Value};
use tokio::time::timeout;

const SHARDS: u64 = 4;

/// 8 guilds, recommended 4 shards (two guilds each).
async fn eight_guilds() -> Sim {
    common::start(SimConfig {
        guilds: (0..8).map(GuildSeed::numbered).collect(),
        recommended_shards: SHARDS as u32,
        ..common::fast_config()
    })
    .await
}

fn guild_ids(sim: &Sim) -> Vec<u64> {
    sim.config().guilds.iter().map(|g| g.id).collect()
}

fn ids_on(sim: &Sim, shard: u64, n: u64) -> Vec<u64> {
    let mut ids: Vec<u64> = guild_ids(sim)
        .into_iter()
        .filter(|g| shard_of(*g, n) == shard)
        .collect();
    ids.sort_unstable();
    ids
}

fn first_text_channel(sim: &Sim, guild_id: u64) -> u64 {
    let g = sim
        .config()
        .guilds
        .iter()
        .find(|g| g.id == guild_id)
        .unwrap();
    g.channels
        .iter()
        .find(|c| c.kind == discord_sim::ChannelKind::Text)
        .unwrap()
        .id
}

/// Reads dispatches up to the marker tagged `tag` and returns those before it.
async fn until_marker(c: &mut ShardClient, tag: &str) -> Vec<Value> {
    let mut got = vec![];
    loop {
        let d = c.raw.dispatch().await;
        if d["t"] == "SIM_MARKER" && d["d"]["tag"] == tag {
            return got;
        }
        got.push(d);
    }
}

/// Sends `tag` markers so that every shard of `clients` gets one.
async fn mark_every_shard(sim: &Sim, tag: &str, n: u64) {
    sim.emit(marker(tag)).await; // shard 0
    for shard in 1..n {
        let g = *ids_on(sim, shard, n)
            .first()
            .expect("a guild on every shard");
        sim.emit(guild_marker(tag, g)).await;
    }
}

async fn four_shards(sim: &Sim) -> Vec<ShardClient> {
    let mut out = vec![];
    for k in 0..SHARDS {
        out.push(ShardClient::connect(sim, k, SHARDS).await);
    }
    out
}

#[test]
fn guild_ids_land_on_the_chosen_shard() {
    for n in 1..=16 {
        let mut seen = BTreeSet::new();
        for k in 0..n {
            for nth in 0..5 {
                let id = guild_id_on_shard(k, n, nth);
                assert_eq!(shard_of(id, n), k, "shard {k} of {n}, nth {nth}");
                assert!(seen.insert(id), "ids are distinct for one shard count");
                // A real-looking snowflake: a timestamp after Discord's epoch, before now.
                let ms = (id >> 22) + discord_sim::clock::DISCORD_EPOCH_MS;
                assert!(ms > 1_600_000_000_000 && ms < discord_sim::clock::unix_micros() / 1000);
            }
        }
    }
    // `numbered` guilds spread round-robin over any shard count.
    let ids: Vec<u64> = (0..8).map(|i| GuildSeed::numbered(i).id).collect();
    assert_eq!(ids[0], demo::GUILD_ID);
    for n in [2u64, 4, 8] {
        let shards: BTreeSet<u64> = ids.iter().map(|g| shard_of(*g, n)).collect();
        assert_eq!(shards.len() as u64, n, "8 guilds cover all {n} shards");
    }
    let names: BTreeSet<String> = (0..8).map(|i| GuildSeed::numbered(i).name).collect();
    assert_eq!(names.len(), 8, "distinct names");
}

#[tokio::test]
async fn each_shard_gets_ready_and_guild_create_for_exactly_its_guilds() {
    let sim = eight_guilds().await;
    let clients = four_shards(&sim).await;
    let mut all = BTreeSet::new();
    for (k, c) in clients.iter().enumerate() {
        let k = k as u64;
        let expected = ids_on(&sim, k, SHARDS);
        assert_eq!(expected.len(), 2, "two guilds per shard");
        assert_eq!(c.ready["shard"], json!([k, SHARDS]));
        assert_eq!(c.ready_ids(), expected, "READY lists the shard's guilds");
        for g in c.ready["guilds"].as_array().unwrap() {
            assert_eq!(g["unavailable"], true, "READY's guilds start unavailable");
        }
        assert_eq!(
            c.created_ids(),
            expected,
            "one GUILD_CREATE per guild of the shard"
        );
        for g in &c.guilds {
            assert_eq!(g["d"]["unavailable"], false);
            assert!(!g["d"]["channels"].as_array().unwrap().is_empty());
        }
        all.extend(expected);
    }
    assert_eq!(all.len(), 8, "every guild is on exactly one shard");

    // Without `shard`, a session is [0, 1]: all guilds, and READY has no `shard` field.
    let mut raw = common::Raw::connect(&sim.gateway_url(), false).await;
    raw.hello().await;
    raw.identify("sim-token", ALL_INTENTS).await;
    let ready = raw.dispatch().await;
    assert!(ready["d"].get("shard").is_none(), "shard only if sent");
    assert_eq!(ready["d"]["guilds"].as_array().unwrap().len(), 8);
    for _ in 0..8 {
        assert_eq!(raw.dispatch().await["t"], "GUILD_CREATE");
    }
    let log = sim.identify_log();
    assert_eq!(log.len(), 5);
    assert!(log.iter().all(|r| r.outcome == "ready"));
    assert_eq!(
        log.iter()
            .map(|r| (r.shard, r.num_shards))
            .collect::<Vec<_>>(),
        vec![(0, 4), (1, 4), (2, 4), (3, 4), (0, 1)]
    );
    assert!(!log[4].shard_sent && log[0].shard_sent);
}

#[tokio::test]
async fn guild_events_rest_sends_and_guildless_events_reach_only_their_shard() {
    let sim = eight_guilds().await;
    let mut clients = four_shards(&sim).await;
    // A message in every guild, in guild order.
    for g in guild_ids(&sim) {
        let sent = sim
            .emit_all(SimEvent::MessageCreate {
                channel_id: first_text_channel(&sim, g),
                author_id: demo::ALICE,
                content: format!("in {g}"),
            })
            .await;
        assert_eq!(sent.len(), 1, "one session holds guild {g}'s shard");
    }
    // A REST send in a guild of shard 3, and a guildless USER_UPDATE (shard 0 only).
    let g3 = ids_on(&sim, 3, SHARDS)[0];
    let r = common::rest(
        &sim,
        "POST",
        &format!("/channels/{}/messages", first_text_channel(&sim, g3)),
        Some(r#"{"content":"from REST"}"#),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    sim.emit(SimEvent::Raw {
        t: "USER_UPDATE".into(),
        d: json!({"id": demo::BOT.to_string(), "username": "renamed"}),
        intent: 0,
    })
    .await;
    mark_every_shard(&sim, "end", SHARDS).await;
    for (k, c) in clients.iter_mut().enumerate() {
        let k = k as u64;
        let got = until_marker(c, "end").await;
        let expected = ids_on(&sim, k, SHARDS);
        let messages: Vec<u64> = got
            .iter()
            .filter(|d| d["t"] == "MESSAGE_CREATE" && d["d"]["content"] != "from REST")
            .map(|d| guild_of(d).unwrap())
            .collect();
        assert_eq!(
            messages, expected,
            "shard {k} gets its guilds' messages in order"
        );
        let rest_sent = got.iter().any(|d| d["d"]["content"] == "from REST");
        assert_eq!(
            rest_sent,
            k == 3,
            "the REST send's MESSAGE_CREATE is on shard 3 only"
        );
        let user_update = got.iter().any(|d| d["t"] == "USER_UPDATE");
        assert_eq!(user_update, k == 0, "events without a guild go to shard 0");
        // Sequence numbers stay per session: READY 1, 2 GUILD_CREATEs, then 4, 5, ...
        let seqs: Vec<u64> = got.iter().map(|d| d["s"].as_u64().unwrap()).collect();
        assert_eq!(seqs, (4..4 + seqs.len() as u64).collect::<Vec<_>>());
    }
}

#[tokio::test]
async fn invalid_shards_close_4010() {
    let sim = common::start(SimConfig {
        shard_count_multiple: Some(4),
        ..common::fast_config()
    })
    .await;
    for shard in [
        json!([4, 4]),
        json!([0, 0]),
        json!([5, 2]),
        json!(["a", 1]),
        json!([1]),
        json!("0,1"),
        json!([0, 2]),
    ] {
        let mut raw = common::Raw::connect(&sim.gateway_url(), false).await;
        raw.hello().await;
        let mut p = common::identify_payload("sim-token", ALL_INTENTS);
        p["d"]["shard"] = shard.clone();
        raw.send(p).await;
        assert_eq!(raw.close_code().await, Some(4010), "shard {shard}");
    }
    // A multiple of the large-bot shard count is fine.
    let c = ShardClient::connect(&sim, 7, 8).await;
    assert_eq!(c.ready["shard"], json!([7, 8]));
    let log = sim.identify_log();
    let outcomes: Vec<&str> = log.iter().map(|r| r.outcome.as_str()).collect();
    assert_eq!(&outcomes[..7], &["invalid_shard"; 7]);
    assert_eq!(outcomes[7], "ready");
    assert_eq!((log[0].shard, log[0].num_shards), (4, 4));
    assert_eq!((log[6].shard, log[6].num_shards), (0, 2));
    assert_eq!(sim.identifies(), 1);
    assert_eq!(sim.stats().identify_attempts, 8);
}

#[tokio::test]
async fn a_shard_with_too_many_guilds_closes_4011() {
    let sim = common::start(SimConfig {
        guilds: (0..8).map(GuildSeed::numbered).collect(),
        max_guilds_per_shard: 2,
        ..common::fast_config()
    })
    .await;
    for (shard, n) in [(0, 1), (1, 2)] {
        let mut raw = common::Raw::connect(&sim.gateway_url(), false).await;
        raw.hello().await;
        raw.send(common::identify_shard_payload(
            "sim-token",
            ALL_INTENTS,
            shard,
            n,
        ))
        .await;
        assert_eq!(
            raw.close_code().await,
            Some(4011),
            "[{shard}, {n}] holds > 2"
        );
    }
    // Four shards hold two guilds each: allowed.
    let clients = four_shards(&sim).await;
    assert!(clients.iter().all(|c| c.guilds.len() == 2));
    let outcomes: Vec<String> = sim.identify_log().into_iter().map(|r| r.outcome).collect();
    assert_eq!(&outcomes[..2], &["sharding_required", "sharding_required"]);
    assert_eq!(sim.stats().last_close_code, Some(4011));
    // A refused IDENTIFY uses no session start.
    let v = common::rest(&sim, "GET", "/gateway/bot", None).await.json();
    assert_eq!(v["session_start_limit"]["remaining"], 1000 - 4);
}

#[tokio::test]
async fn several_sessions_per_shard_and_another_shard_count_at_once() {
    let sim = eight_guilds().await;
    let mut a = ShardClient::connect(&sim, 1, 4).await;
    let mut b = ShardClient::connect(&sim, 1, 4).await;
    let mut half = ShardClient::connect(&sim, 1, 2).await;
    assert_eq!(a.created_ids(), b.created_ids());
    assert_eq!(half.created_ids(), ids_on(&sim, 1, 2));
    // On shard 1 of 4 (hence 1 of 2), and on shard 3 of 4 (also 1 of 2).
    let g1 = ids_on(&sim, 1, 4)[0];
    let g3 = ids_on(&sim, 3, 4)[0];
    for g in [g1, g3] {
        sim.emit(SimEvent::TypingStart {
            channel_id: first_text_channel(&sim, g),
            user_id: demo::BOB,
        })
        .await;
    }
    sim.emit(guild_marker("end", g1)).await;
    let typing = |got: &[Value]| -> Vec<u64> {
        got.iter()
            .filter(|d| d["t"] == "TYPING_START")
            .map(|d| guild_of(d).unwrap())
            .collect()
    };
    let got_a = until_marker(&mut a, "end").await;
    let got_b = until_marker(&mut b, "end").await;
    let got_half = until_marker(&mut half, "end").await;
    assert_eq!(typing(&got_a), vec![g1]);
    assert_eq!(typing(&got_b), vec![g1]);
    assert_eq!(
        typing(&got_half),
        vec![g1, g3],
        "[1, 2] routes by its own num_shards"
    );
    // Each session numbers its own dispatches: READY, its GUILD_CREATEs, the typing, the marker.
    let mut seqs: Vec<u64> = sim.sessions().iter().map(|s| s.seq).collect();
    seqs.sort_unstable();
    assert_eq!(seqs, vec![5, 5, 8]);
}

#[tokio::test]
async fn member_requests_and_voice_updates_for_another_shards_guild_are_ignored() {
    let sim = eight_guilds().await;
    let mut c = ShardClient::connect(&sim, 0, 4).await;
    let mine = ids_on(&sim, 0, 4)[0];
    let other = ids_on(&sim, 2, 4)[0];
    let voice_of = |g: u64| {
        sim.config()
            .guilds
            .iter()
            .find(|s| s.id == g)
            .unwrap()
            .channels
            .iter()
            .find(|c| c.kind == discord_sim::ChannelKind::Voice)
            .unwrap()
            .id
    };
    c.raw
        .send(json!({"op": 8, "d": {"guild_id": other.to_string(), "query": "", "limit": 0}}))
        .await;
    c.raw
        .send(json!({"op": 4, "d": {"guild_id": other.to_string(), "channel_id": voice_of(other).to_string(), "self_mute": false, "self_deaf": false}}))
        .await;
    timeout(WAIT, sim.wait_for(|s| s.commands_wrong_shard >= 2))
        .await
        .unwrap();
    c.raw
        .send(json!({"op": 8, "d": {"guild_id": mine.to_string(), "query": "", "limit": 0, "nonce": "mine"}}))
        .await;
    let chunk = c.raw.dispatch().await;
    assert_eq!(
        chunk["t"], "GUILD_MEMBERS_CHUNK",
        "nothing came for the other shard's guild"
    );
    assert_eq!(guild_of(&chunk), Some(mine));
    c.raw
        .send(json!({"op": 4, "d": {"guild_id": mine.to_string(), "channel_id": voice_of(mine).to_string(), "self_mute": false, "self_deaf": false}}))
        .await;
    let vs = c.raw.dispatch().await;
    assert_eq!(vs["t"], "VOICE_STATE_UPDATE");
    assert_eq!(guild_of(&vs), Some(mine));
    assert_eq!(sim.stats().commands_wrong_shard, 2);
}

#[tokio::test]
async fn traffic_round_robins_over_all_guilds_or_stays_in_one() {
    let sim = eight_guilds().await;
    let mut clients = four_shards(&sim).await;
    let spec = TrafficSpec {
        rate_per_sec: f64::INFINITY,
        max_events: Some(16),
        guilds: TrafficGuilds::All,
        ..TrafficSpec::steady(0.0, Duration::from_secs(30))
    };
    let report = timeout(WAIT, sim.traffic(spec)).await.unwrap();
    assert_eq!(report.sent, 16);
    let one = ids_on(&sim, 2, SHARDS)[1];
    let spec = TrafficSpec {
        rate_per_sec: f64::INFINITY,
        max_events: Some(3),
        guilds: TrafficGuilds::One(one),
        ..TrafficSpec::steady(0.0, Duration::from_secs(30))
    };
    timeout(WAIT, sim.traffic(spec)).await.unwrap();
    mark_every_shard(&sim, "end", SHARDS).await;
    for (k, c) in clients.iter_mut().enumerate() {
        let k = k as u64;
        let got = until_marker(c, "end").await;
        let mine = ids_on(&sim, k, SHARDS);
        let guilds: Vec<u64> = got.iter().map(|d| guild_of(d).unwrap()).collect();
        assert!(
            guilds.iter().all(|g| mine.contains(g)),
            "shard {k}: {guilds:?}"
        );
        let extra = if k == 2 { 3 } else { 0 };
        assert_eq!(guilds.len(), 4 + extra, "16 events over 8 guilds: 2 each");
        for g in &mine {
            let n = guilds.iter().filter(|x| *x == g).count();
            assert_eq!(n, 2 + if *g == one { 3 } else { 0 }, "guild {g}");
        }
    }
    // JSON forms of the option.
    let spec: TrafficSpec = serde_json::from_value(
        json!({"rate_per_sec": 1, "duration_ms": 1, "guilds": {"one": one.to_string()}}),
    )
    .unwrap();
    assert_eq!(spec.guilds, TrafficGuilds::One(one));
    let spec: TrafficSpec =
        serde_json::from_value(json!({"rate_per_sec": 1, "duration_ms": 1, "guilds": "all"}))
            .unwrap();
    assert_eq!(spec.guilds, TrafficGuilds::All);
    let spec: TrafficSpec =
        serde_json::from_value(json!({"rate_per_sec": 1, "duration_ms": 1})).unwrap();
    assert_eq!(
        spec.guilds,
        TrafficGuilds::First,
        "the default stays the first guild"
    );
}

#[tokio::test]
async fn events_naming_only_a_user_happen_in_the_guild_given() {
    let sim = eight_guilds().await;
    let mut clients = four_shards(&sim).await;
    let g5 = GuildSeed::numbered(5);
    let voice = g5
        .channels
        .iter()
        .find(|c| c.kind == discord_sim::ChannelKind::Voice)
        .unwrap()
        .id;
    // Joining names the channel, hence the guild; leaving names only the user.
    sim.emit(SimEvent::VoiceJoin {
        user_id: demo::CAROL,
        channel_id: voice,
    })
    .await;
    let left = sim
        .emit(SimEvent::VoiceLeave {
            user_id: demo::CAROL,
        })
        .await;
    assert_eq!(
        serde_json::from_str::<Value>(&left.d).unwrap()["guild_id"],
        g5.id.to_string(),
        "the guild Carol is in voice in"
    );
    // Given explicitly (library and control API).
    let removed = sim
        .emit_in(
            SimEvent::GuildMemberRemove {
                user_id: demo::DAVE,
            },
            g5.id,
        )
        .await;
    assert_eq!(removed.len(), 1);
    let r = common::http(
        sim.addr(),
        "POST",
        &format!("/_sim/emit?guild_id={}", GuildSeed::numbered(6).id),
        &[],
        Some(r#"{"type":"GUILD_MEMBER_REMOVE","user_id":"1000000000000001005"}"#),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let out = r.json();
    let d: Value = serde_json::from_str(out[0]["d"].as_str().unwrap()).unwrap();
    assert_eq!(d["guild_id"], GuildSeed::numbered(6).id.to_string());
    // A guild the bot isn't in: nothing happens anywhere.
    let none = sim
        .emit_in(
            SimEvent::GuildMemberRemove {
                user_id: demo::ERIN,
            },
            42,
        )
        .await;
    assert_eq!((none.len(), none[0].session_id.as_deref()), (1, None));
    mark_every_shard(&sim, "end", SHARDS).await;
    let mut seen = vec![];
    for c in clients.iter_mut() {
        for d in until_marker(c, "end").await {
            seen.push((
                shard_of(guild_of(&d).unwrap(), SHARDS),
                d["t"].as_str().unwrap().to_owned(),
                guild_of(&d).unwrap(),
            ));
        }
    }
    let s5 = shard_of(g5.id, SHARDS);
    let g6 = GuildSeed::numbered(6).id;
    seen.sort();
    let mut want = vec![
        (s5, "VOICE_STATE_UPDATE".to_owned(), g5.id),
        (s5, "VOICE_STATE_UPDATE".to_owned(), g5.id),
        (s5, "GUILD_MEMBER_REMOVE".to_owned(), g5.id),
        (shard_of(g6, SHARDS), "GUILD_MEMBER_REMOVE".to_owned(), g6),
    ];
    want.sort();
    assert_eq!(seen, want);
}
