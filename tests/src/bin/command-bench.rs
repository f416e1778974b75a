//! Command dispatch benchmark (issue 6): browser users POST commands through `wrangler dev`
//! (the Worker's own port and wrangler's port) to the real holder (release) and discord-sim (in
//! process); reports dispatch latency (POST start → the sim receiving the REST call) p50/p95/p99
//! at each sender count, beside two baselines measured in the same run: the holder's
//! `POST /commands` directly and the sim's REST route directly. Writes `command-bench.json` and
//! `command-bench.md` to `--out`, prints the table; exits 1 when a command was lost, duplicated,
//! refused, or the sim answered a 429.
//!
//! `cargo run -p e2e-tests --release --bin command-bench -- [--senders 10,50,200]
//!  [--seconds 15] [--rate 40] [--channels 100] [--entries edge,proxy,holder,sim]
//!  [--out target/bench] [--quick] [--edge-log]`
//! (`--quick`: 10 and 50 senders, 4 s per step; `--edge-log`: wrangler at `--log-level log`, and
//! the Worker's own per-command timings from its log lines.)

use e2e_tests::command_bench::{self, Config, Entry};
use std::path::PathBuf;
use std::time::Duration;

fn fail(msg: &str) -> ! {
    eprintln!("command-bench: {msg} (see the doc comment at the top of src/bin/command-bench.rs)");
    std::process::exit(2);
}

fn args() -> (Config, PathBuf) {
    let mut cfg = Config {
        name: "command-bench".into(),
        senders: vec![10, 50, 200],
        step: Duration::from_secs(15),
        rate: 40.0,
        channels: 100,
        entries: vec![
            Entry::EdgeWorker,
            Entry::EdgeProxy,
            Entry::Holder,
            Entry::Sim,
        ],
        edge_log: false,
    };
    let mut out = e2e_tests::repo_root().join("target").join("bench");
    let v: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < v.len() {
        if v[i] == "--edge-log" {
            cfg.edge_log = true;
            i += 1;
            continue;
        }
        if v[i] == "--quick" {
            cfg.senders = vec![10, 50];
            cfg.step = Duration::from_secs(4);
            i += 1;
            continue;
        }
        let Some(val) = v.get(i + 1) else {
            fail(&format!("{} needs a value", v[i]))
        };
        let number = |name: &str| -> f64 {
            match val.parse::<f64>() {
                Ok(n) if n.is_finite() && n > 0.0 => n,
                _ => fail(&format!("{name} must be a positive number, not {val:?}")),
            }
        };
        match v[i].as_str() {
            "--senders" => {
                cfg.senders = val
                    .split(',')
                    .map(|s| match s.trim().parse::<usize>() {
                        Ok(n) if n > 0 => n,
                        _ => fail(&format!(
                            "--senders wants counts like 10,50,200, not {val:?}"
                        )),
                    })
                    .collect()
            }
            "--seconds" => cfg.step = Duration::from_secs_f64(number("--seconds")),
            "--rate" => {
                cfg.rate = number("--rate");
                if cfg.rate > 50.0 {
                    fail("--rate over 50 commands/s is beyond Discord's global limit")
                }
            }
            "--channels" => cfg.channels = number("--channels") as usize,
            "--entries" => {
                cfg.entries = val
                    .split(',')
                    .map(|s| match s.trim() {
                        "edge" => Entry::EdgeWorker,
                        "proxy" => Entry::EdgeProxy,
                        "holder" => Entry::Holder,
                        "sim" => Entry::Sim,
                        other => fail(&format!(
                            "--entries takes edge, proxy, holder, sim; not {other:?}"
                        )),
                    })
                    .collect()
            }
            "--out" => out = PathBuf::from(val),
            other => fail(&format!("unknown argument {other}")),
        }
        i += 2;
    }
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
