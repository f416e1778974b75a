//! The gateway holder: the one process that talks to Discord's Gateway, puts every dispatch on an
//! in-memory bus, and forwards it to the edge in versioned batches, losing nothing across
//! reconnects, edge outages and restarts.
//!
//! Layout (one concern per file; each module's doc says why it exists):
//! - [`config`]: the environment variables of SPEC.md, validated once at start.
//! - [`gateway`]: the Discord session. [`gateway::session`] is the protocol and reconnect loop;
//!   beside it [`gateway::connection`] (the socket), [`gateway::heartbeat`],
//!   [`gateway::inflate`] (zlib-stream), [`gateway::send_limit`], [`gateway::close_code`],
//!   [`gateway::backoff`] and [`gateway::start_limit`] (the session-start guard).
//! - [`bus`]: the bounded, typed bus between the gateway and its subscribers.
//! - [`forward`]: the batched, ordered, retrying forwarder with its disk spill.
//! - [`commands`]: the one outbound command queue (`POST /commands`), rate-limited and executed
//!   against Discord's REST API, or handed to the gateway session (voice state, presence, member
//!   requests) which writes them through its send limiter.
//! - [`state`]: what survives a restart (epoch, ids, the session to resume).
//! - [`metrics`], [`health`], [`http`]: what operators see (`/metrics`, `/healthz`).
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
pub mod shutdown;
pub mod state;

use config::Config;
use contracts::GatewayState;
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
    let (state_tx, state_rx) = tokio::sync::watch::channel(GatewayState::Connecting);
    let (gateway_link, gateway_commands) =
        commands::gateway_link::channel(GATEWAY_COMMAND_BACKLOG, state_rx.clone());
    let commands = commands::service::CommandService::new(
        commands::executor::Executor::new(
            reqwest::Client::builder()
                .tcp_nodelay(true)
                .build()
                .map_err(|e| RunError::Setup(format!("cannot build the REST client: {e}")))?,
            config.api_url.as_str(),
            config.bot_token.clone(),
            commands::executor::ExecutorSettings {
                limits: commands::ratelimit::LimitSettings {
                    invalid_limit: config.tuning.invalid_request_limit as usize,
                    ..Default::default()
                },
                ..Default::default()
            },
        )
        .with_gateway(gateway_link, config.intents),
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
    let t = &config.tuning;
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
        state_rx,
        hurry_rx,
    )
    .map_err(|e| {
        RunError::Setup(format!(
            "HOLDER_STATE_DIR: cannot open the spill folder: {e}"
        ))
    })?;
    let forwarder = tokio::spawn(forwarder.run());

    let (stop_tx, stop_rx) = shutdown::channel();

    let gateway = gateway::session::Gateway::new(
        gateway::session::GatewayConfig {
            token: config.bot_token.clone(),
            api_url: config.api_url.clone(),
            gateway_url: config.gateway_url.clone(),
            intents: config.intents,
            compression: config.compression,
            reconnect_base: Duration::from_millis(t.reconnect_base_ms),
            reconnect_max: Duration::from_millis(t.reconnect_max_ms),
            connect_timeout: Duration::from_secs(10),
        },
        store.clone(),
        bus,
        metrics.clone(),
        health.clone(),
        state_tx,
        stop_rx,
    )
    .with_commands(commands::gateway_outbox::Outbox::new(
        gateway_commands,
        Duration::from_millis(config.tuning.member_request_interval_ms),
    ));
    let gw = gateway.run();
    tokio::pin!(gw);
    tokio::pin!(shutdown);
    let exit = tokio::select! {
        exit = &mut gw => exit,
        _ = &mut shutdown => {
            let _ = stop_tx.send(true);
            gw.await
        }
    };
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
