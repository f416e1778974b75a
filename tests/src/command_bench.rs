//! Command dispatch benchmark: N browser users, each with its own write session, run a paced
//! closed loop of `POST /api/actions/{send-message,add-reaction,typing-start}` through the real
//! edge (`wrangler dev`) and the real holder (release) to discord-sim (in process). Dispatch
//! latency is the browser's POST start to the sim's record of that REST call (`RestRecord.at_us`),
//! matched by the command's `traceparent` trace id; the answer latency is POST start to the
//! answer read. The same commands are also sent, in the same run, straight to the holder's
//! `POST /commands` (skipping the edge) and straight to the sim's REST routes (the floor), so each
//! figure has a baseline. Used by `src/bin/command-bench.rs` and `tests/command_bench_smoke.rs`.
//!
//! Staying inside Discord's limits is part of the design: the sim's guild gets `channels` text
//! channels, commands go round-robin over them (so each channel's per-route buckets see a small
//! share), and the senders together are paced to `rate` commands/s (below the global 50/s). A
//! sender that misses its slot skips it rather than bursting to catch up. Any 429 the sim
//! answers is counted and reported as a finding.

use crate::edge::{Edge, JWT_SECRET, LINK_TOKEN};
use crate::pipeline::Percentiles;
use crate::pipeline_report::ms;
use crate::stack::HolderProc;
use crate::{free_port, http, now_ms};
use contracts::{
    AddReaction, Command, HolderCommand, SendMessage, Snowflake, TypingStart, Version,
};
use discord_sim::config::demo::GUILD_ID;
use discord_sim::{ChannelKind, ChannelSeed, GuildSeed, SimConfig};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

/// The issue's target for the edge path's dispatch p95.
pub const TARGET_P95_MS: f64 = 20.0;
/// First id of the bench's extra text channels.
const FIRST_CHANNEL: u64 = 1_000_000_000_000_100_000;
/// 👍, percent-encoded for the REST path.
const EMOJI: &str = "👍";
const EMOJI_PATH: &str = "%F0%9F%91%8D";

/// Where the commands enter.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Entry {
    /// `POST /api/actions/*` on the Worker's own port (workerd, no wrangler proxy).
    EdgeWorker,
    /// `POST /api/actions/*` on wrangler's port (its proxy in front of workerd).
    EdgeProxy,
    /// Baseline (a): `POST /commands` on the holder, as the edge would send it.
    Holder,
    /// Baseline (b), the floor: the REST call itself, straight to the sim.
    Sim,
}

impl Entry {
    pub fn label(self) -> &'static str {
        match self {
            Entry::EdgeWorker => "edge (worker port)",
            Entry::EdgeProxy => "edge (wrangler port)",
            Entry::Holder => "holder /commands",
            Entry::Sim => "sim REST (floor)",
        }
    }
}

/// What one run does.
#[derive(Clone, Debug, Serialize)]
pub struct Config {
    /// Run name (state directories).
    pub name: String,
    /// Concurrent senders per step, e.g. `[10, 50, 200]`.
    pub senders: Vec<usize>,
    /// Length of each step.
    pub step: Duration,
    /// Commands per second from all senders together.
    pub rate: f64,
    /// Text channels the commands are spread over.
    pub channels: usize,
    /// Entries measured at every sender count, in order.
    pub entries: Vec<Entry>,
    /// Run wrangler at `--log-level log` and read the Worker's per-command log lines (its own
    /// timings, ms resolution); costs wrangler some CPU per command.
    pub edge_log: bool,
}

/// One step: one entry at one sender count.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Step {
    pub entry: Option<Entry>,
    pub senders: usize,
    pub seconds: f64,
    pub target_rate: f64,
    /// Commands sent, and per kind.
    pub commands: usize,
    pub kinds: BTreeMap<String, usize>,
    /// Answers by HTTP status (`io` for no answer).
    pub statuses: BTreeMap<String, usize>,
    /// Commands the sim recorded exactly once (with a 2xx answer).
    pub dispatched: usize,
    /// Answered 200/202 but never reached the sim.
    pub missing: usize,
    /// Reached the sim more than once.
    pub duplicated: usize,
    /// 429s the sim answered during the step (any source).
    pub sim_429s: usize,
    /// Other non-2xx answers of the sim during the step.
    pub sim_errors: usize,
    /// Most sim REST calls in any one second of the step (Discord's global limit is 50).
    pub sim_peak_per_sec: usize,
    /// Sender slots skipped because the previous command was still running.
    pub late_slots: u64,
    /// POST start → the sim receiving the REST call.
    pub dispatch: Percentiles,
    /// POST start → the answer read by the sender.
    pub answer: Percentiles,
    /// Per hop, from the holder's `command received` log line (its tracing timestamp) for the
    /// command's trace id: POST start → the holder having the command, and from there → the sim.
    pub to_holder: Percentiles,
    pub holder_to_sim: Percentiles,
    /// The Worker's own timings from its log lines (with `edge_log`): handler start → the hub
    /// admitted the command (session check, body, the hub's admission), and handler start → the
    /// holder's answer.
    pub worker_admit: Percentiles,
    pub worker_total: Percentiles,
    /// The holder's own view over the step (from its `/metrics`): mean queue wait and mean
    /// POST /commands → Discord's answer, in ms.
    pub holder_queue_wait_mean_ms: Option<f64>,
    pub holder_dispatch_mean_ms: Option<f64>,
    /// This step's dispatch p95 over the holder's / the sim's at the same sender count.
    pub p95_vs_holder: Option<f64>,
    pub p95_vs_sim: Option<f64>,
}

