//! The edge's fan-out baseline: a plain Node SSE server on `better-sse`
//! (`tests/bench/better-sse-server.mjs`) with the two routes the benches drive, `POST
//! /link/ingest` (an ingest batch, every envelope broadcast as it arrives) and `GET
//! /api/stream`. No storage, replay or auth. Used by `edge-bench` (fed by direct ingest POSTs)
//! and by `pipeline-bench` (fed by the real holder, which only needs a 2xx from the ingest).

use crate::{free_port, http, repo_root};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The Node server; killed on drop.
pub struct BetterSse {
    child: Child,
    pub port: u16,
}

impl BetterSse {
    /// Starts it on a free port and waits until `/healthz` answers (panics after 30 s).
    pub fn start() -> BetterSse {
        let port = free_port();
        let child = Command::new("node")
            .arg(repo_root().join("tests/bench/better-sse-server.mjs"))
            .arg(port.to_string())
            .current_dir(repo_root())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start node tests/bench/better-sse-server.mjs");
        let mut s = BetterSse { child, port };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if http::get(port, "/healthz", &[]).is_ok_and(|r| r.status == 200) {
                return s;
            }
            if let Ok(Some(status)) = s.child.try_wait() {
                panic!("better-sse server exited ({status})");
            }
            assert!(
                Instant::now() < deadline,
                "better-sse server on {port} never became ready"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for BetterSse {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
