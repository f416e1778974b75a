//! Gateway → edge latency and cost of the holder, beside twilight-gateway's bare receive, for
//! each transport compression (zstd-stream, zlib-stream, none), with the bytes on the wire.
//!
//! One phase per compression, each with its own in-process discord-sim; in a phase every client
//! is connected to that sim at once on that compression, so they get the very same dispatches at
//! the same moments: 100 events/s with 500/s bursts, a steady 500/s, and a ceiling run as fast as
//! the sim emits.
//! - holder: the real release binary (`DISCORD_COMPRESS` set to the phase's), forwarding to an
//!   in-process recording ingest endpoint; latency is the sim's send stamp (`_sim_sent_us` in
//!   every `d`) to the endpoint's receipt; and one with `HOLDER_BATCH_LINGER_MS=2`.
//! - twilight: twilight-gateway 0.18 in a child process (`twilight-peer/`, built by this bench
//!   once per compression: twilight picks its compression at compile time) that only receives
//!   (decompression + frame handling, no forwarding); latency is send to receipt. Two of them: on
//!   tokio's multi-thread runtime (the usual `#[tokio::main]`; the baseline) and on a
//!   current-thread runtime like the holder's, which is cheaper per event at low rates.
//! - The ingest endpoints and the sim live in this process, so their CPU is never counted for a
//!   receiver; each receiver's CPU is read from its own `/proc/PID`.
//!
//! CPU per event is the process's CPU time over the run (all threads, `/proc/PID/task/*/schedstat`,
//! cross-checked with `/proc/PID/stat` utime+stime) divided by events; peak RSS is `VmHWM`. Bytes
//! on the wire are what the kernel received on the receiver's socket to the sim over the workload
//! (`bytes_received` of `ss -ti`: websocket frames, TCP payload), per event.
//!
//! Run: `cargo bench -p gateway-holder --bench holder` (`-- --quick` for a short run, `-- --only
//! ceiling` for one workload, `-- --compress zstd-stream` for one phase, `BENCH_ROUNDS=3` to run
//! the phases three times in turn and report medians). Prints a table and writes JSON to
//! `$BENCH_OUT` if set, else `$CARGO_TARGET_DIR/bench/holder.json`, else `target/bench/holder.json`
//! in the workspace.

use axum::{body::Bytes, extract::State, routing::post, Router};
use discord_sim::{Burst, Sim, SimConfig, TrafficSpec};
use std::{
    io::{BufRead, BufReader},
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
    time::Duration,
};
use tokio::sync::watch;

fn now_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

fn stamp(text: &str) -> Option<u64> {
    let key = "\"_sim_sent_us\":";
    let at = text.rfind(key)? + key.len();
    let end = text[at..]
        .find(|c: char| !c.is_ascii_digit())
        .map_or(text.len(), |e| at + e);
    text[at..end].parse().ok()
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// CPU nanoseconds of all threads of `pid` (schedstat), and utime+stime ticks (stat).
fn cpu(pid: u32) -> (u64, u64) {
    let mut ns = 0;
    if let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) {
        for t in dir.flatten() {
            if let Ok(s) = std::fs::read_to_string(t.path().join("schedstat")) {
                ns += s
                    .split_whitespace()
                    .next()
                    .and_then(|v| v.parse::<u64>().ok())
                    .unwrap_or(0);
            }
        }
    }
    let ticks = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            let rest = &s[s.rfind(')')? + 2..];
            let f: Vec<&str> = rest.split_whitespace().collect();
            // Fields 14 and 15 of stat are 12 and 13 after "pid (comm) ".
            Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
        })
        .unwrap_or(0);
    (ns, ticks)
}

fn peak_rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn clk_tck() -> u64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100)
}

/// Latencies (µs) as they arrive, with a counter to await.
#[derive(Clone)]
struct Sink {
    lat: Arc<Mutex<Vec<u64>>>,
    count: watch::Sender<usize>,
}

impl Sink {
    fn new() -> Sink {
        Sink {
            lat: Arc::default(),
            count: watch::channel(0).0,
        }
    }
    fn push(&self, v: impl IntoIterator<Item = u64>) {
        let mut l = self.lat.lock().unwrap();
        l.extend(v);
        let n = l.len();
        drop(l);
        self.count.send_replace(n);
    }
    fn len(&self) -> usize {
        self.lat.lock().unwrap().len()
    }
    async fn wait(&self, n: usize, limit: Duration) -> bool {
        let mut rx = self.count.subscribe();
        let ok = tokio::time::timeout(limit, rx.wait_for(|c| *c >= n))
            .await
            .is_ok();
        ok
    }
    fn since(&self, from: usize) -> Vec<u64> {
        self.lat.lock().unwrap()[from..].to_vec()
    }
}

