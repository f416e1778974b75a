//! What a client may ask of the Gateway besides its session: op 3 Presence Update, op 4 Voice
//! State Update and op 8 Request Guild Members, answered the way Discord answers them.
//!
//! - op 4 moves the bot in the guild's voice state (kept, so a later GUILD_CREATE agrees) and
//!   emits its `VOICE_STATE_UPDATE` like any voice change, then, when it joined a channel, the
//!   `VOICE_SERVER_UPDATE` carrying the voice server's token.
//! - op 8 answers with `GUILD_MEMBERS_CHUNK`s (1000 members each, `chunk_index`/`chunk_count`,
//!   the request's `nonce`, `not_found` for unknown ids) on the asking session only; a second
//!   request for the same guild within `member_request_window` (Discord: 30 s) gets a
//!   `RATE_LIMITED` dispatch `{opcode: 8, retry_after, meta: {guild_id, nonce}}` instead.
//! - op 3 is counted; its limit (5 per 20 s) is not enforced.
//!
//! Op 4 and op 8 name a guild; one the bot isn't in, or one that belongs to another shard than
//! the session's (`(guild_id >> 22) % num_shards`), gets no answer (the latter is counted in
//! `commands_wrong_shard`). A malformed `d` closes with 4002 (decode error), as Discord does.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde_json::{json, Value};

use crate::events;
use crate::state::{lock, SimState};

use super::close_codes::CloseCode;
use super::intents;
use super::session::Session;

/// Members per `GUILD_MEMBERS_CHUNK` (Discord's chunk size).
pub const MEMBERS_PER_CHUNK: usize = 1000;

fn snowflake_of(v: &Value) -> Option<u64> {
    v.as_str()
        .and_then(|s| s.parse::<u64>().ok())
        .filter(|n| *n != 0)
}

/// Op 3: counted only.
pub fn presence_update(state: &SimState, d: &Value) -> Result<(), CloseCode> {
    let ok = d.is_object()
        && d.get("status").is_some_and(Value::is_string)
        && d.get("afk").is_some_and(Value::is_boolean)
        && d.get("activities").is_some_and(Value::is_array);
    if !ok {
        return Err(CloseCode::DECODE_ERROR);
    }
    state.records.count(|s| s.presence_updates += 1);
    Ok(())
}

/// Whether `session` may act on `guild_id` (its shard owns the guild); counts the misses.
fn on_my_shard(state: &SimState, session: &Arc<Mutex<Session>>, guild_id: u64) -> bool {
    let ok = lock(session).routes(Some(guild_id));
    if !ok {
        state.records.count(|s| s.commands_wrong_shard += 1);
    }
    ok
}

/// Op 4: `{guild_id, channel_id (null leaves), self_mute, self_deaf}` for the bot.
pub fn voice_state_update(
    state: &SimState,
    session: &Arc<Mutex<Session>>,
    d: &Value,
) -> Result<(), CloseCode> {
    let guild_id = d.get("guild_id").and_then(snowflake_of);
    let channel = match d.get("channel_id") {
        Some(Value::Null) => Some(None),
        Some(v) => snowflake_of(v).map(Some),
        None => None,
    };
    let (Some(guild_id), Some(channel), Some(self_mute), Some(self_deaf)) = (
        guild_id,
        channel,
        d.get("self_mute").and_then(Value::as_bool),
        d.get("self_deaf").and_then(Value::as_bool),
    ) else {
        return Err(CloseCode::DECODE_ERROR);
    };
    state.records.count(|s| s.voice_state_updates += 1);
    if !on_my_shard(state, session, guild_id) {
        return Ok(());
    }
    let moved = state.emit_with(|guilds, _| {
        // A guild the bot isn't in, or not a voice channel of it: Discord does nothing visible.
        let Some(guild) = guilds.get_mut(guild_id) else {
            return Err(());
        };
        let voice_channel = |c: u64| {
            guild
                .channel(c)
                .is_some_and(|c| c.kind == crate::config::ChannelKind::Voice)
        };
        if channel.is_some_and(|c| !voice_channel(c)) {
            return Err(());
        }
        let bot = guild.bot().id;
        Ok((
            events::user_voice_state(guild, bot, channel, self_mute, self_deaf),
            (),
        ))
    });
    if moved.is_ok() && channel.is_some() {
        let _ = state.emit_with(|_, _| Ok::<_, ()>((events::voice_server_update(guild_id), ())));
    }
    Ok(())
}

