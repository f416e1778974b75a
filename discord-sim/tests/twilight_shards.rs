//! The sim's sharding checked by a client nobody here wrote: twilight-gateway's own multi-shard
//! setup, as its docs recommend it (`client.gateway().authed()` for the shard count and
//! `session_start_limit`, one `InMemoryQueue` shared by every shard so IDENTIFYs go out per
//! `shard_id % max_concurrency` bucket, `twilight_gateway::bucket` for the shard ids). Each shard
//! must get exactly its guilds' GUILD_CREATEs and events, with the sim's identify pacing on
//! (the default 5 s window) and not one IDENTIFY refused; twilight must report 4010 and 4011 as
//! fatal closes.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::WAIT;
use discord_sim::config::demo;
use discord_sim::{shard_of, GuildSeed, Sim, SimConfig, SimEvent};
use tokio::time::timeout;
use twilight_gateway::queue::InMemoryQueue;
use twilight_gateway::{
    ConfigBuilder, Event, EventTypeFlags, Intents, Shard, ShardId, ShardState, StreamExt as _,
};
use twilight_model::gateway::payload::incoming::GuildCreate;
use twilight_model::gateway::CloseCode;

fn intents() -> Intents {
    Intents::GUILDS | Intents::GUILD_MESSAGES | Intents::MESSAGE_CONTENT
}

fn http(sim: &Sim) -> twilight_http::Client {
    twilight_http::Client::builder()
        .proxy(sim.addr().to_string(), true)
        .token(sim.config().token.clone())
        .build()
}

/// A shard polled in its own task, its events (tagged with the shard number) forwarded.
fn drive(
    mut shard: Shard<InMemoryQueue>,
    tx: tokio::sync::mpsc::UnboundedSender<(u32, Event)>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let n = shard.id().number();
        while let Some(item) = shard.next_event(EventTypeFlags::all()).await {
            match item {
                Ok(event) => {
                    if tx.send((n, event)).is_err() {
                        return;
                    }
                }
                Err(e) => panic!("twilight error on shard {n}: {e:?}"),
            }
        }
    })
}

struct Aborting(Vec<tokio::task::JoinHandle<()>>);

impl Drop for Aborting {
    fn drop(&mut self) {
        for t in &self.0 {
            t.abort();
        }
    }
}

fn message(guild: &GuildSeed, content: &str) -> SimEvent {
    SimEvent::MessageCreate {
        channel_id: guild.channels[0].id,
        author_id: demo::ALICE,
        content: content.to_owned(),
    }
}

