//! One gateway websocket connection: HELLO, then reading client payloads (heartbeat, IDENTIFY,
//! RESUME, …) and writing frames (dispatches, ACKs, op 7/9, close) in one task, so the order of
//! everything on the wire is the order it was decided in.
//!
//! Every rule that ends a connection with a close code lives here (4001-4014) except the
//! heartbeat deadline, which is also here: a connection that stops heartbeating is closed with
//! 4009 and its session expires.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes};
use futures::stream::{SplitSink, SplitStream};
use futures::{SinkExt, StreamExt};
use rand::Rng;
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio::time::{sleep_until, timeout, Instant};

use crate::clock::unix_micros;
use crate::records::{ConnectionRecord, GatewayRecord, IdentifyRecord, SimNotice};
use crate::state::{lock, LiveConn, SimState};

use super::client_commands;
use super::close_codes::CloseCode;
use super::intents::{self, IntentsError};
use super::limits::{SendLimiter, MAX_PAYLOAD_BYTES};
use super::session::{ConnLink, DispatchEntry, Ended, ResumeError, Session};
use super::socket::SimSocket;
use super::zlib::{self, ZlibStream};
use super::zstd::{self, ZstdStream};

/// What a connection task can be told to do.
#[derive(Debug)]
pub enum Outbound {
    /// Write a dispatch.
    Dispatch(Arc<DispatchEntry>),
    /// Write a non-dispatch payload (op 1, 7, 9).
    Raw(String),
    /// Send a close frame with this code and end.
    Close(u16),
    /// End without a close frame (abrupt TCP drop).
    Drop,
    /// Write one websocket message the client's decompressor (or, uncompressed, its JSON
    /// parser) must refuse.
    Corrupt,
}

/// The transport compression a connection asked for (`compress=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compress {
    /// None: text frames.
    None,
    /// `zlib-stream`.
    Zlib,
    /// `zstd-stream`.
    Zstd,
}

/// A connection's compression context.
enum Compressor {
    Zlib(ZlibStream),
    Zstd(ZstdStream),
}

/// How the client connected.
#[derive(Debug, Clone)]
pub struct ConnParams {
    /// Request path.
    pub path: String,
    /// Query string.
    pub query: Option<String>,
    /// `compress=`.
    pub compress: Compress,
    /// `v` was given and isn't 10: close 4012 after HELLO.
    pub bad_version: bool,
    /// The handshake's `User-Agent`.
    pub user_agent: Option<String>,
}

/// A payload that isn't a dispatch, in Discord's field order.
pub fn op_payload(op: u8, d: &Value) -> String {
    format!("{{\"t\":null,\"s\":null,\"op\":{op},\"d\":{d}}}")
}

/// Discord's `_trace` value.
fn trace() -> Value {
    json!(["[\"gateway-prd-sim-1\",{\"micros\":0}]"])
}

struct End {
    code: Option<u16>,
    by_client: bool,
}

enum Flow {
    Continue,
    Close(CloseCode),
}

struct Conn {
    state: Arc<SimState>,
    conn_id: u64,
    tx: mpsc::UnboundedSender<Outbound>,
    sink: SplitSink<SimSocket, Message>,
    stream: SplitStream<SimSocket>,
    compressor: Option<Compressor>,
    /// zlib-stream messages go out split over two websocket messages (zstd-stream ones are
    /// fragmented by the socket instead).
    split: bool,
    session: Option<Arc<Mutex<Session>>>,
    session_id: Option<Arc<str>>,
    /// The session's `[shard_id, num_shards]`.
    shard: Option<[u64; 2]>,
    limiter: SendLimiter,
    deadline: Instant,
}

