//! The edge's own record of one stream event, as stored in the replay window and framed for SSE.
//! Each gets the edge's cursor (its SSE `id:`); its `data` JSON is built once, at ingest, from the
//! contract types, with Discord's `d` copied as raw bytes (never parsed and re-serialized).

use crate::sse;
use contracts::{DispatchEvent, Envelope, GapEvent, StatusEvent, Version};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EdgeEvent {
    /// The edge's cursor: strictly increasing, persisted.
    pub cursor: u64,
    /// Edge time (Unix ms) when stored; the replay window's age limit uses it.
    pub at: u64,
    /// The SSE `event:` name.
    pub name: String,
    /// The Discord channel, for `?channels=`.
    pub channel: Option<u64>,
    /// One line of JSON.
    pub data: String,
    /// The one user (JWT `sub`, as `actions::user_key`) this event is for, whatever their
    /// stream's filters (`command.result`); `None`: everyone whose filters select it.
    pub user: Option<String>,
}

impl EdgeEvent {
    /// `status` and `gap` are the edge's own events; filters never hide them.
    pub fn is_control(&self) -> bool {
        is_control(&self.name)
    }

    /// Whether a client of `user` (`None`: anonymous) whose filter is `filter` gets this event.
    pub fn is_for(&self, user: Option<&str>, filter: &crate::filter::Filter) -> bool {
        match &self.user {
            Some(u) => user == Some(u.as_str()),
            None => filter.matches(&self.name, self.channel, self.is_control()),
        }
    }

    /// Appends this event's SSE frame to `out`.
    pub fn frame(&self, out: &mut String) {
        sse::event(out, self.cursor, &self.name, &self.data);
    }
}

/// Dispatches that carry a credential and so never reach a browser. The edge accepts them from
/// the holder and drops them:
/// - VOICE_SERVER_UPDATE: its `token` (with the bot's voice `session_id`, which
///   VOICE_STATE_UPDATE shows) lets whoever holds it join the voice server as the bot;
/// - INTERACTION_CREATE: its `token` answers and follows up the interaction as the application
///   for 15 minutes, with no bot token needed.
pub fn is_withheld(kind: &str) -> bool {
    matches!(kind, "VOICE_SERVER_UPDATE" | "INTERACTION_CREATE")
}

pub fn is_control(name: &str) -> bool {
    name == sse::STATUS || name == sse::GAP
}

/// `(name, channel, data)` of a dispatch, `d` moved across verbatim.
pub fn dispatch(env: Envelope) -> (String, Option<u64>, String) {
    let channel = env.channel_id.map(|c| c.get());
    let event = DispatchEvent {
        version: Version,
        kind: env.kind,
        guild_id: env.guild_id,
        channel_id: env.channel_id,
        received_at: env.received_at,
        d: env.d,
    };
    let data = sse::one_line(serde_json::to_string(&event).expect("dispatch serializes"));
    (event.kind, channel, data)
}

pub fn gap_data(gap: &GapEvent) -> String {
    serde_json::to_string(gap).expect("gap serializes")
}

pub fn status_data(status: &StatusEvent) -> String {
    serde_json::to_string(status).expect("status serializes")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::value::RawValue;

    #[test]
    fn credential_bearing_dispatches_are_withheld_and_others_are_not() {
        assert!(is_withheld("VOICE_SERVER_UPDATE"));
        assert!(is_withheld("INTERACTION_CREATE"));
        for kind in [
            "VOICE_STATE_UPDATE",
            "MESSAGE_CREATE",
            "READY",
            "GUILD_CREATE",
        ] {
            assert!(!is_withheld(kind), "{kind}");
        }
    }

    #[test]
    fn dispatch_keeps_d_byte_for_byte() {
        let d = r#"{"content":"hi \"there\"","n":1.50,"z":[ ]}"#;
        let env = Envelope {
            version: Version,
            id: 1,
            shard: 0,
            session_id: "s".into(),
            seq: 3,
            kind: "MESSAGE_CREATE".into(),
            guild_id: Some(contracts::Snowflake(10)),
            channel_id: Some(contracts::Snowflake(20)),
            received_at: 99,
            d: RawValue::from_string(d.into()).unwrap(),
        };
        let (name, channel, data) = dispatch(env);
        assert_eq!(name, "MESSAGE_CREATE");
        assert_eq!(channel, Some(20));
        assert!(data.contains(d), "{data}");
        let parsed: DispatchEvent = serde_json::from_str(&data).unwrap();
        assert_eq!(parsed.d.get(), d);
        assert_eq!(parsed.channel_id, Some(contracts::Snowflake(20)));
    }
}
