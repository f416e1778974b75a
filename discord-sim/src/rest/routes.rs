//! The REST endpoints the simulator implements, their validation and what each emits on the
//! gateway: send message (MESSAGE_CREATE, with `nonce` + `enforce_nonce` idempotency), add reaction
//! (MESSAGE_REACTION_ADD), typing (TYPING_START), and `GET /gateway[/bot]`.
//!
//! A channel must be in one of the bot's guilds: a channel of a guild it left is 403 Missing
//! Access (50001), any other unknown id 404 Unknown Channel (10003). The event goes to the
//! sessions of that guild's shard (none while the guild is unavailable).

// Errors here *are* the HTTP answers, built once per request on the error path; boxing them
// would only add an allocation.
#![allow(clippy::result_large_err)]

use std::time::Instant;

use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use crate::config::RouteLimit;
use crate::events;
use crate::guild::{ChannelOwner, GuildState, Guilds};
use crate::state::{lock, SimState};

use super::errors::{self, FieldError};

/// A matched endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// `GET /gateway`.
    Gateway,
    /// `GET /gateway/bot`.
    GatewayBot,
    /// `POST /channels/{id}/messages`.
    CreateMessage {
        /// Channel.
        channel_id: u64,
    },
    /// `PUT /channels/{id}/messages/{mid}/reactions/{emoji}/@me`.
    AddReaction {
        /// Channel.
        channel_id: u64,
        /// Message.
        message_id: u64,
        /// Decoded emoji.
        emoji: String,
    },
    /// `POST /channels/{id}/typing`.
    Typing {
        /// Channel.
        channel_id: u64,
    },
}

/// Decodes `%XX` escapes (emoji in paths).
pub fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

fn snowflake(field: &'static str, raw: &str) -> Result<u64, Response> {
    raw.parse::<u64>().map_err(|_| {
        errors::invalid_form_body(vec![FieldError {
            field,
            code: "NUMBER_TYPE_COERCE",
            message: format!("Value \"{raw}\" is not snowflake."),
        }])
    })
}

impl Route {
    /// Matches a method and a path below `/api/v10`.
    pub fn parse(method: &Method, path: &str) -> Result<Self, Response> {
        let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
        let (route, allowed) = match segs.as_slice() {
            ["gateway"] => (Self::Gateway, Method::GET),
            ["gateway", "bot"] => (Self::GatewayBot, Method::GET),
            ["channels", ch, "messages"] => (
                Self::CreateMessage {
                    channel_id: snowflake("channel_id", ch)?,
                },
                Method::POST,
            ),
            ["channels", ch, "typing"] => (
                Self::Typing {
                    channel_id: snowflake("channel_id", ch)?,
                },
                Method::POST,
            ),
            ["channels", ch, "messages", mid, "reactions", emoji, "@me" | "%40me"] => (
                Self::AddReaction {
                    channel_id: snowflake("channel_id", ch)?,
                    message_id: snowflake("message_id", mid)?,
                    emoji: percent_decode(emoji).ok_or_else(errors::unknown_emoji)?,
                },
                Method::PUT,
            ),
            _ => return Err(errors::not_found()),
        };
        if *method != allowed {
            return Err(errors::method_not_allowed());
        }
        Ok(route)
    }

    /// Whether the route needs `Authorization: Bot <token>`.
    pub fn needs_auth(&self) -> bool {
        !matches!(self, Self::Gateway)
    }

    /// The route's bucket: (name, major parameter, limit).
    pub fn bucket(&self, state: &SimState) -> Option<(&'static str, u64, RouteLimit)> {
        let l = &state.config.rest;
        match self {
            Self::Gateway => None,
            Self::GatewayBot => Some(("gateway-bot", 0, l.gateway_bot)),
            Self::CreateMessage { channel_id } => {
                Some(("channel-message-create", *channel_id, l.message_send))
            }
            Self::AddReaction { channel_id, .. } => {
                Some(("channel-reaction-add", *channel_id, l.reaction_add))
            }
            Self::Typing { channel_id } => Some(("channel-typing", *channel_id, l.typing)),
        }
    }
}