/// Serves one upgraded gateway connection until it ends.
pub async fn serve(state: Arc<SimState>, socket: SimSocket, params: ConnParams) {
    let conn_id = state.next_conn.fetch_add(1, Ordering::Relaxed) + 1;
    let (tx, rx) = mpsc::unbounded_channel();
    lock(&state.conns).insert(
        conn_id,
        LiveConn {
            tx: tx.clone(),
            session: None,
            shard: None,
        },
    );
    state.records.connection_opened(ConnectionRecord {
        conn_id,
        path: params.path.clone(),
        query: params.query.clone(),
        zlib: params.compress == Compress::Zlib,
        zstd: params.compress == Compress::Zstd,
        opened_us: unix_micros(),
        closed_us: None,
        close_code: None,
        closed_by_client: false,
        session_id: None,
        user_agent: params.user_agent.clone(),
    });
    tracing::debug!(conn_id, path = %params.path, compress = ?params.compress, "gateway connection");
    let (sink, stream) = socket.split();
    let mut conn = Conn {
        conn_id,
        tx,
        sink,
        stream,
        compressor: match params.compress {
            Compress::None => None,
            Compress::Zlib => Some(Compressor::Zlib(ZlibStream::new())),
            Compress::Zstd => Some(Compressor::Zstd(ZstdStream::new())),
        },
        split: state.config.split_zlib_frames || state.config.split_compressed_frames,
        session: None,
        session_id: None,
        shard: None,
        limiter: SendLimiter::new(state.config.gateway_send_limit),
        deadline: Instant::now() + state.config.heartbeat_timeout(),
        state,
    };
    let mut rx = rx;
    let end = conn.run(&mut rx, params.bad_version).await;
    // Whatever was still queued stays in the session backlog; only the flow-control count drops.
    rx.close();
    while let Ok(out) = rx.try_recv() {
        if matches!(out, Outbound::Dispatch(_)) {
            conn.state.queued.fetch_sub(1, Ordering::Relaxed);
        }
    }
    conn.finish(end);
}

impl Conn {
    async fn run(&mut self, rx: &mut mpsc::UnboundedReceiver<Outbound>, bad_version: bool) -> End {
        let hello = op_payload(
            10,
            &json!({
                "heartbeat_interval": self.state.config.heartbeat_interval.as_millis() as u64,
                "_trace": trace(),
            }),
        );
        if self.write_now(hello).await.is_err() {
            return End {
                code: None,
                by_client: true,
            };
        }
        if bad_version {
            return self.close(CloseCode::INVALID_API_VERSION).await;
        }
        let mut shutdown = self.state.shutdown.subscribe();
        loop {
            let deadline = self.deadline;
            tokio::select! {
                _ = crate::state::stopped(&mut shutdown) => {
                    return End { code: None, by_client: false };
                }
                out = rx.recv() => {
                    let Some(first) = out else {
                        return End { code: None, by_client: false };
                    };
                    if let Some(end) = self.write_batch(first, rx).await {
                        return end;
                    }
                }
                msg = self.stream.next() => {
                    let bytes = match msg {
                        None | Some(Err(_)) => return End { code: None, by_client: true },
                        Some(Ok(Message::Close(frame))) => {
                            let code = frame.map(|f| f.code);
                            if matches!(code, Some(1000 | 1001)) {
                                // Closing with 1000/1001 ends the session (Discord's docs).
                                if let Some(s) = &self.session {
                                    lock(s).end(Ended::Invalidated);
                                }
                            }
                            let _ = timeout(Duration::from_millis(500), self.sink.close()).await;
                            return End { code, by_client: true };
                        }
                        Some(Ok(Message::Text(t))) => Bytes::from(t),
                        Some(Ok(Message::Binary(b))) => b,
                        Some(Ok(_)) => continue,
                    };
                    match self.on_payload(&bytes).await {
                        Ok(Flow::Continue) => {}
                        Ok(Flow::Close(code)) => return self.close(code).await,
                        Err(()) => return End { code: None, by_client: true },
                    }
                }
                _ = sleep_until(deadline) => {
                    tracing::debug!(conn_id = self.conn_id, "heartbeat deadline passed");
                    if let Some(s) = &self.session {
                        lock(s).end(Ended::TimedOut);
                    }
                    return self.close(CloseCode::SESSION_TIMED_OUT).await;
                }
            }
        }
    }

    /// Writes `first` and whatever else is queued (bounded), then flushes once.
    async fn write_batch(
        &mut self,
        first: Outbound,
        rx: &mut mpsc::UnboundedReceiver<Outbound>,
    ) -> Option<End> {
        let mut next = Some(first);
        let mut written = 0;
        while let Some(out) = next.take() {
            let res = match out {
                Outbound::Dispatch(e) => {
                    self.state.queued.fetch_sub(1, Ordering::Relaxed);
                    let frame = e.stamp().frame.clone();
                    self.feed(frame).await
                }
                Outbound::Raw(s) => self.feed(Utf8Bytes::from(s)).await,
                Outbound::Corrupt => self.feed_corrupt().await,
                Outbound::Close(code) => {
                    let _ = self.sink.flush().await;
                    return Some(self.close(CloseCode(code)).await);
                }
                Outbound::Drop => {
                    return Some(End {
                        code: None,
                        by_client: false,
                    })
                }
            };
            if res.is_err() {
                return Some(End {
                    code: None,
                    by_client: true,
                });
            }
            written += 1;
            if written < 512 {
                next = rx.try_recv().ok();
            }
        }
        if self.sink.flush().await.is_err() {
            return Some(End {
                code: None,
                by_client: true,
            });
        }
        None
    }

