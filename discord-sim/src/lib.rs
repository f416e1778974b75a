//! # discord-sim
//!
//! A Discord Gateway v10 + REST v10 simulator that behaves the way Discord's documentation says,
//! with fault injection, traffic generation and full records, for tests, benchmarks and the demo.
//!
//! ## Layout tour
//!
//! - [`Sim`] (this file): start/stop an instance (port 0 works) and the library API tests use.
//! - `config.rs`: [`SimConfig`], the seeded guild ([`GuildSeed`]) and limits.
//! - `gateway/`: the websocket gateway.
//!   - `connection.rs`: one connection's task: HELLO, heartbeats, IDENTIFY, RESUME, close codes.
//!   - `session.rs`: sessions, `s` numbering, the replay backlog, the send stamp.
//!   - `close_codes.rs`, `intents.rs`, `limits.rs`: Discord's rules as data.
//!   - `zlib.rs`: `compress=zlib-stream` (one deflate context per connection).
//! - `rest/`: REST under `/api/v10`: `routes.rs` (endpoints), `ratelimit.rs` (buckets, global
//!   limit, 429s), `errors.rs` (Discord's error bodies).
//! - `events.rs`: [`SimEvent`], scripted events, and how they become dispatches.
//! - `guild.rs`: the guild's current state (members, voice, messages); `payloads.rs`: Discord
//!   objects as JSON.
//! - `faults.rs`: [`Fault`] injection.
//! - `traffic.rs`: [`TrafficSpec`], rate + burst generation.
//! - `scenario.rs`: the demo scenario.
//! - `records.rs`: what was sent and received, counters ([`SimStats`]) and notices.
//! - `control.rs`: the same operations over HTTP at `/_sim/...`.
//! - `state.rs`: shared state and emission; `clock.rs`: time and snowflakes.
//! - `main.rs`: the `discord-sim` binary.
//!
//! ## Example
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use discord_sim::{Sim, SimConfig, SimEvent, config::demo};
//! let sim = Sim::start("127.0.0.1:0".parse().unwrap(), SimConfig::default()).await?;
//! // point a client at sim.gateway_url() / sim.api_url() with token "sim-token" ...
//! sim.wait_for(|s| s.identifies >= 1).await;
//! let sent = sim
//!     .emit(SimEvent::MessageCreate {
//!         channel_id: demo::GENERAL,
//!         author_id: demo::ALICE,
//!         content: "hi".into(),
//!     })
//!     .await;
//! assert_eq!(sent.seq, Some(3)); // READY 1, GUILD_CREATE 2
//! sim.shutdown().await;
//! # Ok(()) }
//! ```

#![recursion_limit = "256"]

pub mod clock;
pub mod config;
pub mod control;
pub mod events;
pub mod faults;
pub mod gateway;
pub mod guild;
pub mod payloads;
pub mod records;
pub mod rest;
pub mod scenario;
pub mod state;
pub mod traffic;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::serve::ListenerExt as _;
use axum::Router;
use serde::Serialize;
use tokio::net::TcpListener;
use tokio::sync::{broadcast, watch};
use tokio::task::JoinHandle;

pub use config::{
    ChannelKind, ChannelSeed, GuildSeed, RestLimits, RouteLimit, SimConfig, UserSeed,
    VoiceStateSeed,
};
pub use events::SimEvent;
pub use faults::{Fault, RateLimitScope};
pub use records::{
    ConnectionRecord, EmittedDispatch, GatewayRecord, RestRecord, SimNotice, SimStats,
};
pub use traffic::{Burst, TrafficHandle, TrafficMix, TrafficReport, TrafficSpec};

use events::Resolved;
use state::{lock, SimState};

