//! Discord objects as JSON, shaped like Discord's documentation (users, members, channels, roles,
//! guilds, messages, voice states, READY).
//!
//! One place builds each object so the gateway and REST answers agree, and so a unit test can
//! check every shape against a real client's model (twilight-model).

use serde_json::{json, Value};

use crate::clock::iso8601;
use crate::config::{ChannelSeed, UserSeed};

/// A user object.
pub fn user(u: &UserSeed) -> Value {
    let mut v = json!({
        "id": u.id.to_string(),
        "username": u.username,
        "discriminator": "0",
        "global_name": u.global_name,
        "avatar": null,
        "public_flags": 0,
    });
    if u.bot {
        v["bot"] = json!(true);
    }
    v
}

/// The bot's own user as READY carries it.
pub fn current_user(u: &UserSeed) -> Value {
    let mut v = user(u);
    v["verified"] = json!(true);
    v["mfa_enabled"] = json!(false);
    v["flags"] = json!(0);
    v["email"] = Value::Null;
    v
}

/// A guild member object, `with_user` includes the nested user (GUILD_CREATE, MESSAGE_CREATE
/// leave it out there and put the user at top level).
pub fn member(u: &UserSeed, joined_at_us: u64, with_user: bool) -> Value {
    let mut v = json!({
        "nick": null,
        "avatar": null,
        "banner": null,
        "roles": [],
        "joined_at": iso8601(joined_at_us),
        "premium_since": null,
        "deaf": false,
        "mute": false,
        "flags": 0,
        "pending": false,
        "communication_disabled_until": null,
    });
    if with_user {
        v["user"] = user(u);
    }
    v
}

/// A guild channel object.
pub fn channel(c: &ChannelSeed, guild_id: u64, position: usize) -> Value {
    let mut v = json!({
        "id": c.id.to_string(),
        "type": c.kind.discord_type(),
        "guild_id": guild_id.to_string(),
        "name": c.name,
        "position": position,
        "permission_overwrites": [],
        "parent_id": null,
        "nsfw": false,
        "flags": 0,
    });
    match c.kind {
        crate::config::ChannelKind::Text => {
            v["topic"] = Value::Null;
            v["last_message_id"] = Value::Null;
            v["rate_limit_per_user"] = json!(0);
        }
        crate::config::ChannelKind::Voice => {
            v["bitrate"] = json!(64_000);
            v["user_limit"] = json!(0);
            v["rtc_region"] = Value::Null;
            v["last_message_id"] = Value::Null;
            v["rate_limit_per_user"] = json!(0);
        }
    }
    v
}

/// The `@everyone` role (its id is the guild id).
pub fn everyone_role(guild_id: u64) -> Value {
    json!({
        "id": guild_id.to_string(),
        "name": "@everyone",
        "color": 0,
        "colors": {"primary_color": 0, "secondary_color": null, "tertiary_color": null},
        "hoist": false,
        "icon": null,
        "unicode_emoji": null,
        "position": 0,
        "permissions": "2248473465835073",
        "managed": false,
        "mentionable": false,
        "flags": 0,
    })
}

/// A voice state object (`channel_id: None` means left).
pub struct VoiceStateArgs<'a> {
    /// The guild.
    pub guild_id: u64,
    /// The voice channel, or `None` after leaving.
    pub channel_id: Option<u64>,
    /// The member.
    pub user: &'a UserSeed,
    /// When the member joined the guild.
    pub joined_at_us: u64,
    /// Voice session id.
    pub session_id: &'a str,
    /// Self-muted.
    pub self_mute: bool,
    /// Self-deafened.
    pub self_deaf: bool,
    /// Whether to include the member object (dispatches do, GUILD_CREATE doesn't).
    pub with_member: bool,
}

/// A voice state object.
pub fn voice_state(a: &VoiceStateArgs<'_>) -> Value {
    let mut v = json!({
        "guild_id": a.guild_id.to_string(),
        "channel_id": a.channel_id.map(|c| c.to_string()),
        "user_id": a.user.id.to_string(),
        "session_id": a.session_id,
        "deaf": false,
        "mute": false,
        "self_deaf": a.self_deaf,
        "self_mute": a.self_mute,
        "self_video": false,
        "suppress": false,
        "request_to_speak_timestamp": null,
    });
    if a.with_member {
        v["member"] = member(a.user, a.joined_at_us, true);
    }
    v
}

/// What a message is made of.
pub struct MessageArgs<'a> {
    /// Message id.
    pub id: u64,
    /// Channel.
    pub channel_id: u64,
    /// Guild, for dispatches (REST answers leave it out).
    pub guild_id: Option<u64>,
    /// Author.
    pub author: &'a UserSeed,
    /// Member object of the author (dispatches only).
    pub member_joined_at_us: Option<u64>,
    /// Text.
    pub content: &'a str,
    /// Client nonce, echoed back.
    pub nonce: Option<&'a Value>,
    /// Creation time.
    pub timestamp_us: u64,
}

/// A message object.
pub fn message(a: &MessageArgs<'_>) -> Value {
    let mut v = json!({
        "id": a.id.to_string(),
        "type": 0,
        "channel_id": a.channel_id.to_string(),
        "author": user(a.author),
        "content": a.content,
        "timestamp": iso8601(a.timestamp_us),
        "edited_timestamp": null,
        "tts": false,
        "mention_everyone": false,
        "mentions": [],
        "mention_roles": [],
        "attachments": [],
        "embeds": [],
        "components": [],
        "pinned": false,
        "flags": 0,
    });
    if let Some(g) = a.guild_id {
        v["guild_id"] = json!(g.to_string());
    }
    if let Some(j) = a.member_joined_at_us {
        v["member"] = member(a.author, j, false);
    }
    if let Some(n) = a.nonce {
        v["nonce"] = n.clone();
    }
    v
}

/// An emoji object from the path form: unicode (`👍`) or custom (`name:id`).
pub fn emoji(raw: &str) -> Value {
    match raw.rsplit_once(':') {
        Some((name, id)) if !name.is_empty() && id.parse::<u64>().is_ok() => {
            json!({"id": id, "name": name, "animated": false})
        }
        _ => json!({"id": null, "name": raw}),
    }
}
