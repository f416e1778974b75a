//! The state every part of the simulator shares: configuration, the guilds, sessions, live
//! connections, fault switches, REST limiter and records. Emission lives here because it touches
//! all of them: one lock (the guilds') orders every event, so every session sees events in the
//! same order and with consistent guild state, and routing (which shard gets a guild's events)
//! is decided in one place.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::sync::{mpsc, watch};

use crate::clock::Snowflakes;
use crate::config::SimConfig;
use crate::events::{Resolved, SimEvent};
use crate::faults::RateLimitScope;
use crate::gateway::connection::Outbound;
use crate::gateway::session::{DispatchEntry, Session};
use crate::guild::Guilds;
use crate::records::Records;
use crate::rest::ratelimit::RateLimiter;

/// Locks a std mutex, ignoring poisoning (a panicked holder leaves consistent-enough data for a
/// simulator, and bad input must never take the whole sim down).
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A live gateway connection, as faults see it.
#[derive(Debug, Clone)]
pub struct LiveConn {
    /// Where to send frames and commands.
    pub tx: mpsc::UnboundedSender<Outbound>,
    /// Its session, once identified or resumed.
    pub session: Option<Arc<str>>,
    /// That session's `[shard_id, num_shards]`.
    pub shard: Option<[u64; 2]>,
}

/// A pending 429 storm.
#[derive(Debug, Clone, Copy)]
pub struct Storm {
    /// Calls still to refuse.
    pub remaining: u32,
    /// Scope reported.
    pub scope: RateLimitScope,
    /// `Retry-After`.
    pub retry_after: Duration,
}

/// Fault switches that stay on until turned off.
#[derive(Debug, Default)]
pub struct FaultFlags {
    /// Don't answer heartbeats.
    pub stop_acks: AtomicBool,
    /// Answer every RESUME with op 9 `false`.
    pub refuse_resume: AtomicBool,
    /// Delay added to every REST answer, micros.
    pub slow_rest_us: AtomicU64,
    /// The token was revoked: REST 401, IDENTIFY/RESUME 4004.
    pub token_revoked: AtomicBool,
    /// New gateway connections are refused (HTTP 503).
    pub refuse_gateway: AtomicBool,
    /// 429 storm.
    pub storm: Mutex<Option<Storm>>,
    /// Close every IDENTIFY with this code before READY.
    pub close_before_ready: Mutex<Option<u16>>,
    /// Switches for one shard id (whatever `num_shards`).
    pub shards: Mutex<HashMap<u64, ShardSwitches>>,
}

/// Fault switches aimed at one shard.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ShardSwitches {
    /// Don't answer its heartbeats.
    pub stop_acks: bool,
    /// Close its IDENTIFYs with this code before READY.
    pub close_before_ready: Option<u16>,
}

impl FaultFlags {
    /// Whether heartbeats on a connection of `shard` go unanswered.
    pub fn acks_stopped(&self, shard: Option<u64>) -> bool {
        self.stop_acks.load(Ordering::Relaxed)
            || shard.is_some_and(|s| lock(&self.shards).get(&s).is_some_and(|f| f.stop_acks))
    }

    /// The code an IDENTIFY for `shard` is closed with before READY, if any.
    pub fn close_before_ready(&self, shard: u64) -> Option<u16> {
        lock(&self.close_before_ready).or_else(|| {
            lock(&self.shards)
                .get(&shard)
                .and_then(|f| f.close_before_ready)
        })
    }
}

