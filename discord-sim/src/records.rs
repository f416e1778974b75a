//! Everything the simulator saw and did, kept for tests to read back: gateway payloads clients
//! sent, REST calls, dispatches emitted, connections, IDENTIFYs (with shard and outcome); plus live counters (a `watch`, so tests can
//! await "two identifies happened" without sleeping) and a broadcast of notable moments.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use serde::Serialize;
use tokio::sync::{broadcast, watch};

use crate::gateway::session::DispatchEntry;

/// One payload a client sent on the gateway.
#[derive(Clone, Debug, Serialize)]
pub struct GatewayRecord {
    /// Connection it came on.
    pub conn_id: u64,
    /// Session of that connection at the time (after IDENTIFY/RESUME).
    pub session_id: Option<String>,
    /// When it was received (unix micros).
    pub at_us: u64,
    /// Its `op`, if it parsed.
    pub op: Option<u64>,
    /// The payload text as received (binary frames decoded lossily).
    pub payload: String,
}

/// One REST call.
#[derive(Clone, Debug, Serialize)]
pub struct RestRecord {
    /// `GET`, `POST`, …
    pub method: String,
    /// Path, e.g. `/api/v10/channels/1/messages`.
    pub path: String,
    /// Query string, if any.
    pub query: Option<String>,
    /// All request headers (name lowercased, value lossily decoded).
    pub headers: Vec<(String, String)>,
    /// The `Authorization` header.
    pub authorization: Option<String>,
    /// The W3C `traceparent` header.
    pub traceparent: Option<String>,
    /// The `User-Agent` header.
    pub user_agent: Option<String>,
    /// Request body (lossily decoded).
    pub body: String,
    /// When it arrived (unix micros).
    pub at_us: u64,
    /// Status the sim answered.
    pub status: u16,
}

/// One dispatch the sim emitted to one session.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct EmittedDispatch {
    /// The session it went to (`None`: no session existed, nothing was sent).
    pub session_id: Option<String>,
    /// Its `s` in that session.
    pub seq: Option<u64>,
    /// Its `t`.
    pub t: String,
    /// The exact `d` JSON text as sent (includes `_sim_sent_us` for objects).
    pub d: String,
    /// `_sim_sent_us`: unix micros just before the frame was first written (or when it was
    /// emitted, if no connection was live).
    pub sent_us: u64,
}

/// A gateway connection.
#[derive(Clone, Debug, Serialize)]
pub struct ConnectionRecord {
    /// Id (1, 2, …).
    pub conn_id: u64,
    /// Request path (`/` for the gateway URL, `/resume…` for `resume_gateway_url`).
    pub path: String,
    /// Query string.
    pub query: Option<String>,
    /// Whether zlib-stream was negotiated.
    pub zlib: bool,
    /// Whether zstd-stream was negotiated.
    pub zstd: bool,
    /// When it opened (unix micros).
    pub opened_us: u64,
    /// When it ended.
    pub closed_us: Option<u64>,
    /// Close code, whoever sent it (`None`: dropped without a close frame).
    pub close_code: Option<u16>,
    /// Whether the client closed it.
    pub closed_by_client: bool,
    /// Session it identified or resumed.
    pub session_id: Option<String>,
    /// The handshake's `User-Agent` header (recorded, never required).
    pub user_agent: Option<String>,
}

/// One IDENTIFY the gateway received, and what became of it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct IdentifyRecord {
    /// When it arrived (unix micros).
    pub at_us: u64,
    /// Connection it came on.
    pub conn_id: u64,
    /// `shard[0]` (0 when absent; as sent when invalid, 0 when unreadable).
    pub shard: u64,
    /// `shard[1]` (1 when absent).
    pub num_shards: u64,
    /// Whether IDENTIFY carried `shard` at all.
    pub shard_sent: bool,
    /// Its identify bucket, `shard % max_concurrency`.
    pub bucket: u64,
    /// `ready`, `rate_limited` (op 9: its bucket identified less than `identify_window` ago),
    /// `closed_before_ready` (the fault), `invalid_shard` (4010), `sharding_required` (4011),
    /// `session_starts_exhausted` / `authentication_failed` (4004), `invalid_intents` (4013),
    /// `disallowed_intents` (4014), `already_authenticated` (4005), `decode_error` (4002).
    pub outcome: String,
    /// The session it started (`ready` only).
    pub session_id: Option<String>,
}

