//! Scripted events: what a test (or the traffic generator, or the demo scenario) can make happen
//! in the guild, and how each becomes a Discord dispatch (`t`, `d`, the intent it needs).
//!
//! Resolving an event also updates the guild state, so voice moves and member removals stay
//! consistent with later GUILD_CREATEs.
//!
//! Which guild an event happens in: the guild that has its channel; for events naming only a
//! user (voice leave/update, member remove) the guild given with it (`Sim::emit_in`, or
//! `?guild_id=` on `POST /_sim/emit`), else the guild the user is in voice in (voice) or a member
//! of (remove), else the first guild. A channel no guild has goes to the first guild (scripted
//! events may name any channel); a channel of a guild the bot left goes nowhere. `Raw` events are
//! sent verbatim and routed by their `d.guild_id` (none: shard 0, as Discord routes DMs).

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::clock::{snowflake, unix_micros, Snowflakes};
use crate::gateway::intents;
use crate::guild::{ChannelOwner, GuildState, Guilds};
use crate::payloads::{self, MessageArgs, VoiceStateArgs};

/// An event to emit on the gateway. In the control API it is JSON tagged by `type`, e.g.
/// `{"type":"MESSAGE_CREATE","channel_id":"…","author_id":"…","content":"hi"}`; ids may be strings
/// or numbers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SimEvent {
    /// Someone posts a message.
    MessageCreate {
        /// Text channel.
        #[serde(with = "snowflake")]
        channel_id: u64,
        /// Author (a member; unknown ids get a stand-in user).
        #[serde(with = "snowflake")]
        author_id: u64,
        /// Message text.
        content: String,
    },
    /// A message is deleted.
    MessageDelete {
        /// Channel.
        #[serde(with = "snowflake")]
        channel_id: u64,
        /// The message.
        #[serde(with = "snowflake")]
        message_id: u64,
    },
    /// Someone reacts to a message.
    MessageReactionAdd {
        /// Channel.
        #[serde(with = "snowflake")]
        channel_id: u64,
        /// The message.
        #[serde(with = "snowflake")]
        message_id: u64,
        /// Who reacts.
        #[serde(with = "snowflake")]
        user_id: u64,
        /// Unicode emoji or `name:id`.
        emoji: String,
    },
    /// Someone starts typing.
    TypingStart {
        /// Channel.
        #[serde(with = "snowflake")]
        channel_id: u64,
        /// Who types.
        #[serde(with = "snowflake")]
        user_id: u64,
    },
    /// Someone joins a voice channel.
    VoiceJoin {
        /// Who.
        #[serde(with = "snowflake")]
        user_id: u64,
        /// Voice channel.
        #[serde(with = "snowflake")]
        channel_id: u64,
    },
    /// Someone leaves voice.
    VoiceLeave {
        /// Who.
        #[serde(with = "snowflake")]
        user_id: u64,
    },
    /// Someone moves to another voice channel.
    VoiceMove {
        /// Who.
        #[serde(with = "snowflake")]
        user_id: u64,
        /// New voice channel.
        #[serde(with = "snowflake")]
        channel_id: u64,
    },
    /// Someone mutes or deafens themselves in voice.
    VoiceUpdate {
        /// Who.
        #[serde(with = "snowflake")]
        user_id: u64,
        /// Self-muted.
        self_mute: bool,
        /// Self-deafened.
        self_deaf: bool,
    },
    /// A member leaves (or is removed from) the guild.
    GuildMemberRemove {
        /// Who.
        #[serde(with = "snowflake")]
        user_id: u64,
    },
    /// Any other dispatch, verbatim. `intent` is the intent bit a session needs to get it
    /// (0: every session).
    Raw {
        /// Event name.
        t: String,
        /// Payload (an object).
        d: Value,
        /// Needed intent bits.
        #[serde(default)]
        intent: u64,
    },
}

/// An event turned into a dispatch.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// Event name.
    pub t: String,
    /// Payload.
    pub d: Value,
    /// Intent bits a session needs to receive it.
    pub intent: u64,
    /// Whether sessions without MESSAGE_CONTENT get it with content stripped.
    pub has_content: bool,
    /// The guild it is about: only sessions of that guild's shard get it (`None`: shard 0).
    pub guild_id: Option<u64>,
    /// Sent whatever the guild's state (raw events, and the GUILD_DELETE/GUILD_CREATE of
    /// membership changes); otherwise nothing is sent for a guild the bot is not in or that is
    /// unavailable.
    pub verbatim: bool,
    /// A GUILD_CREATE whose `d` is built per session from the guild's state and the session's
    /// intents (`d` is then ignored).
    pub guild_create: bool,
}

