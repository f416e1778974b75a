//! Gateway → edge latency and cost of the holder, beside twilight-gateway's bare receive.
//!
//! Both clients are connected to one in-process discord-sim at once (zlib-stream on), so they get
//! the very same dispatches at the same moments: 100 events/s with 500/s bursts, a steady 500/s,
//! and a ceiling run as fast as the sim emits.
//! - holder: the real release binary, forwarding to an in-process recording ingest endpoint;
//!   latency is the sim's send stamp (`_sim_sent_us` in every `d`) to the endpoint's receipt.
//! - twilight: twilight-gateway 0.18 in a child process (this binary re-run with `--twilight`)
//!   that only receives (inflate + frame handling, no forwarding); latency is send to receipt. Two
//!   of them: on tokio's multi-thread runtime (the usual `#[tokio::main]`; the baseline)
//!   and on a current-thread runtime like the holder's, which is cheaper per event at low rates.
//! - The ingest endpoints and the sim live in this process, so their CPU is never counted for a
//!   receiver; each receiver's CPU is read from its own `/proc/PID`.
//!
//! CPU per event is the process's CPU time over the run (all threads, `/proc/PID/task/*/schedstat`,
//! cross-checked with `/proc/PID/stat` utime+stime) divided by events; peak RSS is `VmHWM`.
//!
//! Run: `cargo bench -p gateway-holder --bench holder` (`-- --quick` for a short run, `-- --only
//! ceiling` for one workload). Prints a table and writes JSON to `$BENCH_OUT` if set, else
//! `$CARGO_TARGET_DIR/bench/holder.json`, else `target/bench/holder.json` in the workspace.

use axum::{body::Bytes, extract::State, routing::post, Router};
use discord_sim::{Burst, Sim, SimConfig, TrafficSpec};
use std::{
    io::{BufRead, BufReader, Write},
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

/// Runs every workload once; every receiver gets the same dispatches at the same time.
async fn measure(sim: &Sim, receivers: &[Receiver], loads: &[Workload], tck: u64) -> Vec<Row> {
    let mut rows = vec![];
    for w in loads {
        let from: Vec<usize> = receivers.iter().map(|r| r.sink.len()).collect();
        let cpu0: Vec<(u64, u64)> = receivers.iter().map(|r| cpu(r.pid)).collect();
        let start = std::time::Instant::now();
        let report = sim.traffic(w.spec.clone()).await;
        let mut done = vec![];
        for (r, from) in receivers.iter().zip(&from) {
            let expected = from + report.sent as usize;
            if !r.sink.wait(expected, Duration::from_secs(60)).await {
                eprintln!(
                    "{}/{}: only {} of {} events arrived",
                    r.client,
                    w.name,
                    r.sink.len() - from,
                    report.sent
                );
            }
            done.push((start.elapsed().as_secs_f64(), cpu(r.pid)));
        }
        for (i, r) in receivers.iter().enumerate() {
            let (seconds, (ns1, t1)) = done[i];
            let (ns0, t0) = cpu0[i];
            let mut lat = r.sink.since(from[i]);
            lat.sort_unstable();
            let n = lat.len().max(1) as f64;
            rows.push(Row {
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
                peak_rss_kib: peak_rss_kib(r.pid),
            });
        }
    }
    rows
}

/// Starts the sim, the ingest endpoint, the holder and the twilight child, then measures.
async fn run_all(loads: &[Workload], tck: u64) -> Vec<Row> {
    let sim = Sim::start(
        "127.0.0.1:0".parse().unwrap(),
        SimConfig {
            record_limit: 0,
            ..SimConfig::default()
        },
    )
    .await
    .unwrap();

    let bin = env!("CARGO_BIN_EXE_gateway-holder");
    let (mut holder, holder_sink, server, dir) = spawn_holder(&sim, bin, 0).await;
    let (mut lingering, linger_sink, server2, dir2) = spawn_holder(&sim, bin, 2).await;
    // `BENCH_OTHER_HOLDER=/path/to/gateway-holder`: another build (e.g. before a change) in the
    // same run, so before/after compare under the same load.
    let mut other = match std::env::var("BENCH_OTHER_HOLDER") {
        Ok(path) => Some(spawn_holder(&sim, &path, 0).await),
        Err(_) => None,
    };

    // twilight, receiving only, reporting latencies on stdout: once on tokio's default
    // multi-thread runtime (as its examples run it), once on a current-thread runtime (as the
    // holder runs), which costs it less per event.
    let (mut twilight, twilight_sink, reader) = spawn_twilight(&sim, "multi");
    let (mut twilight1, twilight1_sink, reader1) = spawn_twilight(&sim, "current");

    // READY and GUILD_CREATE arrived everywhere: the pipelines are warm.
    for sink in [&holder_sink, &linger_sink]
        .into_iter()
        .chain(other.as_ref().map(|o| &o.1))
    {
        assert!(
            sink.wait(2, Duration::from_secs(20)).await,
            "holder never forwarded READY"
        );
    }
    for sink in [&twilight_sink, &twilight1_sink] {
        assert!(
            sink.wait(2, Duration::from_secs(20)).await,
            "twilight never got READY"
        );
    }
    let mut receivers = vec![
        Receiver {
            client: "gateway-holder",
            pid: holder.id(),
            sink: holder_sink,
        },
        Receiver {
            client: "gateway-holder, linger 2 ms",
            pid: lingering.id(),
            sink: linger_sink,
        },
        Receiver {
            client: TWILIGHT,
            pid: twilight.id(),
            sink: twilight_sink,
        },
        Receiver {
            client: TWILIGHT_CURRENT,
            pid: twilight1.id(),
            sink: twilight1_sink,
        },
    ];
    if let Some(o) = &other {
        receivers.push(Receiver {
            client: OTHER,
            pid: o.0.id(),
            sink: o.1.clone(),
        });
    }
    let rows = measure(&sim, &receivers, loads, tck).await;
    for child in [&mut holder, &mut lingering]
        .into_iter()
        .chain(other.as_mut().map(|o| &mut o.0))
    {
        let _ = child.kill();
        let _ = child.wait();
    }
    if let Some((_, _, server, dir)) = other {
        server.abort();
        let _ = std::fs::remove_dir_all(&dir);
    }
    for child in [&mut twilight, &mut twilight1] {
        let _ = child.kill();
        let _ = child.wait();
    }
    let _ = reader.join();
    let _ = reader1.join();
    server.abort();
    server2.abort();
    sim.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(&dir2);
    rows
}

const TWILIGHT: &str = "twilight-gateway (receive only)";
const TWILIGHT_CURRENT: &str = "twilight, current-thread runtime";
const OTHER: &str = "BENCH_OTHER_HOLDER";

/// This binary re-run as a twilight receiver on a `multi` or `current` thread tokio runtime.
fn spawn_twilight(sim: &Sim, runtime: &str) -> (Child, Sink, std::thread::JoinHandle<()>) {
    let sink = Sink::new();
    let mut child: Child = Command::new(std::env::current_exe().unwrap())
        .args(["--twilight", &sim.gateway_url(), runtime])
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
                if line == "." {
                    sink.push(std::mem::take(&mut pending));
                } else if let Ok(v) = line.parse() {
                    pending.push(v);
                }
            }
        })
    };
    (child, sink, reader)
}

