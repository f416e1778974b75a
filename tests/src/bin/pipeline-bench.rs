//! Whole-pipeline benchmark: discord-sim (in process) → the real `gateway-holder` (release) →
//! `wrangler dev` → N SSE clients on the Worker's own port, with send-message commands flowing
//! back from a write session. Runs, in order:
//! 1. the load run (the spec's load, with one dropped gateway socket and one holder restart for
//!    the reconnect figures), with twilight-gateway's bare receive on the same sim meanwhile
//!    (the holder's CPU baseline);
//! 2. the baseline run: the same load and clients through a `better-sse` Node fan-out fed by the
//!    same real holder (no faults, no commands), twilight again beside it;
//! 3. the ceiling: from a fifth of the clients at twice the rate, rate ×2 and clients ×1.5 each
//!    step until p95 > 400 ms or an event is lost (at most `--ceiling-steps`);
//! 4. the soak: 100 msgs/s with a random fault every `--fault-every` seconds.
//!
//! Writes pipeline.json, pipeline.md and PNG plots to `--out`; exits 1 when an event was lost or
//! duplicated in the load run or the soak.
//!
//! `cargo run -p e2e-tests --release --bin pipeline-bench -- --help` lists the options
//! (`--baseline-seconds 0` / `--ceiling-seconds 0` / `--soak-seconds 0` skip those parts;
//! `--ingest-via-wrangler` makes the holder post through wrangler's Node proxy instead of the
//! Worker's own port, as the soak always does because its edge restarts change that port.)

use e2e_tests::baseline_twilight;
use e2e_tests::pipeline::{self, Config, Fanout, FaultKind, Report};
use e2e_tests::pipeline_report::{self, Extras};
use std::path::PathBuf;
use std::time::Duration;

/// Whole-pipeline benchmark (see the module doc).
#[derive(clap::Parser)]
struct Args {
    /// SSE clients in the load run and the baseline run.
    #[arg(long, default_value_t = 500)]
    clients: usize,
    /// Steady gateway messages per second.
    #[arg(long, default_value_t = 100.0)]
    rate: f64,
    /// Messages per second during the bursts (one second in ten).
    #[arg(long, default_value_t = 500.0)]
    burst: f64,
    /// Length of the load run.
    #[arg(long, default_value_t = 60)]
    seconds: u64,
    /// Length of the better-sse baseline run (0 skips it).
    #[arg(long, default_value_t = 60)]
    baseline_seconds: u64,
    /// Length of the soak (0 skips it).
    #[arg(long, default_value_t = 600)]
    soak_seconds: u64,
    /// SSE clients in the soak.
    #[arg(long, default_value_t = 100)]
    soak_clients: usize,
    /// Seconds between the soak's faults (at least 1).
    #[arg(long, default_value_t = 8.0, value_parser = at_least_one)]
    fault_every: f64,
    /// Length of each ceiling step (0 skips the ceiling).
    #[arg(long, default_value_t = 15)]
    ceiling_seconds: u64,
    /// At most this many ceiling steps.
    #[arg(long, default_value_t = 6)]
    ceiling_steps: usize,
    /// The holder posts through wrangler's Node proxy instead of the Worker's own port.
    #[arg(long)]
    ingest_via_wrangler: bool,
    /// Guilds the bot is in: traffic round-robin over them, clients spread over their streams.
    /// Above 1, a one-guild, one-shard load run at the same total rate runs first as the
    /// baseline, and the report compares them.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=64))]
    guilds: u64,
    /// Shards the holder runs the guilds on (`DISCORD_SHARDS`).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=64))]
    shards: u32,
    /// Where pipeline.json, pipeline.md and the plots go (default: target/bench).
    #[arg(long)]
    out: Option<PathBuf>,
}

fn at_least_one(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(n) if n >= 1.0 => Ok(n),
        _ => Err(format!("wants a number of seconds, at least 1, not {s:?}")),
    }
}

fn summary(r: &Report) {
    eprintln!(
        "{}: {} clients {} msgs/s: emitted {} delivered {} lost {} dup {} p50/p95/p99 {:.1}/{:.1}/{:.1} ms, clients' thread {:.2} CPU s/s",
        r.name,
        r.clients,
        r.rate,
        r.emitted,
        r.delivered,
        r.lost,
        r.duplicated,
        r.latency.p50_ms,
        r.latency.p95_ms,
        r.latency.p99_ms,
        r.clients_cpu_seconds / r.seconds.max(1e-9)
    );
}