/// A session as tests see it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SessionInfo {
    /// `session_id`.
    pub session_id: String,
    /// Last `s` assigned.
    pub seq: u64,
    /// Identified intents.
    pub intents: u64,
    /// `[shard_id, num_shards]`.
    pub shard: [u64; 2],
    /// Connection serving it now.
    pub conn_id: Option<u64>,
    /// `None` while resumable; `"timed_out"` or `"invalidated"` once not.
    pub ended: Option<String>,
    /// Dispatches kept for replay.
    pub backlog: usize,
    /// Times resumed.
    pub resumes: u64,
}

pub(crate) fn session_infos(state: &SimState) -> Vec<SessionInfo> {
    let sessions: Vec<_> = lock(&state.sessions).values().cloned().collect();
    let mut out: Vec<SessionInfo> = sessions
        .iter()
        .map(|s| {
            let s = lock(s);
            SessionInfo {
                session_id: s.id.to_string(),
                seq: s.seq,
                intents: s.intents,
                shard: s.shard,
                conn_id: s.conn.as_ref().map(|c| c.conn_id),
                ended: s.ended.map(|e| match e {
                    gateway::session::Ended::TimedOut => "timed_out".to_owned(),
                    gateway::session::Ended::Invalidated => "invalidated".to_owned(),
                }),
                backlog: s.backlog.len(),
                resumes: s.resumes,
            }
        })
        .collect();
    out.sort_by(|a, b| a.session_id.cmp(&b.session_id));
    out
}

/// The record for an event no session got.
pub(crate) fn synthetic_record(r: &Resolved) -> EmittedDispatch {
    let now = clock::unix_micros();
    let d = r.d.to_string();
    let (frame, a, b) = gateway::session::dispatch_frame(&r.t, 0, &d, now);
    EmittedDispatch {
        session_id: None,
        seq: None,
        t: r.t.clone(),
        d: frame[a..b].to_owned(),
        sent_us: now,
    }
}

/// The whole HTTP surface: gateway websocket, REST, control API.
pub fn app(state: Arc<SimState>) -> Router {
    Router::new()
        .merge(gateway::router())
        .merge(rest::router())
        .merge(control::router())
        .with_state(state)
}

/// A running simulator. Cheap to clone; all clones control the same instance.
#[derive(Clone, Debug)]
pub struct Sim {
    state: Arc<SimState>,
    server: Arc<Mutex<Option<JoinHandle<()>>>>,
}

impl Sim {
    /// Binds `listen` (port 0 picks a free port) and starts serving.
    pub async fn start(listen: SocketAddr, config: SimConfig) -> std::io::Result<Sim> {
        let listener = TcpListener::bind(listen).await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(SimState::new(config, addr));
        let app = app(state.clone());
        let mut stop = state.shutdown.subscribe();
        let server = tokio::spawn(async move {
            let shutdown = async move {
                let _ = stop.wait_for(|s| *s).await;
            };
            // No Nagle: small frames (a heartbeat ACK, one dispatch) go out at once, as latency
            // tests downstream expect.
            let listener = listener.tap_io(|tcp| {
                if let Err(e) = tcp.set_nodelay(true) {
                    tracing::debug!(error = %e, "set_nodelay failed");
                }
            });
            if let Err(e) = axum::serve(listener, app)
                .with_graceful_shutdown(shutdown)
                .await
            {
                tracing::error!(error = %e, "discord-sim server failed");
            }
        });
        tracing::info!(%addr, "discord-sim listening");
        Ok(Sim {
            state,
            server: Arc::new(Mutex::new(Some(server))),
        })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.state.addr
    }

    /// `http://ADDR/api/v10`.
    pub fn api_url(&self) -> String {
        format!("http://{}/api/v10", self.state.addr)
    }

    /// `ws://ADDR` (what `GET /gateway/bot` returns; clients append `/?v=10&encoding=json`).
    pub fn gateway_url(&self) -> String {
        self.state.gateway_url()
    }

    /// `ws://ADDR/resume`, READY's `resume_gateway_url`.
    pub fn resume_gateway_url(&self) -> String {
        self.state.resume_url()
    }

    /// The configuration it runs with.
    pub fn config(&self) -> &SimConfig {
        &self.state.config
    }