    /// Queues one text payload on the socket, compressed if negotiated.
    async fn feed(&mut self, text: Utf8Bytes) -> Result<(), axum::Error> {
        match &mut self.compressor {
            Some(Compressor::Zlib(z)) => {
                let c = z.compress(text.as_str().as_bytes());
                if self.split {
                    for part in zlib::split(c) {
                        self.sink.feed(Message::Binary(Bytes::from(part))).await?;
                    }
                    Ok(())
                } else {
                    self.sink.feed(Message::Binary(Bytes::from(c))).await
                }
            }
            Some(Compressor::Zstd(z)) => {
                let c = z.compress(text.as_str().as_bytes());
                self.sink.feed(Message::Binary(Bytes::from(c))).await
            }
            None => self.sink.feed(Message::Text(text)).await,
        }
    }

    /// Queues [`Outbound::Corrupt`]'s message (never through the compression context).
    async fn feed_corrupt(&mut self) -> Result<(), axum::Error> {
        self.state.records.count(|s| s.corrupt_frames_sent += 1);
        let m = match &self.compressor {
            Some(Compressor::Zlib(_)) => Message::Binary(Bytes::from_static(&zlib::CORRUPT)),
            Some(Compressor::Zstd(_)) => Message::Binary(Bytes::from_static(&zstd::CORRUPT)),
            None => Message::Text(Utf8Bytes::from_static("{\"op\":0,\"t\":")),
        };
        self.sink.feed(m).await
    }

    async fn write_now(&mut self, text: String) -> Result<(), axum::Error> {
        self.feed(Utf8Bytes::from(text)).await?;
        self.sink.flush().await
    }

    /// Sends a close frame, waits briefly for the client's answer, and ends.
    async fn close(&mut self, code: CloseCode) -> End {
        tracing::debug!(conn_id = self.conn_id, code = code.0, "closing");
        let frame = CloseFrame {
            code: code.0,
            reason: Utf8Bytes::from_static(code.reason()),
        };
        let _ = self.sink.send(Message::Close(Some(frame))).await;
        self.state.records.count(|s| {
            s.closes_sent += 1;
            s.last_close_code = Some(code.0);
        });
        if !code.session_survives() {
            if let Some(s) = &self.session {
                let why = if code == CloseCode::SESSION_TIMED_OUT {
                    Ended::TimedOut
                } else {
                    Ended::Invalidated
                };
                lock(s).end(why);
            }
        }
        let _ = timeout(Duration::from_secs(1), async {
            while let Some(Ok(m)) = self.stream.next().await {
                if matches!(m, Message::Close(_)) {
                    break;
                }
            }
        })
        .await;
        End {
            code: Some(code.0),
            by_client: false,
        }
    }

    fn finish(self, end: End) {
        lock(&self.state.conns).remove(&self.conn_id);
        if let Some(s) = &self.session {
            lock(s).detach(self.conn_id);
        }
        let records = &self.state.records;
        records.connection_update(self.conn_id, |r| {
            r.closed_us = Some(unix_micros());
            r.close_code = end.code;
            r.closed_by_client = end.by_client;
        });
        records.count(|s| s.connections_live = s.connections_live.saturating_sub(1));
        records.notice(SimNotice::Closed {
            conn_id: self.conn_id,
            code: end.code,
            by_client: end.by_client,
        });
        tracing::debug!(conn_id = self.conn_id, code = ?end.code, by_client = end.by_client, "gateway connection ended");
    }

