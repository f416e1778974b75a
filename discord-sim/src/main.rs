//! The `discord-sim` binary: serves the simulator on `--listen` until Ctrl-C, optionally running
//! the demo scenario.

use std::net::SocketAddr;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use discord_sim::{Sim, SimConfig};

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Scenario {
    /// Users chatting, reacting, typing, joining/leaving/moving voice, dropping out.
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
    /// Privileged intents the application may use (bitfield; default all three).
    #[arg(long)]
    privileged_intents: Option<u64>,
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
    let mut config = SimConfig {
        token: args.token,
        heartbeat_interval: Duration::from_millis(args.heartbeat_interval_ms),
        resume_window: Duration::from_secs(args.resume_window_secs),
        split_zlib_frames: args.split_zlib_frames,
        ..SimConfig::default()
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