    /// Emits an event to every session that should get it (by intents and shard), live or
    /// waiting for a RESUME. Returns the dispatch as the first such session got it, or a record
    /// with `session_id: None` when no session exists.
    pub async fn emit(&self, event: SimEvent) -> EmittedDispatch {
        let (resolved, entries) = self.state.emit(event);
        entries
            .first()
            .map(|e| e.to_record())
            .unwrap_or_else(|| synthetic_record(&resolved))
    }

    /// Like [`Sim::emit`], returning the dispatch for every session.
    pub async fn emit_all(&self, event: SimEvent) -> Vec<EmittedDispatch> {
        let (_, entries) = self.state.emit(event);
        entries.iter().map(|e| e.to_record()).collect()
    }

    /// Starts generated traffic; await the handle for the report.
    pub fn traffic(&self, spec: TrafficSpec) -> TrafficHandle {
        traffic::start(self.state.clone(), spec)
    }

    /// Injects a fault; returns once it is queued on every live connection.
    pub async fn fault(&self, fault: Fault) {
        faults::apply(&self.state, fault);
    }

    /// Starts the demo scenario (runs until shutdown or until the handle is aborted).
    pub fn run_demo_scenario(&self) -> JoinHandle<()> {
        scenario::demo(self.state.clone())
    }

    /// Every dispatch emitted, per session, in order, with the exact `d` bytes.
    pub fn emitted(&self) -> Vec<EmittedDispatch> {
        self.state.records.emitted_list()
    }

    /// Every payload clients sent.
    pub fn gateway_received(&self) -> Vec<GatewayRecord> {
        self.state.records.gateway_list()
    }

    /// Every REST call.
    pub fn rest_calls(&self) -> Vec<RestRecord> {
        self.state.records.rest_list()
    }

    /// Every gateway connection.
    pub fn connections(&self) -> Vec<ConnectionRecord> {
        self.state.records.connection_list()
    }

    /// All sessions (including ended ones).
    pub fn sessions(&self) -> Vec<SessionInfo> {
        session_infos(&self.state)
    }

    /// Forgets records (counters stay).
    pub fn clear_records(&self) {
        self.state.records.clear();
    }

    /// Counters now.
    pub fn stats(&self) -> SimStats {
        self.state.records.stats.borrow().clone()
    }

    /// Successful IDENTIFYs so far.
    pub fn identifies(&self) -> u64 {
        self.stats().identifies
    }

    /// Successful RESUMEs so far.
    pub fn resumes(&self) -> u64 {
        self.stats().resumes
    }

    /// A receiver of counter updates.
    pub fn watch_stats(&self) -> watch::Receiver<SimStats> {
        self.state.records.stats.subscribe()
    }

    /// A receiver of notices (connected, identified, resumed, closed, REST call).
    pub fn subscribe(&self) -> broadcast::Receiver<SimNotice> {
        self.state.records.notices.subscribe()
    }

    /// Waits until the counters satisfy `pred` (wrap in `tokio::time::timeout`).
    pub async fn wait_for(&self, mut pred: impl FnMut(&SimStats) -> bool) -> SimStats {
        let mut rx = self.watch_stats();
        let r = rx.wait_for(|s| pred(s)).await;
        match r {
            Ok(s) => s.clone(),
            Err(_) => self.stats(),
        }
    }

    /// Waits until at least `n` gateway connections are open.
    pub async fn wait_for_connections(&self, n: u64) -> SimStats {
        self.wait_for(|s| s.connections_live >= n).await
    }

    /// Stops serving: closes every connection (without close frames), stops traffic and the
    /// scenario, and waits (bounded) for the server to end.
    pub async fn shutdown(self) {
        let _ = self.state.shutdown.send(true);
        let server = lock(&self.server).take();
        if let Some(server) = server {
            if tokio::time::timeout(Duration::from_secs(5), server)
                .await
                .is_err()
            {
                tracing::warn!("discord-sim server did not stop within 5 s");
            }
        }
    }
}
