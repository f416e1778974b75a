//! Generated load: events at a base rate with periodic bursts, for a duration, so benchmarks and
//! latency tests have realistic, measurable traffic (every dispatch carries `_sim_sent_us`).
//!
//! The generator paces by schedule, not by sleeping per event: at each tick it emits however many
//! events the rate curve says are due by now, so timer granularity doesn't cap the rate.
//!
//! Events happen in the first guild (default), in one chosen guild, or round-robin over every
//! guild the bot is in ([`TrafficGuilds`]); each reaches only its guild's shard. A guild in an
//! outage gets nothing: round-robin skips it, and events aimed at it are counted in `sent` but
//! reach no session.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use rand::Rng;
use serde::{Deserialize, Serialize};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::clock::duration_ms;
use crate::config::ChannelKind;
use crate::events::{self, Resolved, SimEvent};
use crate::state::SimState;

/// Which events the generator makes, as relative weights.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrafficMix {
    /// MESSAGE_CREATE.
    #[serde(default)]
    pub messages: u32,
    /// MESSAGE_REACTION_ADD (to recent messages).
    #[serde(default)]
    pub reactions: u32,
    /// TYPING_START.
    #[serde(default)]
    pub typing: u32,
    /// VOICE_STATE_UPDATE (joins, moves, leaves).
    #[serde(default)]
    pub voice: u32,
}

impl Default for TrafficMix {
    /// Messages only.
    fn default() -> Self {
        Self {
            messages: 1,
            reactions: 0,
            typing: 0,
            voice: 0,
        }
    }
}

impl TrafficMix {
    /// A chat-like mix: mostly messages, some reactions, typing and voice.
    pub fn chat() -> Self {
        Self {
            messages: 70,
            reactions: 15,
            typing: 10,
            voice: 5,
        }
    }
}

/// Periodic bursts on top of the base rate.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Burst {
    /// Rate during a burst (events/s).
    pub rate_per_sec: f64,
    /// How long each burst lasts.
    #[serde(rename = "length_ms", with = "duration_ms")]
    pub length: Duration,
    /// A burst starts every `every` (the first at the start).
    #[serde(rename = "every_ms", with = "duration_ms")]
    pub every: Duration,
}

/// Which guilds generated events happen in. JSON: `"first"`, `"all"`, `{"one":"<guild id>"}`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TrafficGuilds {
    /// The first guild the bot is in (the default; what single-guild setups always did).
    #[default]
    First,
    /// Every guild the bot is in and that is available, round-robin.
    All,
    /// One guild.
    One(#[serde(with = "crate::clock::snowflake")] u64),
}

/// What to generate. JSON: `{"rate_per_sec":100,"duration_ms":10000,
/// "burst":{"rate_per_sec":500,"length_ms":200,"every_ms":2000},"mix":{"messages":1},
/// "guilds":"all"}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrafficSpec {
    /// Base rate (events/s); `f64::INFINITY` (library only) means as fast as possible.
    pub rate_per_sec: f64,
    /// Optional bursts.
    #[serde(default)]
    pub burst: Option<Burst>,
    /// How long to run.
    #[serde(rename = "duration_ms", with = "duration_ms")]
    pub duration: Duration,
    /// Stop after this many events.
    #[serde(default)]
    pub max_events: Option<u64>,
    /// Event kinds.
    #[serde(default)]
    pub mix: TrafficMix,
    /// Where events happen.
    #[serde(default)]
    pub guilds: TrafficGuilds,
}

impl TrafficSpec {
    /// `rate_per_sec` for `duration`, messages only.
    pub fn steady(rate_per_sec: f64, duration: Duration) -> Self {
        Self {
            rate_per_sec,
            burst: None,
            duration,
            max_events: None,
            mix: TrafficMix::default(),
            guilds: TrafficGuilds::First,
        }
    }

    /// Events due `t` after the start.
    pub fn due_at(&self, t: Duration) -> u64 {
        let cap = self.max_events.unwrap_or(u64::MAX);
        if !self.rate_per_sec.is_finite() {
            return cap;
        }
        let secs = t.as_secs_f64();
        let mut n = self.rate_per_sec * secs;
        if let Some(b) = &self.burst {
            if !b.every.is_zero() {
                let every = b.every.as_secs_f64();
                let len = b.length.as_secs_f64().min(every);
                let in_burst = (secs / every).floor() * len + (secs % every).min(len);
                n += (b.rate_per_sec - self.rate_per_sec) * in_burst;
            }
        }
        (n.max(0.0) as u64).min(cap)
    }
}

/// What a traffic run did.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TrafficReport {
    /// Events emitted.
    pub sent: u64,
    /// How long it ran.
    #[serde(rename = "elapsed_ms", with = "duration_ms")]
    pub elapsed: Duration,
}

/// A running traffic generator; await it for the report.
#[derive(Debug)]
pub struct TrafficHandle {
    join: JoinHandle<TrafficReport>,
    stop: Arc<AtomicBool>,
}

