//! Shared harness for the end-to-end tests in `tests/tests/`.
//!
//! - [`edge`]: starts `scripts/edge-dev` (the real `wrangler dev`) on its own port and persist
//!   directory with per-test `--var`s, waits for `/healthz`, restarts it on the same storage, and
//!   stops its whole process group on drop.
//! - [`browser`]: a Playwright script in Chromium, stepped line by line by the test.
//! - [`http`]: a small blocking HTTP/1.1 client over `std::net` (requests and chunked bodies),
//!   so a test controls the socket exactly (e.g. a client that never reads).
//! - [`sse`]: an incremental `text/event-stream` reader with deadlines.
//! - [`holder`]: builds ingest batches the way the gateway holder does.
//! - [`stack`]: the real holder binary as a child process (whole-pipeline tests).
//! - [`pipeline`], [`pipeline_report`]: the whole-pipeline bench (sim → holder → edge →
//!   clients) and its JSON / Markdown / PNG report; [`sse_fleet`]: its SSE clients, many on one
//!   thread; [`baseline_twilight`], [`baseline_better_sse`]: the baselines it runs beside the
//!   pipeline (twilight-gateway bare receive; a `better-sse` Node fan-out).
//! - [`command_bench`]: command dispatch latency (browser POST → the sim's REST record) at
//!   several sender counts, with the holder and the sim as baselines.
//!
//! Only 127.0.0.1 is used. Every wait has a deadline; nothing sleeps to synchronise.

pub mod baseline_better_sse;
pub mod baseline_twilight;
pub mod browser;
pub mod command_bench;
pub mod edge;
pub mod holder;
pub mod http;
pub mod pipeline;
pub mod pipeline_report;
pub mod sse;
pub mod sse_fleet;
pub mod stack;

use std::path::PathBuf;

/// The repository root (the workspace).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// A port that was free a moment ago on 127.0.0.1.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind 127.0.0.1:0")
}

/// Unix milliseconds.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis() as u64
}

/// CPU and memory of a process, from /proc.
#[derive(Clone, Copy, Debug)]
pub struct ProcStat {
    /// utime + stime.
    pub cpu_seconds: f64,
    pub rss_kb: u64,
    /// VmHWM.
    pub peak_rss_kb: u64,
}

/// Reads /proc/PID/stat and /proc/PID/status (None once the process is gone).
pub fn proc_stat(pid: u32) -> Option<ProcStat> {
    static HZ: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    let hz = *HZ.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
            .unwrap_or(100.0)
    });
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb = |key: &str| {
        status
            .lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    Some(ProcStat {
        cpu_seconds: ticks as f64 / hz,
        rss_kb: kb("VmRSS:"),
        peak_rss_kb: kb("VmHWM:"),
    })
}
