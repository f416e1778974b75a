//! The demo scenario with several guilds (what `--scenario demo` runs: three): each guild has
//! its own name and channel names, and the scenario keeps every one of them busy.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::{guild_of, ShardClient};
use discord_sim::SimConfig;
use tokio::time::timeout;

#[tokio::test]
async fn three_guilds_with_distinct_names_all_get_activity() {
    let config = SimConfig::with_guilds(3);
    let names: BTreeSet<&str> = config.guilds.iter().map(|g| g.name.as_str()).collect();
    assert_eq!(names.len(), 3, "distinct guild names: {names:?}");
    let channel_names: BTreeSet<&str> = config
        .guilds
        .iter()
        .flat_map(|g| g.channels.iter().map(|c| c.name.as_str()))
        .collect();
    let channels: usize = config.guilds.iter().map(|g| g.channels.len()).sum();
    assert_eq!(channel_names.len(), channels, "distinct channel names");
    assert_eq!(
        config.guild().id,
        discord_sim::config::demo::GUILD_ID,
        "the demo guild first"
    );
    let sim = common::start(SimConfig {
        // The raw client doesn't heartbeat.
        heartbeat_interval: Duration::from_secs(60),
        ..config
    })
    .await;
    let ids: BTreeSet<u64> = sim.config().guilds.iter().map(|g| g.id).collect();
    let mut client = ShardClient::connect(&sim, 0, 1).await;
    assert_eq!(
        client.created_ids().into_iter().collect::<BTreeSet<_>>(),
        ids
    );
    let scenario = sim.run_demo_scenario();
    let mut active = BTreeSet::new();
    // A step every 0.4-1.6 s in a random guild: all three are reached well within a minute.
    timeout(Duration::from_secs(90), async {
        while active != ids {
            let d = client.raw.dispatch().await;
            active.insert(guild_of(&d).expect("every demo event is in a guild"));
        }
    })
    .await
    .unwrap_or_else(|_| panic!("activity in every guild; saw {active:?}"));
    scenario.abort();
}
