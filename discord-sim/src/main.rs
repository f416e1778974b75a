//! The `discord-sim` binary: serves the simulator on `--listen` until Ctrl-C, optionally running
//! the demo scenario (three guilds unless `--guilds` says otherwise).

use std::net::SocketAddr;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use discord_sim::{Sim, SimConfig};

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Scenario {
    /// Users chatting, reacting, typing, joining/leaving/moving voice, dropping out, in every
    /// guild (three unless `--guilds` is given).
    Demo,
    /// Nothing happens unless asked through the control API.
    None,
}

/// A Discord Gateway v10 + REST simulator with fault injection and traffic generation.
#[derive(Parser, Debug)]
#[command(name = "discord-sim", version)]
struct Args {
    /// Address to listen on (gateway, REST under /api/v10, control API under /_sim).
    #[arg(long, default_value = "127.0.0.1:8791")]
    listen: SocketAddr,
    /// The only bot token accepted.
    #[arg(long, default_value = "sim-token")]
    token: String,
    /// What to run.
    #[arg(long, value_enum, default_value = "none")]
    scenario: Scenario,
    /// Heartbeat interval sent in HELLO, in milliseconds.
    #[arg(long, default_value_t = 41_250)]
    heartbeat_interval_ms: u64,
    /// How long a disconnected session can be resumed, in seconds.
    #[arg(long, default_value_t = 120)]
    resume_window_secs: u64,
    /// Split each zlib-stream message across two websocket messages.
    #[arg(long)]
    split_zlib_frames: bool,
    /// Split every compressed message: zlib-stream over two websocket messages, zstd-stream into
    /// three frames of one message.
    #[arg(long)]
    split_compressed_frames: bool,
    /// Privileged intents the application may use (bitfield; default all three).
    #[arg(long)]
    privileged_intents: Option<u64>,
    /// Guilds the bot is in: the demo guild, then distinct generated ones (default 1, or 3 with
    /// `--scenario demo`).
    #[arg(long)]
    guilds: Option<usize>,
    /// `shards` recommended by `GET /gateway/bot`.
    #[arg(long, default_value_t = 1)]
    shards: u32,
    /// `session_start_limit.max_concurrency`: IDENTIFYs allowed per 5 s, one per bucket
    /// `shard_id % max_concurrency`.
    #[arg(long, default_value_t = 1)]
    max_concurrency: u32,
    /// Accept REST calls without a `DiscordBot (url, version)` User-Agent.
    #[arg(long)]
    allow_any_user_agent: bool,
}

#[tokio::main]
async fn main() {
    // Logs go to stderr; stdout carries only the one-line banner with the addresses.
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "discord_sim=info".into()),
        )
        .init();
    let args = Args::parse();
    let guilds = args
        .guilds
        .unwrap_or(if matches!(args.scenario, Scenario::Demo) {
            3
        } else {
            1
        });
    let mut config = SimConfig {
        recommended_shards: args.shards.max(1),
        max_concurrency: args.max_concurrency.max(1),
        require_user_agent: !args.allow_any_user_agent,
        token: args.token,
        heartbeat_interval: Duration::from_millis(args.heartbeat_interval_ms),
        resume_window: Duration::from_secs(args.resume_window_secs),
        split_zlib_frames: args.split_zlib_frames,
        split_compressed_frames: args.split_compressed_frames,
        ..SimConfig::with_guilds(guilds)
    };
    if let Some(p) = args.privileged_intents {
        config.privileged_intents_allowed = p;
    }
    let sim = match Sim::start(args.listen, config).await {
        Ok(sim) => sim,
        Err(e) => {
            eprintln!("discord-sim: cannot listen on {}: {e}", args.listen);
            std::process::exit(1);
        }
    };
    println!(
        "discord-sim listening: gateway {} REST {} control http://{}/_sim",
        sim.gateway_url(),
        sim.api_url(),
        sim.addr()
    );
    if matches!(args.scenario, Scenario::Demo) {
        sim.run_demo_scenario();
    }
    let _ = tokio::signal::ctrl_c().await;
    sim.shutdown().await;
}
