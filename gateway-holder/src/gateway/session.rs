//! One shard's Gateway session: the reconnect loop and the per-connection protocol. Each shard
//! of the holder runs its own `Gateway` task (own socket, heartbeat, resume state, zombie check
//! and send limiter), so a fault on one shard never pauses another's events; they share only the
//! bus, the state store, the IDENTIFY queue and the metrics.
//!
//! Rules, from FACTS.md:
//! - HELLO starts the heartbeat (jittered first beat); a beat without an ACK before the next one is
//!   a zombie: close with 4000 (never 1000/1001) and RESUME.
//! - RESUME goes to READY's `resume_gateway_url`; IDENTIFY to the URL from `/gateway/bot`, after
//!   the shard's turn in the IDENTIFY queue (`identify_queue.rs`) and the session-start budget. When the resume URL can't be reached `RESUME_URL_ATTEMPTS` times in a
//!   row (refused, TLS or websocket handshake failure, timeout, no HELLO), the holder forgets it and
//!   resumes the same session on the URL from `/gateway/bot` (no session-start guard: a RESUME
//!   starts no session; if Discord refuses it, op 9 `false`, the holder identifies as usual).
//! - op 7, op 9 `true` and the resumable close codes resume; op 9 `false`, 4007 and 4009 identify
//!   anew; 4004 and 4010-4014 end the process.
//! - Reconnects back off (jittered, capped) unless the connection had reached READY/RESUMED and
//!   Discord itself asked for the reconnect. Connections that keep ending before READY are
//!   counted and, from the third in a row, reported on `/healthz` and `/metrics` (usually a
//!   refused token on a server that doesn't say 4004).
//!
//! Numbering: within a session an envelope's id is `id_offset + seq` (see `state.rs`), so a dispatch
//! Discord replays after a restart gets the id it had before.

use super::{
    backoff::Backoff,
    close_code::{self, CloseAction},
    connection::{gateway_url, ConnError, Connection, Incoming, RESUMABLE_CLOSE},
    envelope::{self, Arena, SessionPart},
    frame::{FrameView, Scanner},
    heartbeat::{Beat, Heartbeat},
    identify_queue::{Grant, IdentifyQueue, Ticket},
    send_limit::{Kind, Refusal, SendLimiter},
    shards::{ShardId, ShardStates},
    start_limit::{self, GatewayBotError},
};
use crate::{
    bus::{Bus, Dispatch},
    commands::gateway_outbox::{Next, Outbox},
    config::{Compression, Secret},
    health::Health,
    metrics::Metrics,
    state::StateStore,
};
use contracts::{GatewayState, Snowflake};
use futures::FutureExt;
use rand::Rng;
use serde::Deserialize;
use serde_json::value::RawValue;
use std::{borrow::Cow, sync::Arc, time::Duration};
use tokio::{sync::watch, time::Instant};

/// Failed connection attempts in a row to READY's `resume_gateway_url` before the holder resumes
/// on the URL from `GET /gateway/bot` instead.
pub const RESUME_URL_ATTEMPTS: u32 = 3;

/// Connections in a row that end before READY/RESUMED before the shard reports it as a problem.
pub const FAILED_BEFORE_READY_REPORT: u32 = 3;

#[derive(Clone, Debug)]
pub struct GatewayConfig {
    pub shard: ShardId,
    pub token: Secret,
    /// Sent on `GET /gateway/bot` and the websocket handshake (`user_agent.rs`).
    pub user_agent: String,
    pub api_url: url::Url,
    pub gateway_url: Option<url::Url>,
    pub intents: u64,
    pub compression: Compression,
    pub reconnect_base: Duration,
    pub reconnect_max: Duration,
    pub connect_timeout: Duration,
}

/// Why the session loop ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Exit {
    /// Asked to stop (SIGTERM/SIGINT); the session is left resumable.
    Shutdown,
    /// Discord closed with a code that forbids reconnecting.
    Fatal { code: u16, meaning: &'static str },
    /// `GET /gateway/bot` said 401: the bot token is wrong.
    Unauthorized,
}

