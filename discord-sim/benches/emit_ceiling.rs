//! The simulator's own ceiling: how many dispatches per second it can emit to one gateway client,
//! with zlib-stream off and on, plus send-to-receive latency at a paced 5,000 events/s. Later
//! benchmarks use this to know the sim is not their bottleneck.
//!
//! Run: `cargo bench -p discord-sim --bench emit_ceiling` (add `-- --quick` for a short run).
//! Prints a table and writes JSON to `target/bench/discord-sim.json` (or `$BENCH_OUT`).
//!
//! The client is a raw tokio-tungstenite websocket in the same process: it inflates zlib-stream
//! (as any client must) but doesn't parse JSON beyond reading `_sim_sent_us`, so the number
//! measures the sim, not the client.

use std::time::{Duration, Instant};

use discord_sim::{Sim, SimConfig, TrafficSpec};
use flate2::{Decompress, FlushDecompress};
use futures::{SinkExt, StreamExt};
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

#[derive(Debug, Clone, serde::Serialize)]
struct Row {
    mode: &'static str,
    zlib: bool,
    events: u64,
    seconds: f64,
    events_per_sec: f64,
    latency_p50_us: u64,
    latency_p99_us: u64,
    latency_max_us: u64,
    wire_bytes: u64,
}

fn stamp(text: &str) -> Option<u64> {
    let key = "\"_sim_sent_us\":";
    let at = text.rfind(key)? + key.len();
    let digits: String = text[at..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

fn now_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

/// A raw client that inflates zlib-stream.
struct Client {
    ws: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
    inflate: Decompress,
    buf: Vec<u8>,
    out: Vec<u8>,
    wire_bytes: u64,
}

impl Client {
    /// The next complete payload text.
    async fn next(&mut self) -> String {
        loop {
            match self.ws.next().await.expect("open").expect("frame") {
                Message::Text(t) => {
                    self.wire_bytes += t.len() as u64;
                    return t.as_str().to_owned();
                }
                Message::Binary(b) => {
                    self.wire_bytes += b.len() as u64;
                    self.buf.extend_from_slice(&b);
                    if !self.buf.ends_with(&[0, 0, 0xff, 0xff]) {
                        continue;
                    }
                    self.out.clear();
                    loop {
                        if self.out.capacity() - self.out.len() < 8192 {
                            self.out.reserve(self.out.capacity().max(8192));
                        }
                        let (i0, o0) = (self.inflate.total_in(), self.inflate.total_out());
                        self.inflate
                            .decompress_vec(&self.buf, &mut self.out, FlushDecompress::Sync)
                            .expect("inflate");
                        let used = (self.inflate.total_in() - i0) as usize;
                        self.buf.drain(..used);
                        let progressed = used > 0 || self.inflate.total_out() > o0;
                        if (self.buf.is_empty() && self.out.len() < self.out.capacity())
                            || !progressed
                        {
                            break;
                        }
                    }
                    return String::from_utf8(self.out.clone()).expect("utf8");
                }
                _ => continue,
            }
        }
    }
}

/// One run: identify, generate `spec`, count `expect` MESSAGE_CREATEs on the client.
async fn run(mode: &'static str, zlib: bool, spec: TrafficSpec, expect: u64) -> Row {
    let sim = Sim::start(
        "127.0.0.1:0".parse().unwrap(),
        SimConfig {
            heartbeat_interval: Duration::from_secs(600),
            record_limit: 0,
            max_backlog: 10_000,
            ..SimConfig::default()
        },
    )
    .await
    .expect("sim");
    let url = format!(
        "{}/?v=10&encoding=json{}",
        sim.gateway_url(),
        if zlib { "&compress=zlib-stream" } else { "" }
    );
    let (ws, _) = tokio_tungstenite::connect_async(url)
        .await
        .expect("connect");
    let mut c = Client {
        ws,
        inflate: Decompress::new(true),
        buf: Vec::new(),
        out: Vec::with_capacity(1 << 20),
        wire_bytes: 0,
    };
    let hello = c.next().await;
    assert!(hello.contains("\"op\":10"));
    let identify = json!({"op": 2, "d": {"token": "sim-token", "intents": (1 << 0) | (1 << 9) | (1 << 15),
        "properties": {"os": "linux", "browser": "bench", "device": "bench"}}});
    c.ws.send(Message::Text(identify.to_string().into()))
        .await
        .expect("identify");
    for _ in 0..2 {
        let p = c.next().await; // READY, GUILD_CREATE
        assert!(p.contains("\"op\":0"));
    }
    let before_bytes = c.wire_bytes;
    let start = Instant::now();
    let traffic = sim.traffic(spec);
    let mut latencies = Vec::with_capacity(expect as usize);
    let mut got = 0;
    while got < expect {
        let p = c.next().await;
        if let Some(sent) = stamp(&p) {
            latencies.push(now_us().saturating_sub(sent));
            got += 1;
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    let report = traffic.await;
    assert_eq!(report.sent, expect);
    latencies.sort_unstable();
    let row = Row {
        mode,
        zlib,
        events: got,
        seconds,
        events_per_sec: got as f64 / seconds,
        latency_p50_us: percentile(&latencies, 0.5),
        latency_p99_us: percentile(&latencies, 0.99),
        latency_max_us: latencies.last().copied().unwrap_or(0),
        wire_bytes: c.wire_bytes - before_bytes,
    };
    sim.shutdown().await;
    row
}

#[tokio::main]
async fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let n: u64 = if quick { 20_000 } else { 200_000 };
    let paced_secs = if quick { 1 } else { 3 };
    let mut rows = Vec::new();
    for zlib in [false, true] {
        let spec = TrafficSpec {
            rate_per_sec: f64::INFINITY,
            max_events: Some(n),
            ..TrafficSpec::steady(0.0, Duration::from_secs(120))
        };
        rows.push(run("ceiling", zlib, spec, n).await);
        let paced = 5_000u64 * paced_secs;
        let spec = TrafficSpec {
            max_events: Some(paced),
            ..TrafficSpec::steady(5_000.0, Duration::from_secs(paced_secs + 30))
        };
        rows.push(run("paced 5k/s", zlib, spec, paced).await);
    }
    println!();
    println!("discord-sim emit benchmark (one client, MESSAGE_CREATE, same process)");
    println!(
        "{:<12} {:>5} {:>9} {:>9} {:>12} {:>10} {:>10} {:>10} {:>12}",
        "mode", "zlib", "events", "seconds", "events/s", "p50 µs", "p99 µs", "max µs", "wire bytes"
    );
    for r in &rows {
        println!(
            "{:<12} {:>5} {:>9} {:>9.3} {:>12.0} {:>10} {:>10} {:>10} {:>12}",
            r.mode,
            if r.zlib { "on" } else { "off" },
            r.events,
            r.seconds,
            r.events_per_sec,
            r.latency_p50_us,
            r.latency_p99_us,
            r.latency_max_us,
            r.wire_bytes
        );
    }
    let out = std::env::var("BENCH_OUT").unwrap_or_else(|_| {
        format!(
            "{}/../target/bench/discord-sim.json",
            env!("CARGO_MANIFEST_DIR")
        )
    });
    let doc = json!({
        "bench": "discord-sim emit ceiling",
        "client": "tokio-tungstenite, same process",
        "quick": quick,
        "rows": rows,
        "ceiling_events_per_sec": {
            "zlib_off": rows.iter().find(|r| r.mode == "ceiling" && !r.zlib).map(|r| r.events_per_sec),
            "zlib_on": rows.iter().find(|r| r.mode == "ceiling" && r.zlib).map(|r| r.events_per_sec),
        },
    });
    if let Some(dir) = std::path::Path::new(&out).parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    match std::fs::write(&out, serde_json::to_string_pretty(&doc).unwrap_or_default()) {
        Ok(()) => println!("\nwrote {out}"),
        Err(e) => eprintln!("\ncould not write {out}: {e}"),
    }
    let floor = rows
        .iter()
        .filter(|r| r.mode == "ceiling")
        .map(|r| r.events_per_sec)
        .fold(f64::INFINITY, f64::min);
    if floor < 5_000.0 {
        eprintln!("ceiling {floor:.0} events/s is below 5,000");
        std::process::exit(1);
    }
}
