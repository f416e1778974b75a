//! The holder's shard set, apart from any one shard's state machine (a session never knows about
//! the others): which shards run here (`DISCORD_SHARDS` against `GET /gateway/bot`'s
//! recommendation) and their states, shared with the forwarder (every ingest batch carries them,
//! so the edge can tell each guild whether its shard is online) and `/healthz`.

use super::{
    backoff::Backoff,
    start_limit::{self, GatewayBotError},
};
use crate::config::{Secret, ShardSpec};
use contracts::{GatewayState, ShardState};
use std::sync::Arc;
use tokio::sync::watch;

/// What this run's shards are, and Discord's `max_concurrency` for the IDENTIFY queue.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    pub shards: Vec<ShardId>,
    pub max_concurrency: u32,
}

/// Why no plan could be made.
#[derive(Debug)]
pub enum PlanError {
    /// `GET /gateway/bot` said 401.
    Unauthorized,
    /// Asked to stop while waiting for Discord.
    Shutdown,
}

/// Resolves `spec` against `GET /gateway/bot` (its `shards` and `max_concurrency`), retried with
/// backoff until Discord answers. With `DISCORD_GATEWAY_URL` set (`fallback_count` is then the
/// saved count, if any) a failure is not waited out: `N`/`A-B/N` need no answer, `auto` uses the
/// saved count or 1, and `max_concurrency` is taken as 1 (the safe value).
#[allow(clippy::too_many_arguments)]
pub async fn plan(
    spec: ShardSpec,
    http: &reqwest::Client,
    api_url: &url::Url,
    token: &Secret,
    gateway_url_set: bool,
    fallback_count: Option<u32>,
    backoff: &mut Backoff,
    mut stop: watch::Receiver<bool>,
) -> Result<Plan, PlanError> {
    let (recommended, max_concurrency) = loop {
        match start_limit::fetch(http, api_url, token).await {
            Ok(bot) => {
                break (
                    u32::try_from(bot.shards).unwrap_or(u32::MAX).max(1),
                    u32::try_from(bot.session_start_limit.max_concurrency)
                        .unwrap_or(1)
                        .max(1),
                )
            }
            Err(GatewayBotError::Unauthorized) => return Err(PlanError::Unauthorized),
            Err(GatewayBotError::Other(error)) if gateway_url_set => {
                tracing::warn!(%error, "GET /gateway/bot failed; planning shards without it (DISCORD_GATEWAY_URL is set)");
                break (fallback_count.unwrap_or(1), 1);
            }
            Err(GatewayBotError::Other(error)) => {
                let d = backoff.next_delay();
                tracing::warn!(%error, retry_in_ms = d.as_millis() as u64, "GET /gateway/bot failed; needed to plan the shards");
                tokio::select! {
                    _ = tokio::time::sleep(d) => {}
                    _ = stop.wait_for(|s| *s) => return Err(PlanError::Shutdown),
                }
            }
        }
    };
    let (ids, count) = spec.resolve(recommended);
    if count < recommended {
        tracing::warn!(
            count,
            recommended,
            "running fewer shards than Discord recommends (it may close with 4011, sharding required)"
        );
    }
    Ok(Plan {
        shards: ids.map(|id| ShardId { id, count }).collect(),
        max_concurrency,
    })
}

/// One shard: `[id, count]` as IDENTIFY sends it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ShardId {
    pub id: u32,
    pub count: u32,
}

impl ShardId {
    /// The shard of `guild_id` among `count` (Discord's `(guild_id >> 22) % num_shards`).
    pub fn of_guild(guild_id: u64, count: u32) -> u32 {
        ((guild_id >> 22) % u64::from(count.max(1))) as u32
    }
}

impl std::fmt::Display for ShardId {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(f, "{}/{}", self.id, self.count)
    }
}

/// Every shard's state, one watch for all of them.
#[derive(Clone)]
pub struct ShardStates(Arc<watch::Sender<Vec<ShardState>>>);

impl ShardStates {
    pub fn new(shards: &[ShardId]) -> ShardStates {
        let states = shards
            .iter()
            .map(|s| ShardState {
                shard: s.id,
                count: s.count,
                state: GatewayState::Connecting,
            })
            .collect();
        ShardStates(Arc::new(watch::channel(states).0))
    }

    pub fn set(&self, shard: u32, state: GatewayState) {
        self.0
            .send_if_modified(|all| match all.iter_mut().find(|s| s.shard == shard) {
                Some(s) if s.state != state => {
                    s.state = state;
                    true
                }
                _ => false,
            });
    }

    pub fn subscribe(&self) -> watch::Receiver<Vec<ShardState>> {
        self.0.subscribe()
    }
}

/// The state of the least ready shard (what the batch-level `gateway` field reports).
pub fn least_ready(states: &[ShardState]) -> GatewayState {
    let rank = |s: GatewayState| match s {
        GatewayState::Stopped => 0,
        GatewayState::Connecting => 1,
        GatewayState::Reconnecting => 2,
        GatewayState::Ready => 3,
    };
    states
        .iter()
        .map(|s| s.state)
        .min_by_key(|s| rank(*s))
        .unwrap_or(GatewayState::Connecting)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guilds_map_to_shards_like_discord() {
        // Discord's example: (guild_id >> 22) % num_shards.
        let guild = 197_038_439_483_310_086u64;
        assert_eq!(ShardId::of_guild(guild, 1), 0);
        assert_eq!(ShardId::of_guild(guild, 4), ((guild >> 22) % 4) as u32);
        assert_eq!(ShardId::of_guild(4 << 22 | 5, 4), 0);
        assert_eq!(ShardId::of_guild(7 << 22, 4), 3);
    }

    #[test]
    fn states_and_the_least_ready() {
        let ids: Vec<_> = (0..3).map(|id| ShardId { id, count: 3 }).collect();
        let s = ShardStates::new(&ids);
        let mut rx = s.subscribe();
        assert_eq!(
            least_ready(&rx.borrow_and_update()),
            GatewayState::Connecting
        );
        for id in 0..3 {
            s.set(id, GatewayState::Ready);
        }
        assert!(rx.has_changed().unwrap());
        assert_eq!(least_ready(&rx.borrow_and_update()), GatewayState::Ready);
        s.set(1, GatewayState::Ready);
        assert!(!rx.has_changed().unwrap(), "no change, no wake-up");
        s.set(1, GatewayState::Reconnecting);
        assert_eq!(
            least_ready(&rx.borrow_and_update()),
            GatewayState::Reconnecting
        );
    }
}
