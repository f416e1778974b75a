//! The simulator driven by real third-party clients: twilight-gateway (zlib-stream, since the
//! dev-dependency enables twilight's `zlib` feature) and twilight-http. If twilight accepts the
//! sim's payloads, headers and close behaviour, so should any client written against Discord.

mod common;

use std::time::{Duration, Instant};

use common::WAIT;
use discord_sim::config::demo;
use discord_sim::{Fault, RateLimitScope, RestLimits, RouteLimit, Sim, SimConfig, SimEvent};
use tokio::time::timeout;
use twilight_gateway::{
    ConfigBuilder, Event, EventTypeFlags, Intents, Shard, ShardId, StreamExt as _,
};
use twilight_model::gateway::payload::incoming::GuildCreate;
use twilight_model::id::Id;

fn intents() -> Intents {
    Intents::GUILDS
        | Intents::GUILD_MEMBERS
        | Intents::GUILD_VOICE_STATES
        | Intents::GUILD_MESSAGES
        | Intents::GUILD_MESSAGE_REACTIONS
        | Intents::GUILD_MESSAGE_TYPING
        | Intents::MESSAGE_CONTENT
}

fn shard(sim: &Sim) -> Driven {
    let config = ConfigBuilder::new(sim.config().token.clone(), intents())
        .proxy_url(sim.gateway_url())
        .build();
    drive(Shard::with_config(ShardId::ONE, config))
}

fn http(sim: &Sim) -> twilight_http::Client {
    twilight_http::Client::builder()
        .proxy(sim.addr().to_string(), true)
        .token(sim.config().token.clone())
        .build()
}

