//! Browser commands (`POST /api/actions/*`): parsing, the holder request, the `command.result`
//! frame and the user key. Pure logic; the Worker glue is in `entry_actions.rs` and the hub side
//! (rate limit, per-user delivery) in `hub/commands.rs`.

use crate::traceparent;
use contracts::{
    AddReaction, Command, CommandResultEvent, HolderCommand, RequestGuildMembers, SendMessage,
    Snowflake, TypingStart, UpdatePresence, UpdateVoiceState, ValidationError, Version,
};
use std::fmt::Write;

/// The request header the Worker uses to tell the hub who a browser is (its JWT `sub`, encoded
/// by [`user_key`]). The Worker always removes a browser-sent copy first.
pub const USER_HEADER: &str = "X-Rt-User";
/// The hub path the Worker asks before forwarding a command (reachable only from the Worker:
/// the router has no such route).
pub const ADMIT_PATH: &str = "/hub/commands/admit";
/// On the admit request: the channel the command acts on (checked against the guild's channels).
/// Absent for a command without a channel (voice leave, presence, member request).
pub const CHANNEL_HEADER: &str = "X-Rt-Channel";
/// The SSE event name of a queued command's outcome.
pub const COMMAND_RESULT: &str = "command.result";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    SendMessage,
    AddReaction,
    TypingStart,
    /// Gateway op 4 (join, move or leave voice in the hub's guild).
    UpdateVoiceState,
    /// Gateway op 3. Presence is bot-wide, not per guild; it still needs only `write`.
    UpdatePresence,
    /// Gateway op 8 for the hub's guild.
    RequestGuildMembers,
}

impl Action {
    pub fn name(self) -> &'static str {
        match self {
            Action::SendMessage => "send-message",
            Action::AddReaction => "add-reaction",
            Action::TypingStart => "typing-start",
            Action::UpdateVoiceState => "update-voice-state",
            Action::UpdatePresence => "update-presence",
            Action::RequestGuildMembers => "request-guild-members",
        }
    }
}

/// Validates a browser body into the command (400 `invalid_request` naming the field otherwise).
pub fn parse(action: Action, body: &[u8]) -> Result<Command, ValidationError> {
    use contracts::validate::parse;
    Ok(match action {
        Action::SendMessage => Command::SendMessage(parse::<SendMessage>(body)?),
        Action::AddReaction => Command::AddReaction(parse::<AddReaction>(body)?),
        Action::TypingStart => Command::TypingStart(parse::<TypingStart>(body)?),
        Action::UpdateVoiceState => Command::UpdateVoiceState(parse::<UpdateVoiceState>(body)?),
        Action::UpdatePresence => Command::UpdatePresence(parse::<UpdatePresence>(body)?),
        Action::RequestGuildMembers => {
            Command::RequestGuildMembers(parse::<RequestGuildMembers>(body)?)
        }
    })
}

/// A command id from 12 random bytes: `c` + 24 hex digits, 25 characters, so the holder can use
/// it as Discord's message nonce.
pub fn command_id(random: [u8; 12]) -> String {
    format!("c{}", traceparent::hex(&random))
}

/// The JSON body of `POST {HOLDER_URL}/commands`.
pub fn holder_body(
    command_id: &str,
    user: &str,
    guild_id: Snowflake,
    traceparent: &str,
    wait_ms: u64,
    command: Command,
) -> String {
    let c = HolderCommand {
        version: Version,
        command_id: command_id.to_string(),
        user: user.to_string(),
        guild_id,
        traceparent: traceparent.to_string(),
        wait_ms,
        command,
    };
    serde_json::to_string(&c).expect("contract types serialize")
}

/// The JSON of a `command.result` event (what the Worker hands to the hub).
pub fn result_json(event: &CommandResultEvent) -> String {
    serde_json::to_string(event).expect("contract types serialize")
}

/// A JWT `sub` as a header-safe key: printable ASCII except `%` kept, everything else `%XX`.
pub fn user_key(sub: &str) -> String {
    let mut s = String::with_capacity(sub.len());
    for b in sub.bytes() {
        if (0x21..=0x7e).contains(&b) && b != b'%' {
            s.push(b as char);
        } else {
            let _ = write!(s, "%{b:02X}");
        }
    }
    s
}

