//! Load benchmark for the edge's SSE fan-out.
//!
//! N concurrent SSE clients (default 500, all on one thread: `e2e_tests::sse_fleet`) while a
//! holder posts 100 events/s with 500 events/s bursts (one POST in flight, what fell due
//! meanwhile in the next, like the real holder);
//! reports p50/p95/p99 from the moment each event fell due to client receipt, events lost or out of
//! order, and CPU per delivered event of the process doing the fan-out (workerd, read from
//! /proc). Three phases in one run, same load each: the edge through wrangler's port, the edge
//! on the Worker's own port, and a plain Node SSE server on `better-sse` as the baseline.
//! Prints a table and writes JSON under target/bench/.
//!
//! `cargo run -p e2e-tests --release --bin edge-bench -- --help` lists the options.

use e2e_tests::baseline_better_sse::BetterSse;
use e2e_tests::edge::Edge;
use e2e_tests::holder::{batch_body, dispatch, envelope};
use e2e_tests::sse::Item;
use e2e_tests::sse_fleet::{AsyncSse, Fleet};
use e2e_tests::{http, repo_root};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Load benchmark for the edge's SSE fan-out (see the module doc).
#[derive(clap::Parser)]
struct Args {
    /// Concurrent SSE clients.
    #[arg(long, default_value_t = 500)]
    clients: usize,
    /// Seconds per phase.
    #[arg(long, default_value_t = 20)]
    seconds: u64,
    /// A batch is due every this many milliseconds.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    tick_ms: u64,
    /// Steady events per second.
    #[arg(long, default_value_t = 100)]
    rate: u64,
    /// Events per second during bursts.
    #[arg(long, default_value_t = 500)]
    burst_rate: u64,
    /// Run only this phase, e.g. to see how one target scales with `--clients`.
    #[arg(long, value_enum)]
    only: Option<Target>,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Target {
    Wrangler,
    Worker,
    BetterSse,
}

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_micros() as u64
}

/// utime + stime of a process, in milliseconds.
fn cpu_ms(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    let hz = Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .trim()
                .parse::<f64>()
                .ok()
        })
        .unwrap_or(100.0);
    Some(ticks as f64 * 1000.0 / hz)
}

struct ClientResult {
    connected: bool,
    latencies_us: Vec<u32>,
    received: u64,
    out_of_order: u64,
}

struct Phase {
    name: String,
    sent: u64,
    batches: u64,
    seconds: f64,
    delivered: u64,
    expected: u64,
    out_of_order: u64,
    clients_complete: usize,
    clients_connected: usize,
    /// An ingest POST failed or timed out and ended the phase early.
    ingest_failed: bool,
    p50_ms: f64,
    p95_ms: f64,
    p99_ms: f64,
    max_ms: f64,
    ingest_p95_ms: f64,
    cpu: Vec<(String, f64)>,
    /// CPU seconds per second of the thread running every client (well under 1, or the client
    /// side is the bottleneck).
    clients_cpu_per_s: f64,
}

fn pct(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i] as f64 / 1000.0
}

/// Pulls `"t":<micros>` out of a dispatch's data without a full JSON parse.
fn stamp(data: &str) -> Option<u64> {
    let i = data.find("\"t\":")? + 4;
    let digits: String = data[i..]
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect();
    digits.parse().ok()
}

fn run_phase(name: &str, port: u16, a: &Args, cpu_pids: &[(String, u32)]) -> Phase {
    let p = measure(name, port, a, cpu_pids);
    print_row(&p);
    p
}

