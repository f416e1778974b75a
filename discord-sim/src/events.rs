//! Scripted events: what a test (or the traffic generator, or the demo scenario) can make happen
//! in the guild, and how each becomes a Discord dispatch (`t`, `d`, the intent it needs).
//!
//! Resolving an event also updates the guild state, so voice moves and member removals stay
//! consistent with later GUILD_CREATEs.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::clock::{snowflake, unix_micros, Snowflakes};
use crate::gateway::intents;
use crate::guild::GuildState;
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
}

impl Resolved {
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
        t: "MESSAGE_CREATE".to_owned(),
        d,
        intent: intents::GUILD_MESSAGES,
        has_content: author_id != guild.bot().id,
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
    Resolved {
        t: "MESSAGE_REACTION_ADD".to_owned(),
        d: json!({
            "user_id": user_id.to_string(),
            "channel_id": channel_id.to_string(),
            "message_id": message_id.to_string(),
            "guild_id": guild.id.to_string(),
            "member": payloads::member(&user, joined, true),
            "emoji": payloads::emoji(emoji),
            "burst": false,
            "type": 0,
        }),
        intent: intents::GUILD_MESSAGE_REACTIONS,
        has_content: false,
    }
}

/// A TYPING_START dispatch.
pub fn typing_start(guild: &GuildState, channel_id: u64, user_id: u64) -> Resolved {
    let (user, joined) = guild.user_or_stand_in(user_id);
    Resolved {
        t: "TYPING_START".to_owned(),
        d: json!({
            "channel_id": channel_id.to_string(),
            "guild_id": guild.id.to_string(),
            "user_id": user_id.to_string(),
            "timestamp": unix_micros() / 1_000_000,
            "member": payloads::member(&user, joined, true),
        }),
        intent: intents::GUILD_MESSAGE_TYPING,
        has_content: false,
    }
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
    Resolved {
        t: "VOICE_STATE_UPDATE".to_owned(),
        d: payloads::voice_state(&VoiceStateArgs {
            guild_id: guild.id,
            channel_id,
            user: &user,
            joined_at_us: joined,
            session_id: &session_id,
            self_mute,
            self_deaf,
            with_member: true,
        }),
        intent: intents::GUILD_VOICE_STATES,
        has_content: false,
    }
}

/// The VOICE_SERVER_UPDATE Discord sends the bot after its op 4 put it in a voice channel:
/// `token` is the credential for the voice server at `endpoint` (with the bot's voice
/// `session_id` from its VOICE_STATE_UPDATE), so whoever holds it can speak as the bot.
pub fn voice_server_update(guild_id: u64) -> Resolved {
    let token: u64 = rand::random();
    Resolved {
        t: "VOICE_SERVER_UPDATE".to_owned(),
        d: json!({
            "token": format!("{token:016x}"),
            "guild_id": guild_id.to_string(),
            "endpoint": "sim-voice.invalid:443",
        }),
        // Sent whatever the intents, as Discord does.
        intent: 0,
        has_content: false,
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
                Resolved {
                    t: "MESSAGE_DELETE".to_owned(),
                    d: json!({
                        "id": message_id.to_string(),
                        "channel_id": channel_id.to_string(),
                        "guild_id": guild.id.to_string(),
                    }),
                    intent: intents::GUILD_MESSAGES,
                    has_content: false,
                }
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
                Resolved {
                    t: "GUILD_MEMBER_REMOVE".to_owned(),
                    d: json!({
                        "guild_id": guild.id.to_string(),
                        "user": payloads::user(&user),
                    }),
                    intent: intents::GUILD_MEMBERS,
                    has_content: false,
                }
            }
            SimEvent::Raw { t, d, intent } => Resolved {
                t,
                d,
                intent,
                has_content: false,
            },
        }
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
        let mut g = GuildState::new(&cfg.guild, &cfg.bot_user);
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
