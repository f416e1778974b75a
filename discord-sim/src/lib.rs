//! # discord-sim
//!
//! A Discord Gateway v10 + REST v10 simulator that behaves the way Discord's documentation says,
//! with fault injection, traffic generation and full records, for tests, benchmarks and the demo.
//!
//! ## Layout tour
//!
//! - [`Sim`] (this file): start/stop an instance (port 0 works) and the library API tests use.
//! - `config.rs`: [`SimConfig`], the seeded guilds ([`GuildSeed`]), sharding and limits;
//!   [`guild_id_on_shard`] makes a guild id for shard k of n.
//! - `gateway/`: the websocket gateway.
//!   - `connection.rs`: one connection's task: HELLO, heartbeats, IDENTIFY, RESUME, close codes.
//!   - `session.rs`: sessions, `s` numbering, the replay backlog, the send stamp.
//!   - `close_codes.rs`, `intents.rs`, `limits.rs`: Discord's rules as data.
//!   - `zlib.rs`: `compress=zlib-stream` (one deflate context per connection); `zstd.rs`:
//!     `compress=zstd-stream` (one zstd context per connection).
//!   - `socket.rs`: the websocket upgrade and a socket that can fragment one message into frames.
//! - `rest/`: REST under `/api/v10`: `routes.rs` (endpoints), `ratelimit.rs` (buckets, global
//!   limit, 429s), `errors.rs` (Discord's error bodies).
//! - `events.rs`: [`SimEvent`], scripted events, and how they become dispatches.
//! - `guild.rs`: each guild's current state (members, voice, messages) and the bot's membership;
//!   `payloads.rs`: Discord objects as JSON.
//! - `membership.rs`: the bot joins or leaves a guild, a guild goes down and comes back
//!   (GUILD_CREATE / GUILD_DELETE on the guild's shard).
//! - `faults.rs`: [`Fault`] injection (also aimed at one shard).
//! - `traffic.rs`: [`TrafficSpec`], rate + burst generation.
//! - `scenario.rs`: the demo scenario.
//! - `records.rs`: what was sent and received, every IDENTIFY ([`IdentifyRecord`]), counters
//!   ([`SimStats`]) and notices.
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
pub mod membership;
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
    guild_id_on_shard, shard_of, ChannelKind, ChannelSeed, GuildSeed, RestLimits, RouteLimit,
    SimConfig, UserSeed, VoiceStateSeed,
};
pub use events::SimEvent;
pub use faults::{Fault, RateLimitScope};
pub use membership::GuildInfo;
pub use records::{
    ConnectionRecord, EmittedDispatch, GatewayRecord, IdentifyRecord, RestRecord, SimNotice,
    SimStats,
};
pub use traffic::{Burst, TrafficGuilds, TrafficHandle, TrafficMix, TrafficReport, TrafficSpec};

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
                seq: s.seq(),
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

/// The record for an event no session got (`r`: `None` when it happened in no guild; `d` is
/// then `null`).
pub(crate) fn synthetic_record(t: &str, r: Option<&Resolved>) -> EmittedDispatch {
    let now = clock::unix_micros();
    let d = r.map_or_else(|| "null".to_owned(), |r| r.d.to_string());
    let (frame, a, b) = gateway::session::dispatch_frame(t, 0, &d, now);
    EmittedDispatch {
        session_id: None,
        seq: None,
        t: t.to_owned(),
        d: frame[a..b].to_owned(),
        sent_us: now,
    }
}

/// The records of an emission: per session, or one synthetic record when nobody got it.
pub(crate) fn emission_records(
    t: &str,
    r: Option<&Resolved>,
    entries: &[Arc<gateway::session::DispatchEntry>],
) -> Vec<EmittedDispatch> {
    if entries.is_empty() {
        vec![synthetic_record(t, r)]
    } else {
        entries.iter().map(|e| e.to_record()).collect()
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

    /// Emits an event in the guild it names (see [`events`]) to every session that should get
    /// it (by intents and the guild's shard), live or waiting for a RESUME. Returns the dispatch
    /// as the first such session got it, or a record with `session_id: None` when no session
    /// got it (`d` is `null` when it happened in no guild: one the bot left, or none at all).
    pub async fn emit(&self, event: SimEvent) -> EmittedDispatch {
        self.emit_in_guild(event, None).swap_remove(0)
    }

    /// Like [`Sim::emit`], returning the dispatch for every session.
    pub async fn emit_all(&self, event: SimEvent) -> Vec<EmittedDispatch> {
        let (_, entries) = self.state.emit(event);
        entries.iter().map(|e| e.to_record()).collect()
    }

    /// Like [`Sim::emit_all`], in guild `guild_id` (for events that name only a user, e.g.
    /// `VoiceLeave`, `GuildMemberRemove`; or to force one). Never empty: a synthetic record
    /// when no session got it.
    pub async fn emit_in(&self, event: SimEvent, guild_id: u64) -> Vec<EmittedDispatch> {
        self.emit_in_guild(event, Some(guild_id))
    }

    fn emit_in_guild(&self, event: SimEvent, guild_id: Option<u64>) -> Vec<EmittedDispatch> {
        let t = event.name().to_owned();
        let (resolved, entries) = self.state.emit_in(event, guild_id);
        emission_records(&t, resolved.as_ref(), &entries)
    }

    /// The bot joins a guild (GUILD_CREATE on its shard; a guild it left before comes back as
    /// it was). Returns how many sessions got the GUILD_CREATE, `None` if already a member.
    pub async fn join_guild(&self, seed: GuildSeed) -> Option<usize> {
        membership::join(&self.state, &seed)
    }

    /// The bot leaves a guild (GUILD_DELETE `{id}` on its shard; nothing is sent for it after).
    /// Returns how many sessions got it, `None` if not a member.
    pub async fn leave_guild(&self, guild_id: u64) -> Option<usize> {
        membership::leave(&self.state, guild_id)
    }

    /// A guild outage starts (GUILD_DELETE `{id, unavailable: true}`; nothing is sent for it
    /// until [`Sim::guild_recover`]). `None` if not a member or already down.
    pub async fn guild_outage(&self, guild_id: u64) -> Option<usize> {
        membership::set_outage(&self.state, guild_id, true)
    }

    /// A guild outage ends (GUILD_CREATE). `None` if not a member or not down.
    pub async fn guild_recover(&self, guild_id: u64) -> Option<usize> {
        membership::set_outage(&self.state, guild_id, false)
    }

    /// The guilds the bot is in (first, in join order) and has left.
    pub fn guilds(&self) -> Vec<GuildInfo> {
        membership::infos(&self.state)
    }

    /// Every IDENTIFY received, in order, with time, connection, shard and outcome.
    pub fn identify_log(&self) -> Vec<IdentifyRecord> {
        self.state.records.identify_list()
    }

    /// Starts generated traffic; await the handle for the report.
    pub fn traffic(&self, spec: TrafficSpec) -> TrafficHandle {
        traffic::start(self.state.clone(), spec)
    }

    /// Injects a fault; returns once it is queued on every live connection it aims at.
    ///
    /// # Panics
    ///
    /// On a [`Fault::OnShard`] carrying a fault that can't be aimed at one shard (a test bug).
    pub async fn fault(&self, fault: Fault) {
        if let Err(e) = faults::apply(&self.state, fault) {
            panic!("discord-sim: {e}");
        }
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
