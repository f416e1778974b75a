//! Shared end-to-end harness: a recording ingest endpoint (a small axum server standing in for the
//! edge, which can be told to fail), the real holder binary as a child process, and the checks that
//! every dispatch the simulator emitted arrived exactly once, in order, with `d` byte-identical.

#![allow(dead_code)]

use axum::{
    body::Bytes,
    extract::State,
    http::{HeaderMap, StatusCode},
    response::IntoResponse,
    routing::post,
    Router,
};
use contracts::{Envelope, IngestBatch};
use discord_sim::{ConnectionRecord, EmittedDispatch, Sim, SimConfig};
pub use gateway_holder::config::Compression;
use std::{
    collections::{HashMap, HashSet},
    io::{BufRead, BufReader},
    net::SocketAddr,
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
    time::Duration,
};
use tokio::{net::TcpListener, sync::watch, task::JoinHandle};

pub const LINK_TOKEN: &str = "link-token-for-tests";
pub const BOT_TOKEN: &str = "sim-token";

pub fn unix_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros() as u64
}

/// How the fake edge answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Ok,
    /// 503 to everything, and the listener is closed (connection refused).
    Down,
    /// 500 to everything.
    Fail500,
    /// 413 to batches with more than this many envelopes.
    MaxEnvelopes(usize),
}

#[derive(Default)]
struct Recorded {
    /// Accepted batches with their receipt time (unix µs).
    batches: Vec<(IngestBatch, u64)>,
    /// Refused requests by status.
    refused: HashMap<u16, u64>,
    /// Unique envelopes by (epoch, shard, id), in first-arrival order.
    unique: Vec<(Envelope, u64)>,
    seen: HashMap<(String, u32, u64), usize>,
    /// A different envelope arrived under an (epoch, shard, id) already used: a renumbering bug.
    conflicts: Vec<String>,
}

struct Shared {
    mode: Mutex<Mode>,
    rec: Mutex<Recorded>,
    changed: watch::Sender<u64>,
}

pub struct Ingest {
    shared: Arc<Shared>,
    pub addr: SocketAddr,
    server: Mutex<Option<JoinHandle<()>>>,
}

async fn ingest(
    State(s): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> impl IntoResponse {
    let at = unix_us();
    let mode = *s.mode.lock().unwrap();
    let refuse = |code: u16| {
        *s.rec.lock().unwrap().refused.entry(code).or_default() += 1;
        s.changed.send_modify(|n| *n += 1);
        (
            StatusCode::from_u16(code).unwrap(),
            [("connection", "close")],
            "refused",
        )
            .into_response()
    };
    match mode {
        Mode::Down => return refuse(503),
        Mode::Fail500 => return refuse(500),
        _ => {}
    }
    if headers.get("authorization").and_then(|v| v.to_str().ok())
        != Some(&format!("Bearer {LINK_TOKEN}"))
    {
        return refuse(401);
    }
    let batch: IngestBatch = match serde_json::from_slice(&body) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("ingest: body is not an IngestBatch: {e}");
            return refuse(400);
        }
    };
    if let Mode::MaxEnvelopes(n) = mode {
        if batch.envelopes.len() > n {
            return refuse(413);
        }
    }
    {
        let mut r = s.rec.lock().unwrap();
        for e in &batch.envelopes {
            let key = (batch.epoch.clone(), e.shard, e.id);
            match r.seen.get(&key) {
                Some(&i) => {
                    let prev = &r.unique[i].0;
                    if prev.session_id != e.session_id
                        || prev.seq != e.seq
                        || prev.d.get() != e.d.get()
                    {
                        let msg = format!(
                            "id {} reused: first {}#{} {}, now {}#{} {}",
                            e.id, prev.session_id, prev.seq, prev.kind, e.session_id, e.seq, e.kind
                        );
                        r.conflicts.push(msg);
                    }
                }
                None => {
                    let i = r.unique.len();
                    r.seen.insert(key, i);
                    r.unique.push((e.clone(), at));
                }
            }
        }
        r.batches.push((batch, at));
    }
    s.changed.send_modify(|n| *n += 1);
    (StatusCode::OK, "{}").into_response()
}

impl Ingest {
    pub async fn start() -> Ingest {
        let (changed, _) = watch::channel(0);
        let shared = Arc::new(Shared {
            mode: Mutex::new(Mode::Ok),
            rec: Mutex::new(Recorded::default()),
            changed,
        });
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let ing = Ingest {
            shared,
            addr,
            server: Mutex::new(None),
        };
        ing.serve(listener);
        ing
    }