impl Step {
    /// Every command answered 200/202 and reached the sim exactly once, with no 429 from it.
    pub fn clean(&self) -> bool {
        let ok: usize = ["200", "202", "204"]
            .iter()
            .filter_map(|s| self.statuses.get(*s))
            .sum();
        self.commands > 0
            && ok == self.commands
            && self.dispatched == self.commands
            && self.missing == 0
            && self.duplicated == 0
            && self.sim_429s == 0
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub version: &'static str,
    pub config: Config,
    pub worker_port: u16,
    pub proxy_port: u16,
    pub target_p95_ms: f64,
    pub steps: Vec<Step>,
}

impl Report {
    pub fn clean(&self) -> bool {
        !self.steps.is_empty() && self.steps.iter().all(Step::clean)
    }
}

/// The command kinds the senders mix (3 : 1 : 1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Send,
    React,
    Typing,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Send => "send_message",
            Kind::React => "add_reaction",
            Kind::Typing => "typing_start",
        }
    }
}

/// One command as a sender saw it.
struct Sent {
    trace: String,
    kind: Kind,
    start_us: u64,
    answer_us: u64,
    /// 0: no answer (connection error).
    status: u16,
}

/// Shared by the senders of one step.
struct StepCtx {
    entry: Entry,
    port: u16,
    senders: usize,
    interval: Duration,
    start: Instant,
    end: Instant,
    channels: Vec<u64>,
    /// The last message created in each channel (0: none yet), for reactions.
    last_message: Arc<Vec<AtomicU64>>,
    next: AtomicU64,
    tag: u64,
    sent: AtomicUsize,
    answered_ok: AtomicUsize,
}

fn now_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_micros() as u64
}