    /// Handles one client payload.
    async fn on_payload(&mut self, bytes: &[u8]) -> Result<Flow, ()> {
        let now = Instant::now();
        let parsed: Option<Value> = serde_json::from_slice(bytes).ok();
        let op = parsed
            .as_ref()
            .and_then(|v| v.get("op"))
            .and_then(Value::as_u64);
        self.state.records.gateway(GatewayRecord {
            conn_id: self.conn_id,
            session_id: self.session_id.as_deref().map(str::to_owned),
            at_us: unix_micros(),
            op,
            payload: String::from_utf8_lossy(bytes).into_owned(),
        });
        if bytes.len() > MAX_PAYLOAD_BYTES {
            return Ok(Flow::Close(CloseCode::DECODE_ERROR));
        }
        if !self.limiter.allow(now.into_std()) {
            return Ok(Flow::Close(CloseCode::RATE_LIMITED));
        }
        let Some(payload) = parsed.filter(Value::is_object) else {
            return Ok(Flow::Close(CloseCode::DECODE_ERROR));
        };
        let Some(op) = op else {
            return Ok(Flow::Close(CloseCode::DECODE_ERROR));
        };
        let d = payload.get("d").cloned().unwrap_or(Value::Null);
        match op {
            1 => {
                self.deadline = now + self.state.config.heartbeat_timeout();
                self.state.records.count(|s| s.heartbeats += 1);
                if !self.state.faults.acks_stopped(self.shard.map(|s| s[0])) {
                    self.write_now(op_payload(11, &Value::Null))
                        .await
                        .map_err(|_| ())?;
                }
                Ok(Flow::Continue)
            }
            2 => self.identify(&d).await,
            6 => self.resume(&d).await,
            3 | 4 | 8 => {
                let Some(session) = self.session.clone() else {
                    return Ok(Flow::Close(CloseCode::NOT_AUTHENTICATED));
                };
                let state = &self.state;
                let done = match op {
                    3 => client_commands::presence_update(state, &d),
                    4 => client_commands::voice_state_update(state, &session, &d),
                    _ => client_commands::request_guild_members(state, &session, &d),
                };
                Ok(done.map_or_else(Flow::Close, |()| Flow::Continue))
            }
            _ => Ok(Flow::Close(CloseCode::UNKNOWN_OPCODE)),
        }
    }

    fn link(&self) -> ConnLink {
        ConnLink {
            conn_id: self.conn_id,
            tx: self.tx.clone(),
            queued: self.state.queued.clone(),
        }
    }

    fn check_token(&self, d: &Value) -> bool {
        let token = d.get("token").and_then(Value::as_str).unwrap_or("");
        let token = token.strip_prefix("Bot ").unwrap_or(token);
        self.state.token_ok(token)
    }

    fn set_session(&mut self, session: Arc<Mutex<Session>>, id: Arc<str>) {
        let shard = lock(&session).shard;
        if let Some(c) = lock(&self.state.conns).get_mut(&self.conn_id) {
            c.session = Some(id.clone());
            c.shard = Some(shard);
        }
        self.shard = Some(shard);
        let sid = id.to_string();
        self.state
            .records
            .connection_update(self.conn_id, |r| r.session_id = Some(sid));
        self.session = Some(session);
        self.session_id = Some(id);
    }

    /// Whether this connection serves a session that is still alive (a second IDENTIFY or RESUME
    /// is then 4005; after op 9 `false` the client may IDENTIFY again on the same connection).
    fn authenticated(&self) -> bool {
        self.session
            .as_ref()
            .is_some_and(|s| lock(s).ended.is_none())
    }

    fn log_identify(&self, shard: [u64; 2], sent: bool, outcome: &str, session: Option<&str>) {
        self.state.records.identify(IdentifyRecord {
            at_us: unix_micros(),
            conn_id: self.conn_id,
            shard: shard[0],
            num_shards: shard[1],
            shard_sent: sent,
            bucket: shard[0] % self.state.max_concurrency(),
            outcome: outcome.to_owned(),
            session_id: session.map(str::to_owned),
        });
    }

