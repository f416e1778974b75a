//! Several shards in one holder, end to end against discord-sim (which shards like Discord:
//! guilds by `(guild_id >> 22) % num_shards`, IDENTIFY pacing per `shard % max_concurrency`
//! bucket, 4010/4011): the IDENTIFY order and spacing, every guild's events exactly once on its
//! own shard, a fault on one shard that leaves the others flowing, a SIGKILL that every shard
//! resumes from, and the fatal sharding close codes.

mod common;

use common::*;
use discord_sim::config::{shard_of, ChannelKind};
use discord_sim::{Fault, SimConfig, SimEvent, TrafficGuilds, TrafficSpec};
use std::collections::HashMap;
use std::time::Duration;

const T: Duration = Duration::from_secs(40);

/// Three guilds (the sim's numbered seeds land on three different shards of four), four shards
/// recommended by `GET /gateway/bot`, `max_concurrency` 2 and Discord's 5 s window.
fn four_shards(max_concurrency: u32) -> SimConfig {
    SimConfig {
        heartbeat_interval: Duration::from_millis(1500),
        recommended_shards: 4,
        max_concurrency,
        ..SimConfig::with_guilds(3)
    }
}

fn text_channel(sim: &discord_sim::Sim, guild: usize) -> u64 {
    sim.config().guilds[guild]
        .channels
        .iter()
        .find(|c| c.kind == ChannelKind::Text)
        .expect("a text channel")
        .id
}

async fn emit_in_every_guild(sim: &discord_sim::Sim, n: usize, tag: &str) {
    for i in 0..n {
        for g in 0..sim.config().guilds.len() {
            sim.emit(SimEvent::MessageCreate {
                channel_id: text_channel(sim, g),
                author_id: discord_sim::config::demo::ALICE,
                content: format!("{tag} {i} in guild {g}"),
            })
            .await;
        }
    }
}

/// Every guild's envelopes came on the guild's shard.
fn assert_guilds_on_their_shards(ingest: &Ingest, count: u64) {
    let mut per_shard: HashMap<u32, usize> = HashMap::new();
    for e in ingest.unique() {
        if let Some(g) = e.guild_id {
            assert_eq!(
                u64::from(e.shard),
                shard_of(g.get(), count),
                "{} of guild {g} came on shard {}",
                e.kind,
                e.shard
            );
        }
        *per_shard.entry(e.shard).or_default() += 1;
    }
    // Every shard said READY, so every shard forwarded something.
    assert_eq!(per_shard.len() as u64, count, "{per_shard:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_shards_identify_in_bucket_order_and_carry_only_their_guilds() {
    let (sim, ingest, holder, _dir) = start_holder(four_shards(2), &[]).await;
    tokio::time::timeout(
        T,
        sim.wait_for(|s| s.identifies >= 4 && sim.identify_log().len() >= 4),
    )
    .await
    .unwrap_or_else(|_| panic!("four IDENTIFYs:\n{}", holder.stderr_text()));

    let log = sim.identify_log();
    assert_eq!(log.len(), 4, "{log:?}");
    assert!(
        log.iter()
            .all(|r| r.outcome == "ready" && r.num_shards == 4),
        "{log:?}"
    );
    // Buckets start in order: shards 0 and 1 first (one per bucket), then 2 and 3, each bucket
    // 5 s (the sim's window, Discord's) after its previous IDENTIFY.
    let mut shards: Vec<u64> = log.iter().map(|r| r.shard).collect();
    assert_eq!(
        {
            let mut first_two = shards[..2].to_vec();
            first_two.sort();
            first_two
        },
        [0, 1],
        "{log:?}"
    );
    shards.sort();
    assert_eq!(shards, [0, 1, 2, 3]);
    for bucket in 0..2 {
        let times: Vec<u64> = log
            .iter()
            .filter(|r| r.bucket == bucket)
            .map(|r| r.at_us)
            .collect();
        assert_eq!(times.len(), 2);
        let spacing = Duration::from_micros(times[1] - times[0]);
        assert!(
            spacing >= sim.config().identify_window,
            "bucket {bucket}: IDENTIFYs {spacing:?} apart"
        );
    }
    assert_eq!(sim.stats().identifies_rate_limited, 0);

    emit_in_every_guild(&sim, 10, "hello").await;
    wait_all_delivered(&sim, &ingest, T).await;
    assert_exactly_once_in_order(&sim, &ingest);
    assert_guilds_on_their_shards(&ingest, 4);

    // Every batch says how each shard is; once all are ready, all four are "ready".
    let last = ingest.batches().pop().expect("a batch");
    assert_eq!(last.shards.len(), 4, "{:?}", last.shards);
    assert!(last
        .shards
        .iter()
        .all(|s| s.count == 4 && s.state == contracts::GatewayState::Ready));

    let client = http_client();
    let addr = holder.http_addr().await;
    wait_status(&client, &format!("http://{addr}/healthz"), 200, T).await;
    let metrics = metrics_text(&client, &addr).await;
    for shard in 0..4 {
        let needle = format!("holder_gateway_state{{state=\"ready\",shard=\"{shard}\"}} 1");
        assert!(metrics.contains(&needle), "{needle} missing:\n{metrics}");
    }
}

/// Discord's faults on one shard: the other shards' events keep arriving at their usual pace.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fault_on_one_shard_never_pauses_the_others() {
    let (sim, ingest, holder, _dir) = start_holder(four_shards(4), &[]).await;
    tokio::time::timeout(T, sim.wait_for(|s| s.identifies >= 4))
        .await
        .unwrap_or_else(|_| panic!("four IDENTIFYs:\n{}", holder.stderr_text()));
    emit_in_every_guild(&sim, 2, "warm-up").await;
    wait_all_delivered(&sim, &ingest, T).await;

    let victim_guild = sim.config().guilds[0].id;
    let victim = shard_of(victim_guild, 4);
    let traffic = sim.traffic(TrafficSpec {
        guilds: TrafficGuilds::All,
        ..TrafficSpec::steady(60.0, Duration::from_secs(8))
    });
    let faults = [
        Fault::DropTcp,
        Fault::Reconnect,
        Fault::Close { code: 4009 },
    ];
    let before = sim.stats();
    for f in faults {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        sim.fault(f.on_shard(victim)).await;
    }
    traffic.await;
    // 4009 ended the victim's session: it identifies anew (its turn in the queue comes at
    // once, its bucket's last IDENTIFY is long past), then gets the rest.
    tokio::time::timeout(T, sim.wait_for(|s| s.identifies > before.identifies))
        .await
        .unwrap_or_else(|_| panic!("no new session after 4009:\n{}", holder.stderr_text()));
    emit_in_every_guild(&sim, 2, "after").await;
    wait_all_delivered(&sim, &ingest, T).await;
    assert_exactly_once_in_order(&sim, &ingest);
    assert_guilds_on_their_shards(&ingest, 4);
    let after = sim.stats();
    assert!(
        after.resumes >= before.resumes + 2,
        "op 7 and the drop resumed"
    );
    assert_eq!(
        after.identifies,
        before.identifies + 1,
        "4009 re-identified once"
    );

    // The largest pause between two envelopes of the other guilds, by arrival at the edge,
    // while the victim shard was reconnecting: about the traffic's own spacing (each of the
    // three guilds gets 20/s), never a reconnect's worth.
    let arrivals: Vec<u64> = ingest
        .unique_timed()
        .into_iter()
        .filter(|(e, _)| {
            e.kind == "MESSAGE_CREATE" && e.guild_id.is_some_and(|g| g.get() != victim_guild)
        })
        .map(|(_, at)| at)
        .collect();
    let worst = arrivals
        .windows(2)
        .map(|w| w[1].saturating_sub(w[0]))
        .max()
        .unwrap_or_default();
    assert!(
        Duration::from_micros(worst) < Duration::from_millis(800),
        "the other shards paused for {:?}",
        Duration::from_micros(worst)
    );
}

