//! The bot's guilds changing under running sessions, per Discord's "Guild Create" / "Guild
//! Delete" docs: leaving sends GUILD_DELETE `{id}` ("If the `unavailable` field is not set, the
//! user was removed from the guild"), joining GUILD_CREATE, an outage GUILD_DELETE
//! `{id, unavailable: true}` and its end GUILD_CREATE; each only on the guild's shard; sessions
//! identifying during an outage get the GUILD_DELETE instead of the guild's GUILD_CREATE.

mod common;

use std::time::Duration;

use common::{guild_marker, guild_of, marker, ShardClient, WAIT};
use discord_sim::config::demo;
use discord_sim::{
    guild_id_on_shard, shard_of, GuildSeed, Sim, SimConfig, SimEvent, TrafficGuilds, TrafficSpec,
};
use serde_json::{json, Value};
use tokio::time::timeout;

/// Guilds 0..4 (`numbered`), two shards: 0 and 2 on shard 1, 1 and 3 on shard 0.
async fn four_guilds() -> (Sim, ShardClient, ShardClient) {
    let sim = common::start(SimConfig {
        guilds: (0..4).map(GuildSeed::numbered).collect(),
        recommended_shards: 2,
        ..common::fast_config()
    })
    .await;
    for i in 0..4 {
        assert_eq!(shard_of(GuildSeed::numbered(i).id, 2), (1 + i as u64) % 2);
    }
    let s0 = ShardClient::connect(&sim, 0, 2).await;
    let s1 = ShardClient::connect(&sim, 1, 2).await;
    (sim, s0, s1)
}

fn g(i: usize) -> u64 {
    GuildSeed::numbered(i).id
}

fn text(i: usize) -> u64 {
    GuildSeed::numbered(i).channels[0].id
}

fn message_in(channel_id: u64, content: &str) -> SimEvent {
    SimEvent::MessageCreate {
        channel_id,
        author_id: demo::ALICE,
        content: content.to_owned(),
    }
}

/// Marks both shards (shard 0 by a guildless marker, shard 1 by guild 0's) and returns what
/// each got before its marker.
async fn drain(
    sim: &Sim,
    s0: &mut ShardClient,
    s1: &mut ShardClient,
    tag: &str,
) -> [Vec<Value>; 2] {
    sim.emit(marker(tag)).await;
    sim.emit(guild_marker(tag, g(0))).await;
    let mut out: [Vec<Value>; 2] = [vec![], vec![]];
    for (i, c) in [s0, s1].into_iter().enumerate() {
        loop {
            let d = c.raw.dispatch().await;
            if d["t"] == "SIM_MARKER" && d["d"]["tag"] == tag {
                break;
            }
            out[i].push(d);
        }
    }
    out
}