/// Shared simulator state.
#[derive(Debug)]
pub struct SimState {
    /// Configuration.
    pub config: SimConfig,
    /// Bound address.
    pub addr: SocketAddr,
    /// The guilds; their lock also orders emission.
    pub guilds: Mutex<Guilds>,
    /// Snowflake generator.
    pub ids: Snowflakes,
    /// Sessions by id (ended ones stay, so a late RESUME gets the right answer).
    pub sessions: Mutex<HashMap<Arc<str>, Arc<Mutex<Session>>>>,
    /// Live connections by id.
    pub conns: Mutex<HashMap<u64, LiveConn>>,
    /// Last connection id handed out.
    pub next_conn: AtomicU64,
    /// Records and counters.
    pub records: Records,
    /// Fault switches.
    pub faults: FaultFlags,
    /// Session starts used.
    pub session_starts_used: AtomicU32,
    /// When the session-start budget was last reset.
    pub session_starts_since: Instant,
    /// REST rate limiter.
    pub ratelimit: RateLimiter,
    /// `(channel, nonce)` → (when, message JSON) for `enforce_nonce`.
    pub nonces: Mutex<HashMap<(u64, String), (Instant, Value)>>,
    /// Flipped to `true` on shutdown.
    pub shutdown: watch::Sender<bool>,
    /// Dispatches handed to connections but not yet written.
    pub queued: Arc<std::sync::atomic::AtomicI64>,
    /// Guild id → when its last Request Guild Members (op 8) was answered.
    pub member_requests: Mutex<HashMap<u64, Instant>>,
    /// Identify bucket (`shard_id % max_concurrency`) → when its last IDENTIFY was let through.
    pub identify_buckets: Mutex<HashMap<u64, Instant>>,
}

impl SimState {
    /// Fresh state for a sim bound at `addr`.
    pub fn new(config: SimConfig, addr: SocketAddr) -> Self {
        let guilds = Guilds::new(&config.guilds, &config.bot_user);
        let records = Records::new(config.record_limit);
        let ratelimit = RateLimiter::new(config.rest.clone());
        Self {
            config,
            addr,
            guilds: Mutex::new(guilds),
            ids: Snowflakes::default(),
            sessions: Mutex::default(),
            conns: Mutex::default(),
            next_conn: AtomicU64::new(0),
            records,
            faults: FaultFlags::default(),
            session_starts_used: AtomicU32::new(0),
            session_starts_since: Instant::now(),
            ratelimit,
            nonces: Mutex::default(),
            shutdown: watch::Sender::new(false),
            queued: Arc::default(),
            member_requests: Mutex::default(),
            identify_buckets: Mutex::default(),
        }
    }

    /// `max_concurrency` as used for buckets (at least 1).
    pub fn max_concurrency(&self) -> u64 {
        u64::from(self.config.max_concurrency.max(1))
    }

    /// `ws://ADDR` (what `GET /gateway/bot` returns).
    pub fn gateway_url(&self) -> String {
        format!("ws://{}", self.addr)
    }

    /// READY's `resume_gateway_url`: the same server under `/resume`, so tests can tell it was
    /// used (or `SimConfig::advertised_resume_url`).
    pub fn resume_url(&self) -> String {
        match &self.config.advertised_resume_url {
            Some(u) => u.clone(),
            None => format!("ws://{}/resume", self.addr),
        }
    }

    /// Whether `token` (without any `Bot ` prefix) is the accepted bot token right now.
    pub fn token_ok(&self, token: &str) -> bool {
        !self.faults.token_revoked.load(Ordering::Relaxed) && token == self.config.token
    }

    /// Session starts left.
    pub fn session_starts_remaining(&self) -> u32 {
        self.config
            .session_start_total
            .saturating_sub(self.session_starts_used.load(Ordering::Relaxed))
    }

    /// Sessions that still get dispatches.
    fn alive_sessions(&self) -> Vec<Arc<Mutex<Session>>> {
        lock(&self.sessions)
            .values()
            .filter(|s| lock(s).ended.is_none())
            .cloned()
            .collect()
    }

    /// Resolves and emits an event in the guild it names (see `events.rs`).
    pub fn emit(&self, event: SimEvent) -> (Option<Resolved>, Vec<Arc<DispatchEntry>>) {
        self.emit_in(event, None)
    }

    /// Resolves and emits an event in guild `guild_id` (`None`: the guild it names). Returns
    /// `None` when it happens nowhere (a guild the bot isn't in, or no guild at all).
    pub fn emit_in(
        &self,
        event: SimEvent,
        guild_id: Option<u64>,
    ) -> (Option<Resolved>, Vec<Arc<DispatchEntry>>) {
        let res = self.emit_with(|guilds, ids| {
            if let SimEvent::Raw { t, d, intent } = event {
                return Ok((crate::events::raw(t, d, intent), ()));
            }
            let Some(i) = event.pick_guild(guilds, guild_id) else {
                return Err(());
            };
            let guild = &mut guilds.list_mut()[i];
            Ok((event.resolve(guild, ids), ()))
        });
        match res {
            Ok((r, entries, ())) => (Some(r), entries),
            Err(()) => (None, Vec::new()),
        }
    }

