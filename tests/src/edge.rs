//! A `wrangler dev` instance of the edge Worker, started through `scripts/edge-dev`.

use crate::{free_port, http, repo_root};
use std::fs::{self, File};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The holder's shared secret in tests.
pub const LINK_TOKEN: &str = "test-link-token";
/// The browser-session signing secret in tests.
pub const JWT_SECRET: &str = "test-jwt-secret";

/// Every setting the edge reads, so a developer's `.dev.vars` can't change a test: `--var`
/// overrides `.dev.vars`, but a variable only in `.dev.vars` would still apply.
const BASE_VARS: &[(&str, &str)] = &[
    ("LINK_TOKEN", LINK_TOKEN),
    ("CLIENT_JWT_SECRET", JWT_SECRET),
    ("PUBLIC_READ", "false"),
    ("ALLOWED_ORIGINS", "http://127.0.0.1:9"),
    ("GUILD_ID", "1000000000000000001"),
    ("GUILD_IDS", ""),
    ("SSE_HEARTBEAT_MS", "15000"),
    ("SSE_RETRY_MS", "500"),
    ("REPLAY_MAX_EVENTS", "10000"),
    ("REPLAY_MAX_AGE_MS", "300000"),
    ("LINK_QUIET_MS", "30000"),
    ("MAX_INGEST_BYTES", "1048576"),
    ("CLIENT_QUEUE_MAX", "1000"),
    ("HOLDER_URL", "http://127.0.0.1:9"),
    ("VOICE_GRACE_MS", "30000"),
    ("LEGACY_VOICE_WS", "true"),
];

static SEQ: AtomicU32 = AtomicU32::new(0);
static BUILT: Mutex<bool> = Mutex::new(false);