async fn ingest(State(sink): State<Sink>, body: Bytes) -> &'static str {
    let at = now_us();
    if let Ok(batch) = serde_json::from_slice::<contracts::IngestBatch>(&body) {
        sink.push(
            batch
                .envelopes
                .iter()
                .filter_map(|e| stamp(e.d.get()))
                .map(|sent| at.saturating_sub(sent)),
        );
    }
    "{}"
}

#[derive(serde::Serialize, Clone)]
struct Row {
    compress: &'static str,
    client: &'static str,
    workload: &'static str,
    events: usize,
    seconds: f64,
    p50_us: u64,
    p95_us: u64,
    p99_us: u64,
    max_us: u64,
    cpu_us_per_event: f64,
    cpu_us_per_event_stat: f64,
    /// TCP payload bytes the receiver's socket to the sim received, per event (`None` where `ss`
    /// could not tell).
    wire_bytes_per_event: Option<f64>,
    peak_rss_kib: u64,
}

struct Workload {
    name: &'static str,
    spec: TrafficSpec,
}

fn workloads(quick: bool) -> Vec<Workload> {
    let s = |secs: u64| Duration::from_secs(if quick { secs / 3 } else { secs });
    vec![
        Workload {
            name: "100/s + 500/s bursts",
            spec: TrafficSpec {
                rate_per_sec: 100.0,
                burst: Some(Burst {
                    rate_per_sec: 500.0,
                    length: Duration::from_secs(1),
                    every: Duration::from_secs(3),
                }),
                duration: s(12),
                max_events: None,
                mix: discord_sim::TrafficMix::chat(),
                guilds: Default::default(),
            },
        },
        Workload {
            name: "500/s steady",
            spec: TrafficSpec {
                mix: discord_sim::TrafficMix::chat(),
                ..TrafficSpec::steady(500.0, s(9))
            },
        },
        Workload {
            name: "ceiling",
            spec: TrafficSpec {
                rate_per_sec: f64::INFINITY,
                burst: None,
                duration: Duration::from_secs(30),
                // `BENCH_CEILING_EVENTS`: a longer ceiling run (e.g. for a profiler).
                max_events: Some(
                    std::env::var("BENCH_CEILING_EVENTS")
                        .ok()
                        .and_then(|v| v.parse().ok())
                        .unwrap_or(if quick { 5_000 } else { 20_000 }),
                ),
                mix: discord_sim::TrafficMix::chat(),
                guilds: Default::default(),
            },
        },
    ]
}

/// One receiving process and what it got.
struct Receiver {
    client: &'static str,
    pid: u32,
    sink: Sink,
}

/// TCP payload bytes received so far by `pid`'s sockets to `port` on 127.0.0.1 (the gateway
/// connection; the holder's REST calls to the sim, done before the workloads, drop out of the
/// deltas), from `ss -tinp`'s `bytes_received`.
fn wire_bytes(pid: u32, port: u16) -> Option<u64> {
    let out = Command::new("ss")
        .args(["-tinpH", "state", "established", "dst"])
        .arg(format!("127.0.0.1:{port}"))
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let mut total = None;
    let mut ours = false;
    for line in text.lines() {
        if !line.starts_with(char::is_whitespace) {
            ours = line.contains(&format!("pid={pid},"));
        } else if ours {
            if let Some(n) = line
                .split_whitespace()
                .find_map(|f| f.strip_prefix("bytes_received:"))
                .and_then(|n| n.parse::<u64>().ok())
            {
                *total.get_or_insert(0) += n;
            }
        }
    }
    total
}

