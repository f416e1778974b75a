//! discord-sim's `compress=zstd-stream` checked by a client no one here wrote: twilight-gateway
//! 0.18 with its `zstd` feature (libzstd's streaming decompressor, one context per connection,
//! each websocket message one gateway message). It must identify, receive every event, resume on
//! a fresh context, reassemble a message the sim fragments over several websocket frames, and
//! come back from a message its decompressor refuses.

#![cfg(feature = "zstd")]

use std::time::Duration;

use discord_sim::config::demo;
use discord_sim::{Fault, Sim, SimConfig, SimEvent};
use tokio::time::timeout;
use twilight_gateway::{
    ConfigBuilder, Event, EventTypeFlags, Intents, Shard, ShardId, StreamExt as _,
};
use twilight_model::gateway::payload::incoming::GuildCreate;

const WAIT: Duration = Duration::from_secs(10);

async fn sim(split: bool) -> Sim {
    Sim::start(
        "127.0.0.1:0".parse().unwrap(),
        SimConfig {
            heartbeat_interval: Duration::from_millis(5000),
            identify_window: Duration::ZERO,
            split_compressed_frames: split,
            ..SimConfig::default()
        },
    )
    .await
    .expect("sim starts")
}

/// An identify queue that never waits (the sim's pacing is off).
struct NoWait;

impl twilight_gateway::queue::Queue for NoWait {
    fn enqueue(&self, _shard: u32) -> tokio::sync::oneshot::Receiver<()> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let _ = tx.send(());
        rx
    }
}

/// What the shard yielded: an event, or an error it reported (and then recovered from by
/// itself, as in production).
enum Item {
    Event(Box<Event>),
    Error(String),
}