fn session(sub: &str) -> String {
    let exp = now_ms() / 1000 + 24 * 3600;
    edge_worker::jwt::sign(
        &format!(r#"{{"sub":"{sub}","exp":{exp},"scope":"read write"}}"#),
        JWT_SECRET.as_bytes(),
    )
}

/// The sim's guild: the demo guild plus `n` text channels.
fn guild(n: usize) -> GuildSeed {
    let mut g = GuildSeed::default();
    for i in 0..n as u64 {
        g.channels.push(ChannelSeed {
            id: FIRST_CHANNEL + i,
            name: format!("bench-{i}"),
            kind: ChannelKind::Text,
        });
    }
    g
}

/// Sends one command through `ctx.entry`; returns the status (0 on a connection error) and the
/// created message's id for a send.
fn send_one(
    ctx: &StepCtx,
    user: &str,
    auth: &str,
    n: u64,
    kind: Kind,
    channel: u64,
    message: u64,
) -> (u16, Option<u64>) {
    let tp = format!("00-{:016x}{:016x}-{:016x}-01", ctx.tag, n, n + 1);
    let nonce = format!("cb{:x}n{n}", ctx.tag % 0xffff_ffff);
    let command = match kind {
        Kind::Send => Command::SendMessage(SendMessage {
            version: Version,
            channel_id: Snowflake(channel),
            content: format!("command bench {nonce}"),
            nonce: Some(nonce.clone()),
        }),
        Kind::React => Command::AddReaction(AddReaction {
            version: Version,
            channel_id: Snowflake(channel),
            message_id: Snowflake(message),
            emoji: EMOJI.into(),
        }),
        Kind::Typing => Command::TypingStart(TypingStart {
            version: Version,
            channel_id: Snowflake(channel),
        }),
    };
    let result = match ctx.entry {
        Entry::EdgeWorker | Entry::EdgeProxy => {
            // The browser's body is the command's `body` (the holder's form is `{kind, body}`).
            let tagged = serde_json::to_value(&command).expect("contract types serialize");
            let body = tagged["body"].to_string().into_bytes();
            let path = format!("/api/actions/{}", kind.name().replace('_', "-"));
            http::request(
                ctx.port,
                "POST",
                &path,
                &[
                    ("Authorization", auth),
                    ("Content-Type", "application/json"),
                    ("traceparent", &tp),
                ],
                &body,
            )
        }
        Entry::Holder => {
            let body = serde_json::to_vec(&HolderCommand {
                version: Version,
                command_id: format!("cmd-{n}"),
                user: user.to_string(),
                guild_id: Snowflake(GUILD_ID),
                traceparent: tp.clone(),
                wait_ms: 2000,
                command,
            })
            .expect("contract types serialize");
            http::request(
                ctx.port,
                "POST",
                "/commands",
                &[
                    ("Authorization", auth),
                    ("Content-Type", "application/json"),
                    ("traceparent", &tp),
                ],
                &body,
            )
        }
        Entry::Sim => {
            let (method, path, body) = match kind {
                Kind::Send => (
                    "POST",
                    format!("/api/v10/channels/{channel}/messages"),
                    format!(
                        r#"{{"content":"command bench {nonce}","nonce":"{nonce}","enforce_nonce":true}}"#
                    ),
                ),
                Kind::React => (
                    "PUT",
                    format!(
                        "/api/v10/channels/{channel}/messages/{message}/reactions/{EMOJI_PATH}/@me"
                    ),
                    String::new(),
                ),
                Kind::Typing => (
                    "POST",
                    format!("/api/v10/channels/{channel}/typing"),
                    String::new(),
                ),
            };
            // Discord (and the sim) refuse API clients without a Discord-style User-Agent.
            let mut h = vec![
                ("Authorization", auth),
                ("traceparent", tp.as_str()),
                (
                    "User-Agent",
                    "DiscordBot (https://example.invalid/command-bench, 0.1)",
                ),
            ];
            if kind == Kind::Send {
                h.push(("Content-Type", "application/json"));
            }
            http::request(ctx.port, method, &path, &h, body.as_bytes())
        }
    };
    let Ok(r) = result else { return (0, None) };
    let id = (kind == Kind::Send && r.status == 200)
        .then(|| serde_json::from_slice::<serde_json::Value>(&r.body).ok())
        .flatten()
        .and_then(|v| {
            let m = if ctx.entry == Entry::Sim {
                &v
            } else {
                &v["result"]
            };
            m["id"].as_str().and_then(|s| s.parse().ok())
        });
    (r.status, id)
}

/// One sender's paced closed loop: a slot every `interval`, offset by its index; a slot missed
/// while the previous command ran is skipped.
fn sender(ctx: Arc<StepCtx>, i: usize, user: String, auth: String) -> (Vec<Sent>, u64) {
    let offset = ctx.interval.mul_f64(i as f64 / ctx.senders as f64);
    let mut out = Vec::new();
    let mut late = 0u64;
    let mut k = 0u32;
    loop {
        let due = ctx.start + offset + ctx.interval * k;
        if due >= ctx.end {
            break;
        }
        let now = Instant::now();
        match due.checked_duration_since(now) {
            Some(wait) => thread::sleep(wait),
            None if now - due > Duration::from_millis(2) => {
                // Late: skip to the next slot still ahead.
                let behind = ((now - due).as_secs_f64() / ctx.interval.as_secs_f64()).ceil();
                late += behind as u64;
                k += behind as u32;
                continue;
            }
            None => {}
        }
        k += 1;
        let n = ctx.next.fetch_add(1, Ordering::SeqCst);
        let c = (n % ctx.channels.len() as u64) as usize;
        let channel = ctx.channels[c];
        let message = ctx.last_message[c].load(Ordering::SeqCst);
        // Over time every channel sees every kind; consecutive commands differ in kind.
        let kind = match (n + n / ctx.channels.len() as u64) % 5 {
            3 if message != 0 => Kind::React,
            4 => Kind::Typing,
            _ => Kind::Send,
        };
        let start_us = now_us();
        let t = Instant::now();
        let (status, id) = send_one(&ctx, &user, &auth, n, kind, channel, message);
        let answer_us = t.elapsed().as_micros() as u64;
        if let Some(id) = id {
            ctx.last_message[c].store(id, Ordering::SeqCst);
        }
        ctx.sent.fetch_add(1, Ordering::Relaxed);
        if (200..300).contains(&status) {
            ctx.answered_ok.fetch_add(1, Ordering::Relaxed);
        }
        out.push(Sent {
            trace: format!("{:016x}{n:016x}", ctx.tag),
            kind,
            start_us,
            answer_us,
            status,
        });
    }
    (out, late)
}

fn percentiles(mut us: Vec<u64>) -> Percentiles {
    us.sort_unstable();
    Percentiles::of(&us)
}

/// (sum, count) of a histogram in the holder's Prometheus text.
fn histogram(text: &str, name: &str) -> Option<(f64, f64)> {
    let value = |suffix: &str| {
        let key = format!("{name}{suffix}");
        text.lines()
            .find(|l| l.split_whitespace().next() == Some(key.as_str()))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<f64>().ok())
    };
    Some((value("_sum")?, value("_count")?))
}