/// Counters; read with `Sim::stats`, awaited with `Sim::wait_for`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct SimStats {
    /// Gateway connections accepted.
    pub connections_opened: u64,
    /// Gateway connections open now.
    pub connections_live: u64,
    /// Successful IDENTIFYs (sessions created).
    pub identifies: u64,
    /// Successful RESUMEs.
    pub resumes: u64,
    /// RESUMEs answered with op 9 or a close code.
    pub resumes_refused: u64,
    /// Heartbeats received.
    pub heartbeats: u64,
    /// Gateway payloads received.
    pub gateway_received: u64,
    /// Dispatches emitted (per session).
    pub emitted: u64,
    /// REST calls answered.
    pub rest_calls: u64,
    /// REST 429s answered.
    pub rest_429s: u64,
    /// Close frames the sim sent.
    pub closes_sent: u64,
    /// The last close code the sim sent.
    pub last_close_code: Option<u16>,
    /// Op 4 Voice State Updates received (well-formed).
    pub voice_state_updates: u64,
    /// Op 3 Presence Updates received (well-formed).
    pub presence_updates: u64,
    /// Op 8 Request Guild Members for the guild, including rate-limited ones.
    pub member_requests: u64,
    /// Op 8 requests answered with a `RATE_LIMITED` dispatch.
    pub member_requests_rate_limited: u64,
    /// IDENTIFY payloads received (whatever became of them).
    pub identify_attempts: u64,
    /// IDENTIFYs over the `max_concurrency` pacing (answered with op 9 `false`).
    pub identifies_rate_limited: u64,
    /// IDENTIFYs closed before READY by the `close_before_ready` fault.
    pub identifies_closed_before_ready: u64,
    /// REST calls refused for a missing or malformed `User-Agent`.
    pub rest_bad_user_agent: u64,
    /// Op 4 / op 8 for a guild of another shard (ignored, as Discord does).
    pub commands_wrong_shard: u64,
    /// Corrupt websocket messages sent (`Fault::CorruptFrame`).
    pub corrupt_frames_sent: u64,
}

/// Notable moments, broadcast as they happen.
#[derive(Clone, Debug, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SimNotice {
    /// A gateway connection opened.
    Connected {
        /// Connection.
        conn_id: u64,
        /// Request path.
        path: String,
    },
    /// A client identified.
    Identified {
        /// Connection.
        conn_id: u64,
        /// New session.
        session_id: String,
    },
    /// A client resumed; `replayed` dispatches were sent again.
    Resumed {
        /// Connection.
        conn_id: u64,
        /// Session.
        session_id: String,
        /// Replayed dispatches.
        replayed: u64,
    },
    /// A connection ended.
    Closed {
        /// Connection.
        conn_id: u64,
        /// Close code (`None`: no close frame).
        code: Option<u16>,
        /// Whether the client closed it.
        by_client: bool,
    },
    /// A REST call was answered.
    RestCall {
        /// Method.
        method: String,
        /// Path.
        path: String,
        /// Status.
        status: u16,
    },
}

/// Bounded record lists, counters and notices.
#[derive(Debug)]
pub struct Records {
    limit: usize,
    gateway: Mutex<VecDeque<GatewayRecord>>,
    rest: Mutex<VecDeque<RestRecord>>,
    emitted: Mutex<VecDeque<Arc<DispatchEntry>>>,
    connections: Mutex<VecDeque<ConnectionRecord>>,
    identifies: Mutex<VecDeque<IdentifyRecord>>,
    /// Counters.
    pub stats: watch::Sender<SimStats>,
    /// Notices.
    pub notices: broadcast::Sender<SimNotice>,
}