/// Op 8 on `session`.
pub fn request_guild_members(
    state: &SimState,
    session: &Arc<Mutex<Session>>,
    d: &Value,
) -> Result<(), CloseCode> {
    let Some(guild_id) = d.get("guild_id").and_then(snowflake_of) else {
        return Err(CloseCode::DECODE_ERROR);
    };
    let query = d.get("query").and_then(Value::as_str);
    let user_ids: Option<Vec<u64>> = match d.get("user_ids") {
        Some(Value::Array(a)) => Some(a.iter().filter_map(snowflake_of).collect()),
        Some(v @ Value::String(_)) => snowflake_of(v).map(|id| vec![id]),
        _ => None,
    };
    if query.is_none() && user_ids.is_none() {
        return Err(CloseCode::DECODE_ERROR);
    }
    let session_intents = lock(session).intents;
    if query == Some("") && session_intents & intents::GUILD_MEMBERS == 0 {
        // Discord: requesting the whole member list without the intent is refused.
        return Err(CloseCode::DISALLOWED_INTENTS);
    }
    let nonce = d.get("nonce").filter(|n| !n.is_null()).cloned();
    let guilds = lock(&state.guilds);
    let Some(guild) = guilds.get(guild_id).filter(|g| !g.unavailable) else {
        return Ok(());
    };
    if !on_my_shard(state, session, guild_id) {
        return Ok(());
    }
    state.records.count(|s| s.member_requests += 1);
    let now = Instant::now();
    let window = state.config.member_request_window;
    let limited = {
        let mut last = lock(&state.member_requests);
        match last.get(&guild_id) {
            Some(t) if now.duration_since(*t) < window => Some(window - now.duration_since(*t)),
            _ => {
                last.insert(guild_id, now);
                None
            }
        }
    };
    let mut dispatches: Vec<(&str, Value)> = vec![];
    if let Some(retry) = limited {
        let mut meta = json!({"guild_id": guild_id.to_string()});
        if let Some(n) = &nonce {
            meta["nonce"] = n.clone();
        }
        dispatches.push((
            "RATE_LIMITED",
            json!({"opcode": 8, "retry_after": retry.as_secs_f64(), "meta": meta}),
        ));
        state.records.count(|s| s.member_requests_rate_limited += 1);
    } else {
        let limit = d.get("limit").and_then(Value::as_u64).unwrap_or(0);
        let limit = if limit == 0 {
            usize::MAX
        } else {
            limit as usize
        };
        let presences = d.get("presences").and_then(Value::as_bool) == Some(true);
        let found: Vec<Value> = guild
            .members()
            .iter()
            .filter(|(u, _)| match (&user_ids, query) {
                (Some(ids), _) => ids.contains(&u.id),
                (None, Some(q)) => u.username.starts_with(q),
                (None, None) => false,
            })
            .take(limit)
            .map(|(u, j)| crate::payloads::member(u, *j, true))
            .collect();
        let not_found: Vec<String> = user_ids
            .iter()
            .flatten()
            .filter(|id| guild.member(**id).is_none())
            .map(u64::to_string)
            .collect();
        let chunks: Vec<&[Value]> = if found.is_empty() {
            vec![&[]]
        } else {
            found.chunks(MEMBERS_PER_CHUNK).collect()
        };
        let count = chunks.len();
        for (i, members) in chunks.into_iter().enumerate() {
            let mut chunk = json!({
                "guild_id": guild_id.to_string(),
                "members": members,
                "chunk_index": i,
                "chunk_count": count,
            });
            if i == 0 && user_ids.is_some() {
                chunk["not_found"] = json!(not_found);
            }
            if presences {
                chunk["presences"] = json!([]);
            }
            if let Some(n) = &nonce {
                chunk["nonce"] = n.clone();
            }
            dispatches.push(("GUILD_MEMBERS_CHUNK", chunk));
        }
    }
    let entries: Vec<_> = {
        let mut s = lock(session);
        dispatches
            .into_iter()
            .map(|(t, d)| s.push(t, d.to_string()))
            .collect()
    };
    drop(guilds);
    let n = entries.len() as u64;
    for e in entries {
        state.records.emitted(e);
    }
    state.records.count(|s| s.emitted += n);
    Ok(())
}