    /// IDENTIFY, checked in this order: already authenticated (4005), shape (4002), token
    /// (4004), intents (4013/4014), shard (4010), guilds per shard (4011), the bucket's pacing
    /// (op 9), the session-start budget (4004), the close-before-READY fault; then READY and the
    /// shard's GUILD_CREATEs (GUILD_DELETE `unavailable` for guilds in an outage).
    async fn identify(&mut self, d: &Value) -> Result<Flow, ()> {
        let sent = d.get("shard").is_some_and(|s| !s.is_null());
        let shard = match d.get("shard") {
            None | Some(Value::Null) => Ok([0, 1]),
            Some(Value::Array(a)) if a.len() == 2 => match (a[0].as_u64(), a[1].as_u64()) {
                (Some(id), Some(n)) => {
                    let multiple_ok = self
                        .state
                        .config
                        .shard_count_multiple
                        .is_none_or(|m| m == 0 || n % m == 0);
                    if n >= 1 && id < n && multiple_ok {
                        Ok([id, n])
                    } else {
                        Err([id, n])
                    }
                }
                _ => Err([0, 0]),
            },
            Some(_) => Err([0, 0]),
        };
        let logged = shard.unwrap_or_else(|s| s);
        let refuse = |this: &Self, outcome: &str, code: CloseCode| {
            this.log_identify(logged, sent, outcome, None);
            Ok(Flow::Close(code))
        };
        if self.authenticated() {
            return refuse(
                self,
                "already_authenticated",
                CloseCode::ALREADY_AUTHENTICATED,
            );
        }
        if !d.is_object() {
            return refuse(self, "decode_error", CloseCode::DECODE_ERROR);
        }
        if !self.check_token(d) {
            return refuse(
                self,
                "authentication_failed",
                CloseCode::AUTHENTICATION_FAILED,
            );
        }
        if !d.get("properties").is_some_and(Value::is_object) {
            return refuse(self, "decode_error", CloseCode::DECODE_ERROR);
        }
        let Some(wanted) = d.get("intents").and_then(Value::as_u64) else {
            return refuse(self, "invalid_intents", CloseCode::INVALID_INTENTS);
        };
        match intents::check(wanted, self.state.config.privileged_intents_allowed) {
            Ok(()) => {}
            Err(IntentsError::Invalid) => {
                return refuse(self, "invalid_intents", CloseCode::INVALID_INTENTS)
            }
            Err(IntentsError::Disallowed) => {
                return refuse(self, "disallowed_intents", CloseCode::DISALLOWED_INTENTS)
            }
        }
        let Ok(shard) = shard else {
            return refuse(self, "invalid_shard", CloseCode::INVALID_SHARD);
        };
        let on_shard = lock(&self.state.guilds)
            .on_shard(shard[0], shard[1])
            .count();
        if on_shard > self.state.config.max_guilds_per_shard {
            return refuse(self, "sharding_required", CloseCode::SHARDING_REQUIRED);
        }
        // Discord's docs: over `max_concurrency`, IDENTIFY is answered with op 9.
        let window = self.state.config.identify_window;
        if !window.is_zero() {
            let bucket = shard[0] % self.state.max_concurrency();
            let now = std::time::Instant::now();
            let limited = {
                let mut buckets = lock(&self.state.identify_buckets);
                match buckets.get(&bucket) {
                    Some(last) if now.duration_since(*last) < window => true,
                    _ => {
                        buckets.insert(bucket, now);
                        false
                    }
                }
            };
            if limited {
                self.log_identify(shard, sent, "rate_limited", None);
                self.state.records.count(|s| s.identifies_rate_limited += 1);
                self.write_now(op_payload(9, &json!(false)))
                    .await
                    .map_err(|_| ())?;
                return Ok(Flow::Continue);
            }
        }
        let used = self
            .state
            .session_starts_used
            .fetch_add(1, Ordering::Relaxed);
        if used >= self.state.config.session_start_total {
            // Out of session starts: Discord resets the token.
            return refuse(
                self,
                "session_starts_exhausted",
                CloseCode::AUTHENTICATION_FAILED,
            );
        }
        if let Some(code) = self.state.faults.close_before_ready(shard[0]) {
            self.log_identify(shard, sent, "closed_before_ready", None);
            self.state
                .records
                .count(|s| s.identifies_closed_before_ready += 1);
            return Ok(Flow::Close(CloseCode(code)));
        }

        let session_id: Arc<str> = {
            let mut rng = rand::thread_rng();
            (0..32)
                .map(|_| char::from_digit(rng.gen_range(0..16), 16).unwrap_or('0'))
                .collect::<String>()
                .into()
        };
        let guilds = lock(&self.state.guilds);
        let mine: Vec<_> = guilds.on_shard(shard[0], shard[1]).collect();
        let cfg = &self.state.config;
        let mut session = Session::new(
            session_id.clone(),
            wanted,
            shard,
            cfg.first_seq,
            cfg.max_backlog,
        );
        session.conn = Some(self.link());
        let unavailable: Vec<Value> = mine
            .iter()
            .map(|g| json!({"id": g.id.to_string(), "unavailable": true}))
            .collect();
        let mut ready = json!({
            "v": 10,
            "user": crate::payloads::current_user(&cfg.bot_user),
            "guilds": unavailable,
            "session_id": &*session_id,
            "session_type": "normal",
            "resume_gateway_url": self.state.resume_url(),
            "application": {"id": cfg.application_id.to_string(), "flags": 0},
            "private_channels": [],
            "relationships": [],
            "presences": [],
            "guild_join_requests": [],
            "user_settings": {},
            "geo_ordered_rtc_regions": ["sim-local"],
            "_trace": trace(),
        });
        // Discord's READY: `shard` "if sent when identifying".
        if sent {
            ready["shard"] = json!(shard);
        }
        let mut entries = vec![session.push("READY", ready.to_string())];
        for g in &mine {
            let entry = if g.unavailable {
                // Discord's docs: guilds unavailable due to an outage send a GUILD_DELETE.
                let d = json!({"id": g.id.to_string(), "unavailable": true});
                session.push("GUILD_DELETE", d.to_string())
            } else {
                session.push("GUILD_CREATE", g.guild_create_for(wanted).to_string())
            };
            entries.push(entry);
        }
        let session = Arc::new(Mutex::new(session));
        lock(&self.state.sessions).insert(session_id.clone(), session.clone());
        drop(guilds);
        let n = entries.len() as u64;
        for e in entries {
            self.state.records.emitted(e);
        }
        self.state.records.count(|s| {
            s.identifies += 1;
            s.emitted += n;
        });
        self.set_session(session, session_id.clone());
        self.log_identify(shard, sent, "ready", Some(&session_id));
        self.state.records.notice(SimNotice::Identified {
            conn_id: self.conn_id,
            session_id: session_id.to_string(),
        });
        Ok(Flow::Continue)
    }