/// The real holder binary, forwarding to its own in-process ingest endpoint.
async fn spawn_holder(
    sim: &Sim,
    bin: &str,
    linger_ms: u64,
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

/// The child process: twilight-gateway receiving, printing latencies in chunks ("." ends one).
async fn twilight_client(url: String) {
    use futures::StreamExt;
    use twilight_gateway::{ConfigBuilder, Intents, Message, Shard, ShardId};
    let intents = Intents::GUILDS
        | Intents::GUILD_MEMBERS
        | Intents::GUILD_MODERATION
        | Intents::GUILD_VOICE_STATES
        | Intents::GUILD_MESSAGES
        | Intents::GUILD_MESSAGE_REACTIONS
        | Intents::GUILD_MESSAGE_TYPING
        | Intents::MESSAGE_CONTENT;
    let config = ConfigBuilder::new("sim-token".into(), intents)
        .proxy_url(url)
        .build();
    let mut shard = Shard::with_config(ShardId::ONE, config);
    let mut buf = String::new();
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    let mut stdout = std::io::stdout();
    loop {
        tokio::select! {
            m = shard.next() => match m {
                Some(Ok(Message::Text(text))) => {
                    let at = now_us();
                    if text.contains("\"op\":0") {
                        if let Some(sent) = stamp(&text) {
                            buf.push_str(&at.saturating_sub(sent).to_string());
                            buf.push('\n');
                        }
                    }
                }
                Some(_) => {}
                None => return,
            },
            _ = tick.tick() => {
                if !buf.is_empty() {
                    buf.push_str(".\n");
                    if stdout.write_all(buf.as_bytes()).and_then(|_| stdout.flush()).is_err() {
                        return;
                    }
                    buf.clear();
                }
            }
        }
    }
}

/// Where the JSON goes: `$BENCH_OUT`, else `bench/holder.json` under `$CARGO_TARGET_DIR` (a
/// relative one is taken from the workspace root, where cargo is usually run), else under the
/// workspace's `target/`.
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

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--twilight") {
        let url = args.get(i + 1).cloned().expect("--twilight URL");
        let rt = if args.get(i + 2).map(String::as_str) == Some("current") {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
        } else {
            tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
        };
        rt.unwrap().block_on(twilight_client(url));
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let quick = args.iter().any(|a| a == "--quick");
    let tck = clk_tck();
    let mut loads = workloads(quick);
    // `--only NAME`: just the workloads whose name contains NAME (e.g. for a profiler run).
    if let Some(only) = args
        .iter()
        .position(|a| a == "--only")
        .and_then(|i| args.get(i + 1))
    {
        loads.retain(|w| w.name.contains(only.as_str()));
    }
    let rows = rt.block_on(run_all(&loads, tck));

    println!(
        "\n{:<34} {:<22} {:>7} {:>8} {:>8} {:>8} {:>9} {:>10} {:>10}",
        "client",
        "workload",
        "events",
        "p50 µs",
        "p95 µs",
        "p99 µs",
        "max µs",
        "cpu µs/ev",
        "rss KiB"
    );
    for r in &rows {
        println!(
            "{:<34} {:<22} {:>7} {:>8} {:>8} {:>8} {:>9} {:>10.1} {:>10}",
            r.client,
            r.workload,
            r.events,
            r.p50_us,
            r.p95_us,
            r.p99_us,
            r.max_us,
            r.cpu_us_per_event,
            r.peak_rss_kib
        );
    }
    let ratio: Vec<serde_json::Value> = loads
        .iter()
        .filter_map(|w| {
            let find = |c: &str| rows.iter().find(|r| r.client == c && r.workload == w.name);
            let h = find("gateway-holder")?.cpu_us_per_event;
            let l = find("gateway-holder, linger 2 ms")?.cpu_us_per_event;
            let t = find(TWILIGHT)?.cpu_us_per_event.max(0.001);
            let t1 = find(TWILIGHT_CURRENT)?.cpu_us_per_event.max(0.001);
            let o = find(OTHER).map(|r| r.cpu_us_per_event / t);
            Some(serde_json::json!({
                "workload": w.name,
                "other_holder_cpu_per_event_vs_twilight": o,
                "holder_cpu_per_event_vs_twilight": h / t,
                "holder_linger_2ms_cpu_per_event_vs_twilight": l / t,
                "holder_cpu_per_event_vs_twilight_current_thread": h / t1,
                "holder_linger_2ms_cpu_per_event_vs_twilight_current_thread": l / t1,
            }))
        })
        .collect();
    let x = |r: &serde_json::Value, k: &str| r[k].as_f64().unwrap_or(0.0);
    for r in &ratio {
        println!(
            "cpu per event vs twilight, {}: holder {:.2}x (vs current-thread twilight {:.2}x), holder with 2 ms linger {:.2}x ({:.2}x)",
            r["workload"].as_str().unwrap_or(""),
            x(r, "holder_cpu_per_event_vs_twilight"),
            x(r, "holder_cpu_per_event_vs_twilight_current_thread"),
            x(r, "holder_linger_2ms_cpu_per_event_vs_twilight"),
            x(r, "holder_linger_2ms_cpu_per_event_vs_twilight_current_thread"),
        );
        if let Some(o) = r["other_holder_cpu_per_event_vs_twilight"].as_f64() {
            println!("  BENCH_OTHER_HOLDER: {o:.2}x");
        }
    }
    let out = out_path(
        std::env::var_os("BENCH_OUT"),
        std::env::var_os("CARGO_TARGET_DIR"),
    );
    if let Some(parent) = out.parent() {
        let _ = std::fs::create_dir_all(parent);
    }
    let json = serde_json::json!({
        "quick": quick,
        "clk_tck": tck,
        "rows": rows,
        "cpu_ratios": ratio,
        "target": {"p95_us_at_500_per_s": 10_000, "cpu_vs_twilight": 2.0},
    });
    match std::fs::write(&out, serde_json::to_vec_pretty(&json).unwrap()) {
        Ok(()) => println!("wrote {}", out.display()),
        Err(e) => eprintln!("could not write {}: {e}", out.display()),
    }
}