fn holder_metrics(port: u16) -> String {
    http::get(port, "/metrics", &[])
        .map(|r| r.text())
        .unwrap_or_default()
}

fn mean_ms(before: &str, after: &str, name: &str) -> Option<f64> {
    let (s0, c0) = histogram(before, name)?;
    let (s1, c1) = histogram(after, name)?;
    (c1 > c0).then(|| (s1 - s0) / (c1 - c0) * 1000.0)
}

/// The pieces a run keeps up between steps.
struct Stack {
    rt: tokio::runtime::Runtime,
    sim: discord_sim::Sim,
    holder: HolderProc,
    edge: Edge,
    worker_port: u16,
    sim_port: u16,
    channels: Vec<u64>,
    last_message: Arc<Vec<AtomicU64>>,
    tag: AtomicU64,
}

impl Stack {
    fn start(cfg: &Config) -> Stack {
        let (rt, sim) = crate::stack::start_sim_with(
            2,
            SimConfig {
                heartbeat_interval: Duration::from_millis(1500),
                guilds: vec![guild(cfg.channels)],
                ..Default::default()
            },
        );
        let _ = crate::stack::holder_binary();
        let holder_port = free_port();
        let holder_url = format!("http://127.0.0.1:{holder_port}");
        let guild_id = GUILD_ID.to_string();
        let edge = Edge::start_with_log_level(
            &cfg.name,
            &[
                ("HOLDER_URL", &holder_url),
                ("GUILD_ID", &guild_id),
                ("ACTION_RATE_PER_SEC", "100"),
                ("ACTION_BURST", "100"),
            ],
            if cfg.edge_log { "log" } else { "warn" },
        );
        let holder = HolderProc::start(&cfg.name, holder_port, edge.port, &sim.api_url());
        let worker_port = edge.worker_port().unwrap_or(edge.port);
        let sim_port = sim
            .api_url()
            .trim_start_matches("http://")
            .split(['/', ':'])
            .nth(1)
            .and_then(|p| p.parse().ok())
            .expect("the sim's port");
        let channels: Vec<u64> = (0..cfg.channels as u64)
            .map(|i| FIRST_CHANNEL + i)
            .collect();
        let last_message = Arc::new(channels.iter().map(|_| AtomicU64::new(0)).collect());
        Stack {
            rt,
            sim,
            holder,
            edge,
            worker_port,
            sim_port,
            channels,
            last_message,
            tag: AtomicU64::new(now_us() % 0xffff_ffff_ffff),
        }
    }

    /// Waits until the edge admits commands (its hub learned the guild's channels from the
    /// holder's GUILD_CREATE): one typing command per channel-less retry, bounded.
    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        let auth = format!("Bearer {}", session("bench-warmup"));
        let body = format!(r#"{{"channel_id":"{}"}}"#, self.channels[0]);
        loop {
            let r = http::request(
                self.worker_port,
                "POST",
                "/api/actions/typing-start",
                &[
                    ("Authorization", &auth),
                    ("Content-Type", "application/json"),
                ],
                body.as_bytes(),
            );
            match r {
                Ok(r) if r.status == 200 || r.status == 202 => return,
                Ok(r) if r.status == 503 && Instant::now() < deadline => {}
                Ok(r) => panic!("warm-up command answered {}: {}", r.status, r.text()),
                Err(e) if Instant::now() >= deadline => panic!("warm-up command failed: {e}"),
                Err(_) => {}
            }
            // The hub learns the channels from an ingest batch; nothing to await from here.
            thread::sleep(Duration::from_millis(200));
        }
    }

    fn port(&self, entry: Entry) -> u16 {
        match entry {
            Entry::EdgeWorker => self.worker_port,
            Entry::EdgeProxy => self.edge.port,
            Entry::Holder => self.holder.port,
            Entry::Sim => self.sim_port,
        }
    }

