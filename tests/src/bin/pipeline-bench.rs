//! Whole-pipeline benchmark: discord-sim (in process) → the real `gateway-holder` (release) →
//! `wrangler dev` → N SSE clients on the Worker's own port, with send-message commands flowing
//! back from a write session. Runs, in order: the load run (the spec's load, with one dropped
//! gateway socket and one holder restart for the reconnect figures), a short ceiling run (from a
//! fifth of the clients at twice the rate, rate doubled and clients ×1.5 each step until p95 >
//! 400 ms or an event is lost), and a soak (100 msgs/s with a
//! random fault every few seconds). Writes pipeline.json, pipeline.md and PNG plots to `--out`.
//!
//! `cargo run -p e2e-tests --release --bin pipeline-bench -- [--clients N] [--rate R]
//!  [--burst B] [--seconds S] [--soak-seconds S] [--ceiling-seconds S] [--out DIR]`
//! (`--soak-seconds 0` / `--ceiling-seconds 0` skip those parts.)

use e2e_tests::pipeline::{self, Config, FaultKind, Report};
use e2e_tests::pipeline_report::{self, Extras};
use std::path::PathBuf;
use std::time::Duration;

struct Args {
    clients: usize,
    rate: f64,
    burst: f64,
    seconds: u64,
    soak_seconds: u64,
    ceiling_seconds: u64,
    out: PathBuf,
}

fn args() -> Args {
    let mut a = Args {
        clients: 500,
        rate: 100.0,
        burst: 500.0,
        seconds: 60,
        soak_seconds: 600,
        ceiling_seconds: 15,
        out: e2e_tests::repo_root().join("target").join("bench"),
    };
    let v: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < v.len() {
        let val = v.get(i + 1).cloned().unwrap_or_default();
        let n = val.parse::<f64>().ok();
        match (v[i].as_str(), n) {
            ("--clients", Some(n)) => a.clients = n as usize,
            ("--rate", Some(n)) => a.rate = n,
            ("--burst", Some(n)) => a.burst = n,
            ("--seconds", Some(n)) => a.seconds = n as u64,
            ("--soak-seconds", Some(n)) => a.soak_seconds = n as u64,
            ("--ceiling-seconds", Some(n)) => a.ceiling_seconds = n as u64,
            ("--out", _) if !val.is_empty() => a.out = PathBuf::from(val),
            (other, _) => {
                eprintln!("pipeline-bench: bad argument {other} (see the doc comment)");
                std::process::exit(2);
            }
        }
        i += 2;
    }
    a
}

fn summary(r: &Report) {
    eprintln!(
        "{}: {} clients {} msgs/s: emitted {} delivered {} lost {} dup {} p50/p95/p99 {:.1}/{:.1}/{:.1} ms",
        r.name,
        r.clients,
        r.rate,
        r.emitted,
        r.delivered,
        r.lost,
        r.duplicated,
        r.latency.p50_ms,
        r.latency.p95_ms,
        r.latency.p99_ms
    );
}

/// The last results of the baseline benches (edge-bench's better-sse phase, the holder
/// bench's twilight-gateway row), when those files exist.
fn baselines() -> Vec<(String, String, String)> {
    let dir = e2e_tests::repo_root().join("target").join("bench");
    let read = |name: &str| -> Option<serde_json::Value> {
        serde_json::from_slice(&std::fs::read(dir.join(name)).ok()?).ok()
    };
    let mut out = Vec::new();
    if let Some(v) = read("edge-bench-latest.json") {
        for p in v["phases"].as_array().into_iter().flatten() {
            let name = p["name"].as_str().unwrap_or("?");
            let cpu = p["cpu"][0]["cpu_us_per_delivered_event"]
                .as_f64()
                .map_or("n/a".into(), |us| format!("{:.4}", us / 1000.0));
            out.push((
                format!("edge-bench `{name}` p50 / p95 / p99 (ms); CPU s per 1,000 deliveries"),
                format!(
                    "{:.0} / {:.0} / {:.0}; {cpu}",
                    p["p50_ms"].as_f64().unwrap_or(f64::NAN),
                    p["p95_ms"].as_f64().unwrap_or(f64::NAN),
                    p["p99_ms"].as_f64().unwrap_or(f64::NAN)
                ),
                format!(
                    "{} clients, {} events sent in {:.0} s (edge-bench-latest.json)",
                    v["clients"],
                    p["sent"],
                    p["seconds"].as_f64().unwrap_or(0.0)
                ),
            ));
        }
    }
    if let Some(v) = read("holder.json") {
        for r in v["rows"].as_array().into_iter().flatten() {
            if r["workload"] != "100/s + 500/s bursts" {
                continue;
            }
            out.push((
                format!(
                    "holder bench `{}` gateway→(ingest|receipt) p50 / p95 / p99 (ms); CPU s per 1,000 events; peak RSS",
                    r["client"].as_str().unwrap_or("?")
                ),
                format!(
                    "{:.2} / {:.2} / {:.2}; {:.3}; {:.1} MB",
                    r["p50_us"].as_f64().unwrap_or(f64::NAN) / 1000.0,
                    r["p95_us"].as_f64().unwrap_or(f64::NAN) / 1000.0,
                    r["p99_us"].as_f64().unwrap_or(f64::NAN) / 1000.0,
                    r["cpu_us_per_event"].as_f64().unwrap_or(f64::NAN) / 1000.0,
                    r["peak_rss_kib"].as_f64().unwrap_or(f64::NAN) / 1024.0
                ),
                "100/s + 500/s bursts (holder.json)".into(),
            ));
        }
    }
    out
}