/// Runs a matched, authorized, not rate-limited call.
pub fn run(state: &SimState, route: Route, body: &[u8]) -> Response {
    match route {
        Route::Gateway => Json(json!({"url": state.gateway_url()})).into_response(),
        Route::GatewayBot => {
            let day_ms = 86_400_000u128;
            let elapsed = state.session_starts_since.elapsed().as_millis() % day_ms;
            Json(json!({
                "url": state.gateway_url(),
                "shards": state.config.recommended_shards,
                "session_start_limit": {
                    "total": state.config.session_start_total,
                    "remaining": state.session_starts_remaining(),
                    "reset_after": (day_ms - elapsed) as u64,
                    "max_concurrency": state.max_concurrency(),
                },
            }))
            .into_response()
        }
        Route::CreateMessage { channel_id } => create_message(state, channel_id, body),
        Route::AddReaction {
            channel_id,
            message_id,
            emoji,
        } => add_reaction(state, channel_id, message_id, &emoji),
        Route::Typing { channel_id } => {
            let bot = state.config.bot_user.id;
            let res = state.emit_with(|guilds, _| {
                let guild = channel_guild(guilds, channel_id)?;
                Ok((events::typing_start(guild, channel_id, bot), ()))
            });
            match res {
                Ok(_) => StatusCode::NO_CONTENT.into_response(),
                Err(resp) => resp,
            }
        }
    }
}

/// The guild (of the bot's) that has `channel_id`, or Discord's answer for a channel the bot
/// can't use.
fn channel_guild(guilds: &mut Guilds, channel_id: u64) -> Result<&mut GuildState, Response> {
    match guilds.channel_owner(channel_id) {
        ChannelOwner::Current(i) => Ok(&mut guilds.list_mut()[i]),
        ChannelOwner::Left => Err(errors::missing_access()),
        ChannelOwner::Unknown => Err(errors::unknown_channel()),
    }
}