fn main() {
    baseline_twilight::child_main_if_requested();
    let a = <Args as clap::Parser>::parse();
    let out = a
        .out
        .clone()
        .unwrap_or_else(|| e2e_tests::repo_root().join("target").join("bench"));
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
        fanout: Fanout::Edge,
        ingest_via_wrangler: a.ingest_via_wrangler,
        twilight: false,
        guilds: 1,
        shards: 1,
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
    load.twilight = true;
    let one_guild = (a.guilds > 1).then(|| {
        eprintln!(
            "pipeline-bench: one-guild load run, the many-guild run's baseline ({} s)…",
            a.seconds
        );
        let mut one = load.clone();
        one.name = "pipeline-load-one-guild".into();
        let r = pipeline::run(&one);
        summary(&r);
        r
    });
    load.guilds = a.guilds as usize;
    load.shards = a.shards;
    eprintln!(
        "pipeline-bench: load run, {} guilds on {} shards ({} s)…",
        a.guilds, a.shards, a.seconds
    );
    let main = pipeline::run(&load);
    summary(&main);

    let baseline = (a.baseline_seconds > 0).then(|| {
        let mut b = burst(a.rate);
        b.name = "pipeline-baseline-better-sse".into();
        b.fanout = Fanout::BetterSse;
        b.twilight = true;
        b.duration = Duration::from_secs(a.baseline_seconds);
        b.commands_per_sec = 0.0;
        eprintln!(
            "pipeline-bench: baseline run, better-sse fan-out ({} s)…",
            a.baseline_seconds
        );
        let r = pipeline::run(&b);
        summary(&r);
        r
    });

    // Ceiling: from a fifth of the clients at twice the rate, double the rate and clients ×1.5
    // (up to 4× the load's) until p95 > 400 ms or a loss.
    let mut ceiling = Vec::new();
    if a.ceiling_seconds > 0 {
        let mut rate = a.rate * 2.0;
        let mut clients = (a.clients / 5).max(20);
        for step in 0..a.ceiling_steps {
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
            clients = (clients * 3 / 2).min(a.clients * 4);
        }
    }

    let soak = (a.soak_seconds > 0).then(|| {
        let mut s = burst(100.0);
        s.name = "pipeline-soak".into();
        s.burst_rate = 0.0;
        s.clients = a.soak_clients;
        s.duration = Duration::from_secs(a.soak_seconds);
        s.random_fault_every = Duration::from_secs_f64(a.fault_every);
        s.settle = Duration::from_secs(180);
        eprintln!("pipeline-bench: soak ({} s)…", a.soak_seconds);
        let r = pipeline::run(&s);
        summary(&r);
        r
    });

    let extras = Extras {
        baseline,
        one_guild,
        notes: vec![
            "Latency: `_sim_sent_us` (stamped by the sim just before the frame is written) to the moment the client read the bytes completing the event, every event at every client; clients read the Worker's own port (not wrangler's proxy), all on one thread (its CPU is the bench-side row).".into(),
            "Baselines run in this invocation: the better-sse row is the same load and clients through `tests/bench/better-sse-server.mjs`, fed by the same release holder from the same kind of sim (a separate run just after the load run, no faults); twilight-gateway 0.18 bare receive (zlib-stream, nothing forwarded) is a child process connected to the same sim during the load run, receiving the very same dispatches.".into(),
            "Command dispatch: browser POST /api/actions/send-message to the sim's REST record (`at_us`).".into(),
            "Reconnect: from the fault (DropTcp applied; holder SIGKILL) to client 0 receiving the first event emitted after it.".into(),
            "CPU: utime+stime from /proc over the run, including restarted processes (the holder's figure includes one restart, twilight's does not); peak RSS from VmHWM/VmRSS samples. RSS slope: least squares with one intercept per process, each process's first 10 s left out.".into(),
        ],
    };
    match pipeline_report::write(&out, &main, &ceiling, soak.as_ref(), &extras) {
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