/// How one connection ended.
#[derive(Debug)]
enum End {
    Shutdown,
    Resume { cause: String, immediate: bool },
    Reidentify { cause: String },
    InvalidSession { resumable: bool },
    Fatal(u16, &'static str),
}

struct Live {
    session_id: Arc<str>,
    /// The session's fixed part of every envelope.
    part: SessionPart,
    resume_url: String,
    /// The last `s` received; `None` before the first dispatch (a server that numbers from 0
    /// sends READY with `s: 0`, which must not look like a duplicate).
    seq: Option<u64>,
    id_offset: i64,
}

impl Live {
    fn new(
        shard: u32,
        session_id: &str,
        resume_url: String,
        seq: Option<u64>,
        id_offset: i64,
    ) -> Live {
        Live {
            session_id: session_id.into(),
            part: SessionPart::new(shard, session_id),
            resume_url,
            seq,
            id_offset,
        }
    }
}

pub struct Gateway {
    cfg: GatewayConfig,
    store: StateStore,
    bus: Bus,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
    state: watch::Sender<GatewayState>,
    /// Every shard's state, for the forwarder.
    states: ShardStates,
    shutdown: watch::Receiver<bool>,
    http: reqwest::Client,
    session: Option<Live>,
    last_id: u64,
    queue: IdentifyQueue,
    /// The place in the IDENTIFY queue taken when the shard was built, if it must identify first.
    ticket: Option<Ticket>,
    /// The queue's go-ahead for the IDENTIFY of the connection being opened.
    grant: Option<Grant>,
    /// Connections in a row that ended before READY/RESUMED.
    failed_before_ready: u32,
    /// Browser commands for the socket (ops 3, 4, 8), kept across reconnects.
    outbox: Option<Outbox>,
    /// Connection attempts to the session's resume URL that failed in a row (see
    /// `RESUME_URL_ATTEMPTS`).
    resume_url_failures: u32,
    /// Checks and splits every gateway message (keeps its stack between messages).
    scanner: Scanner,
    /// `t` values seen, shared by every envelope of that type instead of a string each.
    kinds: Vec<Arc<str>>,
    clock: WallClock,
    /// Ids below this are already reserved on disk (`StateStore::reserve`).
    reserved_below: u64,
    /// Where envelopes are written (`envelope::Arena`).
    arena: Arena,
}

/// A gateway message as serde decodes it: the reference `frame.rs` is tested (and fuzzed) against.
#[derive(Deserialize)]
pub struct Frame<'a> {
    pub op: u8,
    #[serde(borrow, default)]
    pub d: Option<&'a RawValue>,
    #[serde(default)]
    pub s: Option<u64>,
    #[serde(borrow, default)]
    pub t: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
pub struct Ready<'a> {
    #[serde(borrow)]
    pub session_id: Cow<'a, str>,
    #[serde(borrow)]
    pub resume_gateway_url: Cow<'a, str>,
}

#[derive(Deserialize)]
pub struct Hello {
    pub heartbeat_interval: u64,
}

/// The top-level ids of a dispatch, when present and well-formed, as serde decodes them (the hot
/// path uses the equivalent scan in `frame.rs`; its tests compare the two).
#[derive(Deserialize, Default)]
pub struct Routing<'a> {
    #[serde(borrow, default)]
    pub guild_id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub channel_id: Option<Cow<'a, str>>,
}

pub fn snowflake(v: Option<Cow<'_, str>>) -> Option<Snowflake> {
    v.and_then(|s| s.parse().ok())
}

fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// `received_at` (unix ms) from the monotonic instant every dispatch is stamped with anyway,
/// re-anchored to the system clock at least every second: one clock read per dispatch, not two.
struct WallClock {
    anchor: std::time::Instant,
    anchor_ms: u64,
}

impl WallClock {
    fn new() -> WallClock {
        WallClock {
            anchor: std::time::Instant::now(),
            anchor_ms: unix_ms(),
        }
    }

    fn unix_ms(&mut self, at: std::time::Instant) -> u64 {
        let since = at.saturating_duration_since(self.anchor);
        if since >= Duration::from_secs(1) {
            *self = WallClock::new();
            return self.anchor_ms;
        }
        self.anchor_ms + since.as_millis() as u64
    }
}

