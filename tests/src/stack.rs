//! The real `gateway-holder` binary as a child process, for tests that run the whole pipeline
//! (discord-sim → holder → `wrangler dev` → browsers). Built once per test binary with cargo;
//! its session state lives in a directory that survives [`HolderProc::restart`], so a restart
//! resumes the Discord session exactly as a production restart would.

use crate::edge::LINK_TOKEN;
use crate::{http, repo_root};
use std::fs::{self, File};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// A discord-sim on an ephemeral port, on its own tokio runtime (the e2e tests are synchronous),
/// with the 1.5 s heartbeat the holder's tests use: short enough for quick zombie detection, long
/// enough that a loaded machine doesn't time sessions out.
pub fn start_sim(worker_threads: usize) -> (tokio::runtime::Runtime, discord_sim::Sim) {
    start_sim_with(
        worker_threads,
        discord_sim::SimConfig {
            heartbeat_interval: Duration::from_millis(1500),
            ..Default::default()
        },
    )
}

/// [`start_sim`] with a given configuration (e.g. a guild with more channels).
pub fn start_sim_with(
    worker_threads: usize,
    config: discord_sim::SimConfig,
) -> (tokio::runtime::Runtime, discord_sim::Sim) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(worker_threads)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let sim = rt
        .block_on(discord_sim::Sim::start(
            "127.0.0.1:0".parse().expect("loopback address"),
            config,
        ))
        .expect("start discord-sim");
    (rt, sim)
}

/// `cargo build -p gateway-holder` once per test binary; the path of the debug binary, or of
/// the release binary when `E2E_HOLDER_RELEASE=1` (benchmarks).
pub fn holder_binary() -> &'static PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let release = std::env::var("E2E_HOLDER_RELEASE").is_ok_and(|v| v == "1");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut args = vec!["build", "-p", "gateway-holder"];
        if release {
            args.push("--release");
        }
        let out = Command::new(cargo)
            .args(&args)
            .current_dir(repo_root())
            .stdin(Stdio::null())
            .output()
            .expect("run cargo build -p gateway-holder");
        assert!(
            out.status.success(),
            "cargo build -p gateway-holder failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .map(|p| {
                if p.is_relative() {
                    repo_root().join(p)
                } else {
                    p
                }
            })
            .unwrap_or_else(|| repo_root().join("target"));
        let bin = target
            .join(if release { "release" } else { "debug" })
            .join("gateway-holder");
        assert!(bin.exists(), "no holder binary at {}", bin.display());
        bin
    })
}

/// The real holder process; killed on drop.
pub struct HolderProc {
    child: Option<Child>,
    pub port: u16,
    edge_port: u16,
    api_url: String,
    dir: PathBuf,
    log: PathBuf,
    extra: Vec<(String, String)>,
}

impl HolderProc {
    /// Starts a holder named `name` (its state directory) against the sim's REST `api_url`,
    /// forwarding to the edge on `edge_port`, serving `/commands` on `port`; waits until healthy.
    pub fn start(name: &str, port: u16, edge_port: u16, api_url: &str) -> HolderProc {
        Self::start_with(name, port, edge_port, api_url, &[])
    }

    pub fn start_with(
        name: &str,
        port: u16,
        edge_port: u16,
        api_url: &str,
        extra: &[(&str, &str)],
    ) -> HolderProc {
        let dir = repo_root()
            .join("target")
            .join("e2e-holder")
            .join(format!("{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("holder state dir");
        let mut h = HolderProc {
            child: None,
            port,
            edge_port,
            api_url: api_url.to_string(),
            log: dir.join("holder.log"),
            dir,
            extra: extra
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        };
        h.spawn();
        h
    }

    fn spawn(&mut self) {
        let out = File::options()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("holder log");
        let mut cmd = Command::new(holder_binary());
        cmd.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("DISCORD_BOT_TOKEN", "sim-token")
            .env("DISCORD_API_URL", &self.api_url)
            .env("EDGE_URL", format!("http://127.0.0.1:{}", self.edge_port))
            .env("LINK_TOKEN", LINK_TOKEN)
            .env("HOLDER_LISTEN", format!("127.0.0.1:{}", self.port))
            .env("HOLDER_STATE_DIR", self.dir.join("state"))
            .env("HOLDER_RECONNECT_BASE_MS", "100")
            .env("HOLDER_KEEPALIVE_MS", "300")
            .env("RUST_LOG", "info");
        for (k, v) in &self.extra {
            cmd.env(k, v);
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("dup log"))
            .stderr(out)
            .spawn()
            .expect("start gateway-holder");
        self.child = Some(child);
        self.wait_healthy();
    }

    /// `/healthz` 200 means the gateway session is ready and the edge link works.
    pub fn wait_healthy(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(r) = http::get(self.port, "/healthz", &[]) {
                if r.status == 200 {
                    return;
                }
            }
            if let Some(Ok(Some(status))) = self.child.as_mut().map(|c| c.try_wait()) {
                panic!("holder exited ({status}):\n{}", self.log_text());
            }
            assert!(
                Instant::now() < deadline,
                "holder not healthy in time:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The running process' pid (None while killed).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    pub fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGKILL: no flush, no goodbye (the hardest restart).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts again on the same state directory (it resumes its Discord session).
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }
}

impl Drop for HolderProc {
    fn drop(&mut self) {
        self.kill();
    }
}