/// One SSE client of the fleet: connects, reports the attempt on `connected_tx`, then reads until
/// it has `expected` bench events (known once the sender is done) or `stop` is set.
async fn client(
    port: u16,
    connected_tx: mpsc::Sender<()>,
    stop: Arc<AtomicBool>,
    expected: Arc<AtomicUsize>,
) -> ClientResult {
    let mut r = ClientResult {
        latencies_us: Vec::with_capacity(4096),
        received: 0,
        out_of_order: 0,
        connected: false,
    };
    let mut c = match AsyncSse::connect(port, "/api/stream", &[]).await {
        Ok(mut c) if c.status == 200 => {
            // Registered once its first item (`retry:`) arrives.
            r.connected = c.next(Duration::from_secs(30)).await.is_some();
            c
        }
        _ => {
            let _ = connected_tx.send(());
            return r;
        }
    };
    let _ = connected_tx.send(());
    if !r.connected {
        return r;
    }
    let mut last_id = 0u64;
    while (r.received as usize) < expected.load(Ordering::SeqCst) {
        match c.next(Duration::from_millis(500)).await {
            Some((Item::Event(e), read_at_us)) if e.event == "MESSAGE_CREATE" => {
                if let Some(id) = e.id {
                    if id <= last_id {
                        r.out_of_order += 1;
                    }
                    last_id = id;
                }
                if let Some(t) = stamp(&e.data) {
                    r.latencies_us
                        .push(read_at_us.saturating_sub(t).min(u32::MAX as u64) as u32);
                }
                r.received += 1;
            }
            Some(_) => {}
            None if c.closed || stop.load(Ordering::SeqCst) => break,
            None => {}
        }
    }
    if std::env::var_os("EDGE_BENCH_DEBUG").is_some() {
        eprintln!(
            "client: received {} closed {} status {}",
            r.received, c.closed, c.status
        );
    }
    r
}