/// Runs every workload once; every receiver gets the same dispatches at the same time.
async fn measure(
    sim: &Sim,
    compress: &'static str,
    receivers: &[Receiver],
    loads: &[Workload],
    tck: u64,
) -> Vec<Row> {
    let port = sim.addr().port();
    let mut rows = vec![];
    for w in loads {
        let from: Vec<usize> = receivers.iter().map(|r| r.sink.len()).collect();
        let cpu0: Vec<(u64, u64)> = receivers.iter().map(|r| cpu(r.pid)).collect();
        let wire0: Vec<Option<u64>> = receivers.iter().map(|r| wire_bytes(r.pid, port)).collect();
        let start = std::time::Instant::now();
        let report = sim.traffic(w.spec.clone()).await;
        let mut done = vec![];
        for (r, from) in receivers.iter().zip(&from) {
            let expected = from + report.sent as usize;
            if !r.sink.wait(expected, Duration::from_secs(60)).await {
                eprintln!(
                    "{compress} {}/{}: only {} of {} events arrived",
                    r.client,
                    w.name,
                    r.sink.len() - from,
                    report.sent
                );
            }
            done.push((
                start.elapsed().as_secs_f64(),
                cpu(r.pid),
                wire_bytes(r.pid, port),
            ));
        }
        for (i, r) in receivers.iter().enumerate() {
            let (seconds, (ns1, t1), wire1) = done[i];
            let (ns0, t0) = cpu0[i];
            let mut lat = r.sink.since(from[i]);
            lat.sort_unstable();
            let n = lat.len().max(1) as f64;
            rows.push(Row {
                compress,
                client: r.client,
                workload: w.name,
                events: lat.len(),
                seconds,
                p50_us: percentile(&lat, 0.50),
                p95_us: percentile(&lat, 0.95),
                p99_us: percentile(&lat, 0.99),
                max_us: lat.last().copied().unwrap_or(0),
                cpu_us_per_event: ns1.saturating_sub(ns0) as f64 / 1000.0 / n,
                cpu_us_per_event_stat: t1.saturating_sub(t0) as f64 * 1e6 / tck as f64 / n,
                wire_bytes_per_event: wire0[i]
                    .zip(wire1)
                    .map(|(a, b)| b.saturating_sub(a) as f64 / n),
                peak_rss_kib: peak_rss_kib(r.pid),
            });
        }
    }
    rows
}

const HOLDER: &str = "gateway-holder";
const HOLDER_LINGER: &str = "gateway-holder, linger 2 ms";
const TWILIGHT: &str = "twilight-gateway (receive only)";
const TWILIGHT_CURRENT: &str = "twilight, current-thread runtime";
const OTHER: &str = "BENCH_OTHER_HOLDER";

/// The compressions, in the order the phases run (`DISCORD_COMPRESS` spelling).
const COMPRESSIONS: [&str; 3] = ["zstd-stream", "zlib-stream", "none"];

/// One phase: a sim, the holder(s) and the two twilight receivers on `compress`, measured.
async fn run_phase(
    loads: &[Workload],
    tck: u64,
    compress: &'static str,
    twilight_bin: &std::path::Path,
) -> Vec<Row> {
    let sim = Sim::start(
        "127.0.0.1:0".parse().unwrap(),
        SimConfig {
            record_limit: 0,
            // The receivers are separate processes identifying at once: no pacing (op 9) to
            // wait out before the run.
            identify_window: Duration::ZERO,
            ..SimConfig::default()
        },
    )
    .await
    .unwrap();

    let bin = env!("CARGO_BIN_EXE_gateway-holder");
    // The same receivers in every phase, so every phase loads the machine alike.
    let mut holders = vec![
        (HOLDER, spawn_holder(&sim, bin, 0, compress).await),
        (HOLDER_LINGER, spawn_holder(&sim, bin, 2, compress).await),
    ];
    // `BENCH_OTHER_HOLDER=/path/to/gateway-holder`: another build (e.g. before a change) in the
    // same run, so before/after compare under the same load.
    if let Ok(path) = std::env::var("BENCH_OTHER_HOLDER") {
        holders.push((OTHER, spawn_holder(&sim, &path, 0, compress).await));
    }

    // twilight, receiving only, reporting latencies on stdout: once on tokio's default
    // multi-thread runtime (as its examples run it), once on a current-thread runtime (as the
    // holder runs), which costs it less per event.
    let mut twilights = vec![
        (
            TWILIGHT,
            spawn_twilight(&sim, twilight_bin, "multi", compress),
        ),
        (
            TWILIGHT_CURRENT,
            spawn_twilight(&sim, twilight_bin, "current", compress),
        ),
    ];

    // READY and GUILD_CREATE arrived everywhere: the pipelines are warm.
    for (name, h) in &holders {
        assert!(
            h.1.wait(2, Duration::from_secs(20)).await,
            "{name} ({compress}) never forwarded READY"
        );
    }
    for (name, t) in &twilights {
        assert!(
            t.1.wait(2, Duration::from_secs(20)).await,
            "{name} ({compress}) never got READY"
        );
    }
    let receivers: Vec<Receiver> = holders
        .iter()
        .map(|(client, h)| Receiver {
            client,
            pid: h.0.id(),
            sink: h.1.clone(),
        })
        .chain(twilights.iter().map(|(client, t)| Receiver {
            client,
            pid: t.0.id(),
            sink: t.1.clone(),
        }))
        .collect();
    let rows = measure(&sim, compress, &receivers, loads, tck).await;
    for (_, (mut child, _, server, dir)) in holders {
        let _ = child.kill();
        let _ = child.wait();
        server.abort();
        let _ = std::fs::remove_dir_all(&dir);
    }
    for (_, (child, _, reader)) in &mut twilights {
        let _ = child.kill();
        let _ = child.wait();
        if let Some(r) = reader.take() {
            let _ = r.join();
        }
    }
    sim.shutdown().await;
    rows
}

