//! The gateway holder: the one process that talks to Discord's Gateway, puts every dispatch on an
//! in-memory bus, and forwards it to the edge in versioned batches, losing nothing across
//! reconnects, edge outages and restarts.
//!
//! Layout (one concern per file; each module's doc says why it exists):
//! - [`config`]: the environment variables of SPEC.md, validated once at start.
//! - [`gateway`]: the Discord sessions, one per shard. [`gateway::shards`] plans the shard set
//!   (`DISCORD_SHARDS`) and shares their states; [`gateway::identify_queue`] paces IDENTIFYs
//!   (in-process or the edge's bot-wide queue); [`gateway::session`] is one shard's protocol and
//!   reconnect loop; beside it [`gateway::connection`] (the socket), [`gateway::heartbeat`],
//!   [`gateway::compression`] (zstd-stream, zlib-stream), [`gateway::send_limit`],
//!   [`gateway::close_code`], [`gateway::backoff`] and [`gateway::start_limit`] (the session-start
//!   guard).
//! - [`bus`]: the bounded, typed bus between the gateway and its subscribers.
//! - [`forward`]: the batched, ordered, retrying forwarder with its disk spill.
//! - [`commands`]: the one outbound command queue (`POST /commands`), rate-limited and executed
//!   against Discord's REST API, or handed to the gateway session (voice state, presence, member
//!   requests) which writes them through its send limiter.
//! - [`state`]: what survives a restart (epoch, ids, the session to resume).
//! - [`metrics`], [`health`], [`http`]: what operators see (`/metrics`, `/healthz`).
//! - [`register`]: tells the edge which shards this holder runs and where its `/commands` is.
//! - [`user_agent`]: the `User-Agent` Discord requires of every API client.
//! - [`shutdown`]: SIGTERM/SIGINT handling.
//!
//! [`run`] wires them together; `main.rs` only reads the config and reports how `run` ended.

pub mod bus;
pub mod commands;
pub mod config;
pub mod forward;
pub mod gateway;
pub mod health;
pub mod http;
pub mod metrics;
pub mod register;
pub mod shutdown;
pub mod state;
pub mod user_agent;

use config::{Config, IdentifyQueueKind};
use contracts::GatewayState;
use gateway::{identify_queue, shards};
use std::{future::Future, sync::Arc, time::Duration};

/// How a run ended badly. The `Display` text is the one line `main` prints.
#[derive(Debug)]
pub enum RunError {
    /// The state directory or the listen address is unusable.
    Setup(String),
    /// Discord closed with a code that forbids reconnecting.
    Fatal { code: u16, meaning: &'static str },
    /// The bot token was refused by `GET /gateway/bot`.
    Unauthorized,
}

impl std::fmt::Display for RunError {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        match self {
            RunError::Setup(m) => f.write_str(m),
            RunError::Fatal { code: 4004, meaning } => write!(
                f,
                "Discord closed the gateway with close code 4004 ({meaning}): DISCORD_BOT_TOKEN was refused by IDENTIFY; not reconnecting"
            ),
            RunError::Fatal { code, meaning } => write!(
                f,
                "Discord closed the gateway with close code {code} ({meaning}); not reconnecting"
            ),
            RunError::Unauthorized => f.write_str(
                "DISCORD_BOT_TOKEN was refused by GET /gateway/bot (401 unauthorized); not reconnecting",
            ),
        }
    }
}

impl std::error::Error for RunError {}

/// Bus capacity: how far the forwarder may fall behind the socket before the reader waits.
const BUS_CAPACITY: usize = 8192;

/// Gateway commands the session hasn't read yet (more than the command queue holds, so only
/// abandoned leftovers of a long outage can fill it).
const GATEWAY_COMMAND_BACKLOG: usize = 2048;

/// After a fatal close: how long the forwarder may try the edge before it spills and the process
/// exits (SPEC: the line comes promptly, never after a long retry).
const FATAL_FLUSH: Duration = Duration::from_millis(1500);