fn measure(name: &str, port: u16, a: &Args, cpu_pids: &[(String, u32)]) -> Phase {
    let n = a.clients;
    let stop = Arc::new(AtomicBool::new(false));
    let expected_total = Arc::new(AtomicUsize::new(usize::MAX));
    // Every client on one thread (see `e2e_tests::sse_fleet` for why); its CPU time is reported.
    let (connected_tx, connected_rx) = mpsc::channel();
    let fleet = {
        let stop = stop.clone();
        let expected_total = expected_total.clone();
        Fleet::start(n, move || {
            client(
                port,
                connected_tx.clone(),
                stop.clone(),
                expected_total.clone(),
            )
        })
    };
    for _ in 0..n {
        connected_rx
            .recv()
            .expect("the clients' thread ended early");
    }
    let cpu_before: Vec<Option<f64>> = cpu_pids.iter().map(|(_, p)| cpu_ms(*p)).collect();

    // The holder: steady rate with bursts (1 s of every 6 s from the 3rd), one POST in flight and
    // everything that fell due meanwhile in the next one, as the real holder batches. Each event
    // is stamped with the moment it fell due, so time spent waiting behind a slow ingest answer
    // counts in its latency and a slow server gets the same events, in fewer, larger batches.
    let started = Instant::now();
    let started_us = now_us();
    let mut seq = 0u64;
    let mut next_id = 1u64;
    let mut batches = 0u64;
    let mut ingest_ms = Vec::new();
    let epoch = format!("bench-{}", now_us());
    let ticks = a.seconds * 1000 / a.tick_ms;
    let mut carry = 0.0f64;
    let mut ingest_failed = false;
    let mut tick = 0u64;
    while tick < ticks {
        let due = started + Duration::from_millis(tick * a.tick_ms);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            thread::sleep(wait);
        }
        let now_tick = (started.elapsed().as_millis() as u64 / a.tick_ms).clamp(tick, ticks - 1);
        let mut envs: Vec<String> = Vec::new();
        for t in tick..=now_tick {
            let t_s = t * a.tick_ms / 1000;
            let rate = if t_s >= 3 && t_s % 6 == 3 {
                a.burst_rate
            } else {
                a.rate
            };
            carry += rate as f64 * a.tick_ms as f64 / 1000.0;
            let count = carry.floor() as u64;
            carry -= count as f64;
            let due_us = started_us + t * a.tick_ms * 1000;
            for _ in 0..count {
                seq += 1;
                let d =
                    format!(r#"{{"t":{due_us},"k":{seq},"content":"benchmark message {seq}"}}"#);
                envs.push(envelope(
                    next_id,
                    &dispatch("MESSAGE_CREATE", Some("42"), &d),
                ));
                next_id += 1;
            }
        }
        tick = now_tick + 1;
        if envs.is_empty() {
            continue;
        }
        batches += 1;
        let body = batch_body(&epoch, batches, "ready", &envs, "");
        let sent = Instant::now();
        let r = http::request(
            port,
            "POST",
            "/link/ingest",
            &[(
                "Authorization",
                &format!("Bearer {}", e2e_tests::edge::LINK_TOKEN),
            )],
            body.as_bytes(),
        );
        ingest_ms.push(sent.elapsed().as_secs_f64() * 1000.0);
        match r {
            Ok(r) if r.status == 200 => {}
            Ok(r) => {
                eprintln!(
                    "{name}: ingest answered {}: {}; ending the phase",
                    r.status,
                    r.text()
                );
                ingest_failed = true;
                break;
            }
            Err(e) => {
                eprintln!("{name}: ingest failed ({e}); ending the phase");
                ingest_failed = true;
                break;
            }
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    expected_total.store(seq as usize, Ordering::SeqCst);
    // Give stragglers up to 15 s to catch up, then stop.
    let (results, clients_cpu) = fleet.finish(Duration::from_secs(15), || {
        stop.store(true, Ordering::SeqCst)
    });
    let clients_cpu = clients_cpu.unwrap_or(f64::NAN);
    let cpu_after: Vec<Option<f64>> = cpu_pids.iter().map(|(_, p)| cpu_ms(*p)).collect();
    let clients_cpu_per_s = clients_cpu / started.elapsed().as_secs_f64();

    let mut all: Vec<u32> = Vec::new();
    let mut delivered = 0;
    let mut ooo = 0;
    let mut complete = 0;
    let connected = results.iter().filter(|r| r.connected).count();
    for r in &results {
        all.extend_from_slice(&r.latencies_us);
        delivered += r.received;
        ooo += r.out_of_order;
        if r.received == seq {
            complete += 1;
        }
    }
    all.sort_unstable();
    ingest_ms.sort_by(|a, b| a.total_cmp(b));
    let ingest_p95 = ingest_ms
        .get(((ingest_ms.len() as f64 - 1.0) * 0.95) as usize)
        .copied()
        .unwrap_or(f64::NAN);
    let cpu = cpu_pids
        .iter()
        .zip(cpu_before.iter().zip(&cpu_after))
        .map(|((label, _), (b, a))| {
            let per_event_us = match (b, a) {
                (Some(b), Some(a)) if delivered > 0 => (a - b) * 1000.0 / delivered as f64,
                _ => f64::NAN,
            };
            (label.clone(), per_event_us)
        })
        .collect();
    Phase {
        name: name.into(),
        sent: seq,
        batches,
        seconds,
        delivered,
        expected: seq * n as u64,
        out_of_order: ooo,
        clients_complete: complete,
        clients_connected: connected,
        ingest_failed,
        p50_ms: pct(&all, 0.50),
        p95_ms: pct(&all, 0.95),
        p99_ms: pct(&all, 0.99),
        max_ms: all.last().map_or(f64::NAN, |v| *v as f64 / 1000.0),
        ingest_p95_ms: ingest_p95,
        cpu,
        clients_cpu_per_s,
    }
}

fn print_header() {
    println!(
        "\n{:<24} {:>6} {:>7} {:>10} {:>8} {:>8} {:>8} {:>8} {:>9} {:>5} {:>10} {:>8}  cpu µs per delivered event",
        "target", "conn", "sent", "delivered", "p50 ms", "p95 ms", "p99 ms", "max ms", "lost", "ooo", "ingest p95", "clients"
    );
}

fn print_row(p: &Phase) {
    let cpu: Vec<String> = p.cpu.iter().map(|(l, v)| format!("{l}: {v:.2}")).collect();
    println!(
        "{:<24} {:>6} {:>7} {:>10} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>9} {:>5} {:>10.2} {:>8.2}  {}",
        p.name,
        p.clients_connected,
        p.sent,
        p.delivered,
        p.p50_ms,
        p.p95_ms,
        p.p99_ms,
        p.max_ms,
        p.expected.saturating_sub(p.delivered),
        p.out_of_order,
        p.ingest_p95_ms,
        p.clients_cpu_per_s,
        cpu.join(", ")
    );
    if p.ingest_failed {
        println!(
            "{:<24} (an ingest POST failed or timed out: phase ended early)",
            ""
        );
    }
}

fn json_num(v: f64) -> String {
    if v.is_finite() {
        format!("{v:.4}")
    } else {
        "null".into()
    }
}

fn main() {
    let a = <Args as clap::Parser>::parse();
    eprintln!(
        "edge-bench: {} clients, {} s per phase, {} ev/s with {} ev/s bursts, a batch every {} ms",
        a.clients, a.seconds, a.rate, a.burst_rate, a.tick_ms
    );
    let edge = Edge::start(
        "bench",
        &[
            ("PUBLIC_READ", "true"),
            ("LINK_QUIET_MS", "600000"),
            ("CLIENT_QUEUE_MAX", "1000"),
        ],
    );
    let worker_pid = edge
        .worker_pid()
        .expect("find the Worker's workerd process");
    let worker_port = edge.worker_port().expect("find the Worker's own port");
    let proxy_entry = format!("entry=127.0.0.1:{}", edge.port);
    let proxy_pid = edge.pid_where(|l| l.contains("workerd serve") && l.contains(&proxy_entry));
    eprintln!(
        "edge: wrangler port {}, worker port {worker_port}, worker pid {worker_pid}",
        edge.port
    );
    let mut phases = Vec::new();
    let mut pids = vec![("workerd (Worker + DO)".to_string(), worker_pid)];
    if let Some(p) = proxy_pid {
        pids.push(("workerd (wrangler proxy)".to_string(), p));
    }
    let node_port = format!("--port {}", edge.port);
    let wrangler_node =
        edge.pid_where(|l| l.contains("wrangler-dist/cli.js dev") && l.contains(&node_port));
    if let Some(p) = wrangler_node {
        pids.push(("node (wrangler)".to_string(), p));
    }
    // Order matters under wrangler dev: after a heavy phase on the Worker's own port, wrangler's
    // proxy stopped answering new streams within 30 s in our runs, so its phase goes first.
    let wanted = |t: Target| a.only.is_none_or(|o| o == t);
    if wanted(Target::Wrangler) {
        eprintln!("phase 1: edge through wrangler's port");
        phases.push(run_phase("edge via wrangler port", edge.port, &a, &pids));
    }
    if wanted(Target::Worker) {
        eprintln!("phase 2: edge on the Worker's own port");
        phases.push(run_phase(
            "edge via worker port",
            worker_port,
            &a,
            &pids[..1],
        ));
    }
    drop(edge);

    if wanted(Target::BetterSse) {
        eprintln!("phase 3: better-sse baseline");
        let node = BetterSse::start();
        phases.push(run_phase(
            "better-sse (node)",
            node.port,
            &a,
            &[("node".to_string(), node.pid())],
        ));
        drop(node);
    }

    print_header();
    for p in &phases {
        print_row(p);
    }
    let dir = repo_root().join("target/bench");
    std::fs::create_dir_all(&dir).unwrap();
    let mut json = format!(
        "{{\"clients\":{},\"seconds\":{},\"rate\":{},\"burst_rate\":{},\"tick_ms\":{},\"phases\":[",
        a.clients, a.seconds, a.rate, a.burst_rate, a.tick_ms
    );
    for (i, p) in phases.iter().enumerate() {
        if i > 0 {
            json.push(',');
        }
        let cpu: Vec<String> = p
            .cpu
            .iter()
            .map(|(l, v)| {
                format!(
                    "{{\"process\":{},\"cpu_us_per_delivered_event\":{}}}",
                    serde_json::to_string(l).unwrap(),
                    json_num(*v)
                )
            })
            .collect();
        json.push_str(&format!(
            "{{\"name\":{},\"sent\":{},\"batches\":{},\"seconds\":{},\"delivered\":{},\"expected\":{},\"lost\":{},\"out_of_order\":{},\"clients_complete\":{},\"clients_connected\":{},\"ingest_failed\":{},\"p50_ms\":{},\"p95_ms\":{},\"p99_ms\":{},\"max_ms\":{},\"ingest_p95_ms\":{},\"clients_thread_cpu_s_per_s\":{},\"cpu\":[{}]}}",
            serde_json::to_string(&p.name).unwrap(),
            p.sent,
            p.batches,
            json_num(p.seconds),
            p.delivered,
            p.expected,
            p.expected.saturating_sub(p.delivered),
            p.out_of_order,
            p.clients_complete,
            p.clients_connected,
            p.ingest_failed,
            json_num(p.p50_ms),
            json_num(p.p95_ms),
            json_num(p.p99_ms),
            json_num(p.max_ms),
            json_num(p.ingest_p95_ms),
            json_num(p.clients_cpu_per_s),
            cpu.join(",")
        ));
    }
    json.push_str("]}\n");
    let path = dir.join(format!("edge-bench-{}.json", now_us() / 1_000_000));
    std::fs::write(&path, &json).unwrap();
    std::fs::write(dir.join("edge-bench-latest.json"), &json).unwrap();
    println!("\nwrote {}", path.display());
}