impl Gateway {
    /// The session of `cfg.shard`, resuming its saved session if the store has one. Build the
    /// shards in id order: one that must identify takes its place in `queue` here.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        cfg: GatewayConfig,
        store: StateStore,
        bus: Bus,
        metrics: Arc<Metrics>,
        health: Arc<Health>,
        queue: IdentifyQueue,
        (state, states): (watch::Sender<GatewayState>, ShardStates),
        shutdown: watch::Receiver<bool>,
    ) -> Gateway {
        let snap = store.snapshot();
        let shard = cfg.shard.id;
        let session = snap.sessions.get(&shard).map(|s| {
            Live::new(
                shard,
                &s.session_id,
                s.resume_url.clone(),
                Some(s.seq),
                s.id_offset,
            )
        });
        if let Some(s) = &session {
            tracing::info!(
                shard = %cfg.shard,
                seq = s.seq,
                "found a saved session; will RESUME it instead of identifying"
            );
        }
        let ticket = session.is_none().then(|| queue.ticket(shard));
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .user_agent(cfg.user_agent.clone())
            .build()
            .expect("a reqwest client with default TLS roots builds");
        // The shard's own last id (ids are per shard): its saved session's last durable one.
        let last_id = snap.sessions.get(&shard).map_or(0, |s| {
            s.id_offset
                .saturating_add(i64::try_from(s.seq).unwrap_or(i64::MAX))
                .max(0) as u64
        });
        Gateway {
            cfg,
            last_id,
            store,
            bus,
            metrics,
            health,
            state,
            states,
            shutdown,
            http,
            session,
            queue,
            ticket,
            grant: None,
            failed_before_ready: 0,
            outbox: None,
            resume_url_failures: 0,
            scanner: Scanner::new(),
            kinds: Vec::new(),
            clock: WallClock::new(),
            reserved_below: 0,
            arena: Arena::new(),
        }
    }

    /// Lets the command executor's Gateway commands through this session (see
    /// `commands::gateway_outbox`).
    pub fn with_commands(mut self, outbox: Outbox) -> Gateway {
        self.outbox = Some(outbox);
        self
    }

    fn set_state(&self, s: GatewayState) {
        let shard = self.cfg.shard.id;
        self.metrics.set_gateway_state(shard, s);
        self.health.set_shard_ready(shard, s == GatewayState::Ready);
        self.states.set(shard, s);
        self.state.send_replace(s);
    }

    /// Counts a connection that ended before READY/RESUMED (`false`), or clears the count.
    fn reached_ready(&mut self, ready: bool) {
        let shard = self.cfg.shard.id;
        self.failed_before_ready = if ready {
            0
        } else {
            self.failed_before_ready + 1
        };
        let n = self.failed_before_ready;
        self.metrics
            .failed_before_ready
            .get_or_create(&Metrics::label("shard", shard.to_string()))
            .set(i64::from(n));
        if n >= FAILED_BEFORE_READY_REPORT {
            let problem =
                format!("{n} sessions in a row closed before READY: check DISCORD_BOT_TOKEN");
            if n == FAILED_BEFORE_READY_REPORT || n.is_power_of_two() {
                tracing::error!(shard = %self.cfg.shard, failures = n, "{problem}");
            }
            self.health.set_shard_problem(shard, Some(problem));
        } else if ready {
            self.health.set_shard_problem(shard, None);
        }
    }

    fn stopping(&self) -> bool {
        *self.shutdown.borrow()
    }

    /// Sleeps `d`; `true` when shutdown was asked for meanwhile.
    async fn sleep_or_shutdown(&mut self, d: Duration) -> bool {
        if self.stopping() {
            return true;
        }
        tokio::select! {
            _ = tokio::time::sleep(d) => self.stopping(),
            _ = self.shutdown.changed() => true,
        }
    }

    /// Holds the session until shutdown or a fatal close.
    pub async fn run(mut self) -> Exit {
        let exit = self.run_inner().await;
        self.set_state(GatewayState::Stopped);
        exit
    }

    async fn run_inner(&mut self) -> Exit {
        let mut backoff = Backoff::new(self.cfg.reconnect_base, self.cfg.reconnect_max);
        let mut delay = Duration::ZERO;
        self.set_state(GatewayState::Connecting);
        loop {
            if !delay.is_zero() {
                tracing::info!(
                    delay_ms = delay.as_millis() as u64,
                    "waiting before reconnecting"
                );
            }
            if self.sleep_or_shutdown(delay).await {
                return Exit::Shutdown;
            }
            if self.session.is_some() && self.resume_url_failures >= RESUME_URL_ATTEMPTS {
                match self.fall_back_from_resume_url(&mut backoff).await {
                    Ok(true) => {}
                    Ok(false) => return Exit::Shutdown,
                    Err(exit) => return exit,
                }
            }
            let base = match &self.session {
                Some(s) => s.resume_url.clone(),
                None => match self.identify_url(&mut backoff).await {
                    Ok(Some(u)) => u,
                    Ok(None) => return Exit::Shutdown,
                    Err(exit) => return exit,
                },
            };
            let resuming = self.session.is_some();
            let url = match gateway_url(&base, self.cfg.compression) {
                Ok(u) => u,
                Err(e) => {
                    tracing::error!(error = %e, "unusable gateway URL; identifying anew");
                    self.forget_session();
                    delay = backoff.next_delay();
                    continue;
                }
            };
            let connect = Connection::connect(&url, self.cfg.connect_timeout, &self.cfg.user_agent);
            let conn = tokio::select! {
                c = connect => c,
                _ = self.shutdown.changed() => return Exit::Shutdown,
            };
            let conn = match conn {
                Ok(c) => c,
                Err(e) => {
                    self.count_reconnect("connect_error");
                    if resuming {
                        self.resume_url_failures += 1;
                    }
                    delay = backoff.next_delay();
                    tracing::warn!(error = %e, host = url.host_str().unwrap_or(""), attempt = backoff.attempts(), "gateway connect failed");
                    continue;
                }
            };
            let mut progress = Progress::default();
            let end = self.run_connection(conn, &mut progress).await;
            if resuming {
                // A socket that never said HELLO is as unusable as one that never opened.
                self.resume_url_failures = if progress.hello {
                    0
                } else {
                    self.resume_url_failures + 1
                };
            }
            let reached_ready = progress.ready;
            if reached_ready {
                backoff.reset();
            }
            if !matches!(end, End::Shutdown) {
                self.reached_ready(reached_ready);
            }
            if !matches!(end, End::Shutdown | End::Fatal(..)) {
                self.set_state(GatewayState::Reconnecting);
            }
            match end {
                End::Shutdown => return Exit::Shutdown,
                End::Fatal(code, meaning) => return Exit::Fatal { code, meaning },
                End::Resume { cause, immediate } => {
                    delay = if immediate && reached_ready {
                        Duration::ZERO
                    } else {
                        backoff.next_delay()
                    };
                    if self.session.is_some() {
                        tracing::info!(%cause, "connection ended; will RESUME");
                    } else {
                        tracing::info!(%cause, "connection ended before READY; no session to resume, will IDENTIFY");
                    }
                }
                End::InvalidSession { resumable } => {
                    if !resumable {
                        self.forget_session();
                    }
                    // Discord: wait a random 1-5 s (scaled by the reconnect base) before retrying.
                    let base = self.cfg.reconnect_base;
                    delay = base * 2 + (base * 8).mul_f64(rand::thread_rng().gen::<f64>());
                    if !reached_ready {
                        delay = delay.max(backoff.next_delay());
                    }
                    tracing::info!(
                        resumable,
                        "invalid session (op 9); will {}",
                        if resumable { "RESUME" } else { "IDENTIFY" }
                    );
                }
                End::Reidentify { cause } => {
                    self.forget_session();
                    delay = backoff.next_delay();
                    tracing::info!(%cause, "session is gone; will IDENTIFY anew");
                }
            }
        }
    }

    fn forget_session(&mut self) {
        self.resume_url_failures = 0;
        if self.session.take().is_some() {
            self.store.clear_session(self.cfg.shard.id);
        }
    }

    /// The session's resume URL failed `RESUME_URL_ATTEMPTS` times in a row: forget it and resume
    /// the same session (same id and seq, so nothing is lost) on the URL `GET /gateway/bot` gives
    /// (or `DISCORD_GATEWAY_URL`). `Ok(false)` on shutdown.
    async fn fall_back_from_resume_url(&mut self, backoff: &mut Backoff) -> Result<bool, Exit> {
        let url = match self
            .gateway_bot(backoff, "for a resume URL to fall back to")
            .await?
        {
            None => return Ok(false),
            Some(BotUrl::Answered(info)) => self.gateway_url_or(info.url),
            Some(BotUrl::Configured { url, .. }) => url,
        };
        let failures = std::mem::take(&mut self.resume_url_failures);
        let shard = self.cfg.shard.id;
        if let Some(s) = self.session.as_mut() {
            // scheme://host:port only: the path and query are of no use in a log.
            let host = |u: &str| {
                url::Url::parse(u)
                    .map(|u| u.origin().ascii_serialization())
                    .unwrap_or_default()
            };
            tracing::warn!(
                failures,
                unreachable = %host(&s.resume_url),
                fallback = %host(&url),
                seq = s.seq,
                "resume_gateway_url unreachable; falling back to the URL from GET /gateway/bot to RESUME the same session"
            );
            s.resume_url = url;
            self.store.set_resume_url(shard, &s.resume_url);
            self.count_reconnect("resume_url_fallback");
        }
        Ok(true)
    }

    fn count_reconnect(&self, cause: impl Into<String>) {
        self.metrics
            .reconnects
            .get_or_create(&Metrics::shard_label("code", cause, self.cfg.shard.id))
            .inc();
    }

    /// `GET /gateway/bot`, retried with `backoff` (and logged with `purpose`) until it answers;
    /// `Ok(None)` on shutdown. With `DISCORD_GATEWAY_URL` set, a failure is not retried: that URL
    /// serves instead.
    async fn gateway_bot(
        &mut self,
        backoff: &mut Backoff,
        purpose: &str,
    ) -> Result<Option<BotUrl>, Exit> {
        loop {
            match start_limit::fetch(&self.http, &self.cfg.api_url, &self.cfg.token).await {
                Ok(info) => return Ok(Some(BotUrl::Answered(info))),
                Err(GatewayBotError::Unauthorized) => return Err(Exit::Unauthorized),
                Err(GatewayBotError::Other(error)) => {
                    if let Some(u) = &self.cfg.gateway_url {
                        return Ok(Some(BotUrl::Configured {
                            url: u.to_string(),
                            error,
                        }));
                    }
                    let d = backoff.next_delay();
                    tracing::warn!(error = %error, retry_in_ms = d.as_millis() as u64, purpose, "GET /gateway/bot failed");
                    if self.sleep_or_shutdown(d).await {
                        return Ok(None);
                    }
                }
            }
        }
    }

    /// `DISCORD_GATEWAY_URL` when set, else `url` (what `GET /gateway/bot` gave).
    fn gateway_url_or(&self, url: String) -> String {
        match &self.cfg.gateway_url {
            Some(u) => u.to_string(),
            None => url,
        }
    }

    /// The URL to IDENTIFY on, once the shard's turn in the IDENTIFY queue has come and the
    /// session-start budget allows one more. `Ok(None)` on shutdown.
    async fn identify_url(&mut self, backoff: &mut Backoff) -> Result<Option<String>, Exit> {
        let shard = self.cfg.shard.id;
        // A turn granted to a connection that failed before its IDENTIFY ends here.
        self.grant = None;
        let ticket = self
            .ticket
            .take()
            .unwrap_or_else(|| self.queue.ticket(shard));
        let mut stop = self.shutdown.clone();
        let stopped = async move {
            let _ = stop.wait_for(|s| *s).await;
        };
        let Some(grant) = self.queue.wait(ticket, stopped).await else {
            return Ok(None);
        };
        self.grant = Some(grant);
        loop {
            match self.gateway_bot(backoff, "for an IDENTIFY").await? {
                None => return Ok(None),
                Some(BotUrl::Answered(info)) => {
                    let limit = &info.session_start_limit;
                    let reset = Duration::from_millis(limit.reset_after);
                    match self.queue.budget().spend(limit.remaining, reset) {
                        Ok(()) => return Ok(Some(self.gateway_url_or(info.url))),
                        Err(wait) => {
                            tracing::warn!(
                                shard = %self.cfg.shard,
                                reset_after_ms = limit.reset_after,
                                "session start budget spent; waiting for it to reset instead of identifying"
                            );
                            if self.sleep_or_shutdown(wait).await {
                                return Ok(None);
                            }
                        }
                    }
                }
                Some(BotUrl::Configured { url, error }) => {
                    tracing::warn!(error = %error, "GET /gateway/bot failed; using DISCORD_GATEWAY_URL without the session-start budget");
                    return Ok(Some(url));
                }
            }
        }
    }

    /// Sends one gateway command through the limiter. IDENTIFY and RESUME hold the token: nothing
    /// here logs a payload.
    async fn send(
        &self,
        conn: &mut Connection,
        limiter: &mut SendLimiter,
        kind: Kind,
        payload: String,
    ) -> Result<(), String> {
        loop {
            match limiter.acquire(kind, payload.len(), Instant::now()) {
                Ok(()) => return conn.send_text(payload).await.map_err(|e| e.to_string()),
                Err(Refusal::TooLarge(n)) => {
                    tracing::error!(
                        bytes = n,
                        "gateway command over 4096 bytes refused before sending"
                    );
                    return Ok(());
                }
                Err(Refusal::Wait(d)) => {
                    tracing::warn!(wait_ms = d.as_millis() as u64, "gateway send limit reached");
                    tokio::time::sleep(d).await;
                }
            }
        }
    }

    fn heartbeat_payload(&self) -> String {
        match self.session.as_ref().and_then(|s| s.seq) {
            Some(s) => format!(r#"{{"op":1,"d":{s}}}"#),
            None => r#"{"op":1,"d":null}"#.to_string(),
        }
    }

    async fn run_connection(&mut self, mut conn: Connection, progress: &mut Progress) -> End {
        // HELLO first.
        let hello = tokio::select! {
            r = tokio::time::timeout(Duration::from_secs(30), conn.recv()) => r,
            _ = self.shutdown.changed() => {
                conn.close(RESUMABLE_CLOSE).await;
                return End::Shutdown;
            }
        };
        let interval = match hello {
            Ok(Ok(Incoming::Message(bytes))) => {
                match self.scanner.scan(&bytes).ok().and_then(|f| {
                    (f.op == 10)
                        .then_some(f.d)
                        .flatten()
                        .and_then(|d| serde_json::from_str::<Hello>(d).ok())
                }) {
                    Some(h) => Duration::from_millis(h.heartbeat_interval.max(1)),
                    None => {
                        self.count_reconnect("no_hello");
                        return End::Resume {
                            cause: "first message was not HELLO".into(),
                            immediate: false,
                        };
                    }
                }
            }
            Ok(Ok(Incoming::Closed(code))) => return self.closed(code),
            Ok(Err(e)) => {
                self.count_reconnect("transport");
                return End::Resume {
                    cause: e.to_string(),
                    immediate: false,
                };
            }
            Err(_) => {
                self.count_reconnect("no_hello");
                return End::Resume {
                    cause: "no HELLO within 30 s".into(),
                    immediate: false,
                };
            }
        };
        progress.hello = true;
        let ready = &mut progress.ready;
        let mut hb = Heartbeat::on_hello(interval, rand::thread_rng().gen(), Instant::now());
        let mut limiter = SendLimiter::new(interval);

        let (payload, kind) = match &self.session {
            Some(s) => (
                serde_json::json!({"op": 6, "d": {
                    "token": self.cfg.token.expose(),
                    "session_id": &*s.session_id,
                    "seq": s.seq.unwrap_or(0),
                }}),
                "resume",
            ),
            None => (
                serde_json::json!({"op": 2, "d": {
                    "token": self.cfg.token.expose(),
                    "intents": self.cfg.intents,
                    "properties": {"os": std::env::consts::OS, "browser": "gateway-holder", "device": "gateway-holder"},
                    "shard": [self.cfg.shard.id, self.cfg.shard.count],
                    "large_threshold": 250,
                }}),
                "identify",
            ),
        };
        let sent = self
            .send(&mut conn, &mut limiter, Kind::Command, payload.to_string())
            .await;
        // The bucket's IDENTIFY window starts now (or at the failure).
        self.grant = None;
        if let Err(e) = sent {
            self.count_reconnect("transport");
            return End::Resume {
                cause: e,
                immediate: false,
            };
        }
        drop(payload);
        self.metrics
            .sessions
            .get_or_create(&Metrics::shard_label("kind", kind, self.cfg.shard.id))
            .inc();
        tracing::info!(
            shard = %self.cfg.shard,
            kind,
            heartbeat_ms = interval.as_millis() as u64,
            seq = self.session.as_ref().map(|s| s.seq),
            "connected; sent {}",
            kind.to_uppercase()
        );

        let mut commands_live = false;
        // One timer for the whole connection, moved when the heartbeat deadline moves (a new
        // `sleep_until` per loop turn registered and cleared a timer entry per message).
        let beat = tokio::time::sleep_until(hb.deadline());
        tokio::pin!(beat);
        loop {
            let deadline = hb.deadline();
            if beat.deadline() != deadline {
                beat.as_mut().reset(deadline);
            }
            if *ready && !commands_live {
                // READY/RESUMED: commands that waited for the connection may go now.
                commands_live = true;
                if let Some(o) = self.outbox.as_mut() {
                    o.wake_at(Instant::now());
                }
            }
            tokio::select! {
                biased;
                _ = self.shutdown.changed() => {
                    tracing::info!("shutting down; closing the gateway socket with 4000 so the session stays resumable");
                    conn.close(RESUMABLE_CLOSE).await;
                    return End::Shutdown;
                }
                _ = &mut beat => {
                    match hb.due(Instant::now()) {
                        Beat::Send => {
                            let p = self.heartbeat_payload();
                            if let Err(e) = self.send(&mut conn, &mut limiter, Kind::Heartbeat, p).await {
                                self.count_reconnect("transport");
                                return End::Resume { cause: e, immediate: false };
                            }
                        }
                        Beat::Zombie => {
                            self.count_reconnect("zombie");
                            tracing::warn!("no heartbeat ACK since the last beat: zombie connection; closing with 4000 to RESUME");
                            conn.close(RESUMABLE_CLOSE).await;
                            return End::Resume { cause: "zombie connection".into(), immediate: true };
                        }
                    }
                }
                _ = outbox_changed(&mut self.outbox) => {
                    if let Err(e) = self.send_commands(&mut conn, &mut limiter, *ready).await {
                        self.count_reconnect("transport");
                        return End::Resume { cause: e, immediate: false };
                    }
                }
                r = conn.recv() => {
                    let mut r = r;
                    let mut handled = 0;
                    loop {
                        match self.on_message(r, &mut conn, &mut hb, &mut limiter, ready).await {
                            After::Next => {}
                            After::End(end) => return end,
                            After::CloseAndEnd(end) => {
                                conn.close(RESUMABLE_CLOSE).await;
                                return end;
                            }
                        }
                        // Messages that are already here are handled without another trip
                        // through the select (its timer and watch registrations cost more than
                        // a small dispatch at full rate); every 32 the heartbeat, shutdown and
                        // commands get their look.
                        handled += 1;
                        if handled == 32 {
                            break;
                        }
                        match conn.recv().now_or_never() {
                            Some(next) => r = next,
                            None => break,
                        }
                    }
                }
            }
        }
    }

    /// One message off the socket (or how the socket ended).
    async fn on_message(
        &mut self,
        r: Result<Incoming, ConnError>,
        conn: &mut Connection,
        hb: &mut Heartbeat,
        limiter: &mut SendLimiter,
        ready: &mut bool,
    ) -> After {
        let bytes = match r {
            Ok(Incoming::Message(b)) => b,
            Ok(Incoming::Closed(code)) => return After::End(self.closed(code)),
            Err(e) => {
                self.count_reconnect("transport");
                return After::End(End::Resume {
                    cause: e.to_string(),
                    immediate: false,
                });
            }
        };
        let received = std::time::Instant::now();
        let frame = match self.scanner.scan(&bytes) {
            Ok(f) => f,
            Err(e) => {
                // Never forwarded: only a message checked as JSON becomes an envelope.
                tracing::error!(error = %e, bytes = bytes.len(), "gateway message is not valid JSON (or not a gateway frame); skipped");
                return After::Next;
            }
        };
        match frame.op {
            0 => {
                if let Some(end) = self.dispatch(frame, received, ready).await {
                    return After::End(end);
                }
                conn.recycle(bytes);
            }
            1 => {
                hb.sent(Instant::now());
                let p = self.heartbeat_payload();
                if let Err(e) = self.send(conn, limiter, Kind::Heartbeat, p).await {
                    self.count_reconnect("transport");
                    return After::End(End::Resume {
                        cause: e,
                        immediate: false,
                    });
                }
            }
            7 => {
                self.count_reconnect("op7");
                tracing::info!("Discord asked to reconnect (op 7)");
                return After::CloseAndEnd(End::Resume {
                    cause: "op 7 reconnect".into(),
                    immediate: true,
                });
            }
            9 => {
                let resumable = frame.d == Some("true");
                self.count_reconnect(if resumable { "op9_resumable" } else { "op9" });
                return After::CloseAndEnd(End::InvalidSession { resumable });
            }
            10 => {
                if let Some(h) = frame.d.and_then(|d| serde_json::from_str::<Hello>(d).ok()) {
                    let iv = Duration::from_millis(h.heartbeat_interval.max(1));
                    *hb = Heartbeat::on_hello(iv, rand::thread_rng().gen(), Instant::now());
                }
            }
            11 => {
                if let Some(rtt) = hb.ack(Instant::now()) {
                    self.metrics.heartbeat_rtt.observe(rtt.as_secs_f64());
                }
            }
            op => tracing::debug!(op, "ignoring gateway opcode"),
        }
        After::Next
    }

    /// Writes the browser commands that may go now (only once READY/RESUMED), through the
    /// connection's send limiter; the outbox decides order, pacing and deadlines.
    async fn send_commands(
        &mut self,
        conn: &mut Connection,
        limiter: &mut SendLimiter,
        ready: bool,
    ) -> Result<(), String> {
        let Some(outbox) = self.outbox.as_mut() else {
            return Ok(());
        };
        if !ready {
            outbox.prune();
            return Ok(());
        }
        loop {
            match outbox.next(Instant::now(), limiter) {
                Next::Send(mut r) => {
                    let payload = std::mem::take(&mut r.payload);
                    match conn.send_text(payload).await {
                        Ok(()) => {
                            outbox.written(r.pace, Instant::now());
                            tracing::debug!(trace_id = %r.trace_id, command_id = %r.command_id, op = r.op, "gateway command written");
                            r.finish(Ok(()));
                        }
                        Err(e) => {
                            r.finish(Err(contracts::ErrorDetail {
                                code: contracts::ErrorCode::HolderUnavailable,
                                message:
                                    "the gateway connection failed while sending the command; retry"
                                        .into(),
                                field: None,
                            }));
                            return Err(e.to_string());
                        }
                    }
                }
                Next::WaitUntil(at) => {
                    outbox.wake_at(at);
                    return Ok(());
                }
                Next::Idle => return Ok(()),
            }
        }
    }

    fn closed(&self, code: Option<u16>) -> End {
        self.count_reconnect(code.map_or("no_close_frame".to_string(), |c| c.to_string()));
        let meaning = code.map_or("connection dropped", close_code::meaning);
        match close_code::classify(code) {
            CloseAction::Resume => {
                tracing::warn!(code, meaning, "gateway closed; resuming");
                End::Resume {
                    cause: format!("closed {code:?} ({meaning})"),
                    immediate: false,
                }
            }
            CloseAction::Reidentify => {
                tracing::warn!(
                    code,
                    meaning,
                    "gateway closed; the session can't be resumed"
                );
                End::Reidentify {
                    cause: format!("closed {} ({meaning})", code.unwrap_or_default()),
                }
            }
            CloseAction::Fatal(meaning) => End::Fatal(code.unwrap_or_default(), meaning),
        }
    }

    /// Op 0: number it, wrap it, put it on the bus.
    async fn dispatch(
        &mut self,
        frame: FrameView<'_>,
        received: std::time::Instant,
        ready: &mut bool,
    ) -> Option<End> {
        let kind = frame.t.as_deref().unwrap_or("UNKNOWN");
        if kind == "RESUMED" {
            *ready = true;
            self.set_state(GatewayState::Ready);
            tracing::info!(shard = %self.cfg.shard, seq = frame.s, "RESUMED");
        }
        let Some(seq) = frame.s else {
            tracing::warn!(kind, "dispatch without a sequence number skipped");
            return None;
        };
        let ready_dispatch = if kind == "READY" {
            match serde_json::from_str::<Ready>(frame.d.unwrap_or("null")) {
                Ok(r) => Some(r),
                Err(e) => {
                    tracing::error!(error = %e, "READY without session_id/resume_gateway_url");
                    return Some(End::Reidentify {
                        cause: "malformed READY".into(),
                    });
                }
            }
        } else {
            None
        };
        // A READY of the session being resumed is a replay (a RESUME from before it was
        // delivered): numbered like any replayed dispatch, not a new session.
        let replayed = ready_dispatch.as_ref().is_some_and(|r| {
            self.session
                .as_ref()
                .is_some_and(|s| *s.session_id == *r.session_id)
        });
        if let Some(r) = ready_dispatch.filter(|_| !replayed) {
            let next_id = (self.last_id + 1).max(self.store.id_floor());
            // i128: a peer sending `s` ≥ 2^63 must not overflow (found by review of the fuzz target).
            let id_offset = (i128::from(next_id) - i128::from(seq))
                .clamp(i128::from(i64::MIN), i128::from(i64::MAX))
                as i64;
            let shard = self.cfg.shard.id;
            self.store
                .new_session(shard, &r.session_id, &r.resume_gateway_url, id_offset);
            self.resume_url_failures = 0;
            self.session = Some(Live::new(
                shard,
                &r.session_id,
                r.resume_gateway_url.into_owned(),
                None,
                id_offset,
            ));
            *ready = true;
            self.set_state(GatewayState::Ready);
            tracing::info!(shard = %self.cfg.shard, first_id = next_id, "READY: new session");
        }
        let session = self.session.as_mut()?;
        if let Some(last) = session.seq.filter(|last| seq <= *last) {
            self.metrics.duplicates_skipped.inc();
            tracing::debug!(seq, last, "dispatch already received; skipped");
            return None;
        }
        session.seq = Some(seq);
        let mut id = session
            .id_offset
            .saturating_add(i64::try_from(seq).unwrap_or(i64::MAX))
            .max(0) as u64;
        if id <= self.last_id {
            tracing::warn!(
                id,
                last = self.last_id,
                "id would not increase; numbering after the last"
            );
            id = self.last_id + 1;
        }
        self.last_id = id;
        if id >= self.reserved_below {
            self.reserved_below = self.store.reserve(id);
        }
        let json = envelope::encode(
            &mut self.arena,
            &session.part,
            &envelope::Fields {
                id,
                seq,
                t_json: frame.t_json,
                guild_id: frame.guild_id,
                channel_id: frame.channel_id,
                received_at: self.clock.unix_ms(received),
                d: frame.d,
            },
        );
        let dispatch = Dispatch {
            shard: self.cfg.shard.id,
            id,
            seq,
            session_id: session.session_id.clone(),
            kind: intern(&mut self.kinds, kind),
            json,
            received,
        };
        if self.bus.publish(Arc::new(dispatch)).await.is_err() {
            tracing::error!("the forwarder stopped; ending the session loop");
            return Some(End::Shutdown);
        }
        None
    }
}