/// Builds the Worker once per test process, before any instance starts: parallel tests would
/// otherwise each run the (possibly cold, minutes-long) build inside their start-up deadline.
pub fn ensure_built() {
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    if *built {
        return;
    }
    let out = Command::new(repo_root().join("scripts/edge-build"))
        .stdin(Stdio::null())
        .output()
        .expect("run scripts/edge-build");
    assert!(
        out.status.success(),
        "scripts/edge-build failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    *built = true;
}

pub struct Edge {
    pub port: u16,
    pub persist: PathBuf,
    vars: Vec<(String, String)>,
    log: PathBuf,
    child: Option<Child>,
    log_level: &'static str,
}

impl Edge {
    /// Starts an instance with the base settings overridden by `vars`.
    pub fn start(name: &str, vars: &[(&str, &str)]) -> Edge {
        Edge::start_with_log_level(name, vars, "warn")
    }

    /// [`Edge::start`] with wrangler's `--log-level` (`log` shows the Worker's `console.log`).
    pub fn start_with_log_level(name: &str, vars: &[(&str, &str)], level: &'static str) -> Edge {
        ensure_built();
        let n = SEQ.fetch_add(1, Ordering::SeqCst);
        // E2E_EDGE_STATE_ROOT moves the storage (e.g. to /dev/shm, to take the disk's fsync
        // out of a benchmark); by default it lives under target/.
        let root = std::env::var_os("E2E_EDGE_STATE_ROOT")
            .map(PathBuf::from)
            .unwrap_or_else(|| repo_root().join("target").join("e2e-edge"));
        let dir = root.join(format!("{name}-{}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("create test state dir");
        let mut all: Vec<(String, String)> = BASE_VARS
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        for (k, v) in vars {
            match all.iter_mut().find(|(key, _)| key == k) {
                Some(slot) => slot.1 = v.to_string(),
                None => all.push((k.to_string(), v.to_string())),
            }
        }
        let mut edge = Edge {
            port: free_port(),
            persist: dir.join("state"),
            vars: all,
            log: dir.join("wrangler.log"),
            child: None,
            log_level: level,
        };
        edge.spawn();
        edge
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn spawn(&mut self) {
        let log = File::options()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("open wrangler log");
        let mut cmd = Command::new(repo_root().join("scripts/edge-dev"));
        cmd.arg("--port")
            .arg(self.port.to_string())
            .arg("--persist-to")
            .arg(&self.persist)
            .arg("--");
        for (k, v) in &self.vars {
            cmd.arg("--var").arg(format!("{k}:{v}"));
        }
        cmd.stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup log"))
            .stderr(log)
            .env("WRANGLER_LOG_LEVEL", self.log_level)
            .process_group(0);
        self.child = Some(cmd.spawn().expect("start scripts/edge-dev"));
        self.wait_healthy(Duration::from_secs(60));
    }

    /// Polls `/healthz` until it answers 200, or panics with the log's tail.
    fn wait_healthy(&mut self, limit: Duration) {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    panic!("edge-dev exited early ({status}):\n{}", self.log_tail());
                }
            }
            if let Ok(r) = http::get(self.port, "/healthz", &[]) {
                if r.status == 200 {
                    return;
                }
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "edge on port {} not healthy within {limit:?}:\n{}",
            self.port,
            self.log_tail()
        );
    }

    /// Stops the instance and starts it again on the same port and storage.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let group = format!("-{}", child.id());
        // edge-dev traps TERM and stops wrangler's own process group before exiting.
        let _ = Command::new("kill").args(["-TERM", "--", &group]).status();
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        if child.try_wait().ok().flatten().is_none() {
            let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
            let _ = child.wait();
        }
        // The port must be free again before a restart reuses it.
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline
            && std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok()
        {
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Everything wrangler (and the Worker's `console.log`) printed so far.
    pub fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn log_tail(&self) -> String {
        let text = fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    /// The pid of the workerd process that runs the Worker and its Durable Objects (the one
    /// started with an ephemeral entry socket, not wrangler's proxy on `self.port`).
    pub fn worker_pid(&self) -> Option<u32> {
        self.pid_where(|args| args.contains("workerd serve") && args.contains("entry=127.0.0.1:0"))
    }

    /// The first process of this instance (wrangler, its workerds) whose command line matches.
    pub fn pid_where(&self, matches: impl Fn(&str) -> bool) -> Option<u32> {
        let out = Command::new("ps")
            .args(["-eo", "pid=,args="])
            .output()
            .ok()?;
        let text = String::from_utf8_lossy(&out.stdout);
        text.lines()
            .filter(|l| matches(l))
            .filter_map(|l| l.split_whitespace().next()?.parse::<u32>().ok())
            .find(|p| self.in_my_tree(*p))
    }

    fn in_my_tree(&self, pid: u32) -> bool {
        let Some(root) = self.child.as_ref().map(|c| c.id()) else {
            return false;
        };
        let mut p = pid;
        for _ in 0..10 {
            if p == root {
                return true;
            }
            let stat = fs::read_to_string(format!("/proc/{p}/stat")).unwrap_or_default();
            // Field 4 (after the parenthesised command) is the parent pid.
            let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r.to_string()) else {
                return false;
            };
            match rest.split_whitespace().nth(1).and_then(|s| s.parse().ok()) {
                Some(parent) if parent > 1 => p = parent,
                _ => return false,
            }
        }
        false
    }

    /// The port the Worker itself listens on (behind wrangler's proxy): of the worker
    /// process's listening sockets, the one that answers `/healthz` like the edge.
    pub fn worker_port(&self) -> Option<u16> {
        let pid = self.worker_pid()?;
        let out = Command::new("ss").args(["-ltnpH"]).output().ok()?;
        let text = String::from_utf8_lossy(&out.stdout);
        text.lines()
            .filter(|l| l.contains(&format!("pid={pid},")))
            .filter_map(|l| {
                let local = l.split_whitespace().nth(3)?;
                local.strip_prefix("127.0.0.1:")?.parse::<u16>().ok()
            })
            .find(|port| {
                http::get(*port, "/healthz", &[])
                    .map(|r| r.status == 200 && r.text().contains("\"status\":\"ok\""))
                    .unwrap_or(false)
            })
    }
}

impl Drop for Edge {
    fn drop(&mut self) {
        self.stop();
    }
}