/// A shard polled continuously in its own task, so it reconnects and resumes on its own.
struct Driven {
    items: tokio::sync::mpsc::UnboundedReceiver<Item>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Driven {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn shard(sim: &Sim) -> Driven {
    let intents = Intents::GUILDS
        | Intents::GUILD_MEMBERS
        | Intents::GUILD_VOICE_STATES
        | Intents::GUILD_MESSAGES
        | Intents::MESSAGE_CONTENT;
    let config = ConfigBuilder::new(sim.config().token.clone(), intents)
        .proxy_url(sim.gateway_url())
        .queue(NoWait)
        .build();
    let mut shard = Shard::with_config(ShardId::ONE, config);
    let (tx, items) = tokio::sync::mpsc::unbounded_channel();
    let task = tokio::spawn(async move {
        while let Some(item) = shard.next_event(EventTypeFlags::all()).await {
            let item = match item {
                Ok(event) => Item::Event(Box::new(event)),
                Err(e) => Item::Error(format!("{e:?}")),
            };
            if tx.send(item).is_err() {
                return;
            }
        }
    });
    Driven { items, task }
}

impl Driven {
    /// Events until `f` returns `Some`; an error twilight reports fails the test unless
    /// `errors` collects it.
    async fn until<T>(
        &mut self,
        mut errors: Option<&mut Vec<String>>,
        mut f: impl FnMut(Event) -> Option<T>,
    ) -> T {
        timeout(WAIT, async {
            loop {
                match self.items.recv().await {
                    Some(Item::Event(e)) => {
                        if let Some(t) = f(*e) {
                            return t;
                        }
                    }
                    Some(Item::Error(e)) => match errors.as_deref_mut() {
                        Some(errors) => errors.push(e),
                        None => panic!("twilight error: {e}"),
                    },
                    None => panic!("shard task ended"),
                }
            }
        })
        .await
        .expect("event in time")
    }

    async fn ready(&mut self) -> twilight_model::gateway::payload::incoming::Ready {
        let ready = self
            .until(None, |e| match e {
                Event::Ready(r) => Some(r),
                _ => None,
            })
            .await;
        let guild = self
            .until(None, |e| match e {
                Event::GuildCreate(g) => Some(*g),
                _ => None,
            })
            .await;
        let GuildCreate::Available(guild) = guild else {
            panic!("guild unavailable")
        };
        assert_eq!(guild.members.len(), 6, "five users and the bot");
        ready
    }

    /// `n` MESSAGE_CREATE contents, in arrival order.
    async fn messages(&mut self, n: usize, mut errors: Option<&mut Vec<String>>) -> Vec<String> {
        let mut got = Vec::new();
        while got.len() < n {
            let m = self
                .until(errors.as_deref_mut(), |e| match e {
                    Event::MessageCreate(m) => Some(m.content.clone()),
                    _ => None,
                })
                .await;
            got.push(m);
        }
        got
    }
}

async fn emit(sim: &Sim, tag: &str, range: std::ops::Range<usize>) -> Vec<String> {
    let mut sent = Vec::new();
    for i in range {
        // Some long, some short: several zstd blocks' worth of history to refer back to.
        let content = format!("{tag} {i} {}", "zstd ".repeat(i * 37 % 380));
        sim.emit(SimEvent::MessageCreate {
            channel_id: demo::GENERAL,
            author_id: demo::ALICE,
            content: content.clone(),
        })
        .await;
        sent.push(content);
    }
    sent
}

#[tokio::test]
async fn twilight_receives_every_event_over_zstd_stream() {
    let sim = sim(false).await;
    let mut shard = shard(&sim);
    let ready = shard.ready().await;
    assert_eq!(ready.guilds[0].id.get(), demo::GUILD_ID);
    let conns = sim.connections();
    assert!(
        conns[0].zstd && !conns[0].zlib,
        "twilight negotiated zstd-stream: {conns:?}"
    );
    assert!(
        conns[0]
            .query
            .as_deref()
            .is_some_and(|q| q.contains("compress=zstd-stream")),
        "{conns:?}"
    );
    let sent = emit(&sim, "m", 0..40).await;
    assert_eq!(shard.messages(40, None).await, sent);
    sim.shutdown().await;
}

#[tokio::test]
async fn twilight_resumes_on_a_fresh_zstd_context_after_op7() {
    let sim = sim(false).await;
    let mut shard = shard(&sim);
    shard.ready().await;
    let mut sent = emit(&sim, "before", 0..5).await;
    let mut got = shard.messages(5, None).await;
    sim.fault(Fault::Reconnect).await;
    sent.extend(emit(&sim, "during", 0..5).await);
    timeout(WAIT, sim.wait_for(|s| s.resumes >= 1))
        .await
        .expect("twilight resumes");
    sent.extend(emit(&sim, "after", 0..5).await);
    got.extend(shard.messages(10, None).await);
    assert_eq!(got, sent, "every message exactly once, in order");
    assert_eq!(sim.identifies(), 1, "resumed, not re-identified");
    let conns = sim.connections();
    assert_eq!(conns.len(), 2);
    assert!(
        conns[1].path.starts_with("/resume") && conns[1].zstd,
        "{conns:?}"
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn twilight_reassembles_messages_fragmented_over_websocket_frames() {
    let sim = sim(true).await;
    let mut shard = shard(&sim);
    // READY and GUILD_CREATE already came in three frames each.
    shard.ready().await;
    let mut sent = emit(&sim, "split", 0..20).await;
    let mut got = shard.messages(20, None).await;
    // And across a reconnect: the new connection's context, still fragmented.
    sim.fault(Fault::DropTcp).await;
    sent.extend(emit(&sim, "again", 0..10).await);
    timeout(WAIT, sim.wait_for(|s| s.resumes >= 1))
        .await
        .expect("twilight resumes");
    got.extend(shard.messages(10, None).await);
    assert_eq!(got, sent);
    sim.shutdown().await;
}

#[tokio::test]
async fn twilight_recovers_from_a_corrupt_zstd_message_by_resuming() {
    let sim = sim(false).await;
    let mut shard = shard(&sim);
    shard.ready().await;
    let mut sent = emit(&sim, "before", 0..3).await;
    let mut got = shard.messages(3, None).await;
    sim.fault(Fault::CorruptFrame).await;
    timeout(WAIT, sim.wait_for(|s| s.resumes >= 1))
        .await
        .expect("twilight resumes after the corrupt message");
    sent.extend(emit(&sim, "after", 0..5).await);
    let mut errors = Vec::new();
    got.extend(shard.messages(5, Some(&mut errors)).await);
    assert_eq!(got, sent);
    assert_eq!(sim.stats().corrupt_frames_sent, 1);
    assert_eq!(sim.identifies(), 1, "resumed, not re-identified");
    assert!(
        errors.iter().any(|e| e.contains("Compression")),
        "twilight reported the bad message: {errors:?}"
    );
    sim.shutdown().await;
}
