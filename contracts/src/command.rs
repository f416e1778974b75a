//! Browser → edge → holder commands. Browsers POST the request types to `/api/actions/*`; the edge
//! validates them (see [`crate::validate`]) and forwards a [`HolderCommand`] to the holder's
//! `POST /commands`; both answer with a [`CommandAnswer`] or an [`crate::ErrorBody`].

use crate::{Snowflake, Version};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// `POST /api/actions/send-message`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SendMessage {
    #[serde(default)]
    pub version: Version,
    pub channel_id: Snowflake,
    /// 1..=2000 characters, not only whitespace.
    pub content: String,
    /// At most 25 characters; the holder always sends one (with `enforce_nonce`), making one if absent.
    #[serde(
        default,
        deserialize_with = "not_null",
        skip_serializing_if = "Option::is_none"
    )]
    pub nonce: Option<String>,
}

/// `POST /api/actions/add-reaction`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddReaction {
    #[serde(default)]
    pub version: Version,
    pub channel_id: Snowflake,
    pub message_id: Snowflake,
    /// A unicode emoji (`👍`) or a custom emoji as `name:id`.
    pub emoji: String,
}

/// `POST /api/actions/typing-start`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TypingStart {
    #[serde(default)]
    pub version: Version,
    pub channel_id: Snowflake,
}

/// `POST /api/actions/update-voice-state`: Gateway op 4 for the bot in the command's guild.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateVoiceState {
    #[serde(default)]
    pub version: Version,
    /// The voice channel to join or move to; `null` leaves voice. Required, so that a body that
    /// forgot it never makes the bot leave.
    #[serde(deserialize_with = "required_nullable")]
    pub channel_id: Option<Snowflake>,
    #[serde(default)]
    pub self_mute: bool,
    #[serde(default)]
    pub self_deaf: bool,
}

/// An optional field that may be left out but never be `null` (the schema says so, and a `null`
/// that vanished on the way through would be a key the contract silently dropped).
fn not_null<'de, D: serde::Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

/// serde treats a missing `Option` field as `None`; through a `deserialize_with` it is "missing".
fn required_nullable<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<Snowflake>, D::Error> {
    Option::<Snowflake>::deserialize(d)
}

/// The bot's status in `update_presence`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PresenceStatus {
    Online,
    Idle,
    Dnd,
    Invisible,
}

/// One activity of `update_presence` (Discord's activity object, the fields a bot may set).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Activity {
    /// 1..=128 characters.
    pub name: String,
    /// Discord's activity type, 0..=5 (playing, streaming, listening, watching, custom, competing).
    #[serde(rename = "type")]
    pub kind: u8,
}

/// `POST /api/actions/update-presence`: Gateway op 3. Presence is bot-wide (every guild sees it),
/// not per guild.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdatePresence {
    #[serde(default)]
    pub version: Version,
    pub status: PresenceStatus,
    #[serde(default)]
    pub afk: bool,
    /// At most [`crate::validate::MAX_ACTIVITIES`].
    #[serde(
        default,
        deserialize_with = "not_null",
        skip_serializing_if = "Option::is_none"
    )]
    pub activities: Option<Vec<Activity>>,
}

/// `POST /api/actions/request-guild-members`: Gateway op 8 for the command's guild; the members
/// arrive as `GUILD_MEMBERS_CHUNK` events on the stream (carrying `nonce`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestGuildMembers {
    #[serde(default)]
    pub version: Version,
    /// Usernames starting with this (at most 100 characters; `""` with `limit: 0` lists everyone).
    /// Exactly one of `query` and `user_ids`.
    #[serde(
        default,
        deserialize_with = "not_null",
        skip_serializing_if = "Option::is_none"
    )]
    pub query: Option<String>,
    /// 1..=100 members by id. Exactly one of `query` and `user_ids`.
    #[serde(
        default,
        deserialize_with = "not_null",
        skip_serializing_if = "Option::is_none"
    )]
    pub user_ids: Option<Vec<Snowflake>>,
    /// 0..=100; 0 means no limit (only with an empty `query`).
    pub limit: u32,
    #[serde(
        default,
        deserialize_with = "not_null",
        skip_serializing_if = "Option::is_none"
    )]
    pub presences: Option<bool>,
    /// 1..=32 printable ASCII characters (Discord: at most 32 bytes), echoed in the chunks.
    #[serde(
        default,
        deserialize_with = "not_null",
        skip_serializing_if = "Option::is_none"
    )]
    pub nonce: Option<String>,
}

/// Any command the holder's queue executes: `{"kind", "body"}` and no other key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    tag = "kind",
    content = "body",
    rename_all = "snake_case",
    deny_unknown_fields
)]
pub enum Command {
    SendMessage(SendMessage),
    AddReaction(AddReaction),
    TypingStart(TypingStart),
    UpdateVoiceState(UpdateVoiceState),
    UpdatePresence(UpdatePresence),
    RequestGuildMembers(RequestGuildMembers),
}

impl Command {
    /// The channel the command acts on, if it has one (a voice leave, a presence update and a
    /// member request have none).
    pub fn channel_id(&self) -> Option<Snowflake> {
        match self {
            Command::SendMessage(c) => Some(c.channel_id),
            Command::AddReaction(c) => Some(c.channel_id),
            Command::TypingStart(c) => Some(c.channel_id),
            Command::UpdateVoiceState(c) => c.channel_id,
            Command::UpdatePresence(_) | Command::RequestGuildMembers(_) => None,
        }
    }

    /// The `kind` tag (`send_message`, …), for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Command::SendMessage(_) => "send_message",
            Command::AddReaction(_) => "add_reaction",
            Command::TypingStart(_) => "typing_start",
            Command::UpdateVoiceState(_) => "update_voice_state",
            Command::UpdatePresence(_) => "update_presence",
            Command::RequestGuildMembers(_) => "request_guild_members",
        }
    }

    /// Whether it goes over the Gateway socket (ops 3, 4, 8) rather than the REST API.
    pub fn is_gateway(&self) -> bool {
        matches!(
            self,
            Command::UpdateVoiceState(_)
                | Command::UpdatePresence(_)
                | Command::RequestGuildMembers(_)
        )
    }
}

/// Edge → holder: `POST {HOLDER_URL}/commands`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HolderCommand {
    pub version: Version,
    /// Made by the edge; the browser sees it in the answer and in `command.result`.
    pub command_id: String,
    /// The JWT `sub` of the browser user (fair queueing and `command.result` routing).
    pub user: String,
    pub guild_id: Snowflake,
    /// W3C trace context carried to the Discord call.
    pub traceparent: String,
    /// How long the holder may wait for Discord's answer before replying `queued`.
    pub wait_ms: u64,
    pub command: Command,
}

/// Whether a command ran.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CommandStatus {
    /// Discord answered with success (a Gateway command: it was written to the socket).
    Sent,
    /// Accepted; the outcome follows as `command.result` on the stream.
    Queued,
    /// Discord refused it, or it missed its deadline.
    Failed,
}

/// `200 sent` or `202 queued`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommandAnswer {
    pub version: Version,
    pub command_id: String,
    pub status: CommandStatus,
    /// Discord's answer body (e.g. the created message), verbatim.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Box<RawValue>>,
}

/// Holder → edge: `POST /link/command-result`, the outcome of a command that was answered
/// `queued`; the edge sends it as a `command.result` event to that user's streams.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommandResultPost {
    pub version: Version,
    pub guild_id: Snowflake,
    /// The JWT `sub` the command came from.
    pub user: String,
    pub event: crate::CommandResultEvent,
}
