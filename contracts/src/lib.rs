//! The versioned (`"version": "1.0"`) wire contract between the gateway holder, the edge worker and
//! browsers, as `../shared/SPEC.md` describes it.
//!
//! Both sides depend on this crate so they cannot disagree about a field; it has no I/O and builds
//! for `wasm32-unknown-unknown`. `openapi.yaml` beside this crate documents the same shapes as JSON
//! Schema, and the tests in `tests/` keep the two in step.
//!
//! Layout:
//! - [`version`]: the `"1.0"` marker every payload carries.
//! - [`snowflake`]: Discord ids, carried as decimal strings.
//! - [`ingest`]: holder → edge batches and envelopes (Discord's `d` kept verbatim).
//! - [`stream`]: the payloads of the SSE events browsers receive.
//! - [`command`]: browser → edge → holder commands and their answers.
//! - [`link`]: holder ↔ edge coordination of several holders (registration, IDENTIFY queue).
//! - [`guilds`]: the guilds a browser may open (`GET /api/guilds`).
//! - [`error`]: the error body and the field-named validation error.
//! - [`validate`]: strict parsing of untrusted bodies into the types above.

pub mod command;
pub mod error;
pub mod guilds;
pub mod ingest;
pub mod link;
pub mod snowflake;
pub mod stream;
pub mod validate;
pub mod version;

pub use command::{
    Activity, AddReaction, Command, CommandAnswer, CommandResultPost, CommandStatus, HolderCommand,
    PresenceStatus, RequestGuildMembers, SendMessage, TypingStart, UpdatePresence,
    UpdateVoiceState,
};
pub use error::{ErrorBody, ErrorCode, ErrorDetail, ValidationError};
pub use guilds::{GuildList, ListedGuild};
pub use ingest::{Envelope, GatewayState, Health, HolderGap, IngestAck, IngestBatch, ShardState};
pub use link::{
    BotRegistry, IdentifyAnswer, IdentifyAsk, RegisterAnswer, RegisterHolder, RegistryGuild,
    RegistryHolder, ShardRange,
};
pub use snowflake::Snowflake;
pub use stream::{
    CommandResultEvent, DispatchEvent, GapEvent, GapReason, GuildAvailability, LinkState,
    StatusEvent, VoiceEvent, VoiceEventKind, VoiceFlags,
};
pub use version::{Version, VERSION};
