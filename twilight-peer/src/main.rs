//! `twilight-receiver URL [multi|current]`: twilight-gateway 0.18 receiving only (decompression
//! and frame handling, nothing forwarded), the holder bench's baseline (`gateway-holder/benches/
//! holder.rs` builds this crate once per compression and runs it as a child process, so its CPU
//! time is its own).
//!
//! Prints `compress <zstd-stream|zlib-stream|none>` first, then the latency in µs from each
//! dispatch's `_sim_sent_us` stamp to its receipt, one per line, in chunks ended by a `.` line
//! (at most every 20 ms). Runs on tokio's multi-thread runtime (how twilight's examples run) or,
//! with `current`, on a current-thread one like the holder's.

use futures::StreamExt;
use std::io::Write;
use std::time::Duration;
use twilight_gateway::{ConfigBuilder, Intents, Message, Shard, ShardId};

/// What this build asks for (twilight's own choice: zstd over zlib).
const COMPRESS: &str = if cfg!(feature = "zstd") {
    "zstd-stream"
} else if cfg!(feature = "zlib") {
    "zlib-stream"
} else {
    "none"
};

fn now_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// The sim's send stamp in a dispatch (the last `_sim_sent_us`, which the sim appends to `d`).
fn stamp(text: &str) -> Option<u64> {
    let key = "\"_sim_sent_us\":";
    let at = text.rfind(key)? + key.len();
    let end = text[at..]
        .find(|c: char| !c.is_ascii_digit())
        .map_or(text.len(), |e| at + e);
    text[at..end].parse().ok()
}

async fn receive(url: String) {
    // The holder's default intents.
    let intents = Intents::GUILDS
        | Intents::GUILD_MEMBERS
        | Intents::GUILD_MODERATION
        | Intents::GUILD_VOICE_STATES
        | Intents::GUILD_MESSAGES
        | Intents::GUILD_MESSAGE_REACTIONS
        | Intents::GUILD_MESSAGE_TYPING
        | Intents::MESSAGE_CONTENT;
    let config = ConfigBuilder::new("sim-token".into(), intents)
        .proxy_url(url)
        .build();
    let mut shard = Shard::with_config(ShardId::ONE, config);
    let mut buf = format!("compress {COMPRESS}\n");
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    let mut stdout = std::io::stdout();
    loop {
        tokio::select! {
            m = shard.next() => match m {
                Some(Ok(Message::Text(text))) => {
                    let at = now_us();
                    if text.contains("\"op\":0") {
                        if let Some(sent) = stamp(&text) {
                            buf.push_str(&at.saturating_sub(sent).to_string());
                            buf.push('\n');
                        }
                    }
                }
                Some(_) => {}
                None => return,
            },
            _ = tick.tick() => {
                if !buf.is_empty() {
                    buf.push_str(".\n");
                    if stdout.write_all(buf.as_bytes()).and_then(|_| stdout.flush()).is_err() {
                        return;
                    }
                    buf.clear();
                }
            }
        }
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let Some(url) = args.next() else {
        eprintln!("usage: twilight-receiver URL [multi|current]");
        std::process::exit(2);
    };
    let rt = match args.next().as_deref() {
        Some("current") => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build(),
        _ => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build(),
    };
    rt.expect("tokio runtime").block_on(receive(url));
}