    /// Runs one step and measures it.
    fn step(&self, entry: Entry, senders: usize, cfg: &Config, progress: &dyn Fn(&str)) -> Step {
        // A quiet gap first: the sim's one-second global window and any pause the holder took
        // after a 429 in the previous step end before this one starts.
        thread::sleep(Duration::from_millis(1500));
        self.sim.clear_records();
        let tag = self.tag.fetch_add(1, Ordering::SeqCst);
        let holder_before = holder_metrics(self.holder.port);
        let start = Instant::now() + Duration::from_millis(200);
        let ctx = Arc::new(StepCtx {
            entry,
            port: self.port(entry),
            senders,
            interval: Duration::from_secs_f64(senders as f64 / cfg.rate),
            start,
            end: start + cfg.step,
            channels: self.channels.clone(),
            last_message: self.last_message.clone(),
            next: AtomicU64::new(0),
            tag,
            sent: AtomicUsize::new(0),
            answered_ok: AtomicUsize::new(0),
        });
        let joins: Vec<_> = (0..senders)
            .map(|i| {
                let user = format!("bench-sender-{i}");
                let auth = match entry {
                    Entry::EdgeWorker | Entry::EdgeProxy => format!("Bearer {}", session(&user)),
                    Entry::Holder => format!("Bearer {LINK_TOKEN}"),
                    Entry::Sim => "Bot sim-token".into(),
                };
                let ctx = ctx.clone();
                thread::Builder::new()
                    .stack_size(256 * 1024)
                    .spawn(move || sender(ctx, i, user, auth))
                    .expect("spawn sender")
            })
            .collect();
        // Progress once a second while the step runs.
        let mut tick = 1;
        while !joins.iter().all(|j| j.is_finished()) {
            let next = start + Duration::from_secs(tick);
            if let Some(w) = next.checked_duration_since(Instant::now()) {
                thread::sleep(w.min(Duration::from_millis(100)));
            }
            if Instant::now() >= next {
                progress(&format!(
                    "  {} × {senders}: {tick} s, {} sent, {} answered 2xx",
                    entry.label(),
                    ctx.sent.load(Ordering::Relaxed),
                    ctx.answered_ok.load(Ordering::Relaxed)
                ));
                tick += 1;
            }
        }
        let mut sent = Vec::new();
        let mut late = 0;
        for j in joins {
            let (s, l) = j.join().expect("sender thread");
            sent.extend(s);
            late += l;
        }
        let seconds = start.elapsed().as_secs_f64();

        // Every accepted command must reach the sim; 202s may still be on their way.
        let accepted = sent
            .iter()
            .filter(|s| (200..300).contains(&s.status))
            .count();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let seen = self.sim.stats().rest_calls;
            let prefix = format!("{tag:016x}");
            let matched = self
                .sim
                .rest_calls()
                .iter()
                .filter(|r| (200..300).contains(&r.status))
                .filter(|r| trace_of(r).is_some_and(|t| t.starts_with(&prefix)))
                .count();
            if matched >= accepted || Instant::now() > deadline {
                break;
            }
            let _ = self.rt.block_on(tokio::time::timeout(
                Duration::from_millis(500),
                self.sim.wait_for(|s| s.rest_calls > seen),
            ));
        }
        let holder_after = holder_metrics(self.holder.port);
        let records = self.sim.rest_calls();

