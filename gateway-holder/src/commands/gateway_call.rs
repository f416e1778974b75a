//! How a Gateway command becomes what the session writes: op 3 (presence), 4 (voice state) or 8
//! (request guild members), its `d`, and the pacing class it falls under. A member request the
//! session's intents can't make is refused here: Discord would answer it by closing the session.

use contracts::{Command, ErrorCode, ErrorDetail, PresenceStatus, Snowflake};
use serde_json::{json, Value};

/// `GUILD_MEMBERS`: needed to list every member (`query: ""`).
pub const INTENT_GUILD_MEMBERS: u64 = 1 << 1;
/// `GUILD_PRESENCES`: needed for `presences: true`.
pub const INTENT_GUILD_PRESENCES: u64 = 1 << 8;

/// The extra limit a Gateway command is paced by, beyond the connection's send limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Pace {
    /// Only the send limit (voice state).
    None,
    /// Presence updates: 5 per 20 s.
    Presence,
    /// Request Guild Members: 1 per guild per interval (30 s at Discord).
    Members(Snowflake),
}

/// A ready-to-write Gateway payload.
#[derive(Clone, Debug, PartialEq)]
pub struct GatewayCall {
    pub op: u8,
    /// The whole payload, `{"op":N,"d":{…}}`.
    pub payload: String,
    pub pace: Pace,
    /// What the command's answer carries as `result` (there is no Discord answer body).
    pub result: Value,
}

fn refused(field: &str, message: &str) -> ErrorDetail {
    ErrorDetail {
        code: ErrorCode::InvalidRequest,
        message: message.to_string(),
        field: Some(field.to_string()),
    }
}

/// A member request's nonce: the browser's, or the command id when that fits Discord's 32 bytes,
/// so the browser can match the chunks to its command either way.
fn members_nonce(command_id: &str, given: Option<&str>) -> Option<String> {
    given.map(str::to_string).or_else(|| {
        let fits = (1..=32).contains(&command_id.len())
            && command_id.bytes().all(|b| (0x20..=0x7e).contains(&b));
        fits.then(|| command_id.to_string())
    })
}

