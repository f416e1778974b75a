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
    #[serde(default, skip_serializing_if = "Option::is_none")]
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
}

impl Command {
    /// The channel the command acts on (every command has one).
    pub fn channel_id(&self) -> Snowflake {
        match self {
            Command::SendMessage(c) => c.channel_id,
            Command::AddReaction(c) => c.channel_id,
            Command::TypingStart(c) => c.channel_id,
        }
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
    /// Discord answered with success.
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
