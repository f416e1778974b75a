//! Command dispatch benchmark (issue 6): browser users POST commands through `wrangler dev`
//! (the Worker's own port and wrangler's port) to the real holder (release) and discord-sim (in
//! process); reports dispatch latency (POST start → the sim receiving the REST call) p50/p95/p99
//! at each sender count, beside two baselines measured in the same run: the holder's
//! `POST /commands` directly and the sim's REST route directly. Writes `command-bench.json` and
//! `command-bench.md` to `--out`, prints the table; exits 1 when a command was lost, duplicated,
//! refused, or the sim answered a 429.
//!
//! `cargo run -p e2e-tests --release --bin command-bench -- --help` lists the options.

use e2e_tests::command_bench::{self, Config, Entry};
use std::path::PathBuf;
use std::time::Duration;

/// Command dispatch benchmark (see the module doc).
#[derive(clap::Parser)]
struct Args {
    /// Sender counts, one step each.
    #[arg(long, value_delimiter = ',', default_values_t = [10, 50, 200], value_parser = count)]
    senders: Vec<usize>,
    /// Seconds per step.
    #[arg(long, default_value_t = 15.0, value_parser = positive)]
    seconds: f64,
    /// Commands per second over all senders (Discord's global limit is 50).
    #[arg(long, default_value_t = 40.0, value_parser = rate)]
    rate: f64,
    /// Channels the commands are spread over.
    #[arg(long, default_value_t = 100, value_parser = count)]
    channels: usize,
    /// Where the commands enter: the Worker's own port, wrangler's port, the holder, the sim.
    #[arg(long, value_delimiter = ',', value_enum,
          default_values_t = [Where::Edge, Where::Proxy, Where::Holder, Where::Sim])]
    entries: Vec<Where>,
    /// Where command-bench.json and command-bench.md go (default: target/bench).
    #[arg(long)]
    out: Option<PathBuf>,
    /// 10 and 50 senders, 4 s per step.
    #[arg(long)]
    quick: bool,
    /// wrangler at `--log-level log`, and the Worker's own per-command timings from its log lines.
    #[arg(long)]
    edge_log: bool,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum Where {
    Edge,
    Proxy,
    Holder,
    Sim,
}

fn count(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(format!("wants a count of at least 1, not {s:?}")),
    }
}

fn positive(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(n) if n.is_finite() && n > 0.0 => Ok(n),
        _ => Err(format!("wants a positive number, not {s:?}")),
    }
}

fn rate(s: &str) -> Result<f64, String> {
    let n = positive(s)?;
    if n > 50.0 {
        return Err("over 50 commands/s is beyond Discord's global limit".into());
    }
    Ok(n)
}

fn args() -> (Config, PathBuf) {
    let a = <Args as clap::Parser>::parse();
    let (senders, step) = if a.quick {
        (vec![10, 50], Duration::from_secs(4))
    } else {
        (a.senders, Duration::from_secs_f64(a.seconds))
    };
    let cfg = Config {
        name: "command-bench".into(),
        senders,
        step,
        rate: a.rate,
        channels: a.channels,
        entries: a
            .entries
            .iter()
            .map(|w| match w {
                Where::Edge => Entry::EdgeWorker,
                Where::Proxy => Entry::EdgeProxy,
                Where::Holder => Entry::Holder,
                Where::Sim => Entry::Sim,
            })
            .collect(),
        edge_log: a.edge_log,
    };
    let out = a
        .out
        .unwrap_or_else(|| e2e_tests::repo_root().join("target").join("bench"));
    (cfg, out)
}

fn main() {
    let (cfg, out) = args();
    // The release holder, like production.
    std::env::set_var("E2E_HOLDER_RELEASE", "1");
    let report = command_bench::run(&cfg, &|line| eprintln!("{line}"));
    match command_bench::write(&out, &report) {
        Ok(files) => {
            for f in files {
                eprintln!("wrote {}", f.display());
            }
        }
        Err(e) => {
            eprintln!(
                "command-bench: writing the report to {} failed: {e}",
                out.display()
            );
            std::process::exit(1);
        }
    }
    println!("{}", command_bench::markdown(&report));
    if !report.clean() {
        eprintln!(
            "command-bench: a command was refused, lost or duplicated, or the sim answered 429"
        );
        std::process::exit(1);
    }
}
