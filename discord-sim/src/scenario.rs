//! The demo scenario: a handful of users chatting, reacting, typing, joining, leaving and moving
//! between voice channels, and now and then dropping out of voice (some come back within the
//! grace period, some don't), in every guild the bot is in (each step picks one). It gives the
//! demo (no Discord account) something to show; the binary runs it with three guilds.

use std::sync::Arc;
use std::time::Duration;

use rand::seq::SliceRandom;
use rand::Rng;
use tokio::task::JoinHandle;

use crate::config::ChannelKind;
use crate::events::SimEvent;
use crate::state::{lock, SimState};

const LINES: &[&str] = &[
    "hey all 👋",
    "anyone up for a game tonight?",
    "just pushed the fix, can someone review?",
    "lol",
    "brb coffee ☕",
    "did you see the patch notes?",
    "that build took forever",
    "I'm in the Lounge if anyone wants to chat",
    "gg",
    "ok back",
];
const EMOJI: &[&str] = &["👍", "😂", "🎉", "❤️", "👀"];

/// Runs the demo scenario until the sim shuts down (or the handle is aborted).
pub fn demo(state: Arc<SimState>) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut shutdown = state.shutdown.subscribe();
        loop {
            let wait = Duration::from_millis(rand::thread_rng().gen_range(400..1600));
            tokio::select! {
                _ = crate::state::stopped(&mut shutdown) => return,
                _ = tokio::time::sleep(wait) => {}
            }
            step(&state);
        }
    })
}

/// One random action.
fn step(state: &Arc<SimState>) {
    let (guild_id, humans, texts, voices, in_voice, recent) = {
        let guilds = lock(&state.guilds);
        let live: Vec<_> = guilds.list().iter().filter(|g| !g.unavailable).collect();
        let Some(g) = live.choose(&mut rand::thread_rng()).copied() else {
            return;
        };
        let bot = g.bot().id;
        let humans: Vec<u64> = g
            .members()
            .iter()
            .map(|(u, _)| u.id)
            .filter(|id| *id != bot)
            .collect();
        let in_voice: Vec<(u64, u64)> = g.voice_states().map(|(u, v)| (*u, v.channel_id)).collect();
        (
            g.id,
            humans,
            g.channels_of(ChannelKind::Text),
            g.channels_of(ChannelKind::Voice),
            in_voice,
            g.recent_message(rand::thread_rng().gen_range(0..5)),
        )
    };
    let mut rng = rand::thread_rng();
    let (Some(&user), Some(&text)) = (humans.choose(&mut rng), texts.choose(&mut rng)) else {
        return;
    };
    let roll = rng.gen_range(0..100);
    let event = match roll {
        0..=39 => SimEvent::MessageCreate {
            channel_id: text,
            author_id: user,
            content: LINES.choose(&mut rng).unwrap_or(&"hi").to_string(),
        },
        40..=54 => match recent {
            Some((message_id, channel_id)) => SimEvent::MessageReactionAdd {
                channel_id,
                message_id,
                user_id: user,
                emoji: EMOJI.choose(&mut rng).unwrap_or(&"👍").to_string(),
            },
            None => SimEvent::TypingStart {
                channel_id: text,
                user_id: user,
            },
        },
        55..=69 => SimEvent::TypingStart {
            channel_id: text,
            user_id: user,
        },
        _ => {
            let here = in_voice.iter().find(|(u, _)| *u == user).map(|(_, c)| *c);
            let other = voices.iter().copied().find(|c| Some(*c) != here);
            match (here, roll) {
                (None, _) => match voices.choose(&mut rng) {
                    Some(&channel_id) => SimEvent::VoiceJoin {
                        user_id: user,
                        channel_id,
                    },
                    None => return,
                },
                (Some(_), 70..=79) if other.is_some() => SimEvent::VoiceMove {
                    user_id: user,
                    channel_id: other.unwrap_or_default(),
                },
                (Some(_), 80..=89) => SimEvent::VoiceLeave { user_id: user },
                (Some(channel), _) => {
                    // Drop out: leave, and maybe come back after a while.
                    let back = rng.gen_bool(0.5);
                    let after = Duration::from_secs(rng.gen_range(5..45));
                    if back {
                        let st = state.clone();
                        tokio::spawn(async move {
                            tokio::time::sleep(after).await;
                            st.emit_in(
                                SimEvent::VoiceJoin {
                                    user_id: user,
                                    channel_id: channel,
                                },
                                Some(guild_id),
                            );
                        });
                    }
                    SimEvent::VoiceLeave { user_id: user }
                }
            }
        }
    };
    state.emit_in(event, Some(guild_id));
}