/// The Gateway payload of `command` (one of the Gateway kinds) for `guild_id`, with the session's
/// `intents`.
pub fn gateway_call(
    command_id: &str,
    guild_id: Snowflake,
    command: &Command,
    intents: u64,
) -> Result<GatewayCall, ErrorDetail> {
    let (op, d, pace, result) = match command {
        Command::UpdateVoiceState(v) => (
            4,
            json!({
                "guild_id": guild_id,
                "channel_id": v.channel_id,
                "self_mute": v.self_mute,
                "self_deaf": v.self_deaf,
            }),
            Pace::None,
            json!({"op": 4}),
        ),
        Command::UpdatePresence(p) => {
            let status = match p.status {
                PresenceStatus::Online => "online",
                PresenceStatus::Idle => "idle",
                PresenceStatus::Dnd => "dnd",
                PresenceStatus::Invisible => "invisible",
            };
            let activities: Vec<Value> = p
                .activities
                .iter()
                .flatten()
                .map(|a| json!({"name": a.name, "type": a.kind}))
                .collect();
            (
                3,
                json!({"since": null, "activities": activities, "status": status, "afk": p.afk}),
                Pace::Presence,
                json!({"op": 3}),
            )
        }
        Command::RequestGuildMembers(r) => {
            if r.query.as_deref() == Some("") && intents & INTENT_GUILD_MEMBERS == 0 {
                return Err(refused(
                    "query",
                    "listing every member (an empty query) needs the GUILD_MEMBERS intent, which this holder does not use",
                ));
            }
            if r.presences == Some(true) && intents & INTENT_GUILD_PRESENCES == 0 {
                return Err(refused(
                    "presences",
                    "presences need the GUILD_PRESENCES intent, which this holder does not use",
                ));
            }
            let mut d = json!({"guild_id": guild_id, "limit": r.limit});
            if let Some(q) = &r.query {
                d["query"] = json!(q);
            }
            if let Some(ids) = &r.user_ids {
                d["user_ids"] = json!(ids);
            }
            if let Some(p) = r.presences {
                d["presences"] = json!(p);
            }
            let nonce = members_nonce(command_id, r.nonce.as_deref());
            if let Some(n) = &nonce {
                d["nonce"] = json!(n);
            }
            (
                8,
                d,
                Pace::Members(guild_id),
                json!({"op": 8, "nonce": nonce}),
            )
        }
        Command::SendMessage(_) | Command::AddReaction(_) | Command::TypingStart(_) => {
            return Err(ErrorDetail {
                code: ErrorCode::Internal,
                message: format!("{} is not a Gateway command", command.kind()),
                field: None,
            })
        }
    };
    Ok(GatewayCall {
        op,
        payload: json!({"op": op, "d": d}).to_string(),
        pace,
        result,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use contracts::{Activity, RequestGuildMembers, UpdatePresence, UpdateVoiceState, Version};

    const G: Snowflake = Snowflake(1000000000000000001);

    fn d(call: &GatewayCall) -> Value {
        let v: Value = serde_json::from_str(&call.payload).unwrap();
        assert_eq!(v["op"], call.op);
        v["d"].clone()
    }

    #[test]
    fn voice_state_names_the_guild_and_may_leave() {
        let join = Command::UpdateVoiceState(UpdateVoiceState {
            version: Version,
            channel_id: Some(Snowflake(201)),
            self_mute: true,
            self_deaf: false,
        });
        let call = gateway_call("c1", G, &join, 0).unwrap();
        assert_eq!(call.op, 4);
        assert_eq!(call.pace, Pace::None);
        assert_eq!(
            d(&call),
            json!({"guild_id": "1000000000000000001", "channel_id": "201", "self_mute": true, "self_deaf": false})
        );
        let leave = Command::UpdateVoiceState(UpdateVoiceState {
            version: Version,
            channel_id: None,
            self_mute: false,
            self_deaf: false,
        });
        assert_eq!(
            d(&gateway_call("c2", G, &leave, 0).unwrap())["channel_id"],
            Value::Null
        );
    }

    #[test]
    fn presence_is_op_3_and_paced() {
        let p = Command::UpdatePresence(UpdatePresence {
            version: Version,
            status: PresenceStatus::Dnd,
            afk: true,
            activities: Some(vec![Activity {
                name: "chess".into(),
                kind: 0,
            }]),
        });
        let call = gateway_call("c", G, &p, 0).unwrap();
        assert_eq!((call.op, call.pace), (3, Pace::Presence));
        assert_eq!(
            d(&call),
            json!({"since": null, "activities": [{"name": "chess", "type": 0}], "status": "dnd", "afk": true})
        );
    }

    #[test]
    fn member_requests_carry_a_nonce_and_respect_intents() {
        let by_query = |q: &str, presences| {
            Command::RequestGuildMembers(RequestGuildMembers {
                version: Version,
                query: Some(q.into()),
                user_ids: None,
                limit: 0,
                presences,
                nonce: None,
            })
        };
        let all = INTENT_GUILD_MEMBERS | INTENT_GUILD_PRESENCES;
        let call = gateway_call("cmd-1", G, &by_query("al", None), all).unwrap();
        assert_eq!((call.op, call.pace), (8, Pace::Members(G)));
        assert_eq!(
            d(&call),
            json!({"guild_id": "1000000000000000001", "limit": 0, "query": "al", "nonce": "cmd-1"})
        );
        assert_eq!(call.result, json!({"op": 8, "nonce": "cmd-1"}));
        let e = gateway_call("c", G, &by_query("", None), 0).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("query"));
        assert!(gateway_call("c", G, &by_query("", None), INTENT_GUILD_MEMBERS).is_ok());
        let e = gateway_call("c", G, &by_query("a", Some(true)), INTENT_GUILD_MEMBERS).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("presences"));

        let by_id = Command::RequestGuildMembers(RequestGuildMembers {
            version: Version,
            query: None,
            user_ids: Some(vec![Snowflake(5)]),
            limit: 1,
            presences: Some(false),
            nonce: Some("mine".into()),
        });
        let long_id = "x".repeat(40);
        assert_eq!(
            d(&gateway_call(&long_id, G, &by_id, 0).unwrap()),
            json!({"guild_id": "1000000000000000001", "limit": 1, "user_ids": ["5"], "presences": false, "nonce": "mine"})
        );
        assert_eq!(members_nonce(&long_id, None), None, "too long for Discord");
    }
}