        let mut by_trace: HashMap<&str, Vec<&discord_sim::RestRecord>> = HashMap::new();
        let mut step = Step {
            entry: Some(entry),
            senders,
            seconds,
            target_rate: cfg.rate,
            commands: sent.len(),
            late_slots: late,
            ..Default::default()
        };
        for r in &records {
            match r.status {
                429 => step.sim_429s += 1,
                200..=299 => {
                    if let Some(t) = trace_of(r) {
                        by_trace.entry(t).or_default().push(r);
                    }
                }
                _ => step.sim_errors += 1,
            }
        }
        let mut at: Vec<u64> = records.iter().map(|r| r.at_us).collect();
        at.sort_unstable();
        step.sim_peak_per_sec = (0..at.len())
            .map(|i| at[i..].partition_point(|t| *t < at[i] + 1_000_000))
            .max()
            .unwrap_or(0);
        let received = if entry == Entry::Sim {
            HashMap::new()
        } else {
            holder_received(&self.holder.log_text(), &format!("{tag:016x}"))
        };
        let (mut to_holder, mut holder_to_sim) = (Vec::new(), Vec::new());
        let mut dispatch = Vec::new();
        let mut answer = Vec::new();
        for s in &sent {
            *step.kinds.entry(s.kind.name().into()).or_default() += 1;
            let status = if s.status == 0 {
                "io".to_string()
            } else {
                s.status.to_string()
            };
            *step.statuses.entry(status).or_default() += 1;
            answer.push(s.answer_us);
            match by_trace.get(s.trace.as_str()).map(Vec::as_slice) {
                Some([r]) => {
                    step.dispatched += 1;
                    dispatch.push(r.at_us.saturating_sub(s.start_us));
                    if let Some(h) = received.get(s.trace.as_str()) {
                        to_holder.push(h.saturating_sub(s.start_us));
                        holder_to_sim.push(r.at_us.saturating_sub(*h));
                    }
                }
                Some(rs) if rs.len() > 1 => {
                    step.duplicated += 1;
                    let first = rs.iter().map(|r| r.at_us).min().unwrap_or(0);
                    dispatch.push(first.saturating_sub(s.start_us));
                }
                _ if (200..300).contains(&s.status) => step.missing += 1,
                _ => {}
            }
        }
        step.dispatch = percentiles(dispatch);
        step.answer = percentiles(answer);
        if cfg.edge_log && matches!(entry, Entry::EdgeWorker | Entry::EdgeProxy) {
            // wrangler writes the Worker's lines some time after the answers; poll its log
            // (a file: nothing to await) until every answered command's line is there, bounded.
            let answered = sent.iter().filter(|s| s.status != 0).count();
            let deadline = Instant::now() + Duration::from_secs(10);
            let (admit, total) = loop {
                let (a, t) = worker_timings(&self.edge.log_text(), &format!("{tag:016x}"));
                if t.len() >= answered || Instant::now() > deadline {
                    break (a, t);
                }
                thread::sleep(Duration::from_millis(100));
            };
            step.worker_admit = percentiles(admit);
            step.worker_total = percentiles(total);
        }
        step.to_holder = percentiles(to_holder);
        step.holder_to_sim = percentiles(holder_to_sim);
        if matches!(entry, Entry::EdgeWorker | Entry::EdgeProxy | Entry::Holder) {
            step.holder_queue_wait_mean_ms = mean_ms(
                &holder_before,
                &holder_after,
                "holder_command_queue_wait_seconds",
            );
            step.holder_dispatch_mean_ms = mean_ms(
                &holder_before,
                &holder_after,
                "holder_command_dispatch_seconds",
            );
        }
        step
    }
}

/// Unix µs of a UTC RFC 3339 timestamp as `tracing` prints it (`2026-11-26T10:11:20.919175Z`).
fn rfc3339_us(t: &str) -> Option<u64> {
    let (date, time) = t.strip_suffix('Z')?.split_once('T')?;
    let mut d = date.split('-').map(|v| v.parse::<i64>().ok());
    let (y, m, day) = (d.next()??, d.next()??, d.next()??);
    let (hms, frac) = time.split_once('.').unwrap_or((time, "0"));
    let mut h = hms.split(':').map(|v| v.parse::<i64>().ok());
    let (hh, mm, ss) = (h.next()??, h.next()??, h.next()??);
    let micros: i64 = format!("{frac:0<6}").get(..6)?.parse().ok()?;
    // Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's days_from_civil).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + hh * 3600 + mm * 60 + ss;
    u64::try_from(secs * 1_000_000 + micros).ok()
}

/// Trace id → when the holder logged `command received` for it (unix µs), for trace ids
/// starting with `prefix`.
fn holder_received(log: &str, prefix: &str) -> HashMap<String, u64> {
    let mut out = HashMap::new();
    for line in log.lines().filter(|l| l.contains("command received")) {
        let Some(trace) = line
            .split_once("trace_id=")
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .map(|t| t.trim_matches('"'))
            .filter(|t| t.starts_with(prefix))
        else {
            continue;
        };
        if let Some(at) = line.split_whitespace().next().and_then(rfc3339_us) {
            out.entry(trace.to_string()).or_insert(at);
        }
    }
    out
}

/// From the Worker's log lines for trace ids starting with `prefix`: (handler start → admitted,
/// handler start → the holder's answer), in µs (the Worker logs whole ms).
fn worker_timings(log: &str, prefix: &str) -> (Vec<u64>, Vec<u64>) {
    let needle = format!("trace={prefix}");
    let ms_after = |line: &str, key: &str| {
        line.split_once(key)?
            .1
            .split_whitespace()
            .next()?
            .parse::<u64>()
            .ok()
            .map(|ms| ms * 1000)
    };
    let (mut admit, mut total) = (Vec::new(), Vec::new());
    for line in log.lines().filter(|l| l.contains(&needle)) {
        if let Some(v) = ms_after(line, "(admitted in ") {
            admit.push(v);
        } else if line.contains("holder answered") {
            if let Some(v) = line
                .rsplit_once(" in ")
                .and_then(|(_, r)| r.split_whitespace().next()?.parse::<u64>().ok())
            {
                total.push(v * 1000);
            }
        }
    }
    (admit, total)
}

/// The trace id of a REST record's `traceparent`.
fn trace_of(r: &discord_sim::RestRecord) -> Option<&str> {
    r.traceparent.as_deref()?.split('-').nth(1)
}