impl Resolved {
    /// A dispatch about `guild_id` needing `intent`.
    pub fn new(t: &str, d: Value, intent: u64, guild_id: Option<u64>) -> Self {
        Self {
            t: t.to_owned(),
            d,
            intent,
            has_content: false,
            guild_id,
            verbatim: false,
            guild_create: false,
        }
    }

    /// The payload as a session without the MESSAGE_CONTENT intent sees it.
    pub fn without_content(&self) -> Value {
        let mut d = self.d.clone();
        d["content"] = json!("");
        d["embeds"] = json!([]);
        d["attachments"] = json!([]);
        d["components"] = json!([]);
        d
    }
}

/// A MESSAGE_CREATE dispatch for a new message (used by events and by REST sends).
pub fn message_create(
    guild: &mut GuildState,
    id: u64,
    channel_id: u64,
    author_id: u64,
    content: &str,
    nonce: Option<&Value>,
) -> Resolved {
    let (author, joined) = guild.user_or_stand_in(author_id);
    let d = payloads::message(&MessageArgs {
        id,
        channel_id,
        guild_id: Some(guild.id),
        author: &author,
        member_joined_at_us: Some(joined),
        content,
        nonce,
        timestamp_us: unix_micros(),
    });
    guild.remember_message(id, channel_id);
    Resolved {
        has_content: author_id != guild.bot().id,
        ..Resolved::new("MESSAGE_CREATE", d, intents::GUILD_MESSAGES, Some(guild.id))
    }
}

/// A MESSAGE_REACTION_ADD dispatch.
pub fn reaction_add(
    guild: &GuildState,
    channel_id: u64,
    message_id: u64,
    user_id: u64,
    emoji: &str,
) -> Resolved {
    let (user, joined) = guild.user_or_stand_in(user_id);
    Resolved::new(
        "MESSAGE_REACTION_ADD",
        json!({
            "user_id": user_id.to_string(),
            "channel_id": channel_id.to_string(),
            "message_id": message_id.to_string(),
            "guild_id": guild.id.to_string(),
            "member": payloads::member(&user, joined, true),
            "emoji": payloads::emoji(emoji),
            "burst": false,
            "type": 0,
        }),
        intents::GUILD_MESSAGE_REACTIONS,
        Some(guild.id),
    )
}

/// A TYPING_START dispatch.
pub fn typing_start(guild: &GuildState, channel_id: u64, user_id: u64) -> Resolved {
    let (user, joined) = guild.user_or_stand_in(user_id);
    Resolved::new(
        "TYPING_START",
        json!({
            "channel_id": channel_id.to_string(),
            "guild_id": guild.id.to_string(),
            "user_id": user_id.to_string(),
            "timestamp": unix_micros() / 1_000_000,
            "member": payloads::member(&user, joined, true),
        }),
        intents::GUILD_MESSAGE_TYPING,
        Some(guild.id),
    )
}

/// `user_id`'s VOICE_STATE_UPDATE after joining `channel_id` (or leaving, with `None`), updating
/// the guild (the bot's own op 4 goes through here).
pub fn user_voice_state(
    guild: &mut GuildState,
    user_id: u64,
    channel_id: Option<u64>,
    self_mute: bool,
    self_deaf: bool,
) -> Resolved {
    let (user, joined) = guild.user_or_stand_in(user_id);
    guild.ensure_member(user.clone());
    let session_id = guild.set_voice(user_id, channel_id, self_mute, self_deaf);
    Resolved::new(
        "VOICE_STATE_UPDATE",
        payloads::voice_state(&VoiceStateArgs {
            guild_id: guild.id,
            channel_id,
            user: &user,
            joined_at_us: joined,
            session_id: &session_id,
            self_mute,
            self_deaf,
            with_member: true,
        }),
        intents::GUILD_VOICE_STATES,
        Some(guild.id),
    )
}