#[tokio::test]
async fn leaving_sends_guild_delete_without_unavailable_and_silences_the_guild() {
    let (sim, mut s0, mut s1) = four_guilds().await;
    assert_eq!(
        sim.leave_guild(g(2)).await,
        Some(1),
        "one session holds its shard"
    );
    let [on0, on1] = drain(&sim, &mut s0, &mut s1, "left").await;
    assert!(on0.is_empty(), "shard 0 hears nothing: {on0:?}");
    assert_eq!(on1.len(), 1);
    assert_eq!(on1[0]["t"], "GUILD_DELETE");
    assert_eq!(on1[0]["d"]["id"], g(2).to_string());
    assert!(
        on1[0]["d"].get("unavailable").is_none(),
        "removed, not an outage"
    );
    assert_eq!(sim.leave_guild(g(2)).await, None);

    // Later events for it go nowhere; REST says Missing Access (unknown ids: Unknown Channel).
    let e = sim.emit(message_in(text(2), "after leaving")).await;
    assert_eq!(e.session_id, None);
    assert_eq!(e.d, "null");
    let r = common::rest(
        &sim,
        "POST",
        &format!("/channels/{}/messages", text(2)),
        Some(r#"{"content":"x"}"#),
    )
    .await;
    assert_eq!((r.status, r.json()["code"].clone()), (403, json!(50001)));
    let r = common::rest(
        &sim,
        "POST",
        "/channels/12345/messages",
        Some(r#"{"content":"x"}"#),
    )
    .await;
    assert_eq!((r.status, r.json()["code"].clone()), (404, json!(10003)));
    let traffic = TrafficSpec {
        rate_per_sec: f64::INFINITY,
        max_events: Some(6),
        guilds: TrafficGuilds::All,
        ..TrafficSpec::steady(0.0, Duration::from_secs(30))
    };
    timeout(WAIT, sim.traffic(traffic)).await.unwrap();
    let [on0, on1] = drain(&sim, &mut s0, &mut s1, "quiet").await;
    let guilds = |v: &[Value]| v.iter().map(|d| guild_of(d).unwrap()).collect::<Vec<_>>();
    assert!(
        !guilds(&on1).contains(&g(2)),
        "no dispatch for the left guild"
    );
    assert_eq!(
        on0.len() + on1.len(),
        6,
        "traffic round-robins over the 3 guilds left"
    );
    assert_eq!(guilds(&on1).iter().filter(|x| **x == g(0)).count(), 2);

    let info = sim.guilds();
    let left = info.iter().find(|i| i.id == g(2)).unwrap();
    assert!(!left.member);
    // A new session of shard 1 no longer has it.
    let again = ShardClient::connect(&sim, 1, 2).await;
    assert_eq!(again.ready_ids(), vec![g(0)]);

    // Rejoining brings it back as it was, on its shard.
    assert_eq!(sim.join_guild(GuildSeed::numbered(2)).await, Some(2));
    let [on0, on1] = drain(&sim, &mut s0, &mut s1, "rejoined").await;
    assert!(on0.is_empty());
    assert_eq!(on1[0]["t"], "GUILD_CREATE");
    assert_eq!(on1[0]["d"]["name"], GuildSeed::numbered(2).name);
    let r = common::rest(
        &sim,
        "POST",
        &format!("/channels/{}/messages", text(2)),
        Some(r#"{"content":"back"}"#),
    )
    .await;
    assert_eq!(r.status, 200);
}

#[tokio::test]
async fn joining_a_guild_sends_its_guild_create_on_its_shard_and_it_gets_traffic() {
    let (sim, mut s0, mut s1) = four_guilds().await;
    let new = guild_id_on_shard(0, 2, 0);
    let r = common::http(
        sim.addr(),
        "POST",
        "/_sim/guilds",
        &[],
        Some(&json!({"id": new.to_string(), "name": "Joined Later"}).to_string()),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["sessions"], 1);
    let [on0, on1] = drain(&sim, &mut s0, &mut s1, "joined").await;
    assert!(on1.is_empty(), "shard 1 hears nothing: {on1:?}");
    assert_eq!(on0.len(), 1);
    let gc = &on0[0];
    assert_eq!(gc["t"], "GUILD_CREATE");
    assert_eq!(gc["d"]["id"], new.to_string());
    assert_eq!(gc["d"]["name"], "Joined Later");
    assert_eq!(gc["d"]["unavailable"], false);
    let channels: Vec<&str> = gc["d"]["channels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    let (t1, v1) = ((new + 100).to_string(), (new + 200).to_string());
    assert!(channels.contains(&t1.as_str()) && channels.contains(&v1.as_str()));
    // Joining twice: 409.
    let r = common::http(
        sim.addr(),
        "POST",
        "/_sim/guilds",
        &[],
        Some(&json!({"id": new}).to_string()),
    )
    .await;
    assert_eq!(r.status, 409);

    // It now gets events, traffic and REST sends, on shard 0.
    sim.emit(message_in(new + 100, "hello new guild")).await;
    let traffic = TrafficSpec {
        rate_per_sec: f64::INFINITY,
        max_events: Some(2),
        guilds: TrafficGuilds::One(new),
        ..TrafficSpec::steady(0.0, Duration::from_secs(30))
    };
    timeout(WAIT, sim.traffic(traffic)).await.unwrap();
    let r = common::rest(
        &sim,
        "POST",
        &format!("/channels/{}/messages", new + 101),
        Some(r#"{"content":"via REST"}"#),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let [on0, on1] = drain(&sim, &mut s0, &mut s1, "traffic").await;
    assert!(on1.is_empty());
    assert_eq!(on0.len(), 4);
    assert!(on0
        .iter()
        .all(|d| guild_of(d) == Some(new) && d["t"] == "MESSAGE_CREATE"));
    assert_eq!(on0[3]["d"]["content"], "via REST");
    // A session identifying now lists it.
    let again = ShardClient::connect(&sim, 0, 2).await;
    assert!(again.created_ids().contains(&new));
}

#[tokio::test]
async fn an_outage_sends_unavailable_guild_delete_then_guild_create_on_recovery() {
    let (sim, mut s0, mut s1) = four_guilds().await;
    let down = g(1);
    let r = common::http(
        sim.addr(),
        "POST",
        &format!("/_sim/guilds/{down}/outage"),
        &[],
        None,
    )
    .await;
    assert_eq!((r.status, r.json()["sessions"].clone()), (200, json!(1)));
    let r = common::http(
        sim.addr(),
        "POST",
        &format!("/_sim/guilds/{down}/outage"),
        &[],
        None,
    )
    .await;
    assert_eq!(r.status, 409, "already down");
    let [on0, on1] = drain(&sim, &mut s0, &mut s1, "down").await;
    assert!(on1.is_empty());
    assert_eq!(on0.len(), 1);
    assert_eq!(on0[0]["t"], "GUILD_DELETE");
    let mut d = on0[0]["d"].clone();
    d.as_object_mut().unwrap().remove("_sim_sent_us");
    assert_eq!(d, json!({"id": down.to_string(), "unavailable": true}));

    // Nothing is sent for it meanwhile; round-robin traffic skips it.
    sim.emit(message_in(text(1), "during the outage")).await;
    let traffic = TrafficSpec {
        rate_per_sec: f64::INFINITY,
        max_events: Some(3),
        guilds: TrafficGuilds::All,
        ..TrafficSpec::steady(0.0, Duration::from_secs(30))
    };
    timeout(WAIT, sim.traffic(traffic)).await.unwrap();
    let [on0, on1] = drain(&sim, &mut s0, &mut s1, "meanwhile").await;
    let all: Vec<u64> = on0
        .iter()
        .chain(&on1)
        .map(|d| guild_of(d).unwrap())
        .collect();
    assert_eq!(all.len(), 3);
    assert!(!all.contains(&down), "{all:?}");
    let listed = sim.guilds();
    assert!(listed.iter().find(|i| i.id == down).unwrap().unavailable);

    // A session identifying during the outage: READY lists it, then GUILD_DELETE unavailable.
    let mut late = ShardClient::connect(&sim, 0, 2).await;
    assert_eq!(late.ready_ids(), {
        let mut v = vec![g(1), g(3)];
        v.sort_unstable();
        v
    });
    assert_eq!(late.created_ids(), vec![g(3)]);
    let deleted: Vec<&Value> = late
        .guilds
        .iter()
        .filter(|d| d["t"] == "GUILD_DELETE")
        .collect();
    assert_eq!(deleted.len(), 1);
    assert_eq!(deleted[0]["d"]["id"], down.to_string());
    assert_eq!(deleted[0]["d"]["unavailable"], true);

    // Recovery: GUILD_CREATE to every session of its shard, and events flow again.
    let r = common::http(
        sim.addr(),
        "POST",
        &format!("/_sim/guilds/{down}/recover"),
        &[],
        None,
    )
    .await;
    assert_eq!((r.status, r.json()["sessions"].clone()), (200, json!(2)));
    let r = common::http(
        sim.addr(),
        "POST",
        &format!("/_sim/guilds/{down}/recover"),
        &[],
        None,
    )
    .await;
    assert_eq!(r.status, 409, "not down");
    sim.emit(message_in(text(1), "back")).await;
    let [on0, on1] = drain(&sim, &mut s0, &mut s1, "recovered").await;
    assert!(on1.is_empty());
    assert_eq!(on0.len(), 2);
    assert_eq!(on0[0]["t"], "GUILD_CREATE");
    assert_eq!(on0[0]["d"]["id"], down.to_string());
    assert_eq!(on0[0]["d"]["unavailable"], false);
    assert_eq!(on0[1]["d"]["content"], "back");
    let gc = late.raw.dispatch().await;
    assert_eq!(gc["t"], "GUILD_CREATE");
    assert_eq!(gc["d"]["id"], down.to_string());
}

#[tokio::test]
async fn guild_controls_over_http_answer_404_for_unknown_guilds() {
    let (sim, _s0, _s1) = four_guilds().await;
    let r = common::http(sim.addr(), "GET", "/_sim/guilds", &[], None).await;
    let list = r.json();
    assert_eq!(list.as_array().unwrap().len(), 4);
    assert_eq!(list[0]["id"], demo::GUILD_ID.to_string());
    assert_eq!(list[0]["member"], true);
    assert_eq!(list[1]["name"], GuildSeed::numbered(1).name);
    let r = common::http(sim.addr(), "DELETE", "/_sim/guilds/42", &[], None).await;
    assert_eq!(r.status, 404);
    let r = common::http(sim.addr(), "DELETE", "/_sim/guilds/nope", &[], None).await;
    assert_eq!(r.status, 400);
    let r = common::http(sim.addr(), "POST", "/_sim/guilds/42/outage", &[], None).await;
    assert_eq!(r.status, 409);
    let r = common::http(
        sim.addr(),
        "DELETE",
        &format!("/_sim/guilds/{}", g(3)),
        &[],
        None,
    )
    .await;
    assert_eq!((r.status, r.json()["sessions"].clone()), (200, json!(1)));
    let r = common::http(
        sim.addr(),
        "GET",
        "/_sim/guild_id?shard=3&num_shards=4&nth=2",
        &[],
        None,
    )
    .await;
    let id: u64 = r.json()["id"].as_str().unwrap().parse().unwrap();
    assert_eq!(id, guild_id_on_shard(3, 4, 2));
    assert_eq!(shard_of(id, 4), 3);
    let r = common::http(
        sim.addr(),
        "GET",
        "/_sim/guild_id?shard=4&num_shards=4",
        &[],
        None,
    )
    .await;
    assert_eq!(r.status, 400);
}