    fn serve(&self, listener: TcpListener) {
        let app = Router::new()
            .route("/link/ingest", post(ingest))
            .with_state(self.shared.clone());
        let h = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        *self.server.lock().unwrap() = Some(h);
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub async fn set_mode(&self, mode: Mode) {
        let was = std::mem::replace(&mut *self.shared.mode.lock().unwrap(), mode);
        if mode == Mode::Down && was != Mode::Down {
            if let Some(h) = self.server.lock().unwrap().take() {
                h.abort();
            }
        }
        if was == Mode::Down && mode != Mode::Down {
            let listener = TcpListener::bind(self.addr)
                .await
                .expect("rebind the ingest port");
            self.serve(listener);
        }
    }

    pub fn unique(&self) -> Vec<Envelope> {
        self.shared
            .rec
            .lock()
            .unwrap()
            .unique
            .iter()
            .map(|(e, _)| e.clone())
            .collect()
    }

    /// Unique envelopes with the time each first arrived (unix µs).
    pub fn unique_timed(&self) -> Vec<(Envelope, u64)> {
        self.shared.rec.lock().unwrap().unique.clone()
    }

    pub fn batches(&self) -> Vec<IngestBatch> {
        self.shared
            .rec
            .lock()
            .unwrap()
            .batches
            .iter()
            .map(|(b, _)| b.clone())
            .collect()
    }

    pub fn refused(&self, code: u16) -> u64 {
        self.shared
            .rec
            .lock()
            .unwrap()
            .refused
            .get(&code)
            .copied()
            .unwrap_or(0)
    }

    pub fn conflicts(&self) -> Vec<String> {
        self.shared.rec.lock().unwrap().conflicts.clone()
    }

    pub fn watch(&self) -> watch::Receiver<u64> {
        self.shared.changed.subscribe()
    }

    /// Waits until `pred` holds for the recording (re-checked on every request).
    pub async fn wait_for(
        &self,
        what: &str,
        limit: Duration,
        mut pred: impl FnMut(&Ingest) -> bool,
    ) {
        let mut rx = self.watch();
        let r = tokio::time::timeout(limit, async {
            loop {
                if pred(self) {
                    return;
                }
                if rx.changed().await.is_err() {
                    return;
                }
            }
        })
        .await;
        assert!(r.is_ok(), "timed out after {limit:?} waiting for {what}");
    }
}

/// The real holder binary.
pub struct Holder {
    child: Child,
    pub stderr: Arc<Mutex<Vec<String>>>,
    lines: watch::Receiver<usize>,
    pub state_dir: PathBuf,
    reader: Option<std::thread::JoinHandle<()>>,
}

/// The transport compression a test that wants one runs with: `HOLDER_TEST_COMPRESS`,
/// `zstd-stream` (the holder's default, also when unset) or `zlib-stream`. scripts/test runs
/// the end-to-end suite once with each; tests of one stream's own faults name it instead.
pub fn test_compression() -> Compression {
    match std::env::var("HOLDER_TEST_COMPRESS")
        .as_deref()
        .map(str::trim)
    {
        Err(_) | Ok("") => Compression::ZstdStream,
        Ok(v) => Compression::from_query(v).unwrap_or_else(|| {
            panic!("HOLDER_TEST_COMPRESS={v:?}: use zstd-stream or zlib-stream")
        }),
    }
}

/// Whether the sim recorded exactly `c` on this connection.
pub fn negotiated(conn: &ConnectionRecord, c: Compression) -> bool {
    conn.zlib == (c == Compression::ZlibStream) && conn.zstd == (c == Compression::ZstdStream)
}

pub struct HolderEnv {
    pub api_url: String,
    pub edge_url: String,
    pub state_dir: PathBuf,
    pub compression: Compression,
    pub extra: Vec<(String, String)>,
}

impl HolderEnv {
    /// The holder of a test: `sim`'s REST and gateway, posting to `ingest`, state in `dir`,
    /// compressed ([`test_compression`]) or not, and `extra` environment variables.
    pub fn new(
        sim: &Sim,
        ingest: &Ingest,
        dir: &std::path::Path,
        compressed: bool,
        extra: &[(&str, &str)],
    ) -> HolderEnv {
        HolderEnv {
            api_url: sim.api_url(),
            edge_url: ingest.url(),
            state_dir: dir.to_path_buf(),
            compression: if compressed {
                test_compression()
            } else {
                Compression::None
            },
            extra: extra
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    /// The same holder with `c` instead.
    pub fn with_compression(mut self, c: Compression) -> HolderEnv {
        self.compression = c;
        self
    }
}

impl Holder {
    pub fn spawn(env: &HolderEnv) -> Holder {
        // HOLDER_BIN runs the suite against another build of the same holder (the static musl
        // binary the container image ships: see scripts/test).
        let bin = std::env::var("HOLDER_BIN")
            .unwrap_or_else(|_| env!("CARGO_BIN_EXE_gateway-holder").to_string());
        let mut cmd = Command::new(bin);
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("DISCORD_BOT_TOKEN", BOT_TOKEN)
            .env("DISCORD_API_URL", &env.api_url)
            .env("EDGE_URL", &env.edge_url)
            .env("LINK_TOKEN", LINK_TOKEN)
            .env("HOLDER_LISTEN", "127.0.0.1:0")
            .env("HOLDER_STATE_DIR", &env.state_dir)
            .env(
                "DISCORD_COMPRESS",
                env.compression.query_value().unwrap_or("none"),
            )
            .env("HOLDER_RECONNECT_BASE_MS", "50")
            .env("HOLDER_RECONNECT_MAX_MS", "1000")
            .env("HOLDER_KEEPALIVE_MS", "200")
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, v) in &env.extra {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("holder binary starts");
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let pipe = child.stderr.take().unwrap();
        let lines = stderr.clone();
        let (lines_tx, lines_rx) = watch::channel(0usize);
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines() {
                let Ok(line) = line else { break };
                if std::env::var_os("HOLDER_TEST_ECHO").is_some() {
                    eprintln!("[holder] {line}");
                }
                lines.lock().unwrap().push(line);
                lines_tx.send_modify(|n| *n += 1);
            }
        });
        Holder {
            child,
            stderr,
            lines: lines_rx,
            state_dir: env.state_dir.clone(),
            reader: Some(reader),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn sigterm(&self) {
        let ok = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill runs")
            .success();
        assert!(ok, "kill -TERM failed");
    }

    /// Waits (bounded) for the process to exit; returns its code.
    pub async fn wait_exit(&mut self, limit: Duration) -> Option<i32> {
        let deadline = std::time::Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                if let Some(r) = self.reader.take() {
                    let _ = r.join();
                }
                return Some(status.code().unwrap_or(-1));
            }
            if std::time::Instant::now() >= deadline {
                return None;
            }
            // Polling a child process has no async notification here; 20 ms granularity.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits for a log line containing `needle`; returns it.
    pub async fn wait_line(&self, needle: &str, limit: Duration) -> String {
        let mut rx = self.lines.clone();
        let r = tokio::time::timeout(limit, async {
            loop {
                if let Some(l) = self
                    .stderr
                    .lock()
                    .unwrap()
                    .iter()
                    .find(|l| l.contains(needle))
                {
                    return l.clone();
                }
                if rx.changed().await.is_err() {
                    // The process ended; one last look.
                    return self
                        .stderr
                        .lock()
                        .unwrap()
                        .iter()
                        .find(|l| l.contains(needle))
                        .cloned()
                        .unwrap_or_default();
                }
            }
        })
        .await;
        match r {
            Ok(l) if !l.is_empty() => l,
            _ => panic!(
                "no log line with {needle:?} within {limit:?}:\n{}",
                self.stderr_text()
            ),
        }
    }

    /// The address of the holder's HTTP server (from its start-up log line).
    pub async fn http_addr(&self) -> String {
        let line = self
            .wait_line("serving /healthz", Duration::from_secs(10))
            .await;
        let at = line.find("addr=").expect("addr field") + 5;
        line[at..]
            .split_whitespace()
            .next()
            .unwrap()
            .trim_matches('"')
            .to_string()
    }

    pub fn stderr_text(&self) -> String {
        self.stderr.lock().unwrap().join("\n")
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A simulator with a short heartbeat, for fast zombie detection; long enough (the sim ends a
/// session silent for 1.5 intervals) that a loaded CI machine doesn't time sessions out.
pub fn sim_config() -> SimConfig {
    SimConfig {
        heartbeat_interval: Duration::from_millis(1500),
        ..SimConfig::default()
    }
}

/// A sim with `config`, a fake edge, and the holder (compressed transport, `extra` environment)
/// on a fresh state directory.
pub async fn start_holder(
    config: SimConfig,
    extra: &[(&str, &str)],
) -> (Sim, Ingest, Holder, tempfile::TempDir) {
    let sim = start_sim(config).await;
    let ingest = Ingest::start().await;
    let dir = tempfile::tempdir().unwrap();
    let holder = Holder::spawn(&HolderEnv::new(&sim, &ingest, dir.path(), true, extra));
    (sim, ingest, holder, dir)
}

pub async fn start_sim(config: SimConfig) -> Sim {
    Sim::start("127.0.0.1:0".parse().unwrap(), config)
        .await
        .unwrap()
}

/// What the simulator sent, as (session, seq, t, d), in emission order.
pub fn sent(sim: &Sim) -> Vec<(String, u64, String, String)> {
    sim.emitted()
        .into_iter()
        .filter_map(|e: EmittedDispatch| Some((e.session_id?, e.seq?, e.t, e.d)))
        .collect()
}

pub fn got(ingest: &Ingest) -> Vec<(String, u64, String, String)> {
    ingest
        .unique()
        .into_iter()
        .map(|e| (e.session_id, e.seq, e.kind, e.d.get().to_owned()))
        .collect()
}

/// Waits until everything the sim emitted has been accepted by the ingest endpoint.
pub async fn wait_all_delivered(sim: &Sim, ingest: &Ingest, limit: Duration) {
    let mut stats = sim.watch_stats();
    let mut rx = ingest.watch();
    let r = tokio::time::timeout(limit, async {
        loop {
            let want = sent(sim);
            let have: HashSet<(String, u64)> =
                got(ingest).into_iter().map(|(s, q, _, _)| (s, q)).collect();
            if want
                .iter()
                .all(|(s, q, _, _)| have.contains(&(s.clone(), *q)))
                && !want.is_empty()
            {
                return;
            }
            tokio::select! {
                _ = rx.changed() => {}
                _ = stats.changed() => {}
            }
        }
    })
    .await;
    if r.is_err() {
        let want = sent(sim);
        let have = got(ingest);
        panic!(
            "timed out after {limit:?}: sim emitted {} dispatches, ingest has {} unique; first missing: {:?}",
            want.len(),
            have.len(),
            want.iter().find(|w| !have.iter().any(|h| h.0 == w.0 && h.1 == w.1)).map(|w| (&w.0, w.1, &w.2))
        );
    }
}

/// The property every scenario proves: exactly once, in order (per session: each shard's
/// sessions are independent streams), `d` byte-identical, ids strictly increasing within the
/// (epoch, shard), no id reused for a different dispatch.
pub fn assert_exactly_once_in_order(sim: &Sim, ingest: &Ingest) {
    let want = sent(sim);
    let have = got(ingest);
    // Sessions in the order they first appear; the dispatches of each in order.
    let mut sessions: Vec<&str> = Vec::new();
    for w in &want {
        if !sessions.contains(&w.0.as_str()) {
            sessions.push(&w.0);
        }
    }
    let by_session = |list: &[(String, u64, String, String)]| {
        let mut out: Vec<(String, u64, String, String)> = Vec::new();
        for s in &sessions {
            out.extend(list.iter().filter(|x| x.0 == *s).cloned());
        }
        out.extend(
            list.iter()
                .filter(|x| !sessions.contains(&x.0.as_str()))
                .cloned(),
        );
        out
    };
    let (want, have) = (by_session(&want), by_session(&have));
    assert!(
        ingest.conflicts().is_empty(),
        "renumbered ids: {:?}",
        ingest.conflicts()
    );
    let mut seen = HashSet::new();
    for h in &have {
        assert!(
            seen.insert((h.0.clone(), h.1)),
            "delivered twice under different ids: {}#{} {}",
            h.0,
            h.1,
            h.2
        );
    }
    assert_eq!(
        have.len(),
        want.len(),
        "count differs: got {} want {}",
        have.len(),
        want.len()
    );
    for (i, (h, w)) in have.iter().zip(&want).enumerate() {
        assert_eq!(
            (&h.0, h.1, &h.2),
            (&w.0, w.1, &w.2),
            "dispatch {i} out of order or different"
        );
        assert_eq!(h.3, w.3, "dispatch {i} ({}#{}) d differs", w.0, w.1);
    }
    let unique = ingest.unique();
    let mut last: HashMap<u32, u64> = HashMap::new();
    for e in &unique {
        if let Some(prev) = last.insert(e.shard, e.id) {
            assert!(
                e.id > prev,
                "ids not increasing on shard {}: {} then {}",
                e.shard,
                prev,
                e.id
            );
        }
    }
}

/// A plain HTTP client for the holder's /healthz and /metrics.
pub fn http_client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap()
}

/// The holder's `/metrics` text, from its HTTP address.
pub async fn metrics_text(client: &reqwest::Client, addr: impl std::fmt::Display) -> String {
    client
        .get(format!("http://{addr}/metrics"))
        .send()
        .await
        .expect("GET /metrics")
        .text()
        .await
        .expect("the metrics body")
}

/// Polls `GET url` until its status is `status` (the holder's health has no push notification;
/// 50 ms granularity, bounded by `limit`). Returns the body.
pub async fn wait_status(
    client: &reqwest::Client,
    url: &str,
    status: u16,
    limit: Duration,
) -> String {
    let r = tokio::time::timeout(limit, async {
        loop {
            if let Ok(resp) = client.get(url).send().await {
                if resp.status().as_u16() == status {
                    return resp.text().await.unwrap_or_default();
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    r.unwrap_or_else(|_| panic!("{url} never answered {status} within {limit:?}"))
}
