//! Holder → edge: `POST /link/ingest` batches. Each envelope wraps one Gateway dispatch with the
//! holder's cursor; Discord's `d` is a [`RawValue`], so the bytes Discord sent are the bytes the edge
//! stores and browsers receive, never parsed and re-serialized on the way.

use crate::{Snowflake, Version};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// One Gateway dispatch as the holder received it.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Envelope {
    pub version: Version,
    /// The holder's cursor: strictly increasing within an (`epoch`, `shard`), across reconnects
    /// and restarts (each shard's dispatches are numbered from Discord's `s`, so a dispatch Discord
    /// replays keeps its id; ids of different shards may interleave or repeat).
    pub id: u64,
    pub shard: u32,
    pub session_id: String,
    /// Discord's `s`.
    pub seq: u64,
    /// Discord's `t`, e.g. `MESSAGE_CREATE`.
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guild_id: Option<Snowflake>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel_id: Option<Snowflake>,
    /// Unix milliseconds when the holder read the frame off the socket.
    pub received_at: u64,
    /// Discord's `d`, byte for byte.
    pub d: Box<RawValue>,
}

/// Events the holder had to drop (its buffer overflowed while the edge was down). The edge turns
/// each into a `gap` stream event at the place where the events would have been.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HolderGap {
    /// First dropped holder id.
    pub from_id: u64,
    /// Last dropped holder id (inclusive).
    pub to_id: u64,
    pub reason: String,
    /// The shard whose ids these are; absent: the ids of every shard in the range were dropped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<u32>,
}

/// One shard's session state, sent with every batch so the edge can tell each guild's browsers
/// whether the shard carrying that guild is online (`shard_id = (guild_id >> 22) % count`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShardState {
    /// The shard id.
    pub shard: u32,
    /// How many shards the bot runs (the `num_shards` of IDENTIFY).
    pub count: u32,
    pub state: GatewayState,
}

/// The holder's view of its Discord session, sent with every batch (including empty keep-alive
/// batches) so the edge can tell browsers when Discord is offline.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GatewayState {
    /// Connecting or identifying for the first time.
    Connecting,
    /// READY or RESUMED received; dispatches are flowing.
    Ready,
    /// Lost the socket, reconnecting (resume or identify pending).
    Reconnecting,
    /// Stopped for good (fatal close code or shutdown).
    Stopped,
}

/// The body of `POST /link/ingest`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IngestBatch {
    pub version: Version,
    pub holder_id: String,
    /// Random id made when the holder starts with no saved state; ids restart within a new epoch.
    pub epoch: String,
    /// The holder's batch counter (diagnostics only; dedup is by envelope id).
    pub batch: u64,
    pub envelopes: Vec<Envelope>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gaps: Vec<HolderGap>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<GatewayState>,
    /// Every shard this holder runs, with its state (`gateway` is then the least ready of them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shards: Vec<ShardState>,
}

/// The answer to an accepted `POST /link/ingest`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IngestAck {
    pub version: Version,
    /// Envelopes stored (new to the edge).
    pub accepted: u64,
    /// Envelopes already seen and dropped.
    pub duplicates: u64,
    /// The edge cursor of the last stored event, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_cursor: Option<u64>,
    /// The head cursor of the default guild's (`GUILD_ID`) hub after this batch, when that hub
    /// took part (it takes part in every batch of a holder whose shards carry it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<u64>,
    /// Envelopes of guilds this edge does not serve (not in its `GUILD_IDS` allow-list), dropped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ignored: Option<u64>,
    /// The head cursor of every hub the batch reached, by guild id (`"bot"`: the bot-wide record).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub cursors: std::collections::BTreeMap<String, u64>,
}

/// `GET /healthz` of the edge.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Health {
    pub version: Version,
    /// Always `"ok"` when the Worker answers.
    pub status: String,
}