/// Runs every step of `cfg` on one stack; `progress` gets a line now and then.
pub fn run(cfg: &Config, progress: &dyn Fn(&str)) -> Report {
    progress("command-bench: starting discord-sim, the holder (release) and wrangler dev…");
    let stack = Stack::start(cfg);
    stack.wait_ready();
    progress(&format!(
        "command-bench: ready (worker port {}, wrangler port {}, holder {}, sim {})",
        stack.worker_port, stack.edge.port, stack.holder.port, stack.sim_port
    ));
    // One unmeasured second per entry first: connections, the holder's bucket state, workerd's
    // first calls.
    let warm = Config {
        step: Duration::from_secs(1),
        ..cfg.clone()
    };
    for &entry in &cfg.entries {
        let s = stack.step(
            entry,
            cfg.senders.first().copied().unwrap_or(10),
            &warm,
            &|_| {},
        );
        progress(&format!(
            "command-bench: warm-up {}: {} commands, statuses {:?}",
            entry.label(),
            s.commands,
            s.statuses
        ));
    }
    let mut steps = Vec::new();
    for &n in &cfg.senders {
        for &entry in &cfg.entries {
            progress(&format!(
                "command-bench: {} with {n} senders for {:?} at {} commands/s…",
                entry.label(),
                cfg.step,
                cfg.rate
            ));
            let s = stack.step(entry, n, cfg, progress);
            progress(&format!(
                "command-bench: {} × {n}: {} commands, dispatch p50/p95/p99 {:.2}/{:.2}/{:.2} ms, statuses {:?}, sim 429s {}",
                entry.label(),
                s.commands,
                s.dispatch.p50_ms,
                s.dispatch.p95_ms,
                s.dispatch.p99_ms,
                s.statuses,
                s.sim_429s
            ));
            steps.push(s);
        }
    }
    // Ratios against the baselines at the same sender count.
    let p95 = |steps: &[Step], n: usize, e: Entry| {
        steps
            .iter()
            .find(|s| s.senders == n && s.entry == Some(e))
            .map(|s| s.dispatch.p95_ms)
            .filter(|v| v.is_finite() && *v > 0.0)
    };
    let ratios: Vec<(Option<f64>, Option<f64>)> = steps
        .iter()
        .map(|s| {
            let me = s.dispatch.p95_ms;
            (
                p95(&steps, s.senders, Entry::Holder).map(|b| me / b),
                p95(&steps, s.senders, Entry::Sim).map(|b| me / b),
            )
        })
        .collect();
    for (s, (h, f)) in steps.iter_mut().zip(ratios) {
        s.p95_vs_holder = h;
        s.p95_vs_sim = f;
    }
    let report = Report {
        version: "1.0",
        config: cfg.clone(),
        worker_port: stack.worker_port,
        proxy_port: stack.edge.port,
        target_p95_ms: TARGET_P95_MS,
        steps,
    };
    let Stack {
        rt,
        sim,
        holder,
        edge,
        ..
    } = stack;
    drop(holder);
    drop(edge);
    rt.block_on(sim.shutdown());
    report
}

fn hops(st: &Step) -> String {
    if st.to_holder.count == 0 {
        return "—".into();
    }
    format!(
        "{}, {} / {}, {}",
        ms(st.to_holder.p50_ms),
        ms(st.to_holder.p95_ms),
        ms(st.holder_to_sim.p50_ms),
        ms(st.holder_to_sim.p95_ms)
    )
}

fn ratio(v: Option<f64>) -> String {
    v.map_or("—".into(), |r| format!("×{r:.1}"))
}