    /// Runs `f` under the emission lock and sends the dispatch it returns to every session that
    /// wants it. `f` may refuse (REST validation against the guild), then nothing is emitted.
    pub fn emit_with<R, E>(
        &self,
        f: impl FnOnce(&mut Guilds, &Snowflakes) -> Result<(Resolved, R), E>,
    ) -> Result<(Resolved, Vec<Arc<DispatchEntry>>, R), E> {
        let mut guilds = lock(&self.guilds);
        let (resolved, extra) = f(&mut guilds, &self.ids)?;
        let entries = self.fan_out(&guilds, &resolved);
        drop(guilds);
        Ok((resolved, entries, extra))
    }

    /// Sends a resolved dispatch to every session that wants it (by shard and intents); call
    /// with the guilds lock held. Nothing goes out for a guild the bot is not in or that is
    /// unavailable, unless the dispatch is verbatim.
    pub fn fan_out(&self, guilds: &Guilds, r: &Resolved) -> Vec<Arc<DispatchEntry>> {
        if let (Some(g), false) = (r.guild_id, r.verbatim) {
            if !guilds.is_live(g) {
                return Vec::new();
            }
        }
        let guild_create = r
            .guild_create
            .then(|| r.guild_id.and_then(|g| guilds.get(g)))
            .flatten();
        if r.guild_create && guild_create.is_none() {
            return Vec::new();
        }
        let sessions = self.alive_sessions();
        let mut full: Option<String> = None;
        let mut stripped: Option<String> = None;
        let mut shaped: HashMap<u64, String> = HashMap::new();
        let mut out = Vec::with_capacity(sessions.len());
        for s in sessions {
            let mut s = lock(&s);
            if !s.is_alive(self.config.resume_window) || !s.wants(r.guild_id, r.intent) {
                continue;
            }
            let d = if let Some(g) = guild_create {
                let key = s.intents
                    & (crate::gateway::intents::GUILD_MEMBERS
                        | crate::gateway::intents::GUILD_VOICE_STATES);
                shaped
                    .entry(key)
                    .or_insert_with(|| g.guild_create_for(key).to_string())
                    .clone()
            } else if r.has_content && s.intents & crate::gateway::intents::MESSAGE_CONTENT == 0 {
                stripped
                    .get_or_insert_with(|| r.without_content().to_string())
                    .clone()
            } else {
                full.get_or_insert_with(|| r.d.to_string()).clone()
            };
            let entry = s.push(&r.t, d);
            drop(s);
            self.records.emitted(entry.clone());
            out.push(entry);
        }
        if !out.is_empty() {
            let n = out.len() as u64;
            self.records.count(|st| st.emitted += n);
        }
        out
    }

    /// Sends a command to every live connection; returns how many got it.
    pub fn to_all_conns(&self, f: impl Fn(&LiveConn) -> Option<Outbound>) -> usize {
        self.to_conns(None, f)
    }

    /// Sends a command to every live connection (`shard: Some(id)`: only those serving a
    /// session of that shard id); returns how many got it.
    pub fn to_conns(&self, shard: Option<u64>, f: impl Fn(&LiveConn) -> Option<Outbound>) -> usize {
        let conns: Vec<LiveConn> = lock(&self.conns)
            .values()
            .filter(|c| shard.is_none_or(|id| c.shard.is_some_and(|s| s[0] == id)))
            .cloned()
            .collect();
        conns
            .iter()
            .filter_map(|c| f(c).map(|o| c.tx.send(o).is_ok()))
            .filter(|ok| *ok)
            .count()
    }

    /// A session by id.
    pub fn session(&self, id: &str) -> Option<Arc<Mutex<Session>>> {
        lock(&self.sessions).get(id).cloned()
    }
}

/// Resolves once the sim is shutting down.
pub async fn stopped(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|s| *s).await;
}