/// The receiver binary of `twilight-peer/` built for `compress` (twilight's compression is a
/// compile-time feature, and a workspace build would unify it with the workspace's zlib one), in
/// `<target>/twilight-peer/`, copied to `twilight-receiver-<compress>`.
fn build_twilight(compress: &str, target: &std::path::Path) -> PathBuf {
    let workspace = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let dir = target.join("twilight-peer");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.arg("build")
        .arg("--release")
        .arg("--locked")
        .arg("--quiet")
        .arg("--manifest-path")
        .arg(workspace.join("twilight-peer/Cargo.toml"))
        .arg("--target-dir")
        .arg(&dir)
        .arg("--no-default-features");
    match compress {
        "zstd-stream" => cmd.args(["--features", "zstd"]),
        "zlib-stream" => cmd.args(["--features", "zlib"]),
        _ => &mut cmd,
    };
    eprintln!("building twilight-peer for {compress}");
    let status = cmd.status().expect("cargo runs");
    assert!(
        status.success(),
        "building twilight-peer for {compress} failed"
    );
    let bin = dir.join(format!("twilight-receiver-{compress}"));
    std::fs::copy(dir.join("release/twilight-receiver"), &bin).expect("copy the receiver");
    bin
}

/// A twilight receiver child (see `twilight-peer/src/main.rs`) on a `multi` or `current`
/// thread tokio runtime; checks it asked for `compress`.
fn spawn_twilight(
    sim: &Sim,
    bin: &std::path::Path,
    runtime: &str,
    compress: &'static str,
) -> (Child, Sink, Option<std::thread::JoinHandle<()>>) {
    let sink = Sink::new();
    let mut child: Child = Command::new(bin)
        .args([&sim.gateway_url(), runtime])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("twilight child");
    let out = child.stdout.take().unwrap();
    let reader = {
        let sink = sink.clone();
        std::thread::spawn(move || {
            let mut pending = vec![];
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if let Some(c) = line.strip_prefix("compress ") {
                    assert_eq!(
                        c, compress,
                        "the twilight build for {compress} asked for {c}"
                    );
                } else if line == "." {
                    sink.push(std::mem::take(&mut pending));
                } else if let Ok(v) = line.parse() {
                    pending.push(v);
                }
            }
        })
    };
    (child, sink, Some(reader))
}