impl TrafficHandle {
    /// Asks the generator to stop early (the report counts what was sent).
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

impl Future for TrafficHandle {
    type Output = TrafficReport;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<TrafficReport> {
        Pin::new(&mut self.join).poll(cx).map(|r| {
            r.unwrap_or(TrafficReport {
                sent: 0,
                elapsed: Duration::ZERO,
            })
        })
    }
}

/// Queued, unwritten dispatches above which the generator waits for the sockets.
const HIGH_WATER: i64 = 20_000;

/// Starts a generator.
pub fn start(state: Arc<SimState>, spec: TrafficSpec) -> TrafficHandle {
    let stop = Arc::new(AtomicBool::new(false));
    let stop2 = stop.clone();
    let join = tokio::spawn(async move { run(state, spec, stop2).await });
    TrafficHandle { join, stop }
}

async fn run(state: Arc<SimState>, spec: TrafficSpec, stop: Arc<AtomicBool>) -> TrafficReport {
    let start = Instant::now();
    let mut sent = 0u64;
    let mut shutdown = state.shutdown.subscribe();
    let total_weight = spec.mix.messages + spec.mix.reactions + spec.mix.typing + spec.mix.voice;
    let total_weight = total_weight.max(1);
    loop {
        let elapsed = start.elapsed();
        if elapsed >= spec.duration || stop.load(Ordering::Relaxed) || *shutdown.borrow_and_update()
        {
            break;
        }
        let due = spec.due_at(elapsed);
        if sent >= spec.max_events.unwrap_or(u64::MAX) {
            break;
        }
        // Flow control: never let more than HIGH_WATER dispatches wait for slow sockets.
        if state.queued.load(Ordering::Relaxed) > HIGH_WATER {
            tokio::time::sleep(Duration::from_millis(1)).await;
            continue;
        }
        let mut chunk = 0;
        while sent < due && chunk < 1024 {
            let pick = rand::thread_rng().gen_range(0..total_weight);
            emit_one(&state, &spec, pick, sent);
            sent += 1;
            chunk += 1;
        }
        if chunk >= 1024 {
            tokio::task::yield_now().await;
        } else {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    // The schedule covers the whole duration: emit what the last ticks left due.
    let stopped = stop.load(Ordering::Relaxed) || *shutdown.borrow();
    if !stopped && start.elapsed() >= spec.duration {
        let due = spec.due_at(spec.duration);
        while sent < due {
            let pick = rand::thread_rng().gen_range(0..total_weight);
            emit_one(&state, &spec, pick, sent);
            sent += 1;
            if sent.is_multiple_of(1024) {
                tokio::task::yield_now().await;
            }
        }
    }
    TrafficReport {
        sent,
        elapsed: start.elapsed(),
    }
}

/// Emits the `n`-th generated event; `pick` selects the kind by the mix weights.
fn emit_one(state: &SimState, spec: &TrafficSpec, pick: u32, n: u64) {
    let mix = &spec.mix;
    let _ = state.emit_with(|guilds, ids| {
        let i = match spec.guilds {
            TrafficGuilds::First => (!guilds.list().is_empty()).then_some(0),
            TrafficGuilds::One(id) => guilds.index_of(id),
            TrafficGuilds::All => {
                let live: Vec<usize> = (0..guilds.list().len())
                    .filter(|i| !guilds.list()[*i].unavailable)
                    .collect();
                (!live.is_empty()).then(|| live[(n % live.len() as u64) as usize])
            }
        };
        let Some(i) = i else {
            return Err(());
        };
        let guild = &mut guilds.list_mut()[i];
        let mut rng = rand::thread_rng();
        let members = guild.members();
        let bot = guild.bot().id;
        let humans: Vec<u64> = members
            .iter()
            .map(|(u, _)| u.id)
            .filter(|id| *id != bot)
            .collect();
        let user = humans
            .get(rng.gen_range(0..humans.len().max(1)))
            .copied()
            .unwrap_or(bot);
        let texts = guild.channels_of(ChannelKind::Text);
        let voices = guild.channels_of(ChannelKind::Voice);
        let text = texts
            .get(rng.gen_range(0..texts.len().max(1)))
            .copied()
            .unwrap_or(0);
        let mut p = pick;
        let resolved: Resolved = if p < mix.messages {
            events::message_create(
                guild,
                ids.next(),
                text,
                user,
                &format!("traffic message #{n}"),
                None,
            )
        } else {
            p -= mix.messages;
            if p < mix.reactions {
                match guild.recent_message(rng.gen_range(0..20)) {
                    Some((mid, ch)) => events::reaction_add(guild, ch, mid, user, "👍"),
                    None => events::message_create(guild, ids.next(), text, user, "first!", None),
                }
            } else {
                p -= mix.reactions;
                if p < mix.typing {
                    events::typing_start(guild, text, user)
                } else {
                    let ev = match guild.voice_of(user).map(|v| v.channel_id) {
                        Some(_) if rng.gen_bool(0.5) => SimEvent::VoiceLeave { user_id: user },
                        _ => SimEvent::VoiceJoin {
                            user_id: user,
                            channel_id: voices
                                .get(rng.gen_range(0..voices.len().max(1)))
                                .copied()
                                .unwrap_or(0),
                        },
                    };
                    ev.resolve(guild, ids)
                }
            }
        };
        Ok((resolved, ()))
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn due_follows_base_rate_and_bursts() {
        let mut spec = TrafficSpec::steady(100.0, Duration::from_secs(10));
        assert_eq!(spec.due_at(Duration::from_secs(2)), 200);
        spec.burst = Some(Burst {
            rate_per_sec: 500.0,
            length: Duration::from_millis(200),
            every: Duration::from_secs(1),
        });
        // 1 s: 0.2 s at 500/s + 0.8 s at 100/s = 180.
        assert_eq!(spec.due_at(Duration::from_secs(1)), 180);
        // 2.1 s: two full periods (360) + 0.1 s of burst (50).
        assert_eq!(spec.due_at(Duration::from_millis(2100)), 410);
        spec.max_events = Some(300);
        assert_eq!(spec.due_at(Duration::from_secs(5)), 300);
        let fast = TrafficSpec {
            rate_per_sec: f64::INFINITY,
            max_events: Some(1000),
            ..TrafficSpec::steady(0.0, Duration::from_secs(1))
        };
        assert_eq!(fast.due_at(Duration::ZERO), 1000);
    }
}