/// The report as a Markdown table (also what the binary prints).
pub fn markdown(r: &Report) -> String {
    let c = &r.config;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "### Command dispatch: {} commands/s over {} channels, {:.0} s per step\n",
        c.rate,
        c.channels,
        c.step.as_secs_f64()
    );
    let _ = writeln!(
        s,
        "| senders | entry | commands (send / react / typing) | answers | dispatch p50 / p95 / p99 (ms) | p95 vs holder / sim | answer p50 / p95 / p99 (ms) | POST→holder / holder→sim p50, p95 (ms) | holder queue wait / dispatch mean (ms) | sim calls peak /s | sim 429s | missing / dup | late slots |"
    );
    let _ = writeln!(s, "|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for st in &r.steps {
        let k = |n: &str| st.kinds.get(n).copied().unwrap_or(0);
        let statuses: Vec<String> = st
            .statuses
            .iter()
            .map(|(k, v)| format!("{k}: {v}"))
            .collect();
        let d = &st.dispatch;
        let a = &st.answer;
        let _ = writeln!(
            s,
            "| {} | {} | {} ({} / {} / {}) | {} | {} / {} / {} | {} / {} | {} / {} / {} | {} | {} / {} | {} | {} | {} / {} | {} |",
            st.senders,
            st.entry.map_or("?", Entry::label),
            st.commands,
            k("send_message"),
            k("add_reaction"),
            k("typing_start"),
            statuses.join(", "),
            ms(d.p50_ms),
            ms(d.p95_ms),
            ms(d.p99_ms),
            ratio(st.p95_vs_holder),
            ratio(st.p95_vs_sim),
            ms(a.p50_ms),
            ms(a.p95_ms),
            ms(a.p99_ms),
            hops(st),
            st.holder_queue_wait_mean_ms.map_or("—".into(), ms),
            st.holder_dispatch_mean_ms.map_or("—".into(), ms),
            st.sim_peak_per_sec,
            st.sim_429s,
            st.missing,
            st.duplicated,
            st.late_slots
        );
    }
    if c.edge_log {
        let _ = writeln!(
            s,
            "\n| senders | entry | Worker: start → admitted p50 / p95 (ms) | Worker: start → holder answered p50 / p95 (ms) |"
        );
        let _ = writeln!(s, "|---|---|---|---|");
        for st in r.steps.iter().filter(|s| s.worker_total.count > 0) {
            let _ = writeln!(
                s,
                "| {} | {} | {} / {} | {} / {} |",
                st.senders,
                st.entry.map_or("?", Entry::label),
                ms(st.worker_admit.p50_ms),
                ms(st.worker_admit.p95_ms),
                ms(st.worker_total.p50_ms),
                ms(st.worker_total.p95_ms)
            );
        }
    }
    let _ = writeln!(s);
    for st in r
        .steps
        .iter()
        .filter(|s| s.entry == Some(Entry::EdgeWorker))
    {
        let verdict = if st.dispatch.p95_ms < r.target_p95_ms {
            "meets"
        } else {
            "misses"
        };
        let _ = writeln!(
            s,
            "- {} senders: edge dispatch p95 {} ms {verdict} the target (< {} ms).",
            st.senders,
            ms(st.dispatch.p95_ms),
            r.target_p95_ms
        );
    }
    let _ = writeln!(
        s,
        "- Dispatch: the sender's POST start (unix µs) to the sim's `RestRecord.at_us` for that command, matched by the `traceparent` trace id the sender chose; answer: POST start to the answer read. One new TCP connection per request (`Connection: close`)."
    );
    let _ = writeln!(
        s,
        "- Baselines in the same run: `holder /commands` is the holder's POST /commands with the edge's body (the edge skipped); `sim REST` is the REST call itself (the floor). Ratios are p95 over the baseline's p95 at the same sender count."
    );
    let _ = writeln!(
        s,
        "- Every sender is its own user (JWT `sub`, `read write`); commands go round-robin over the channels (send : react : typing = 3 : 1 : 1 per channel over time), all senders together paced to the rate; a sender still waiting at its next slot skips it (late slots)."
    );
    s
}

/// Writes `command-bench.json` and `command-bench.md` into `dir`; returns the paths.
pub fn write(dir: &Path, r: &Report) -> std::io::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let json = dir.join("command-bench.json");
    std::fs::write(
        &json,
        serde_json::to_string_pretty(r).map_err(std::io::Error::other)?,
    )?;
    let md = dir.join("command-bench.md");
    std::fs::write(&md, markdown(r))?;
    Ok(vec![json, md])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_tracing_timestamps() {
        assert_eq!(rfc3339_us("1970-01-01T00:00:00.000001Z"), Some(1));
        assert_eq!(
            rfc3339_us("2026-11-26T10:11:20.919175Z"),
            Some(1_795_687_880_919_175)
        );
        assert_eq!(
            rfc3339_us("2000-03-01T00:00:00Z"),
            Some(951_868_800_000_000)
        );
        assert_eq!(rfc3339_us("not a time"), None);
    }

    #[test]
    fn finds_the_holder_receipt_of_each_trace() {
        let log = "2026-11-26T10:11:20.919175Z  INFO gateway_holder::commands::http: command received trace_id=00ab0000000000000000000000000001 command_id=c1 kind=\"send_message\"\n\
                   2026-11-26T10:11:20.920131Z  INFO gateway_holder::commands::executor: discord call trace_id=\"00ab0000000000000000000000000001\" status=200\n\
                   2026-11-26T10:11:21.000000Z  INFO gateway_holder::commands::http: command received trace_id=ffff0000000000000000000000000002 command_id=c2\n";
        let got = holder_received(log, "00ab");
        assert_eq!(got.len(), 1);
        assert_eq!(
            got.get("00ab0000000000000000000000000001"),
            Some(&1_795_687_880_919_175)
        );
    }
}