    async fn invalid_session(&mut self) -> Result<Flow, ()> {
        self.state.records.count(|s| s.resumes_refused += 1);
        self.write_now(op_payload(9, &json!(false)))
            .await
            .map_err(|_| ())?;
        Ok(Flow::Continue)
    }

    async fn resume(&mut self, d: &Value) -> Result<Flow, ()> {
        if self.authenticated() {
            return Ok(Flow::Close(CloseCode::ALREADY_AUTHENTICATED));
        }
        if !d.is_object() {
            return Ok(Flow::Close(CloseCode::DECODE_ERROR));
        }
        if !self.check_token(d) {
            return Ok(Flow::Close(CloseCode::AUTHENTICATION_FAILED));
        }
        let Some(session_id) = d.get("session_id").and_then(Value::as_str) else {
            return Ok(Flow::Close(CloseCode::DECODE_ERROR));
        };
        let seq = match d.get("seq") {
            Some(Value::Null) | None => 0,
            Some(v) => match v.as_u64() {
                Some(s) => s,
                None => return Ok(Flow::Close(CloseCode::DECODE_ERROR)),
            },
        };
        let Some(session) = self.state.session(session_id) else {
            return self.invalid_session().await;
        };
        if self.state.faults.refuse_resume.load(Ordering::Relaxed) {
            lock(&session).end(Ended::Invalidated);
            return self.invalid_session().await;
        }
        let link = self.link();
        let result = {
            let _order = lock(&self.state.guilds);
            let mut s = lock(&session);
            match s.resume(seq, link, self.state.config.resume_window) {
                Ok((replayed, previous)) => {
                    let resumed = s.push("RESUMED", json!({"_trace": trace()}).to_string());
                    Ok((replayed, previous, resumed))
                }
                Err(e) => {
                    if e == ResumeError::BadSeq {
                        s.end(Ended::Invalidated);
                    }
                    Err(e)
                }
            }
        };
        match result {
            Ok((replayed, previous, resumed)) => {
                if let Some(prev) = previous.filter(|p| p.conn_id != self.conn_id) {
                    // The old connection (a zombie) is cut off.
                    let _ = prev.tx.send(Outbound::Drop);
                }
                self.state.records.emitted(resumed);
                self.state.records.count(|s| {
                    s.resumes += 1;
                    s.emitted += 1;
                });
                let id: Arc<str> = session_id.into();
                self.set_session(session, id.clone());
                self.state.records.notice(SimNotice::Resumed {
                    conn_id: self.conn_id,
                    session_id: id.to_string(),
                    replayed,
                });
                Ok(Flow::Continue)
            }
            Err(ResumeError::Invalid) => self.invalid_session().await,
            Err(ResumeError::TimedOut) if self.state.config.expired_resume_closes_4009 => {
                self.state.records.count(|s| s.resumes_refused += 1);
                Ok(Flow::Close(CloseCode::SESSION_TIMED_OUT))
            }
            // Discord's docs: a session that can't be resumed gets op 9 `false`.
            Err(ResumeError::TimedOut) => self.invalid_session().await,
            Err(ResumeError::BadSeq) => {
                self.state.records.count(|s| s.resumes_refused += 1);
                Ok(Flow::Close(CloseCode::INVALID_SEQ))
            }
        }
    }
}