/// Discord's 50 REST calls per second per bot, times this holder's `share` of the shards (at
/// least 1): holders splitting a bot's shards split its global limit too.
fn global_share(share: f64) -> u32 {
    ((50.0 * share).floor() as u32).clamp(1, 50)
}

/// Runs the holder until `shutdown` resolves (then flushes and returns `Ok`) or the session ends
/// for good.
pub async fn run(config: Config, shutdown: impl Future<Output = ()>) -> Result<(), RunError> {
    // One TLS provider for the process (ring: pure Rust + asm, links statically with musl).
    let _ = rustls::crypto::ring::default_provider().install_default();

    let store =
        state::StateStore::open(&config.state_dir).map_err(|e| RunError::Setup(e.to_string()))?;
    let snap = store.snapshot();
    tracing::info!(
        holder_id = %snap.holder_id,
        epoch = %snap.epoch,
        restart = store.was_loaded(),
        "holder starting"
    );
    let metrics = Arc::new(metrics::Metrics::new());
    let health = Arc::new(health::Health::default());

    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|e| {
            RunError::Setup(format!(
                "HOLDER_LISTEN: cannot listen on {}: {e}",
                config.listen
            ))
        })?;
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "serving /healthz and /metrics");
    }
    let (stop_tx, stop_rx) = shutdown::channel();
    tokio::pin!(shutdown);
    let discovery_http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .user_agent(config.user_agent.clone())
        .build()
        .map_err(|e| RunError::Setup(format!("cannot build the REST client: {e}")))?;
    let t = &config.tuning;
    let mut plan_backoff = gateway::backoff::Backoff::new(
        Duration::from_millis(t.reconnect_base_ms),
        Duration::from_millis(t.reconnect_max_ms),
    );
    let plan = {
        let planning = shards::plan(
            config.shards,
            &discovery_http,
            &config.api_url,
            &config.bot_token,
            config.gateway_url.is_some(),
            snap.shard_count,
            &mut plan_backoff,
            stop_rx.clone(),
        );
        tokio::select! {
            p = planning => match p {
                Ok(p) => p,
                Err(shards::PlanError::Unauthorized) => return Err(RunError::Unauthorized),
                Err(shards::PlanError::Shutdown) => return Ok(()),
            },
            _ = &mut shutdown => return Ok(()),
        }
    };
    let count = plan.shards[0].count;
    store.adopt_shard_count(count);
    tracing::info!(
        shards = ?plan.shards.iter().map(|s| s.id).collect::<Vec<_>>(),
        of = count,
        max_concurrency = plan.max_concurrency,
        identify_queue = ?config.identify_queue,
        "running shards"
    );
    health.expect_shards(plan.shards.iter().map(|s| s.id));
    let states = shards::ShardStates::new(&plan.shards);
    let queue = match config.identify_queue {
        IdentifyQueueKind::Local => {
            identify_queue::IdentifyQueue::Local(identify_queue::LocalQueue::new(
                plan.max_concurrency,
                Duration::from_millis(t.identify_window_ms),
            ))
        }
        IdentifyQueueKind::Edge => {
            identify_queue::IdentifyQueue::Edge(identify_queue::EdgeQueue::new(
                discovery_http.clone(),
                &config.edge_url,
                config.link_token.clone(),
                snap.holder_id.clone(),
                count,
                plan.max_concurrency,
            ))
        }
    };
    // Each shard's command channel, read by its session; the executor routes by guild.
    let mut links = Vec::new();
    let mut outboxes = Vec::new();
    let mut shard_states = Vec::new();
    for shard in &plan.shards {
        let (state_tx, state_rx) = tokio::sync::watch::channel(GatewayState::Connecting);
        let (link, rx) = commands::gateway_link::channel(GATEWAY_COMMAND_BACKLOG, state_rx);
        links.push((shard.id, link));
        outboxes.push(commands::gateway_outbox::Outbox::new(
            rx,
            Duration::from_millis(t.member_request_interval_ms),
        ));
        shard_states.push(state_tx);
    }
    let commands = commands::service::CommandService::new(
        commands::executor::Executor::new(
            reqwest::Client::builder()
                .tcp_nodelay(true)
                .user_agent(config.user_agent.clone())
                .build()
                .map_err(|e| RunError::Setup(format!("cannot build the REST client: {e}")))?,
            config.api_url.as_str(),
            config.bot_token.clone(),
            commands::executor::ExecutorSettings {
                limits: commands::ratelimit::LimitSettings {
                    invalid_limit: config.tuning.invalid_request_limit as usize,
                    // Discord's 50/s is per bot: a holder running part of the shards gets its
                    // share, so several holders together never exceed it.
                    global_per_second: global_share(config.shards.share()),
                    ..Default::default()
                },
                ..Default::default()
            },
        )
        .with_gateway(
            commands::gateway_link::ShardLinks::new(count, links),
            config.intents,
        ),
        commands::service::ServiceSettings {
            capacity: config.tuning.command_queue as usize,
            deadline: Duration::from_millis(config.tuning.command_deadline_ms),
            ..Default::default()
        },
        metrics.clone(),
    );
    let command_runner = tokio::spawn(commands.clone().run());
    let router = http::app(http::AppState {
        metrics: metrics.clone(),
        health: health.clone(),
    })
    .merge(commands::http::routes(commands::http::CommandsState {
        service: commands,
        results: commands::results::ResultPoster::new(
            reqwest::Client::new(),
            &config.edge_url,
            &config.link_token,
        ),
        link_auth: Arc::new(
            std::iter::once(&config.link_token)
                .chain(config.link_token_previous.as_ref())
                .map(|t| config::Secret::new(format!("Bearer {}", t.expose())))
                .collect(),
        ),
    }));
    let server = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, router).await {
            tracing::error!(error = %e, "HTTP server stopped");
        }
    });

    let (bus, forward_rx) = bus::Bus::new(BUS_CAPACITY);
    let observer = {
        let mut sub = bus.subscribe();
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let lag = metrics.bus_lagged.clone();
            let mut events_in = metrics::TypeCounters::new(&metrics.events_in);
            while let Some(item) = sub
                .recv(|n| {
                    lag.inc_by(n);
                })
                .await
            {
                events_in.inc(&item.kind);
            }
        })
    };

    let (hurry_tx, hurry_rx) = tokio::sync::watch::channel(false);
    let fcfg = forward::ForwardConfig {
        memory_limit_bytes: t.buffer_memory_bytes as usize,
        spill_max_bytes: t.spill_max_bytes,
        keepalive: Duration::from_millis(t.keepalive_ms),
        flush_timeout: Duration::from_millis(t.flush_timeout_ms),
        linger: Duration::from_millis(t.batch_linger_ms),
        ..forward::ForwardConfig::default()
    };
    let poster =
        forward::poster::Poster::new(&config.edge_url, &config.link_token, fcfg.post_timeout);
    let flush_timeout = fcfg.flush_timeout;
    let forwarder = forward::Forwarder::new(
        fcfg,
        forward_rx,
        poster,
        store.clone(),
        metrics.clone(),
        health.clone(),
        states.subscribe(),
        hurry_rx,
    )
    .map_err(|e| {
        RunError::Setup(format!(
            "HOLDER_STATE_DIR: cannot open the spill folder: {e}"
        ))
    })?;
    let forwarder = tokio::spawn(forwarder.run());

    let registration = tokio::spawn(
        register::Registration {
            http: discovery_http.clone(),
            edge_url: config.edge_url.clone(),
            token: config.link_token.clone(),
            holder_id: snap.holder_id.clone(),
            public_url: config.public_url.clone(),
            first: plan.shards[0].id,
            last: plan.shards[plan.shards.len() - 1].id,
            count,
        }
        .run(),
    );

    // One task per shard, built in shard order (the IDENTIFY queue's order).
    let mut sessions = tokio::task::JoinSet::new();
    for ((shard, outbox), state_tx) in plan.shards.iter().zip(outboxes).zip(shard_states) {
        let gateway = gateway::session::Gateway::new(
            gateway::session::GatewayConfig {
                shard: *shard,
                token: config.bot_token.clone(),
                user_agent: config.user_agent.clone(),
                api_url: config.api_url.clone(),
                gateway_url: config.gateway_url.clone(),
                intents: config.intents,
                compression: config.compression,
                reconnect_base: Duration::from_millis(t.reconnect_base_ms),
                reconnect_max: Duration::from_millis(t.reconnect_max_ms),
                connect_timeout: Duration::from_secs(10),
            },
            store.clone(),
            bus.clone(),
            metrics.clone(),
            health.clone(),
            queue.clone(),
            (state_tx, states.clone()),
            stop_rx.clone(),
        )
        .with_commands(outbox);
        sessions.spawn(gateway.run());
    }
    drop(bus);
    // The first shard to end for good (a fatal close) ends them all; on shutdown all end.
    let mut exit = gateway::session::Exit::Shutdown;
    let mut stopping = false;
    loop {
        tokio::select! {
            ended = sessions.join_next() => match ended {
                None => break,
                Some(Ok(gateway::session::Exit::Shutdown)) => {}
                Some(Ok(fatal)) => {
                    let _ = stop_tx.send(true);
                    if matches!(exit, gateway::session::Exit::Shutdown) {
                        exit = fatal;
                    }
                }
                Some(Err(e)) => {
                    tracing::error!(error = %e, "a shard's session task failed");
                    let _ = stop_tx.send(true);
                }
            },
            _ = &mut shutdown, if !stopping => {
                stopping = true;
                let _ = stop_tx.send(true);
            }
        }
    }
    registration.abort();
    tracing::info!(?exit, "gateway session loop ended; flushing to the edge");

    // The gateway (and with it the bus) is gone: the forwarder drains, delivers or spills, saves.
    // After a fatal close the process must end promptly (the operator is waiting for the line):
    // the forwarder gets a moment to tell the edge, then spills whatever is left.
    let fatal = !matches!(exit, gateway::session::Exit::Shutdown);
    let hurry = async {
        if fatal {
            tokio::time::sleep(FATAL_FLUSH).await;
            let _ = hurry_tx.send(true);
        }
        std::future::pending::<()>().await
    };
    let wait = tokio::time::timeout(flush_timeout + Duration::from_secs(3), forwarder);
    tokio::select! {
        r = wait => if r.is_err() {
            tracing::error!("forwarder did not finish in time");
        },
        _ = hurry => {}
    }
    let _ = store.save();
    drop(stop_tx);
    observer.abort();
    command_runner.abort();
    server.abort();
    match exit {
        gateway::session::Exit::Shutdown => {
            tracing::info!("holder stopped; the next start resumes the session");
            Ok(())
        }
        gateway::session::Exit::Fatal { code, meaning } => Err(RunError::Fatal { code, meaning }),
        gateway::session::Exit::Unauthorized => Err(RunError::Unauthorized),
    }
}

#[cfg(test)]
mod tests {
    use super::global_share;
    use crate::config::ShardSpec;

    #[test]
    fn holders_splitting_a_bot_split_its_rest_budget() {
        let spec = |first, last| ShardSpec::Range {
            first,
            last,
            count: 4,
        };
        assert_eq!(global_share(ShardSpec::Auto.share()), 50);
        assert_eq!(global_share(ShardSpec::All(4).share()), 50);
        // Two holders of 0-1/4 and 2-3/4, or three of 0-0/4, 1-2/4 and 3-3/4: never above 50/s
        // together, whatever the split.
        for split in [vec![(0, 1), (2, 3)], vec![(0, 0), (1, 2), (3, 3)]] {
            let total: u32 = split
                .iter()
                .map(|&(a, b)| global_share(spec(a, b).share()))
                .sum();
            assert!(total <= 50, "{split:?}: {total}");
            assert!(total >= 48, "{split:?}: {total} wastes the budget");
        }
        // A holder with one shard of very many still gets a call per second.
        let tiny = ShardSpec::Range {
            first: 0,
            last: 0,
            count: 1000,
        };
        assert_eq!(global_share(tiny.share()), 1);
    }
}