/// SIGKILL with four live shards, then a restart on the same state: every shard RESUMEs its
/// own session (no IDENTIFY) and everything arrives exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_shard_resumes_after_a_sigkill() {
    let (sim, ingest, mut holder, dir) = start_holder(four_shards(4), &[]).await;
    tokio::time::timeout(T, sim.wait_for(|s| s.identifies >= 4))
        .await
        .unwrap_or_else(|_| panic!("four IDENTIFYs:\n{}", holder.stderr_text()));
    emit_in_every_guild(&sim, 5, "before").await;
    wait_all_delivered(&sim, &ingest, T).await;
    holder.kill9();
    emit_in_every_guild(&sim, 5, "while down").await;
    let holder = Holder::spawn(&HolderEnv::new(&sim, &ingest, dir.path(), true, &[]));
    tokio::time::timeout(T, sim.wait_for(|s| s.resumes >= 4))
        .await
        .unwrap_or_else(|_| panic!("four RESUMEs:\n{}", holder.stderr_text()));
    emit_in_every_guild(&sim, 5, "after").await;
    wait_all_delivered(&sim, &ingest, T).await;
    assert_exactly_once_in_order(&sim, &ingest);
    assert_eq!(sim.stats().identifies, 4, "no shard identified again");
}

/// Too few shards for the guilds (4011) and a shard id past the count (4010) end the process
/// with the code and its meaning, never a loop.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sharding_required_and_invalid_shard_exit_with_the_meaning() {
    for (shards, max_per_shard, code, meaning) in [
        ("1", 1usize, 4011, "sharding required"),
        ("0-1/2", 2500, 4010, "invalid shard"),
    ] {
        let config = SimConfig {
            max_guilds_per_shard: max_per_shard,
            // A count that must be a multiple of 4 refuses 2 with 4010, as Discord does for
            // large bots.
            shard_count_multiple: (code == 4010).then_some(4),
            ..four_shards(1)
        };
        let (sim, _ingest, mut holder, _dir) =
            start_holder(config, &[("DISCORD_SHARDS", shards)]).await;
        let status = holder.wait_exit(T).await;
        assert_eq!(status, Some(3), "{}", holder.stderr_text());
        let text = holder.stderr_text();
        assert!(
            text.contains(&format!("close code {code} ({meaning})")),
            "{text}"
        );
        assert!(
            sim.stats().identify_attempts <= 2,
            "{:?}",
            sim.identify_log()
        );
    }
}
