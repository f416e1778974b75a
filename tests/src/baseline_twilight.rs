//! The holder's CPU baseline: twilight-gateway's bare receive (zlib-stream inflate, frame
//! handling, nothing forwarded) connected to the same discord-sim as the holder during the same
//! run, so it gets the very same dispatches at the same moments.
//!
//! It runs in a child process so its CPU time is its own: the bench binary re-runs itself with
//! [`ARG`] (its `main` calls [`child_main_if_requested`] first). The child prints the number of
//! dispatches it has received (`n <count>`) whenever it changes, at most every 100 ms; the parent
//! keeps the last figure. It identifies with the holder's intents plus `DIRECT_MESSAGES` (no
//! traffic the sim generates uses it), so its sessions can be told apart in the sim's records.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// The argument that makes a bench binary run the twilight child instead.
pub const ARG: &str = "--twilight-baseline";

/// The holder's default intents (GUILDS | GUILD_MEMBERS | GUILD_MODERATION | GUILD_VOICE_STATES |
/// GUILD_MESSAGES | GUILD_MESSAGE_REACTIONS | GUILD_MESSAGE_TYPING | MESSAGE_CONTENT) plus
/// DIRECT_MESSAGES (1 << 12), which marks the baseline's sessions.
pub const INTENTS: u64 =
    1 | 1 << 1 | 1 << 2 | 1 << 7 | 1 << 9 | 1 << 10 | 1 << 11 | 1 << 15 | 1 << 12;

/// In a bench binary's `main`, first thing: runs the child and exits when the process was
/// started with [`ARG`] `<gateway url>`.
pub fn child_main_if_requested() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) != Some(ARG) {
        return;
    }
    let Some(url) = args.get(2).cloned() else {
        eprintln!("{ARG}: missing the gateway URL");
        std::process::exit(2);
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    rt.block_on(receive(url));
    std::process::exit(0);
}

/// Receives until the gateway stream ends for good or the parent stops reading.
async fn receive(url: String) {
    use futures::StreamExt;
    use twilight_gateway::{ConfigBuilder, Intents, Message, Shard, ShardId};
    let intents = Intents::from_bits_truncate(INTENTS);
    let config = ConfigBuilder::new("sim-token".into(), intents)
        .proxy_url(url)
        .build();
    let mut shard = Shard::with_config(ShardId::ONE, config);
    let mut count = 0u64;
    let mut reported = 0u64;
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    let mut out = std::io::stdout();
    loop {
        tokio::select! {
            m = shard.next() => match m {
                // A dispatch (op 0) is what the holder forwards; count it.
                Some(Ok(Message::Text(text))) if text.contains("\"op\":0") => count += 1,
                Some(_) => {}
                None => return,
            },
            _ = tick.tick() => {
                if count != reported {
                    reported = count;
                    if writeln!(out, "n {count}").and_then(|_| out.flush()).is_err() {
                        return;
                    }
                }
            }
        }
    }
}

/// The running child; killed on drop.
pub struct TwilightBaseline {
    child: Child,
    received: Arc<AtomicU64>,
}

impl TwilightBaseline {
    /// Starts this binary again with [`ARG`] against the sim's `gateway_url`. None (with a
    /// message) when the binary can't be re-run, e.g. from a test harness.
    pub fn spawn(gateway_url: &str) -> Option<TwilightBaseline> {
        let exe = std::env::current_exe().ok()?;
        let mut child = Command::new(exe)
            .args([ARG, gateway_url])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| eprintln!("twilight baseline: cannot start the child: {e}"))
            .ok()?;
        let received = Arc::new(AtomicU64::new(0));
        let stdout = child.stdout.take()?;
        let r = received.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(n) = line.strip_prefix("n ").and_then(|n| n.parse().ok()) {
                    r.store(n, Ordering::SeqCst);
                }
            }
        });
        Some(TwilightBaseline { child, received })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Dispatches received so far (as last reported, at most 100 ms old).
    pub fn received(&self) -> u64 {
        self.received.load(Ordering::SeqCst)
    }

    /// Waits until it has received `n` dispatches (reported), up to `limit`.
    pub fn wait_received(&self, n: u64, limit: Duration) -> bool {
        let deadline = std::time::Instant::now() + limit;
        while self.received() < n {
            if std::time::Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        true
    }
}

impl Drop for TwilightBaseline {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