/// The VOICE_SERVER_UPDATE Discord sends the bot after its op 4 put it in a voice channel:
/// `token` is the credential for the voice server at `endpoint` (with the bot's voice
/// `session_id` from its VOICE_STATE_UPDATE), so whoever holds it can speak as the bot.
pub fn voice_server_update(guild_id: u64) -> Resolved {
    let token: u64 = rand::random();
    Resolved::new(
        "VOICE_SERVER_UPDATE",
        json!({
            "token": format!("{token:016x}"),
            "guild_id": guild_id.to_string(),
            "endpoint": "sim-voice.invalid:443",
        }),
        // Sent whatever the intents, as Discord does.
        0,
        Some(guild_id),
    )
}

/// GUILD_DELETE `{id}` (the bot left or was removed) or `{id, unavailable: true}` (outage).
pub fn guild_delete(guild_id: u64, unavailable: bool) -> Resolved {
    let d = if unavailable {
        json!({"id": guild_id.to_string(), "unavailable": true})
    } else {
        json!({"id": guild_id.to_string()})
    };
    Resolved {
        verbatim: true,
        ..Resolved::new("GUILD_DELETE", d, intents::GUILDS, Some(guild_id))
    }
}

/// GUILD_CREATE for a guild the bot joined or that became available again (each session gets
/// it shaped by its intents).
pub fn guild_create(guild_id: u64) -> Resolved {
    Resolved {
        verbatim: true,
        guild_create: true,
        ..Resolved::new("GUILD_CREATE", Value::Null, intents::GUILDS, Some(guild_id))
    }
}

impl SimEvent {
    /// Turns the event into a dispatch, updating the guild.
    pub fn resolve(self, guild: &mut GuildState, ids: &Snowflakes) -> Resolved {
        match self {
            SimEvent::MessageCreate {
                channel_id,
                author_id,
                content,
            } => message_create(guild, ids.next(), channel_id, author_id, &content, None),
            SimEvent::MessageDelete {
                channel_id,
                message_id,
            } => {
                guild.forget_message(message_id);
                Resolved::new(
                    "MESSAGE_DELETE",
                    json!({
                        "id": message_id.to_string(),
                        "channel_id": channel_id.to_string(),
                        "guild_id": guild.id.to_string(),
                    }),
                    intents::GUILD_MESSAGES,
                    Some(guild.id),
                )
            }
            SimEvent::MessageReactionAdd {
                channel_id,
                message_id,
                user_id,
                emoji,
            } => reaction_add(guild, channel_id, message_id, user_id, &emoji),
            SimEvent::TypingStart {
                channel_id,
                user_id,
            } => typing_start(guild, channel_id, user_id),
            SimEvent::VoiceJoin {
                user_id,
                channel_id,
            }
            | SimEvent::VoiceMove {
                user_id,
                channel_id,
            } => {
                let (m, d) = guild
                    .voice_of(user_id)
                    .map(|v| (v.self_mute, v.self_deaf))
                    .unwrap_or((false, false));
                user_voice_state(guild, user_id, Some(channel_id), m, d)
            }
            SimEvent::VoiceLeave { user_id } => {
                user_voice_state(guild, user_id, None, false, false)
            }
            SimEvent::VoiceUpdate {
                user_id,
                self_mute,
                self_deaf,
            } => {
                let channel = guild.voice_of(user_id).map(|v| v.channel_id);
                user_voice_state(guild, user_id, channel, self_mute, self_deaf)
            }
            SimEvent::GuildMemberRemove { user_id } => {
                let user = guild
                    .remove_member(user_id)
                    .unwrap_or_else(|| guild.user_or_stand_in(user_id).0);
                Resolved::new(
                    "GUILD_MEMBER_REMOVE",
                    json!({
                        "guild_id": guild.id.to_string(),
                        "user": payloads::user(&user),
                    }),
                    intents::GUILD_MEMBERS,
                    Some(guild.id),
                )
            }
            SimEvent::Raw { t, d, intent } => raw(t, d, intent),
        }
    }

    /// The event name it becomes.
    pub fn name(&self) -> &str {
        match self {
            SimEvent::MessageCreate { .. } => "MESSAGE_CREATE",
            SimEvent::MessageDelete { .. } => "MESSAGE_DELETE",
            SimEvent::MessageReactionAdd { .. } => "MESSAGE_REACTION_ADD",
            SimEvent::TypingStart { .. } => "TYPING_START",
            SimEvent::VoiceJoin { .. }
            | SimEvent::VoiceLeave { .. }
            | SimEvent::VoiceMove { .. }
            | SimEvent::VoiceUpdate { .. } => "VOICE_STATE_UPDATE",
            SimEvent::GuildMemberRemove { .. } => "GUILD_MEMBER_REMOVE",
            SimEvent::Raw { t, .. } => t,
        }
    }