/// The shared string for the dispatch type `kind`. Discord has a few dozen types; past 64 distinct
/// ones (a misbehaving peer) new ones are simply not kept.
fn intern(kinds: &mut Vec<Arc<str>>, kind: &str) -> Arc<str> {
    if let Some(k) = kinds.iter().find(|k| ***k == *kind) {
        return k.clone();
    }
    let k: Arc<str> = kind.into();
    if kinds.len() < 64 {
        kinds.push(k.clone());
    }
    k
}

/// What one message asks of the connection loop.
enum After {
    Next,
    End(End),
    /// Close the socket with 4000 (the session stays resumable), then end.
    CloseAndEnd(End),
}

/// How far one connection got.
#[derive(Default)]
struct Progress {
    /// HELLO arrived: the URL works.
    hello: bool,
    /// READY or RESUMED arrived.
    ready: bool,
}

/// What `Gateway::gateway_bot` found.
enum BotUrl {
    Answered(start_limit::GatewayBot),
    /// `GET /gateway/bot` failed with `DISCORD_GATEWAY_URL` set: that URL, and why.
    Configured {
        url: String,
        error: String,
    },
}

/// A change in the command outbox, or never when commands aren't wired in.
async fn outbox_changed(outbox: &mut Option<Outbox>) {
    match outbox {
        Some(o) => o.changed().await,
        None => std::future::pending().await,
    }
}