/// The hub's command counters (appended to `GET /metrics`).
#[derive(Clone, Debug, Default)]
pub struct CommandCounters {
    pub admitted: u64,
    pub rate_limited: u64,
    /// `command.result` posts from the holder.
    pub results: u64,
    /// Streams a result was queued on (summed).
    pub results_delivered: u64,
    /// Results for a user with no open stream at the time (stored: a reconnect replays them).
    pub results_unseen: u64,
}

impl CommandCounters {
    pub fn render(&self, out: &mut String) {
        for (name, help, v) in [
            (
                "edge_commands_admitted_total",
                "Commands that passed the per-user limit (forwarded to the holder).",
                self.admitted,
            ),
            (
                "edge_commands_rate_limited_total",
                "Commands refused by the per-user limit (429).",
                self.rate_limited,
            ),
            (
                "edge_command_results_total",
                "command.result posts from the holder.",
                self.results,
            ),
            (
                "edge_command_results_delivered_total",
                "command.result events queued on streams (one per stream).",
                self.results_delivered,
            ),
            (
                "edge_command_results_unseen_total",
                "command.result posts for a user with no open stream at the time (kept for replay).",
                self.results_unseen,
            ),
        ] {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_with_field_names() {
        let c = parse(
            Action::SendMessage,
            br#"{"channel_id":"1000000000000000010","content":"hi"}"#,
        )
        .unwrap();
        assert!(matches!(c, Command::SendMessage(_)));
        let e = parse(Action::SendMessage, br#"{"channel_id":"1","content":""}"#).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("content"));
        let e = parse(
            Action::AddReaction,
            br#"{"channel_id":"1","message_id":"2"}"#,
        )
        .unwrap_err();
        assert_eq!(e.field.as_deref(), Some("emoji"));
        assert!(parse(Action::TypingStart, br#"{"channel_id":"x"}"#).is_err());

        let c = parse(Action::UpdateVoiceState, br#"{"channel_id":null}"#).unwrap();
        assert_eq!(c.channel_id(), None, "a leave has no channel to check");
        let c = parse(Action::UpdateVoiceState, br#"{"channel_id":"201"}"#).unwrap();
        assert_eq!(c.channel_id(), Some(Snowflake(201)));
        let e = parse(Action::UpdateVoiceState, b"{}").unwrap_err();
        assert_eq!(e.field.as_deref(), Some("channel_id"));
        let e = parse(Action::UpdatePresence, br#"{"status":"away"}"#).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("status"));
        let e = parse(Action::RequestGuildMembers, br#"{"query":"a","limit":500}"#).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("limit"));
        let c = parse(
            Action::RequestGuildMembers,
            br#"{"user_ids":["5"],"limit":1}"#,
        )
        .unwrap();
        assert!(c.is_gateway() && c.channel_id().is_none());
    }

    #[test]
    fn ids_bodies_and_frames() {
        let id = command_id([0xab; 12]);
        assert_eq!(id.len(), 25);
        let body = holder_body(
            &id,
            "u1",
            Snowflake(5),
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            2000,
            Command::TypingStart(TypingStart {
                version: Version,
                channel_id: Snowflake(7),
            }),
        );
        let back: HolderCommand = contracts::validate::parse(body.as_bytes()).unwrap();
        assert_eq!(back.command_id, id);
        assert_eq!(back.wait_ms, 2000);

        let ev: CommandResultEvent = serde_json::from_str(
            r#"{"version":"1.0","command_id":"c1","status":"sent","result":{"a":
"b"}}"#,
        )
        .unwrap();
        let mut f = String::new();
        crate::sse::event(&mut f, 41, COMMAND_RESULT, &result_json(&ev));
        assert!(
            f.starts_with("id: 41\nevent: command.result\ndata: {"),
            "{f}"
        );
        assert_eq!(f.matches('\n').count(), 4, "{f}");
        assert_eq!(user_key("al ice%é"), "al%20ice%25%C3%A9");

        let mut out = String::new();
        CommandCounters {
            rate_limited: 3,
            ..Default::default()
        }
        .render(&mut out);
        assert!(
            out.contains("\nedge_commands_rate_limited_total 3\n"),
            "{out}"
        );
    }
}
