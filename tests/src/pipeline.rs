//! The whole pipeline under load: discord-sim (in process) → the real `gateway-holder` binary →
//! `wrangler dev` → N SSE clients on the Worker's own port, with commands flowing back from a
//! client with a write session. Used by `src/bin/pipeline-bench.rs` (load, ceiling, soak) and by
//! `tests/pipeline_smoke.rs` (seconds).
//!
//! Every dispatch the sim emitted to a session is identified by its `_sim_sent_us` stamp (the
//! sim stamps each frame once; a RESUME replays identical bytes), so "delivered exactly once" is
//! checked per client: every emitted stamp received as many times as it was emitted (two
//! dispatches written within the same microsecond share a stamp, so stamps are counted, not
//! just collected).
//!
//! The fan-out is the edge (`wrangler dev`) or, for the baseline, a `better-sse` Node server fed
//! by the same real holder ([`Fanout`]); the twilight-gateway bare-receive baseline can listen to
//! the same sim during the run ([`Config::twilight`]). The clients all run on one thread
//! ([`crate::sse_fleet`]), whose CPU time is reported.

use crate::baseline_better_sse::BetterSse;
use crate::baseline_twilight::{self, TwilightBaseline};
use crate::edge::{Edge, JWT_SECRET};
use crate::sse::Item;
use crate::sse_fleet::{AsyncSse, Fleet};
use crate::stack::HolderProc;
use crate::{free_port, http, now_ms, proc_stat};
use discord_sim::config::demo::{GENERAL, GUILD_ID, RANDOM};
use discord_sim::{Burst, Fault, TrafficSpec};
use serde::Serialize;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU32, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// What one run does.
#[derive(Clone, Debug)]
pub struct Config {
    /// Name of the run (report file stem and state directories).
    pub name: String,
    pub clients: usize,
    /// Base rate, events/s.
    pub rate: f64,
    /// Rate during bursts (0: no bursts).
    pub burst_rate: f64,
    pub burst_length: Duration,
    pub burst_every: Duration,
    /// How long traffic runs.
    pub duration: Duration,
    /// Faults at fixed offsets from the start.
    pub faults: Vec<(Duration, FaultKind)>,
    /// A random fault every this often (soak), 0 for none.
    pub random_fault_every: Duration,
    /// Commands per second (send-message) from a write session.
    pub commands_per_sec: f64,
    /// How long clients may take to receive everything after the traffic ended.
    pub settle: Duration,
    /// What fans the holder's batches out to the clients.
    pub fanout: Fanout,
    /// The holder posts through wrangler's Node proxy (always when the edge gets restarted)
    /// instead of straight to the Worker's own port.
    pub ingest_via_wrangler: bool,
    /// Run the twilight-gateway bare-receive baseline on the same sim meanwhile (needs a bench
    /// binary that calls [`baseline_twilight::child_main_if_requested`]).
    pub twilight: bool,
    /// Guilds the bot is in (traffic round-robin over them; client `i` streams guild
    /// `i % guilds`), and the shards the holder runs them on.
    pub guilds: usize,
    pub shards: u32,
}

/// The process between the holder and the SSE clients.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Fanout {
    /// The edge under `wrangler dev`; clients on the Worker's own port.
    Edge,
    /// The baseline: `tests/bench/better-sse-server.mjs` (no auth, replay or commands).
    BetterSse,
}

/// A fault the run injects.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultKind {
    DropTcp,
    Reconnect,
    InvalidSessionResumable,
    InvalidSessionFresh,
    Close4000,
    RequestHeartbeat,
    HolderRestart,
    EdgeRestart,
}

/// The soak's faults: the sim's connection faults that a holder must survive without losing an
/// event (the ones that end a session unresumed on Discord's side lose events by design and are
/// left out; InvalidSession `false` is in: the sim sends nothing to a dead session), plus holder
/// and edge restarts. Drawn as shuffled decks, so every kind comes once per
/// `RANDOM_FAULTS.len()` faults.
pub const RANDOM_FAULTS: [FaultKind; 8] = [
    FaultKind::DropTcp,
    FaultKind::Reconnect,
    FaultKind::InvalidSessionResumable,
    FaultKind::InvalidSessionFresh,
    FaultKind::Close4000,
    FaultKind::RequestHeartbeat,
    FaultKind::HolderRestart,
    FaultKind::EdgeRestart,
];