fn create_message(state: &SimState, channel_id: u64, body: &[u8]) -> Response {
    if let Err(resp) = channel_guild(&mut lock(&state.guilds), channel_id) {
        return resp;
    }
    let Ok(body) = serde_json::from_slice::<Value>(body) else {
        return errors::invalid_json();
    };
    let Some(obj) = body.as_object() else {
        return errors::invalid_json();
    };
    let mut field_errors = Vec::new();
    let content = match obj.get("content") {
        None | Some(Value::Null) => "",
        Some(Value::String(s)) => {
            if s.chars().count() > 2000 {
                field_errors.push(FieldError {
                    field: "content",
                    code: "BASE_TYPE_MAX_LENGTH",
                    message: "Must be 2000 or fewer in length.".to_owned(),
                });
            }
            s.as_str()
        }
        Some(_) => {
            field_errors.push(FieldError {
                field: "content",
                code: "BASE_TYPE_STRING",
                message: "Must be a string.".to_owned(),
            });
            ""
        }
    };
    let nonce = match obj.get("nonce") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.chars().count() <= 25 => Some(s.clone()),
        Some(Value::Number(n)) if n.is_i64() || n.is_u64() => Some(n.to_string()),
        Some(Value::String(_)) => {
            field_errors.push(FieldError {
                field: "nonce",
                code: "BASE_TYPE_MAX_LENGTH",
                message: "Must be 25 or fewer in length.".to_owned(),
            });
            None
        }
        Some(_) => {
            field_errors.push(FieldError {
                field: "nonce",
                code: "NONCE_TYPE_INVALID",
                message: "Nonce must be an integer or a string.".to_owned(),
            });
            None
        }
    };
    let enforce = match obj.get("enforce_nonce") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => {
            field_errors.push(FieldError {
                field: "enforce_nonce",
                code: "BASE_TYPE_BOOLEAN",
                message: "Must be either true or false.".to_owned(),
            });
            false
        }
    };
    if !field_errors.is_empty() {
        return errors::invalid_form_body(field_errors);
    }
    let has_other = ["embeds", "sticker_ids", "attachments", "poll"]
        .iter()
        .any(|k| obj.get(*k).is_some_and(|v| !v.is_null() && v != &json!([])));
    if content.is_empty() && !has_other {
        return errors::empty_message();
    }
    let nonce_key = nonce.clone().filter(|_| enforce).map(|n| (channel_id, n));
    let window = state.config.nonce_window;
    let bot = state.config.bot_user.id;
    let nonce_value = obj.get("nonce").cloned().filter(|v| !v.is_null());
    let res = state.emit_with(|guilds, ids| {
        let guild = channel_guild(guilds, channel_id)?;
        if let Some(key) = &nonce_key {
            let mut nonces = lock(&state.nonces);
            nonces.retain(|_, (at, _)| at.elapsed() < window);
            if let Some((_, message)) = nonces.get(key) {
                // Same nonce within the window: the first message, nothing emitted.
                return Err(Json(message.clone()).into_response());
            }
        }
        let resolved = events::message_create(
            guild,
            ids.next(),
            channel_id,
            bot,
            content,
            nonce_value.as_ref(),
        );
        let mut message = resolved.d.clone();
        if let Some(m) = message.as_object_mut() {
            m.remove("member");
            m.remove("guild_id");
        }
        if let Some(key) = nonce_key.clone() {
            lock(&state.nonces).insert(key, (Instant::now(), message.clone()));
        }
        Ok((resolved, message))
    });
    match res {
        Ok((_, _, message)) => Json(message).into_response(),
        Err(resp) => resp,
    }
}

fn add_reaction(state: &SimState, channel_id: u64, message_id: u64, emoji: &str) -> Response {
    let bot = state.config.bot_user.id;
    let res = state.emit_with(|guilds, _| {
        let guild = channel_guild(guilds, channel_id)?;
        if guild.message_channel(message_id) != Some(channel_id) {
            return Err(errors::unknown_message());
        }
        // Custom emoji (`name:id`) must exist in the guild; the sim's guild has none.
        if emoji.is_empty() || emoji.contains(':') {
            return Err(errors::unknown_emoji());
        }
        Ok((
            events::reaction_add(guild, channel_id, message_id, bot, emoji),
            (),
        ))
    });
    match res {
        Ok(_) => StatusCode::NO_CONTENT.into_response(),
        Err(resp) => resp,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_routes() {
        assert_eq!(
            Route::parse(&Method::POST, "/channels/5/messages").unwrap(),
            Route::CreateMessage { channel_id: 5 }
        );
        assert_eq!(
            Route::parse(
                &Method::PUT,
                "/channels/5/messages/7/reactions/%F0%9F%91%8D/@me"
            )
            .unwrap(),
            Route::AddReaction {
                channel_id: 5,
                message_id: 7,
                emoji: "👍".to_owned()
            }
        );
        assert_eq!(
            Route::parse(&Method::GET, "/channels/5/messages")
                .unwrap_err()
                .status(),
            StatusCode::METHOD_NOT_ALLOWED
        );
        assert_eq!(
            Route::parse(&Method::POST, "/channels/abc/messages")
                .unwrap_err()
                .status(),
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            Route::parse(&Method::GET, "/nope").unwrap_err().status(),
            StatusCode::NOT_FOUND
        );
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("a%3Ab").as_deref(), Some("a:b"));
        assert_eq!(percent_decode("%F0%9F%91%8D").as_deref(), Some("👍"));
        assert_eq!(percent_decode("%zz"), None);
        assert_eq!(percent_decode("%F0"), None);
    }
}