/// A shard polled continuously in its own task (so it reconnects and resumes on its own, as in
/// production), its events forwarded to the test.
struct Driven {
    events: tokio::sync::mpsc::UnboundedReceiver<Event>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Driven {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// An identify queue that never waits (twilight's default spaces identifies 5 s apart, as Discord's
/// `max_concurrency` requires; the sim doesn't enforce that, and tests shouldn't wait).
struct NoWait;

impl twilight_gateway::queue::Queue for NoWait {
    fn enqueue(&self, _shard: u32) -> tokio::sync::oneshot::Receiver<()> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let _ = tx.send(());
        rx
    }
}

fn shard_no_wait(sim: &Sim) -> Driven {
    let config = ConfigBuilder::new(sim.config().token.clone(), intents())
        .proxy_url(sim.gateway_url())
        .queue(NoWait)
        .build();
    drive(Shard::with_config(ShardId::ONE, config))
}

fn drive<Q>(mut shard: Shard<Q>) -> Driven
where
    Q: twilight_gateway::queue::Queue + Send + Sync + Unpin + 'static,
{
    let (tx, events) = tokio::sync::mpsc::unbounded_channel();
    let task = tokio::spawn(async move {
        while let Some(item) = shard.next_event(EventTypeFlags::all()).await {
            match item {
                Ok(event) => {
                    if tx.send(event).is_err() {
                        return;
                    }
                }
                // A payload twilight can't parse is a sim bug: end the stream so the test fails.
                Err(e) => panic!("twilight error: {e:?}"),
            }
        }
    });
    Driven { events, task }
}

/// Reads events until `f` returns `Some`.
async fn until<T>(shard: &mut Driven, mut f: impl FnMut(Event) -> Option<T>) -> T {
    timeout(WAIT, async {
        loop {
            match shard.events.recv().await {
                Some(event) => {
                    if let Some(t) = f(event) {
                        return t;
                    }
                }
                None => panic!("shard task ended (see the twilight error above)"),
            }
        }
    })
    .await
    .expect("event in time")
}

async fn ready(shard: &mut Driven) -> String {
    let session = until(shard, |e| match e {
        Event::Ready(r) => Some(r.session_id),
        _ => None,
    })
    .await;
    until(shard, |e| matches!(e, Event::GuildCreate(_)).then_some(())).await;
    session
}

fn message(content: &str) -> SimEvent {
    SimEvent::MessageCreate {
        channel_id: demo::GENERAL,
        author_id: demo::ALICE,
        content: content.to_owned(),
    }
}

#[tokio::test]
async fn identify_ready_guild_and_every_event_kind_parse_in_twilight() {
    let sim = common::start_fast().await;
    let mut shard = shard(&sim);
    let session = until(&mut shard, |e| match e {
        Event::Ready(r) => Some(r),
        _ => None,
    })
    .await;
    assert_eq!(session.guilds.len(), 1);
    assert_eq!(session.guilds[0].id.get(), demo::GUILD_ID);
    assert_eq!(session.user.id.get(), demo::BOT);
    assert!(session.resume_gateway_url.ends_with("/resume"));
    assert_eq!(sim.sessions()[0].session_id, session.session_id);
    let guild = until(&mut shard, |e| match e {
        Event::GuildCreate(g) => Some(*g),
        _ => None,
    })
    .await;
    let GuildCreate::Available(guild) = guild else {
        panic!("guild unavailable")
    };
    assert_eq!(guild.channels.len(), 4);
    assert_eq!(guild.members.len(), 6, "five users and the bot");
    assert_eq!(guild.voice_states.len(), 2);
    let conns = sim.connections();
    assert!(conns[0].zlib, "twilight negotiated zlib-stream");

    let created = sim.emit(message("hello twilight")).await;
    assert_eq!(created.seq, Some(3));
    let m = until(&mut shard, |e| match e {
        Event::MessageCreate(m) => Some(m),
        _ => None,
    })
    .await;
    assert_eq!(m.content, "hello twilight");
    assert_eq!(m.author.id.get(), demo::ALICE);
    let mid = m.id.get();

    sim.emit(SimEvent::MessageReactionAdd {
        channel_id: demo::GENERAL,
        message_id: mid,
        user_id: demo::BOB,
        emoji: "🎉".into(),
    })
    .await;
    let r = until(&mut shard, |e| match e {
        Event::ReactionAdd(r) => Some(r),
        _ => None,
    })
    .await;
    assert_eq!(r.message_id.get(), mid);
    assert_eq!(r.user_id.get(), demo::BOB);

    sim.emit(SimEvent::TypingStart {
        channel_id: demo::RANDOM,
        user_id: demo::CAROL,
    })
    .await;
    let t = until(&mut shard, |e| match e {
        Event::TypingStart(t) => Some(t),
        _ => None,
    })
    .await;
    assert_eq!(t.user_id.get(), demo::CAROL);

    for (ev, want) in [
        (
            SimEvent::VoiceJoin {
                user_id: demo::DAVE,
                channel_id: demo::GAMING,
            },
            Some(demo::GAMING),
        ),
        (
            SimEvent::VoiceMove {
                user_id: demo::DAVE,
                channel_id: demo::LOUNGE,
            },
            Some(demo::LOUNGE),
        ),
        (
            SimEvent::VoiceLeave {
                user_id: demo::DAVE,
            },
            None,
        ),
    ] {
        sim.emit(ev).await;
        let v = until(&mut shard, |e| match e {
            Event::VoiceStateUpdate(v) => Some(v),
            _ => None,
        })
        .await;
        assert_eq!(v.user_id.get(), demo::DAVE);
        assert_eq!(v.channel_id.map(|c| c.get()), want);
    }

    sim.emit(SimEvent::MessageDelete {
        channel_id: demo::GENERAL,
        message_id: mid,
    })
    .await;
    let d = until(&mut shard, |e| match e {
        Event::MessageDelete(d) => Some(d),
        _ => None,
    })
    .await;
    assert_eq!(d.id.get(), mid);

    sim.emit(SimEvent::GuildMemberRemove {
        user_id: demo::ERIN,
    })
    .await;
    let r = until(&mut shard, |e| match e {
        Event::MemberRemove(r) => Some(r),
        _ => None,
    })
    .await;
    assert_eq!(r.user.id.get(), demo::ERIN);
    sim.shutdown().await;
}

/// Collects MESSAGE_CREATE contents until `n` are in (and notes whether RESUMED was seen).
async fn collect_messages(shard: &mut Driven, n: usize) -> (Vec<String>, bool) {
    let mut got = Vec::new();
    let mut resumed = false;
    while got.len() < n {
        until(shard, |e| match e {
            Event::MessageCreate(m) => {
                got.push(m.content.clone());
                Some(())
            }
            Event::Resumed => {
                resumed = true;
                None
            }
            _ => None,
        })
        .await;
    }
    (got, resumed)
}

#[tokio::test]
async fn resume_after_op7_loses_nothing_and_uses_resume_url() {
    let sim = common::start_fast().await;
    let mut shard = shard(&sim);
    ready(&mut shard).await;
    for i in 0..3 {
        sim.emit(message(&format!("m{i}"))).await;
    }
    let (first, _) = collect_messages(&mut shard, 3).await;
    sim.fault(Fault::Reconnect).await;
    for i in 3..6 {
        sim.emit(message(&format!("m{i}"))).await;
    }
    // Twilight closes and reconnects; emit more while that happens.
    timeout(WAIT, sim.wait_for(|s| s.connections_opened >= 2))
        .await
        .unwrap();
    for i in 6..10 {
        sim.emit(message(&format!("m{i}"))).await;
    }
    let (rest, resumed) = collect_messages(&mut shard, 7).await;
    if !resumed {
        until(&mut shard, |e| matches!(e, Event::Resumed).then_some(())).await;
    }
    let all: Vec<String> = first.into_iter().chain(rest).collect();
    let want: Vec<String> = (0..10).map(|i| format!("m{i}")).collect();
    assert_eq!(all, want, "every message exactly once, in order");
    timeout(WAIT, sim.wait_for(|s| s.resumes == 1))
        .await
        .unwrap();
    assert_eq!(sim.identifies(), 1, "resumed, not re-identified");
    let conns = sim.connections();
    assert_eq!(conns.len(), 2);
    assert_eq!(
        conns[0].close_code,
        Some(4000),
        "twilight closes with 4000 to resume"
    );
    assert!(
        conns[1].path.starts_with("/resume"),
        "resumed at resume_gateway_url"
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn resume_after_abrupt_drop_replays_what_was_emitted_while_down() {
    let sim = common::start_fast().await;
    let mut shard = shard(&sim);
    ready(&mut shard).await;
    sim.emit(message("before")).await;
    collect_messages(&mut shard, 1).await;
    let mut notices = sim.subscribe();
    sim.fault(Fault::DropTcp).await;
    // Emit as soon as the connection is gone (twilight is reconnecting meanwhile): whether a
    // dispatch waits in the backlog or goes to the resumed connection, none may be lost.
    timeout(WAIT, async {
        while let Ok(n) = notices.recv().await {
            if matches!(n, discord_sim::SimNotice::Closed { conn_id: 1, .. }) {
                break;
            }
        }
    })
    .await
    .unwrap();
    let mut offline = Vec::new();
    for i in 0..5 {
        offline.push(sim.emit(message(&format!("offline{i}"))).await);
    }
    assert!(offline.iter().all(|e| e.session_id.is_some()));
    let (got, _) = collect_messages(&mut shard, 5).await;
    let want: Vec<String> = (0..5).map(|i| format!("offline{i}")).collect();
    assert_eq!(got, want);
    timeout(WAIT, sim.wait_for(|s| s.resumes == 1))
        .await
        .unwrap();
    assert_eq!(sim.identifies(), 1);
    let conns = sim.connections();
    assert_eq!(conns[0].close_code, None, "dropped without a close frame");
    sim.shutdown().await;
}

#[tokio::test]
async fn twilight_http_send_reaction_typing_arrive_on_the_gateway() {
    let sim = common::start_fast().await;
    let mut shard = shard(&sim);
    ready(&mut shard).await;
    let client = http(&sim);
    let sent = client
        .create_message(Id::new(demo::GENERAL))
        .content("from REST")
        .await
        .expect("send")
        .model()
        .await
        .expect("message model");
    assert_eq!(sent.content, "from REST");
    assert_eq!(sent.author.id.get(), demo::BOT);
    let m = until(&mut shard, |e| match e {
        Event::MessageCreate(m) => Some(m),
        _ => None,
    })
    .await;
    assert_eq!(m.id, sent.id);
    assert_eq!(m.content, "from REST");

    client
        .create_reaction(
            Id::new(demo::GENERAL),
            sent.id,
            &twilight_http::request::channel::reaction::RequestReactionType::Unicode {
                name: "👍"
            },
        )
        .await
        .expect("reaction");
    let r = until(&mut shard, |e| match e {
        Event::ReactionAdd(r) => Some(r),
        _ => None,
    })
    .await;
    assert_eq!(r.message_id, sent.id);
    assert_eq!(r.user_id.get(), demo::BOT);

    client
        .create_typing_trigger(Id::new(demo::RANDOM))
        .await
        .expect("typing");
    let t = until(&mut shard, |e| match e {
        Event::TypingStart(t) => Some(t),
        _ => None,
    })
    .await;
    assert_eq!(t.channel_id.get(), demo::RANDOM);

    let calls = sim.rest_calls();
    assert_eq!(calls.len(), 3);
    assert!(calls
        .iter()
        .all(|c| c.authorization.as_deref() == Some("Bot sim-token")));
    assert_eq!(
        calls[0].path,
        format!("/api/v10/channels/{}/messages", demo::GENERAL)
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn twilight_http_honours_a_route_429() {
    let per = Duration::from_millis(1200);
    let sim = common::start(SimConfig {
        rest: RestLimits {
            message_send: RouteLimit::new(1, per),
            ..RestLimits::default()
        },
        ..SimConfig::default()
    })
    .await;
    let client = http(&sim);
    for text in ["one", "two"] {
        timeout(
            WAIT,
            client.create_message(Id::new(demo::GENERAL)).content(text),
        )
        .await
        .expect("in time")
        .expect("twilight retries the 429 and succeeds");
    }
    let calls = sim.rest_calls();
    let statuses: Vec<u16> = calls.iter().map(|c| c.status).collect();
    assert_eq!(statuses, vec![200, 429, 200]);
    // The retry waited for the bucket to reset instead of hammering.
    let gap = calls[2].at_us - calls[1].at_us;
    assert!(
        gap >= (per.as_micros() as u64) * 8 / 10,
        "retried after {gap} µs, bucket reset after ~{per:?}"
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn twilight_http_rides_out_a_429_storm() {
    let sim = common::start_fast().await;
    let client = http(&sim);
    let retry_after = Duration::from_millis(400);
    sim.fault(Fault::RateLimitStormFor {
        count: 2,
        scope: RateLimitScope::User,
        retry_after,
    })
    .await;
    let start = Instant::now();
    timeout(
        WAIT,
        client
            .create_message(Id::new(demo::GENERAL))
            .content("storm"),
    )
    .await
    .expect("in time")
    .expect("succeeds after the storm");
    let statuses: Vec<u16> = sim.rest_calls().iter().map(|c| c.status).collect();
    assert_eq!(statuses, vec![429, 429, 200]);
    assert!(start.elapsed() >= retry_after * 2 * 8 / 10);
    sim.shutdown().await;
}

/// After op 9 `false` twilight drops the session and identifies again; after a 4009 close it
/// tries RESUME, gets op 9 `false` (as Discord documents) and identifies again. Either way the
/// client ends up on a new session that receives events.
#[tokio::test]
async fn twilight_reidentifies_after_op9_false_and_after_4009() {
    let sim = common::start_fast().await;
    let mut shard = shard_no_wait(&sim);
    let first = ready(&mut shard).await;

    sim.fault(Fault::InvalidSession { resumable: false }).await;
    let second = ready(&mut shard).await;
    assert_ne!(first, second);
    assert_eq!(sim.identifies(), 2);

    sim.fault(Fault::Close { code: 4009 }).await;
    let third = ready(&mut shard).await;
    assert_ne!(second, third);
    assert_eq!(sim.identifies(), 3);
    assert_eq!(
        sim.stats().resumes_refused,
        1,
        "twilight tried to resume after 4009"
    );

    sim.emit(message("still here")).await;
    let (got, _) = collect_messages(&mut shard, 1).await;
    assert_eq!(got, vec!["still here".to_owned()]);
    sim.shutdown().await;
}

/// A zombied connection (heartbeats not ACKed) is detected by twilight, which reconnects and
/// resumes without losing anything.
#[tokio::test]
async fn twilight_recovers_from_a_zombie_connection_by_resuming() {
    let sim = common::start(SimConfig {
        heartbeat_interval: Duration::from_millis(300),
        ..SimConfig::default()
    })
    .await;
    let mut shard = shard(&sim);
    ready(&mut shard).await;
    sim.fault(Fault::StopAcks(true)).await;
    // Twilight notices the missing ACK at its next beat, closes and resumes.
    timeout(WAIT, sim.wait_for(|s| s.connections_opened >= 2))
        .await
        .unwrap();
    sim.fault(Fault::StopAcks(false)).await;
    sim.emit(message("after zombie")).await;
    let (got, _) = collect_messages(&mut shard, 1).await;
    assert_eq!(got, vec!["after zombie".to_owned()]);
    timeout(WAIT, sim.wait_for(|s| s.resumes >= 1))
        .await
        .unwrap();
    assert_eq!(sim.identifies(), 1);
    sim.shutdown().await;
}