#[derive(Clone, Debug, Serialize)]
pub struct FaultRecord {
    pub kind: FaultKind,
    /// Unix micros when it was injected (before a kill, after the sim applied it).
    pub at_us: u64,
    /// From the fault to the first event emitted after it reaching client 0 (ms).
    pub recovery_ms: Option<f64>,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct Percentiles {
    pub count: usize,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

impl Percentiles {
    /// Percentiles (in ms) of sorted microsecond samples; NaN when there are none.
    pub fn of(sorted_us: &[u64]) -> Percentiles {
        let at = |p: f64| {
            if sorted_us.is_empty() {
                return f64::NAN;
            }
            sorted_us[((sorted_us.len() as f64 - 1.0) * p).round() as usize] as f64 / 1000.0
        };
        Percentiles {
            count: sorted_us.len(),
            p50_ms: at(0.5),
            p95_ms: at(0.95),
            p99_ms: at(0.99),
            max_ms: at(1.0),
        }
    }
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct ProcFigures {
    pub cpu_seconds: f64,
    /// Per 1,000 deliveries (one event at one client).
    pub cpu_seconds_per_1000_events: f64,
    /// Per 1,000 gateway events (each emitted dispatch once).
    pub cpu_seconds_per_1000_emitted: f64,
    pub peak_rss_mb: f64,
    /// Least-squares slope of RSS over the run (MB per minute).
    pub rss_slope_mb_per_min: f64,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct Report {
    pub version: &'static str,
    pub name: String,
    pub fanout: Option<Fanout>,
    pub clients: usize,
    pub clients_connected: usize,
    pub rate: f64,
    pub burst_rate: f64,
    pub seconds: f64,
    pub worker_port: u16,
    pub emitted: usize,
    pub delivered: u64,
    pub lost: u64,
    pub duplicated: u64,
    pub unexpected: u64,
    pub gaps: u64,
    pub client_reconnects: u64,
    /// Gateway→SSE, every event at every client.
    pub latency: Percentiles,
    /// The same, without events emitted during a fault's recovery window.
    pub latency_steady: Percentiles,
    pub commands_sent: usize,
    pub commands_answered_ok: usize,
    pub command_dispatch: Percentiles,
    pub faults: Vec<FaultRecord>,
    pub holder: ProcFigures,
    /// The fan-out process: workerd running the Worker, or node for [`Fanout::BetterSse`].
    pub workerd: ProcFigures,
    /// twilight-gateway receiving the same stream (when [`Config::twilight`]).
    pub twilight: Option<TwilightFigures>,
    /// CPU seconds of the thread running every SSE client, and of the whole bench process (the
    /// sim, the clients, the sampler): when the clients' thread is near 1 s per second, the
    /// client side is saturated and inflates the latency.
    pub clients_cpu_seconds: f64,
    pub bench_cpu_seconds: f64,
    /// Client 0's receipts: (seconds since start, latency ms), for the plot.
    #[serde(skip)]
    pub timeline: Vec<(f64, f64)>,
    /// Every latency (µs), sorted, for the CDF.
    #[serde(skip)]
    pub all_latencies_us: Vec<u64>,
    /// Burst windows (seconds since start).
    pub bursts: Vec<(f64, f64)>,
    /// Fault times (seconds since start).
    pub fault_offsets: Vec<(f64, FaultKind)>,
    pub guilds: usize,
    pub shards: u32,
    /// Per guild (what each guild's clients must get: its own dispatches).
    pub per_guild: Vec<GuildFigures>,
}

/// One guild's share of a many-guild run.
#[derive(Clone, Debug, Default, Serialize)]
pub struct GuildFigures {
    pub guild_id: String,
    pub shard: u32,
    pub clients: usize,
    pub emitted: usize,
    pub latency: Percentiles,
}

/// The twilight-gateway baseline over the same run.
#[derive(Clone, Debug, Default, Serialize)]
pub struct TwilightFigures {
    /// Dispatches the sim sent to its sessions during the run.
    pub events: usize,
    pub cpu_seconds: f64,
    pub cpu_seconds_per_1000_events: f64,
    pub peak_rss_mb: f64,
}

impl Report {
    /// Deliveries a lossless run makes: each guild's dispatches to each of its clients.
    pub fn expected_deliveries(&self) -> u64 {
        self.per_guild
            .iter()
            .map(|g| g.emitted as u64 * g.clients as u64)
            .sum()
    }

    /// Every emitted dispatch reached every connected client exactly once.
    pub fn exactly_once(&self) -> bool {
        self.lost == 0
            && self.duplicated == 0
            && self.clients_connected == self.clients
            && self.emitted > 0
    }
}

use crate::sse_fleet::now_us;

/// `_sim_sent_us` out of an event's data without a full parse.
fn sim_stamp(data: &str) -> Option<u64> {
    let key = "\"_sim_sent_us\":";
    let i = data.find(key)? + key.len();
    let digits: String = data[i..]
        .chars()
        .skip_while(|c| *c == ' ')
        .take_while(|c| c.is_ascii_digit())
        .collect();
    digits.parse().ok()
}

fn session(scope: &str) -> String {
    let exp = now_ms() / 1000 + 24 * 3600;
    edge_worker::jwt::sign(
        &format!(r#"{{"sub":"bench-{scope}","exp":{exp},"scope":"{scope}"}}"#),
        JWT_SECRET.as_bytes(),
    )
}

struct ClientOut {
    connected: bool,
    /// (stamp, receipt unix µs)
    receipts: Vec<(u64, u64)>,
    gaps: u64,
    reconnects: u64,
}

/// How many dispatches carry each stamp.
type Stamps = HashMap<u64, u32>;

struct Shared {
    port: AtomicU16,
    stop: AtomicBool,
    /// Per guild, the stamps each of its clients must have (set once the traffic ended).
    expected: Mutex<Option<Arc<Vec<Stamps>>>>,
    /// The guilds, in order (client `i` streams guild `i % len`).
    guilds: Vec<String>,
}

/// Opens `/api/stream` (resuming after `last`); Some once the stream's preamble arrived, which
/// is when the fan-out has registered the client.
async fn open_stream(port: u16, auth: &str, guild: &str, last: Option<u64>) -> Option<AsyncSse> {
    let last = last.map(|l| l.to_string());
    let mut h: Vec<(&str, &str)> = vec![("Authorization", auth)];
    if let Some(l) = last.as_deref() {
        h.push(("Last-Event-ID", l));
    }
    let limit = Duration::from_secs(30);
    let path = format!("/api/stream?guild={guild}");
    let mut c = tokio::time::timeout(limit, AsyncSse::connect(port, &path, &h))
        .await
        .ok()?
        .ok()?;
    if c.status != 200 {
        return None;
    }
    c.next(limit).await.map(|_| c)
}

/// One client: connects, reports whether it did, then reads until it has every expected stamp
/// (known once the traffic ended) or is stopped, reconnecting with `Last-Event-ID`.
async fn client(
    shared: Arc<Shared>,
    auth: Arc<String>,
    guild: usize,
    connects: Arc<tokio::sync::Semaphore>,
    ready: mpsc::Sender<bool>,
) -> ClientOut {
    let guild_id = shared.guilds[guild].clone();
    let mut out = ClientOut {
        connected: false,
        receipts: Vec::with_capacity(8192),
        gaps: 0,
        reconnects: 0,
    };
    let mut conn = {
        // A bounded number of handshakes at once, so the listen backlog never overflows.
        let _permit = connects.acquire().await;
        open_stream(shared.port.load(Ordering::SeqCst), &auth, &guild_id, None).await
    };
    out.connected = conn.is_some();
    let _ = ready.send(out.connected);
    if !out.connected {
        return out;
    }
    let mut last_id: Option<u64> = None;
    let mut seen: Stamps = HashMap::new();
    let mut expected: Option<Arc<Stamps>> = None;
    // Expected stamps not received yet (known once the traffic ended).
    let mut missing = usize::MAX;
    while !shared.stop.load(Ordering::SeqCst) {
        if expected.is_none() {
            expected = shared
                .expected
                .lock()
                .expect("lock")
                .as_ref()
                .map(|per_guild| Arc::new(per_guild[guild].clone()));
            if let Some(exp) = &expected {
                missing = exp
                    .iter()
                    .map(|(s, n)| n.saturating_sub(seen.get(s).copied().unwrap_or(0)) as usize)
                    .sum();
            }
        }
        if missing == 0 {
            break;
        }
        let Some(c) = conn.as_mut() else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            conn = open_stream(
                shared.port.load(Ordering::SeqCst),
                &auth,
                &guild_id,
                last_id,
            )
            .await;
            if conn.is_some() {
                out.reconnects += 1;
            }
            continue;
        };
        match c.next(Duration::from_millis(300)).await {
            Some((Item::Event(e), at)) => {
                if e.id.is_some() {
                    last_id = e.id;
                }
                if e.event == "gap" {
                    out.gaps += 1;
                }
                if let Some(s) = sim_stamp(&e.data) {
                    let got = seen.entry(s).or_default();
                    *got += 1;
                    if expected
                        .as_ref()
                        .is_some_and(|x| x.get(&s).is_some_and(|n| *got <= *n))
                    {
                        missing = missing.saturating_sub(1);
                    }
                    out.receipts.push((s, at));
                }
            }
            Some(_) => {}
            None if c.closed => conn = None,
            None => {}
        }
    }
    out
}

/// Every client on one thread; `finish` stops them and returns what each received.
/// Starts `n` clients on the fleet's thread; returns once each has connected or failed to.
fn start_fleet(n: usize, shared: Arc<Shared>, auth: String) -> Fleet<ClientOut> {
    let (ready_tx, ready_rx) = mpsc::channel();
    let auth = Arc::new(auth);
    let connects = Arc::new(tokio::sync::Semaphore::new(64));
    let next = std::sync::atomic::AtomicUsize::new(0);
    let fleet = Fleet::start(n, move || {
        let guild = next.fetch_add(1, Ordering::Relaxed) % shared.guilds.len();
        client(
            shared.clone(),
            auth.clone(),
            guild,
            connects.clone(),
            ready_tx.clone(),
        )
    });
    for _ in 0..n {
        if ready_rx.recv().is_err() {
            break;
        }
    }
    fleet
}

/// CPU (utime+stime) and RSS samples of the holder and workerd, following restarts.
struct Sampler {
    holder_pid: Arc<AtomicU32>,
    worker_pid: Arc<AtomicU32>,
    stop: Arc<AtomicBool>,
    join: Option<thread::JoinHandle<SamplerOut>>,
}

#[derive(Default)]
struct SamplerOut {
    holder: ProcTrack,
    worker: ProcTrack,
    twilight: ProcTrack,
}

#[derive(Default)]
struct ProcTrack {
    /// (pid, cpu seconds at first sight, last cpu seconds)
    pids: Vec<(u32, f64, f64)>,
    peak_rss_kb: u64,
    /// (pid, seconds since start, RSS MB)
    rss: Vec<(u32, f64, f64)>,
}

impl ProcTrack {
    fn sample(&mut self, pid: u32, t: f64, first: bool) {
        if pid == 0 {
            return;
        }
        let Some(st) = proc_stat(pid) else {
            return;
        };
        match self.pids.iter_mut().find(|p| p.0 == pid) {
            Some(p) => p.2 = st.cpu_seconds,
            // A process seen first at the start counts from there; a restarted one from 0.
            None => self.pids.push((
                pid,
                if first { st.cpu_seconds } else { 0.0 },
                st.cpu_seconds,
            )),
        }
        self.peak_rss_kb = self.peak_rss_kb.max(st.peak_rss_kb).max(st.rss_kb);
        self.rss.push((pid, t, st.rss_kb as f64 / 1024.0));
    }

    fn figures(&self, delivered: u64, emitted: usize) -> ProcFigures {
        let cpu: f64 = self.pids.iter().map(|p| p.2 - p.1).sum();
        ProcFigures {
            cpu_seconds: cpu,
            cpu_seconds_per_1000_emitted: if emitted > 0 {
                cpu * 1000.0 / emitted as f64
            } else {
                f64::NAN
            },
            cpu_seconds_per_1000_events: if delivered > 0 {
                cpu * 1000.0 / delivered as f64
            } else {
                f64::NAN
            },
            peak_rss_mb: self.peak_rss_kb as f64 / 1024.0,
            rss_slope_mb_per_min: slope(&self.rss) * 60.0,
        }
    }
}

/// Least-squares slope of RSS over time with one intercept per process: how fast memory grows
/// while a process runs (a restart's drop back to a fresh process is not "flat memory"), leaving
/// out each process's first 10 s (start-up and warm-up).
fn slope(pts: &[(u32, f64, f64)]) -> f64 {
    let mut num = 0.0;
    let mut den = 0.0;
    let mut pids: Vec<u32> = pts.iter().map(|p| p.0).collect();
    pids.sort_unstable();
    pids.dedup();
    for pid in pids {
        let mine = pts.iter().filter(|p| p.0 == pid);
        let born = mine.clone().map(|p| p.1).fold(f64::INFINITY, f64::min);
        let seg: Vec<(f64, f64)> = mine
            .filter(|p| p.1 >= born + 10.0)
            .map(|p| (p.1, p.2))
            .collect();
        if seg.len() < 2 {
            continue;
        }
        let n = seg.len() as f64;
        let mx = seg.iter().map(|p| p.0).sum::<f64>() / n;
        let my = seg.iter().map(|p| p.1).sum::<f64>() / n;
        num += seg.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum::<f64>();
        den += seg.iter().map(|p| (p.0 - mx).powi(2)).sum::<f64>();
    }
    if den == 0.0 {
        0.0
    } else {
        num / den
    }
}

impl Sampler {
    fn start(holder: u32, worker: u32, twilight: u32) -> Sampler {
        let holder_pid = Arc::new(AtomicU32::new(holder));
        let worker_pid = Arc::new(AtomicU32::new(worker));
        let stop = Arc::new(AtomicBool::new(false));
        let (h, w, s) = (holder_pid.clone(), worker_pid.clone(), stop.clone());
        let join = thread::spawn(move || {
            let mut out = SamplerOut::default();
            let t0 = Instant::now();
            let mut first = true;
            loop {
                let t = t0.elapsed().as_secs_f64();
                out.holder.sample(h.load(Ordering::SeqCst), t, first);
                out.worker.sample(w.load(Ordering::SeqCst), t, first);
                out.twilight.sample(twilight, t, first);
                first = false;
                if s.load(Ordering::SeqCst) {
                    return out;
                }
                thread::sleep(Duration::from_millis(250));
            }
        });
        Sampler {
            holder_pid,
            worker_pid,
            stop,
            join: Some(join),
        }
    }

    fn finish(mut self) -> SamplerOut {
        self.stop.store(true, Ordering::SeqCst);
        self.join
            .take()
            .map(|j| j.join().expect("sampler"))
            .unwrap_or_default()
    }
}

/// A tiny xorshift for fault choice (no crate needed for that).
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn post_command(port: u16, auth: &str, channel: u64, nonce: &str) -> Option<u16> {
    let body = format!(
        r#"{{"channel_id":"{channel}","content":"bench command {nonce}","nonce":"{nonce}"}}"#
    );
    http::request(
        port,
        "POST",
        "/api/actions/send-message",
        &[
            ("Authorization", auth),
            ("Content-Type", "application/json"),
        ],
        body.as_bytes(),
    )
    .ok()
    .map(|r| r.status)
}

/// The fault schedule: `cfg.faults`, plus (soak) one fault every `random_fault_every`, drawn
/// from shuffled decks of [`RANDOM_FAULTS`] (edge restarts only with the edge as fan-out).
fn schedule(cfg: &Config) -> Vec<(Duration, FaultKind)> {
    let mut out = cfg.faults.clone();
    if !cfg.random_fault_every.is_zero() {
        let kinds: Vec<FaultKind> = RANDOM_FAULTS
            .iter()
            .copied()
            .filter(|k| cfg.fanout == Fanout::Edge || *k != FaultKind::EdgeRestart)
            .collect();
        let mut rng = Rng(now_us() | 1);
        let mut deck: Vec<FaultKind> = Vec::new();
        let mut t = cfg.random_fault_every;
        while t + Duration::from_secs(2) < cfg.duration {
            if deck.is_empty() {
                deck = kinds.clone();
                // Fisher-Yates.
                for i in (1..deck.len()).rev() {
                    deck.swap(i, (rng.next() % (i as u64 + 1)) as usize);
                }
            }
            out.push((t, deck.pop().expect("a full deck")));
            t += cfg.random_fault_every;
        }
    }
    out.sort_by_key(|f| f.0);
    out
}

/// The fan-out in use.
enum Server {
    Edge(Edge),
    Node(BetterSse),
}

impl Server {
    /// Where the holder posts: like the clients, straight to the Worker's own port (in
    /// production nothing sits between the holder and Cloudflare's edge; wrangler's Node proxy
    /// is a dev artefact with a cost of its own), unless the edge will be restarted: its own
    /// port changes then, and only wrangler's stays.
    fn ingest_port(&self, via_wrangler: bool) -> u16 {
        match self {
            Server::Edge(e) if via_wrangler => e.port,
            Server::Edge(e) => e.worker_port().unwrap_or(e.port),
            Server::Node(n) => n.port,
        }
    }

    /// Where clients connect: the Worker's own port (not wrangler's proxy), or node's.
    fn client_port(&self) -> u16 {
        match self {
            Server::Edge(e) => e.worker_port().unwrap_or(e.port),
            Server::Node(n) => n.port,
        }
    }

    fn pid(&self) -> u32 {
        match self {
            Server::Edge(e) => e.worker_pid().unwrap_or(0),
            Server::Node(n) => n.pid(),
        }
    }
}

/// Runs the pipeline once and measures it.
pub fn run(cfg: &Config) -> Report {
    let guilds = cfg.guilds.max(1);
    let shards = cfg.shards.max(1);
    let (rt, sim) = crate::stack::start_sim_with(
        1,
        discord_sim::SimConfig {
            heartbeat_interval: Duration::from_millis(1500),
            recommended_shards: shards,
            // Every shard identifies at once (the pacing is tested elsewhere).
            max_concurrency: shards,
            ..discord_sim::SimConfig::with_guilds(guilds)
        },
    );
    let guild_ids: Vec<String> = sim
        .config()
        .guilds
        .iter()
        .map(|g| g.id.to_string())
        .collect();
    let _ = crate::stack::holder_binary();
    let holder_port = free_port();
    let holder_url = format!("http://127.0.0.1:{holder_port}");
    let guild = GUILD_ID.to_string();
    let mut server = match cfg.fanout {
        Fanout::Edge => Server::Edge(Edge::start(
            &cfg.name,
            &[
                ("HOLDER_URL", &holder_url),
                ("GUILD_ID", &guild),
                ("ACTION_RATE_PER_SEC", "100"),
                ("ACTION_BURST", "100"),
                ("CLIENT_QUEUE_MAX", "5000"),
                ("SSE_HEARTBEAT_MS", "5000"),
            ],
        )),
        Fanout::BetterSse => Server::Node(BetterSse::start()),
    };
    let plan = schedule(cfg);
    let edge_restarts = plan.iter().any(|f| f.1 == FaultKind::EdgeRestart);
    let shards_var = shards.to_string();
    let mut holder = HolderProc::start_with(
        &cfg.name,
        holder_port,
        server.ingest_port(edge_restarts || cfg.ingest_via_wrangler),
        &sim.api_url(),
        &[("DISCORD_SHARDS", shards_var.as_str())],
    );
    let twilight = cfg.twilight.then(|| {
        let t = TwilightBaseline::spawn(&sim.gateway_url());
        // Connected (READY and GUILD_CREATE received) before the measured part starts.
        if let Some(t) = &t {
            if !t.wait_received(2, Duration::from_secs(30)) {
                eprintln!("{}: the twilight baseline never received READY", cfg.name);
            }
        }
        t
    });
    let twilight = twilight.flatten();
    let worker_port = server.client_port();
    let shared = Arc::new(Shared {
        port: AtomicU16::new(worker_port),
        stop: AtomicBool::new(false),
        expected: Mutex::new(None),
        guilds: guild_ids.clone(),
    });
    sim.clear_records();

    let fleet = start_fleet(
        cfg.clients,
        shared.clone(),
        format!("Bearer {}", session("read")),
    );

    let sampler = Sampler::start(
        holder.pid().unwrap_or(0),
        server.pid(),
        twilight.as_ref().map_or(0, |t| t.pid()),
    );
    let bench_cpu0 = proc_stat(std::process::id()).map_or(0.0, |p| p.cpu_seconds);
    let start_us = now_us();
    let started = Instant::now();

    // Commands: a write session posting send-message (two channels, within Discord's 5/5 s).
    let cmd_stop = Arc::new(AtomicBool::new(false));
    let cmd_join = {
        let (shared, stop) = (shared.clone(), cmd_stop.clone());
        let auth = format!("Bearer {}", session("read write"));
        let every = Duration::from_secs_f64(1.0 / cfg.commands_per_sec.max(0.01));
        let enabled = cfg.commands_per_sec > 0.0 && cfg.fanout == Fanout::Edge;
        let tag = now_us() % 1_000_000_000;
        thread::spawn(move || {
            let mut sent: Vec<(String, u64, Option<u16>)> = Vec::new();
            let mut n = 0u64;
            let t0 = Instant::now();
            while enabled && !stop.load(Ordering::SeqCst) {
                let due = t0 + every * n as u32;
                if let Some(w) = due.checked_duration_since(Instant::now()) {
                    thread::sleep(w);
                }
                let nonce = format!("pb{tag}n{n}");
                let channel = if n.is_multiple_of(2) { GENERAL } else { RANDOM };
                let at = now_us();
                let status =
                    post_command(shared.port.load(Ordering::SeqCst), &auth, channel, &nonce);
                sent.push((nonce, at, status));
                n += 1;
            }
            sent
        })
    };

    let burst = (cfg.burst_rate > 0.0).then_some(Burst {
        rate_per_sec: cfg.burst_rate,
        length: cfg.burst_length,
        every: cfg.burst_every,
    });
    let traffic = {
        let _g = rt.enter();
        sim.traffic(TrafficSpec {
            rate_per_sec: cfg.rate,
            burst,
            duration: cfg.duration,
            max_events: None,
            mix: Default::default(),
            guilds: if guilds > 1 {
                discord_sim::TrafficGuilds::All
            } else {
                Default::default()
            },
        })
    };

    // Faults on schedule while the traffic runs.
    let mut faults = Vec::new();
    for (at, kind) in plan {
        if let Some(w) = (started + at).checked_duration_since(Instant::now()) {
            thread::sleep(w);
        }
        let mut at_us = now_us();
        match (kind, &mut server) {
            (FaultKind::HolderRestart, _) => {
                holder.kill();
                holder.restart();
                sampler
                    .holder_pid
                    .store(holder.pid().unwrap_or(0), Ordering::SeqCst);
            }
            (FaultKind::EdgeRestart, Server::Edge(edge)) => {
                // Not sampled while it shuts down (its RSS falling then is no "slope").
                sampler.worker_pid.store(0, Ordering::SeqCst);
                edge.restart();
                if let Some(p) = edge.worker_port() {
                    shared.port.store(p, Ordering::SeqCst);
                }
                sampler
                    .worker_pid
                    .store(edge.worker_pid().unwrap_or(0), Ordering::SeqCst);
            }
            (FaultKind::EdgeRestart, Server::Node(_)) => continue,
            (other, _) => {
                let f = match other {
                    FaultKind::DropTcp => Fault::DropTcp,
                    FaultKind::Reconnect => Fault::Reconnect,
                    FaultKind::InvalidSessionResumable => Fault::InvalidSession { resumable: true },
                    FaultKind::InvalidSessionFresh => Fault::InvalidSession { resumable: false },
                    FaultKind::RequestHeartbeat => Fault::RequestHeartbeat,
                    _ => Fault::Close { code: 4000 },
                };
                rt.block_on(sim.fault(f));
                at_us = now_us();
            }
        }
        faults.push(FaultRecord {
            kind,
            at_us,
            recovery_ms: None,
        });
    }
    let _report = rt.block_on(traffic);
    cmd_stop.store(true, Ordering::SeqCst);
    let cmds = cmd_join.join().expect("commands");
    let seconds = started.elapsed().as_secs_f64();

    // Command dispatch: POST at the browser → the sim's REST record of that nonce.
    let ok: Vec<&(String, u64, Option<u16>)> = cmds
        .iter()
        .filter(|c| matches!(c.2, Some(200) | Some(202)))
        .collect();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut dispatch_us: Vec<u64>;
    loop {
        let calls = sim.rest_calls();
        dispatch_us = ok
            .iter()
            .filter_map(|(nonce, at, _)| {
                calls
                    .iter()
                    .find(|r| r.method == "POST" && r.body.contains(nonce.as_str()))
                    .map(|r| r.at_us.saturating_sub(*at))
            })
            .collect();
        if dispatch_us.len() >= ok.len() || Instant::now() > deadline {
            break;
        }
        let seen = sim.stats().rest_calls;
        // The timer is made inside the runtime (a `timeout` built outside it panics).
        let _ = rt.block_on(async {
            tokio::time::timeout(
                Duration::from_millis(500),
                sim.wait_for(|s| s.rest_calls > seen),
            )
            .await
        });
    }
    dispatch_us.sort_unstable();

    // What every client must have: every dispatch the sim sent to a holder session (the
    // twilight baseline's sessions identified with their own intents).
    let twilight_sessions: HashSet<String> = sim
        .sessions()
        .into_iter()
        .filter(|s| twilight.is_some() && s.intents == baseline_twilight::INTENTS)
        .map(|s| s.session_id)
        .collect();
    let (emitted, twilight_emitted): (Vec<_>, Vec<_>) = sim
        .emitted()
        .into_iter()
        .filter(|d| d.session_id.is_some())
        .partition(|d| !twilight_sessions.contains(d.session_id.as_deref().unwrap_or_default()));
    // Per guild: what its streams must carry (a dispatch names its guild in `d`; dispatches of
    // no guild, such as RESUMED, go to the edge's bot-wide record, not to a guild's stream; the
    // better-sse baseline fans every dispatch out to everyone, like one guild).
    let guild_of = |d: &discord_sim::EmittedDispatch| -> usize {
        if cfg.fanout == Fanout::BetterSse {
            return 0;
        }
        // GUILD_CREATE/UPDATE/DELETE name their guild as `id`.
        let guild_event = matches!(
            d.t.as_str(),
            "GUILD_CREATE" | "GUILD_UPDATE" | "GUILD_DELETE"
        );
        serde_json::from_str::<serde_json::Value>(&d.d)
            .ok()
            .and_then(|v| {
                v["guild_id"]
                    .as_str()
                    .or_else(|| guild_event.then(|| v["id"].as_str()).flatten())
                    .map(str::to_owned)
            })
            .and_then(|g| guild_ids.iter().position(|x| *x == g))
            .unwrap_or(usize::MAX)
    };
    let mut per_guild: Vec<Stamps> = vec![HashMap::new(); guilds];
    let mut emitted_per_guild = vec![0usize; guilds];
    for d in &emitted {
        if let Some(stamps) = per_guild.get_mut(guild_of(d)) {
            *stamps.entry(d.sent_us).or_default() += 1;
            emitted_per_guild[guild_of(d)] += 1;
        }
    }
    *shared.expected.lock().expect("lock") = Some(Arc::new(per_guild.clone()));
    let (outs, clients_cpu_seconds) =
        fleet.finish(cfg.settle, || shared.stop.store(true, Ordering::SeqCst));
    let clients_cpu_seconds = clients_cpu_seconds.unwrap_or(0.0);
    if let Some(t) = &twilight {
        // Its count includes READY and GUILD_CREATE from before the records were cleared.
        let _ = t.wait_received(twilight_emitted.len() as u64 + 2, Duration::from_secs(10));
    }
    let bench_cpu_seconds =
        proc_stat(std::process::id()).map_or(0.0, |p| p.cpu_seconds) - bench_cpu0;
    let procs = sampler.finish();

    // Recovery times from client 0's receipts.
    if let Some(c0) = outs.first() {
        for f in &mut faults {
            f.recovery_ms = c0
                .receipts
                .iter()
                .filter(|(s, _)| *s >= f.at_us)
                .map(|(_, at)| at.saturating_sub(f.at_us))
                .min()
                .map(|us| us as f64 / 1000.0);
        }
    }
    let windows: Vec<(u64, u64)> = faults
        .iter()
        .map(|f| {
            let rec = f.recovery_ms.unwrap_or(10_000.0) as u64 * 1000;
            (f.at_us.saturating_sub(500_000), f.at_us + rec + 1_000_000)
        })
        .collect();

    let mut r = Report {
        version: "1.0",
        name: cfg.name.clone(),
        fanout: Some(cfg.fanout),
        clients: cfg.clients,
        clients_connected: outs.iter().filter(|o| o.connected).count(),
        rate: cfg.rate,
        burst_rate: cfg.burst_rate,
        seconds,
        worker_port,
        emitted: emitted.len(),
        clients_cpu_seconds,
        bench_cpu_seconds,
        ..Default::default()
    };
    let mut all = Vec::new();
    let mut steady = Vec::new();
    let mut guild_latencies: Vec<Vec<u64>> = vec![Vec::new(); guilds];
    for (i, o) in outs.iter().enumerate() {
        let g = i % guilds;
        let expected = &per_guild[g];
        let mut got: Stamps = HashMap::new();
        for (s, at) in &o.receipts {
            let Some(want) = expected.get(s) else {
                r.unexpected += 1;
                continue;
            };
            let n = got.entry(*s).or_default();
            *n += 1;
            if *n > *want {
                r.duplicated += 1;
                continue;
            }
            let lat = at.saturating_sub(*s);
            all.push(lat);
            guild_latencies[g].push(lat);
            if !windows.iter().any(|(a, b)| s >= a && s <= b) {
                steady.push(lat);
            }
            if i == 0 {
                r.timeline
                    .push(((*s as f64 - start_us as f64) / 1e6, lat as f64 / 1000.0));
            }
        }
        r.delivered += got
            .iter()
            .map(|(s, n)| u64::from((*n).min(expected[s])))
            .sum::<u64>();
        if o.connected {
            r.lost += expected
                .iter()
                .map(|(s, want)| u64::from(want.saturating_sub(got.get(s).copied().unwrap_or(0))))
                .sum::<u64>();
        }
        r.gaps += o.gaps;
        r.client_reconnects += o.reconnects;
    }
    all.sort_unstable();
    steady.sort_unstable();
    r.guilds = guilds;
    r.shards = shards;
    {
        for (g, mut lat) in guild_latencies.into_iter().enumerate() {
            lat.sort_unstable();
            let id: u64 = guild_ids[g].parse().unwrap_or_default();
            r.per_guild.push(GuildFigures {
                guild_id: guild_ids[g].clone(),
                shard: discord_sim::config::shard_of(id, u64::from(shards)) as u32,
                clients: (0..outs.len()).filter(|i| i % guilds == g).count(),
                emitted: emitted_per_guild[g],
                latency: Percentiles::of(&lat),
            });
        }
    }
    r.latency = Percentiles::of(&all);
    r.latency_steady = Percentiles::of(&steady);
    r.all_latencies_us = all;
    r.commands_sent = cmds.len();
    r.commands_answered_ok = ok.len();
    r.command_dispatch = Percentiles::of(&dispatch_us);
    r.holder = procs.holder.figures(r.delivered, r.emitted);
    r.workerd = procs.worker.figures(r.delivered, r.emitted);
    if twilight.is_some() {
        let f = procs.twilight.figures(0, twilight_emitted.len());
        r.twilight = Some(TwilightFigures {
            events: twilight_emitted.len(),
            cpu_seconds: f.cpu_seconds,
            cpu_seconds_per_1000_events: f.cpu_seconds_per_1000_emitted,
            peak_rss_mb: f.peak_rss_mb,
        });
    }
    r.fault_offsets = faults
        .iter()
        .map(|f| ((f.at_us as f64 - start_us as f64) / 1e6, f.kind))
        .collect();
    r.faults = faults;
    if cfg.burst_rate > 0.0 && !cfg.burst_every.is_zero() {
        let mut t = Duration::ZERO;
        while t < cfg.duration {
            r.bursts.push((
                t.as_secs_f64(),
                (t + cfg.burst_length).min(cfg.duration).as_secs_f64(),
            ));
            t += cfg.burst_every;
        }
    }
    drop(twilight);
    drop(holder);
    drop(server);
    rt.block_on(sim.shutdown());
    r
}
