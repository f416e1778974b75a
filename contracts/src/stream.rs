//! The payloads of the Server-Sent Events on `GET /api/stream`. The SSE `event:` name is
//! [`DispatchEvent::kind`] for Discord dispatches, and `status`, `gap`, `command.result` or
//! `voice.*` for the edge's own events; the SSE `id:` is the edge's cursor, not carried in `data`.

use crate::{ErrorDetail, GatewayState, Snowflake, Version};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// A Discord dispatch as browsers receive it.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DispatchEvent {
    pub version: Version,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guild_id: Option<Snowflake>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel_id: Option<Snowflake>,
    /// Unix ms when the holder read it from Discord (browsers show the event's age from it).
    pub received_at: u64,
    pub d: Box<RawValue>,
}

/// Is the holder link alive, as seen by the edge.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LinkState {
    /// Batches or keep-alives arrive on time.
    Up,
    /// Nothing from the holder within the quiet limit: treat Discord as offline.
    Down,
}

/// `status`: sent once on connect and whenever the link or gateway state changes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatusEvent {
    pub version: Version,
    pub link: LinkState,
    /// The holder's last reported gateway state; absent until the holder has reported one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<GatewayState>,
    /// Unix ms of the last batch or keep-alive from the holder, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_seen: Option<u64>,
    /// The guild as Discord reports it; absent until the hub has seen GUILD_CREATE or
    /// GUILD_DELETE. `removed` is final: the bot left the guild and the stream closes after it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guild: Option<GuildAvailability>,
}

/// Whether the bot is in the guild and Discord serves it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GuildAvailability {
    /// GUILD_CREATE arrived: the guild is served.
    Available,
    /// GUILD_DELETE with `unavailable: true`, or GUILD_CREATE marked unavailable: a Discord outage.
    Unavailable,
    /// GUILD_DELETE without `unavailable`: the bot left or was removed.
    Removed,
}

/// Why events are missing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GapReason {
    /// The requested cursor is older than the replay window.
    ReplayWindow,
    /// This client fell behind and its queue overflowed; it is closed after this event.
    SlowClient,
    /// The holder's buffer overflowed while the edge was unreachable.
    HolderBuffer,
}

/// `gap`: events after cursor `after` and before cursor `before` are not available.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GapEvent {
    pub version: Version,
    pub reason: GapReason,
    /// Last cursor the client has (or would have had).
    pub after: u64,
    /// First cursor available again; absent when the client is being closed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<u64>,
    /// How many events are missing, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub missing: Option<u64>,
}

/// `command.result`: the outcome of a command that was answered `202 queued`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommandResultEvent {
    pub version: Version,
    pub command_id: String,
    pub status: crate::CommandStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Box<RawValue>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorDetail>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
}

/// Which `voice.*` event this is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VoiceEventKind {
    Join,
    Leave,
    Move,
    Update,
    Dropout,
    Recovered,
}

impl VoiceEventKind {
    /// The SSE event name, e.g. `voice.join`.
    pub fn event_name(self) -> &'static str {
        match self {
            VoiceEventKind::Join => "voice.join",
            VoiceEventKind::Leave => "voice.leave",
            VoiceEventKind::Move => "voice.move",
            VoiceEventKind::Update => "voice.update",
            VoiceEventKind::Dropout => "voice.dropout",
            VoiceEventKind::Recovered => "voice.recovered",
        }
    }
}

/// Mute, deafen, stream and video flags of a voice state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VoiceFlags {
    pub mute: bool,
    pub deaf: bool,
    pub self_mute: bool,
    pub self_deaf: bool,
    pub self_stream: bool,
    pub self_video: bool,
}

/// `voice.join`, `voice.leave`, `voice.move`, `voice.update`, `voice.dropout`, `voice.recovered`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VoiceEvent {
    pub version: Version,
    pub kind: VoiceEventKind,
    pub guild_id: Snowflake,
    pub user_id: Snowflake,
    /// The channel joined, moved to, updated in, or (leave/dropout) left.
    pub channel_id: Snowflake,
    /// For `move`: the channel left.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_channel_id: Option<Snowflake>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flags: Option<VoiceFlags>,
    /// Unix ms of the underlying fact (the leave time for a dropout).
    pub at: u64,
}