fn main() {
    let a = args();
    // The release holder, like production.
    std::env::set_var("E2E_HOLDER_RELEASE", "1");
    let burst = |rate: f64| Config {
        name: "pipeline-load".into(),
        clients: a.clients,
        rate,
        burst_rate: a.burst,
        burst_length: Duration::from_secs(1),
        burst_every: Duration::from_secs(10),
        duration: Duration::from_secs(a.seconds),
        faults: Vec::new(),
        random_fault_every: Duration::ZERO,
        commands_per_sec: 2.0,
        settle: Duration::from_secs(120),
    };
    let mut load = burst(a.rate);
    load.faults = vec![
        (
            Duration::from_secs_f64(a.seconds as f64 * 0.45),
            FaultKind::DropTcp,
        ),
        (
            Duration::from_secs_f64(a.seconds as f64 * 0.75),
            FaultKind::HolderRestart,
        ),
    ];
    eprintln!("pipeline-bench: load run ({} s)…", a.seconds);
    let main = pipeline::run(&load);
    summary(&main);

    // Ceiling: from a fifth of the clients at twice the rate, double the rate (clients ×1.5,
    // up to the load's) until p95 > 400 ms or a loss.
    let mut ceiling = Vec::new();
    if a.ceiling_seconds > 0 {
        let mut rate = a.rate * 2.0;
        let mut clients = (a.clients / 5).max(20);
        for step in 0..4 {
            let mut c = burst(rate);
            c.name = format!("pipeline-ceiling-{step}");
            c.clients = clients;
            c.burst_rate = 0.0;
            c.duration = Duration::from_secs(a.ceiling_seconds);
            c.settle = Duration::from_secs(60);
            eprintln!("pipeline-bench: ceiling step {step}: {clients} clients, {rate} msgs/s…");
            let r = pipeline::run(&c);
            summary(&r);
            let stop = r.latency.p95_ms > 400.0 || r.lost > 0 || r.duplicated > 0;
            ceiling.push(r);
            if stop {
                break;
            }
            rate *= 2.0;
            clients = (clients * 3 / 2).min(a.clients);
        }
    }

    let soak = (a.soak_seconds > 0).then(|| {
        let mut s = burst(100.0);
        s.name = "pipeline-soak".into();
        s.burst_rate = 0.0;
        s.clients = a.clients.min(100);
        s.duration = Duration::from_secs(a.soak_seconds);
        s.random_fault_every = Duration::from_secs(8);
        eprintln!("pipeline-bench: soak ({} s)…", a.soak_seconds);
        let r = pipeline::run(&s);
        summary(&r);
        r
    });

    let extras = Extras {
        baselines: baselines(),
        notes: vec![
            "Latency: `_sim_sent_us` (stamped by the sim just before the frame is written) to the client having the event, every event at every client; clients read the Worker's own port (not wrangler's proxy).".into(),
            "Command dispatch: browser POST /api/actions/send-message to the sim's REST record (`at_us`).".into(),
            "Reconnect: from the fault (DropTcp applied; holder SIGKILL) to client 0 receiving the first event emitted after it.".into(),
            "CPU: utime+stime from /proc over the run, including restarted processes; peak RSS from VmHWM/VmRSS samples.".into(),
            "Baselines are not run in this invocation: they are read from the last results of their own benches, target/bench/edge-bench-latest.json (`cargo run -p e2e-tests --release --bin edge-bench`: the edge's fan-out fed by direct ingest POSTs, beside a better-sse Node server) and target/bench/holder.json (`cargo bench -p gateway-holder --bench holder`: twilight-gateway bare receive), when present.".into(),
        ],
    };
    match pipeline_report::write(&a.out, &main, &ceiling, soak.as_ref(), &extras) {
        Ok(files) => {
            for f in files {
                eprintln!("wrote {}", f.display());
            }
        }
        Err(e) => {
            eprintln!("pipeline-bench: writing the report failed: {e}");
            std::process::exit(1);
        }
    }
    println!(
        "{}",
        pipeline_report::markdown(&main, &ceiling, soak.as_ref(), &extras)
    );
    let bad = !main.exactly_once() || soak.as_ref().is_some_and(|s| !s.exactly_once());
    if bad {
        eprintln!("pipeline-bench: events were lost or duplicated");
        std::process::exit(1);
    }
}