/// The real holder binary on `compress`, forwarding to its own in-process ingest endpoint.
async fn spawn_holder(
    sim: &Sim,
    bin: &str,
    linger_ms: u64,
    compress: &str,
) -> (Child, Sink, tokio::task::JoinHandle<()>, PathBuf) {
    let sink = Sink::new();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = Router::new()
        .route("/link/ingest", post(ingest))
        .with_state(sink.clone());
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let dir = std::env::temp_dir().join(format!(
        "holder-bench-{}-{}",
        std::process::id(),
        addr.port()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    let child = Command::new(bin)
        .env_clear()
        .env("DISCORD_BOT_TOKEN", "sim-token")
        .env("DISCORD_API_URL", sim.api_url())
        .env("DISCORD_COMPRESS", compress)
        .env("EDGE_URL", format!("http://{addr}"))
        .env("LINK_TOKEN", "bench-link-token")
        .env("HOLDER_LISTEN", "127.0.0.1:0")
        .env("HOLDER_STATE_DIR", &dir)
        .env("HOLDER_BATCH_LINGER_MS", linger_ms.to_string())
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("holder binary");
    (child, sink, server, dir)
}

fn out_path(
    bench_out: Option<std::ffi::OsString>,
    target_dir: Option<std::ffi::OsString>,
) -> PathBuf {
    if let Some(o) = bench_out.filter(|o| !o.is_empty()) {
        return PathBuf::from(o);
    }
    let workspace = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let target = match target_dir.filter(|t| !t.is_empty()) {
        Some(t) => workspace.join(t), // `join` keeps an absolute `t` as it is
        None => workspace.join("target"),
    };
    target.join("bench").join("holder.json")
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let quick = args.iter().any(|a| a == "--quick");
    let tck = clk_tck();
    let mut loads = workloads(quick);
    // `--only NAME`: just the workloads whose name contains NAME (e.g. for a profiler run).
    if let Some(only) = arg("--only") {
        loads.retain(|w| w.name.contains(only.as_str()));
    }
    // `--compress NAME`: just that phase.
    let phases: Vec<&'static str> = match arg("--compress") {
        Some(c) => COMPRESSIONS.into_iter().filter(|p| *p == c).collect(),
        None => COMPRESSIONS.to_vec(),
    };
    assert!(!phases.is_empty(), "--compress: one of {COMPRESSIONS:?}");
    let rounds: usize = std::env::var("BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1)
        .max(1);
    let out = out_path(
        std::env::var_os("BENCH_OUT"),
        std::env::var_os("CARGO_TARGET_DIR"),
    );
    // The twilight builds go beside the JSON, under the target dir.
    let target = out
        .parent()
        .and_then(|p| p.parent())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("target"));
    let bins: Vec<(&str, PathBuf)> = phases
        .iter()
        .map(|c| (*c, build_twilight(c, &target)))
        .collect();

    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    // Phases in turn, `rounds` times (zstd, zlib, none, zstd, …), so a slow stretch of the
    // machine falls on every compression alike.
    let mut all: Vec<Vec<Row>> = vec![];
    for round in 0..rounds {
        for (c, bin) in &bins {
            eprintln!("round {}/{rounds}: {c}", round + 1);
            all.push(rt.block_on(run_phase(&loads, tck, c, bin)));
        }
    }
    // Medians over the rounds, row by row (the rounds have the same rows in the same order).
    let per_phase = phases.len();
    let mut rows: Vec<Row> = vec![];
    for p in 0..per_phase {
        let runs: Vec<&Vec<Row>> = (0..rounds).map(|r| &all[r * per_phase + p]).collect();
        for (i, first) in runs[0].iter().enumerate() {
            let pick = |f: &dyn Fn(&Row) -> f64| median(runs.iter().map(|r| f(&r[i])).collect());
            let mut row = first.clone();
            row.cpu_us_per_event = pick(&|r| r.cpu_us_per_event);
            row.cpu_us_per_event_stat = pick(&|r| r.cpu_us_per_event_stat);
            row.p50_us = pick(&|r| r.p50_us as f64) as u64;
            row.p95_us = pick(&|r| r.p95_us as f64) as u64;
            row.p99_us = pick(&|r| r.p99_us as f64) as u64;
            row.wire_bytes_per_event = first
                .wire_bytes_per_event
                .map(|_| pick(&|r| r.wire_bytes_per_event.unwrap_or(f64::NAN)));
            rows.push(row);
        }
    }

    println!(
        "\n{:<12} {:<34} {:<22} {:>7} {:>8} {:>8} {:>8} {:>9} {:>10} {:>10} {:>10}",
        "compress",
        "client",
        "workload",
        "events",
        "p50 µs",
        "p95 µs",
        "p99 µs",
        "max µs",
        "cpu µs/ev",
        "wire B/ev",
        "rss KiB"
    );
    for r in &rows {
        println!(
            "{:<12} {:<34} {:<22} {:>7} {:>8} {:>8} {:>8} {:>9} {:>10.2} {:>10} {:>10}",
            r.compress,
            r.client,
            r.workload,
            r.events,
            r.p50_us,
            r.p95_us,
            r.p99_us,
            r.max_us,
            r.cpu_us_per_event,
            r.wire_bytes_per_event
                .map_or("n/a".to_string(), |b| format!("{b:.0}")),
            r.peak_rss_kib
        );
    }
    let find = |c: &str, client: &str, w: &str| {
        rows.iter()
            .find(|r| r.compress == c && r.client == client && r.workload == w)
    };
    // Per-round ratios, then their median: a ratio within one run is what means something on a
    // shared machine.
    let round_ratio = |p: usize, w: &str, num: &str, den: &str| -> Option<f64> {
        let v: Vec<f64> = (0..rounds)
            .filter_map(|r| {
                let run = &all[r * per_phase + p];
                let get = |c: &str| {
                    run.iter()
                        .find(|x| x.client == c && x.workload == w)
                        .map(|x| x.cpu_us_per_event)
                };
                Some(get(num)? / get(den)?.max(0.001))
            })
            .collect();
        (!v.is_empty()).then(|| median(v))
    };
    let mut ratios = vec![];
    for (p, c) in phases.iter().enumerate() {
        for w in &loads {
            let r = serde_json::json!({
                "compress": c,
                "workload": w.name,
                "holder_cpu_per_event_vs_twilight": round_ratio(p, w.name, HOLDER, TWILIGHT),
                "holder_cpu_per_event_vs_twilight_current_thread":
                    round_ratio(p, w.name, HOLDER, TWILIGHT_CURRENT),
                "holder_linger_2ms_cpu_per_event_vs_twilight":
                    round_ratio(p, w.name, HOLDER_LINGER, TWILIGHT),
                "other_holder_cpu_per_event_vs_twilight": round_ratio(p, w.name, OTHER, TWILIGHT),
            });
            let x = |k: &str| r[k].as_f64().map_or("n/a".into(), |v| format!("{v:.2}x"));
            println!(
                "{c}, {}: holder ÷ twilight {} (÷ current-thread twilight {}){}{}",
                w.name,
                x("holder_cpu_per_event_vs_twilight"),
                x("holder_cpu_per_event_vs_twilight_current_thread"),
                r["holder_linger_2ms_cpu_per_event_vs_twilight"]
                    .as_f64()
                    .map_or(String::new(), |v| format!(
                        ", holder with 2 ms linger {v:.2}x"
                    )),
                r["other_holder_cpu_per_event_vs_twilight"]
                    .as_f64()
                    .map_or(String::new(), |v| format!(", BENCH_OTHER_HOLDER {v:.2}x")),
            );
            ratios.push(r);
        }
    }
    // The holder on each compression against itself on zlib-stream (medians of the rounds).
    let mut vs_zlib = vec![];
    for c in &phases {
        for w in &loads {
            let (Some(h), Some(z)) = (find(c, HOLDER, w.name), find("zlib-stream", HOLDER, w.name))
            else {
                continue;
            };
            let ratio = h.cpu_us_per_event / z.cpu_us_per_event.max(0.001);
            if *c != "zlib-stream" {
                println!(
                    "holder on {c} ÷ holder on zlib-stream, {}: {ratio:.2}x CPU per event, {} wire bytes per event",
                    w.name,
                    h.wire_bytes_per_event
                        .zip(z.wire_bytes_per_event)
                        .map_or("n/a".into(), |(a, b)| format!("{:.2}x", a / b.max(1.0)))
                );
            }
            vs_zlib.push(serde_json::json!({
                "compress": c,
                "workload": w.name,
                "holder_cpu_per_event_vs_holder_on_zlib": ratio,
            }));
        }
    }
    if let Some(parent) = out.parent() {
        let _ = std::fs::create_dir_all(parent);
    }
    let json = serde_json::json!({
        "quick": quick,
        "rounds": rounds,
        "clk_tck": tck,
        "rows": rows,
        "rounds_rows": all,
        "cpu_ratios": ratios,
        "holder_vs_zlib": vs_zlib,
        "target": {
            "p95_us_at_500_per_s": 10_000,
            "cpu_vs_twilight": 2.0,
            "zstd_cpu_vs_twilight_zstd_at_ceiling": 1.5,
            "zstd_cpu_vs_zlib_at_ceiling": 0.9,
        },
    });
    match std::fs::write(&out, serde_json::to_vec_pretty(&json).unwrap()) {
        Ok(()) => println!("wrote {}", out.display()),
        Err(e) => eprintln!("could not write {}: {e}", out.display()),
    }
}