    /// The channel it happens in, if it names one.
    pub fn channel(&self) -> Option<u64> {
        match self {
            SimEvent::MessageCreate { channel_id, .. }
            | SimEvent::MessageDelete { channel_id, .. }
            | SimEvent::MessageReactionAdd { channel_id, .. }
            | SimEvent::TypingStart { channel_id, .. }
            | SimEvent::VoiceJoin { channel_id, .. }
            | SimEvent::VoiceMove { channel_id, .. } => Some(*channel_id),
            _ => None,
        }
    }

    /// Which guild of `guilds` it happens in (see the module docs); `None`: nowhere (a guild the
    /// bot is not in, or the bot is in no guild).
    pub fn pick_guild(&self, guilds: &Guilds, given: Option<u64>) -> Option<usize> {
        if let Some(id) = given {
            return guilds.index_of(id);
        }
        if let Some(channel) = self.channel() {
            return match guilds.channel_owner(channel) {
                ChannelOwner::Current(i) => Some(i),
                ChannelOwner::Left => None,
                ChannelOwner::Unknown => (!guilds.list().is_empty()).then_some(0),
            };
        }
        let list = guilds.list();
        let found = match self {
            SimEvent::VoiceLeave { user_id } | SimEvent::VoiceUpdate { user_id, .. } => {
                list.iter().position(|g| g.voice_of(*user_id).is_some())
            }
            SimEvent::GuildMemberRemove { user_id } => {
                list.iter().position(|g| g.member(*user_id).is_some())
            }
            _ => None,
        };
        found.or((!list.is_empty()).then_some(0))
    }
}

/// A raw dispatch, routed by its `d.guild_id` (string or number) if it has one.
pub fn raw(t: String, d: Value, intent: u64) -> Resolved {
    let guild_id = match d.get("guild_id") {
        Some(Value::String(s)) => s.parse().ok(),
        Some(v) => v.as_u64(),
        None => None,
    };
    Resolved {
        verbatim: true,
        ..Resolved::new(&t, d, intent, guild_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{demo, SimConfig};

    #[test]
    fn control_api_json_round_trips_with_string_or_number_ids() {
        let from_strings: SimEvent = serde_json::from_str(
            r#"{"type":"MESSAGE_CREATE","channel_id":"1000000000000000101","author_id":"1000000000000001001","content":"hi"}"#,
        )
        .unwrap();
        let from_numbers: SimEvent = serde_json::from_str(
            r#"{"type":"MESSAGE_CREATE","channel_id":1000000000000000101,"author_id":1000000000000001001,"content":"hi"}"#,
        )
        .unwrap();
        assert_eq!(from_strings, from_numbers);
        let back = serde_json::to_value(&from_strings).unwrap();
        assert_eq!(back["channel_id"], "1000000000000000101");
    }

    #[test]
    fn voice_events_update_the_guild() {
        let cfg = SimConfig::default();
        let mut g = GuildState::new(cfg.guild(), &cfg.bot_user);
        let ids = Snowflakes::default();
        let r = SimEvent::VoiceJoin {
            user_id: demo::CAROL,
            channel_id: demo::GAMING,
        }
        .resolve(&mut g, &ids);
        assert_eq!(r.t, "VOICE_STATE_UPDATE");
        assert_eq!(r.d["channel_id"], demo::GAMING.to_string());
        assert_eq!(g.voice_of(demo::CAROL).unwrap().channel_id, demo::GAMING);
        let r = SimEvent::VoiceLeave {
            user_id: demo::CAROL,
        }
        .resolve(&mut g, &ids);
        assert!(r.d["channel_id"].is_null());
        assert!(g.voice_of(demo::CAROL).is_none());
        SimEvent::GuildMemberRemove {
            user_id: demo::ALICE,
        }
        .resolve(&mut g, &ids);
        assert!(g.member(demo::ALICE).is_none());
        assert!(g.voice_of(demo::ALICE).is_none());
    }
}