#[tokio::test]
async fn twilights_shards_each_get_exactly_their_guilds() {
    const SHARDS: u32 = 4;
    let guilds: Vec<GuildSeed> = (0..8).map(GuildSeed::numbered).collect();
    let sim = common::start(SimConfig {
        guilds: guilds.clone(),
        recommended_shards: SHARDS,
        max_concurrency: SHARDS,
        heartbeat_interval: Duration::from_millis(5000),
        // Discord's 5 s identify window stays on: twilight's queue must keep to it.
        ..SimConfig::default()
    })
    .await;
    let info = http(&sim)
        .gateway()
        .authed()
        .await
        .expect("GET /gateway/bot")
        .model()
        .await
        .expect("twilight parses /gateway/bot");
    assert_eq!(info.shards, SHARDS);
    let limit = &info.session_start_limit;
    assert_eq!(u32::from(limit.max_concurrency), SHARDS);
    let queue = InMemoryQueue::new(
        limit.max_concurrency,
        limit.remaining,
        Duration::from_millis(limit.reset_after),
        limit.total,
    );
    let config = ConfigBuilder::new(sim.config().token.clone(), intents())
        .proxy_url(sim.gateway_url())
        .queue(queue)
        .build();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let tasks = Aborting(
        twilight_gateway::bucket(0, 1, info.shards)
            .map(|id| drive(Shard::with_config(id, config.clone()), tx.clone()))
            .collect(),
    );
    let expected = |k: u32| -> BTreeSet<u64> {
        guilds
            .iter()
            .map(|g| g.id)
            .filter(|g| shard_of(*g, u64::from(SHARDS)) == u64::from(k))
            .collect()
    };

    // READY then GUILD_CREATEs: each shard exactly its two guilds.
    let mut ready: Vec<Option<BTreeSet<u64>>> = vec![None; SHARDS as usize];
    let mut created: Vec<BTreeSet<u64>> = vec![BTreeSet::new(); SHARDS as usize];
    timeout(WAIT, async {
        while created.iter().map(BTreeSet::len).sum::<usize>() < 8 {
            let (k, event) = rx.recv().await.expect("shards run");
            match event {
                Event::Ready(r) => {
                    assert_eq!(r.shard, Some(ShardId::new(k, SHARDS)));
                    ready[k as usize] = Some(r.guilds.iter().map(|g| g.id.get()).collect());
                }
                Event::GuildCreate(g) => {
                    let GuildCreate::Available(g) = *g else {
                        panic!("shard {k}: an unavailable GUILD_CREATE");
                    };
                    assert!(ready[k as usize].is_some(), "READY comes first");
                    assert!(
                        created[k as usize].insert(g.id.get()),
                        "one GUILD_CREATE per guild"
                    );
                }
                _ => {}
            }
        }
    })
    .await
    .expect("every shard gets its guilds");
    for k in 0..SHARDS {
        assert_eq!(
            ready[k as usize].as_ref(),
            Some(&expected(k)),
            "READY of shard {k}"
        );
        assert_eq!(
            created[k as usize],
            expected(k),
            "GUILD_CREATEs of shard {k}"
        );
    }
    let log = sim.identify_log();
    assert_eq!(log.len(), SHARDS as usize);
    assert!(log
        .iter()
        .all(|r| r.outcome == "ready" && r.num_shards == 4));
    assert_eq!(
        log.iter().map(|r| r.bucket).collect::<BTreeSet<_>>().len(),
        4,
        "one IDENTIFY per bucket"
    );
    assert_eq!(sim.stats().identifies_rate_limited, 0);

    // A message in every guild; then an "end" message in one guild per shard.
    for g in &guilds {
        sim.emit(message(g, &format!("hello {}", g.id))).await;
    }
    for k in 0..SHARDS {
        let g = guilds.iter().find(|g| expected(k).contains(&g.id)).unwrap();
        sim.emit(message(g, "end")).await;
    }
    let mut got: Vec<Vec<u64>> = vec![vec![]; SHARDS as usize];
    let mut ended = 0;
    timeout(WAIT, async {
        while ended < SHARDS {
            let (k, event) = rx.recv().await.expect("shards run");
            if let Event::MessageCreate(m) = event {
                if m.content == "end" {
                    ended += 1;
                } else {
                    got[k as usize].push(m.guild_id.expect("a guild message").get());
                }
            }
        }
    })
    .await
    .expect("every shard's end marker");
    for k in 0..SHARDS {
        let mut want: Vec<u64> = expected(k).into_iter().collect();
        want.sort_unstable();
        let mut have = got[k as usize].clone();
        have.sort_unstable();
        assert_eq!(have, want, "shard {k} gets exactly its guilds' messages");
    }

    // Leave, outage and recovery parse in twilight and land on the guild's shard.
    let left = guilds[3].id;
    let down = guilds[5].id;
    sim.leave_guild(left).await.expect("a member");
    sim.guild_outage(down).await.expect("available");
    sim.guild_recover(down).await.expect("down");
    let mut seen = vec![];
    timeout(WAIT, async {
        while seen.len() < 3 {
            let (k, event) = rx.recv().await.expect("shards run");
            match event {
                Event::GuildDelete(d) => seen.push((k, d.id.get(), d.unavailable)),
                Event::GuildCreate(g) => seen.push((k, g.id().get(), Some(false))),
                _ => {}
            }
        }
    })
    .await
    .expect("membership events");
    let shard = |g: u64| shard_of(g, 4) as u32;
    assert_eq!(
        seen,
        vec![
            (shard(left), left, None),
            (shard(down), down, Some(true)),
            (shard(down), down, Some(false)),
        ]
    );
    drop(tasks);
}

/// Runs one twilight shard until its stream ends; returns the close codes it reported and its
/// final state.
async fn run_until_fatal(sim: &Sim, id: ShardId) -> (Vec<u16>, ShardState) {
    let config = ConfigBuilder::new(sim.config().token.clone(), intents())
        .proxy_url(sim.gateway_url())
        .build();
    let mut shard = Shard::with_config(id, config);
    let mut closes = vec![];
    timeout(WAIT, async {
        while let Some(item) = shard.next_event(EventTypeFlags::all()).await {
            if let Ok(Event::GatewayClose(Some(frame))) = item {
                closes.push(frame.code);
            }
        }
    })
    .await
    .expect("twilight gives up by itself");
    (closes, shard.state())
}

#[tokio::test]
async fn twilight_reports_4011_for_too_few_shards_and_4010_for_a_bad_shard_count() {
    // 4 guilds, at most 2 a shard: one shard is not enough.
    let sim = common::start(SimConfig {
        guilds: (0..4).map(GuildSeed::numbered).collect(),
        max_guilds_per_shard: 2,
        ..common::fast_config()
    })
    .await;
    let (closes, state) = run_until_fatal(&sim, ShardId::ONE).await;
    assert_eq!(closes, vec![4011]);
    assert_eq!(
        CloseCode::try_from(4011).ok(),
        Some(CloseCode::ShardingRequired)
    );
    assert!(!CloseCode::ShardingRequired.can_reconnect());
    assert_eq!(state, ShardState::FatallyClosed);

    // Large-bot sharding: the shard count must be a multiple of 2.
    let odd = common::start(SimConfig {
        shard_count_multiple: Some(2),
        ..common::fast_config()
    })
    .await;
    let (closes, state) = run_until_fatal(&odd, ShardId::new(0, 3)).await;
    assert_eq!(closes, vec![4010]);
    assert_eq!(
        CloseCode::try_from(4010).ok(),
        Some(CloseCode::InvalidShard)
    );
    assert!(!CloseCode::InvalidShard.can_reconnect());
    assert_eq!(state, ShardState::FatallyClosed);
    // Neither reconnected.
    for (s, outcome) in [(&sim, "sharding_required"), (&odd, "invalid_shard")] {
        assert_eq!(s.stats().connections_opened, 1);
        let outcomes: Vec<String> = s.identify_log().into_iter().map(|r| r.outcome).collect();
        assert_eq!(outcomes, vec![outcome]);
    }
}
