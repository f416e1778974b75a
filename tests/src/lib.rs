//! Shared harness for the end-to-end tests in `tests/tests/`.
//!
//! - [`edge`]: starts `scripts/edge-dev` (the real `wrangler dev`) on its own port and persist
//!   directory with per-test `--var`s, waits for `/healthz`, restarts it on the same storage, and
//!   stops its whole process group on drop.
//! - [`http`]: a small blocking HTTP/1.1 client over `std::net` (requests and chunked bodies),
//!   so a test controls the socket exactly (e.g. a client that never reads).
//! - [`sse`]: an incremental `text/event-stream` reader with deadlines.
//! - [`holder`]: builds ingest batches the way the gateway holder does.
//! - [`stack`]: the real holder binary as a child process (whole-pipeline tests).
//!
//! Only 127.0.0.1 is used. Every wait has a deadline; nothing sleeps to synchronise.

pub mod edge;
pub mod holder;
pub mod http;
pub mod sse;
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