fn push_bounded<T>(q: &Mutex<VecDeque<T>>, limit: usize, item: T) {
    if limit == 0 {
        return;
    }
    let mut q = q.lock().unwrap_or_else(|e| e.into_inner());
    if q.len() >= limit {
        q.pop_front();
    }
    q.push_back(item);
}

fn snapshot<T: Clone>(q: &Mutex<VecDeque<T>>) -> Vec<T> {
    q.lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .cloned()
        .collect()
}

impl Records {
    /// Empty records keeping at most `limit` of each kind.
    pub fn new(limit: usize) -> Self {
        Self {
            limit,
            gateway: Mutex::default(),
            rest: Mutex::default(),
            emitted: Mutex::default(),
            connections: Mutex::default(),
            identifies: Mutex::default(),
            stats: watch::Sender::new(SimStats::default()),
            notices: broadcast::Sender::new(4096),
        }
    }

    /// Updates counters.
    pub fn count(&self, f: impl FnOnce(&mut SimStats)) {
        self.stats.send_modify(f);
    }

    /// Broadcasts a notice (nobody listening is fine).
    pub fn notice(&self, n: SimNotice) {
        let _ = self.notices.send(n);
    }

    /// Records a client payload.
    pub fn gateway(&self, r: GatewayRecord) {
        push_bounded(&self.gateway, self.limit, r);
        self.count(|s| s.gateway_received += 1);
    }

    /// Records a REST call.
    pub fn rest(&self, r: RestRecord) {
        let notice = SimNotice::RestCall {
            method: r.method.clone(),
            path: r.path.clone(),
            status: r.status,
        };
        let limited = r.status == 429;
        push_bounded(&self.rest, self.limit, r);
        self.count(|s| {
            s.rest_calls += 1;
            if limited {
                s.rest_429s += 1;
            }
        });
        self.notice(notice);
    }

    /// Records an emitted dispatch.
    pub fn emitted(&self, e: Arc<DispatchEntry>) {
        push_bounded(&self.emitted, self.limit, e);
    }

    /// Records a new connection.
    pub fn connection_opened(&self, r: ConnectionRecord) {
        let notice = SimNotice::Connected {
            conn_id: r.conn_id,
            path: r.path.clone(),
        };
        push_bounded(&self.connections, self.limit.max(1), r);
        self.count(|s| {
            s.connections_opened += 1;
            s.connections_live += 1;
        });
        self.notice(notice);
    }

    /// Records an IDENTIFY (kept even with `record_limit` 0, like connections).
    pub fn identify(&self, r: IdentifyRecord) {
        push_bounded(&self.identifies, self.limit.max(10_000), r);
        self.count(|s| s.identify_attempts += 1);
    }

    /// IDENTIFYs so far.
    pub fn identify_list(&self) -> Vec<IdentifyRecord> {
        snapshot(&self.identifies)
    }

    /// Updates a connection record.
    pub fn connection_update(&self, conn_id: u64, f: impl FnOnce(&mut ConnectionRecord)) {
        let mut q = self.connections.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(r) = q.iter_mut().rev().find(|r| r.conn_id == conn_id) {
            f(r);
        }
    }

    /// Client payloads so far.
    pub fn gateway_list(&self) -> Vec<GatewayRecord> {
        snapshot(&self.gateway)
    }

    /// REST calls so far.
    pub fn rest_list(&self) -> Vec<RestRecord> {
        snapshot(&self.rest)
    }

    /// Connections so far.
    pub fn connection_list(&self) -> Vec<ConnectionRecord> {
        snapshot(&self.connections)
    }

    /// Emitted dispatches so far.
    pub fn emitted_list(&self) -> Vec<EmittedDispatch> {
        let entries = snapshot(&self.emitted);
        entries.iter().map(|e| e.to_record()).collect()
    }

    /// Forgets all records (counters stay).
    pub fn clear(&self) {
        self.gateway
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
        self.rest.lock().unwrap_or_else(|e| e.into_inner()).clear();
        self.emitted
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
        self.identifies
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }
}
