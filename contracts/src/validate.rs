//! Strict parsing of untrusted JSON (browser commands, holder batches) into the contract types.
//!
//! Two layers: serde refuses wrong shapes (missing or unknown fields, wrong types, bad snowflakes,
//! a wrong `version`), and [`Validate`] checks the rules serde can't express (content length, nonce
//! length, emoji form). Either way the caller gets a [`ValidationError`] whose `field` is the dotted
//! path of the culprit, ready to become a 400 `invalid_request`.

use crate::{
    AddReaction, Command, IdentifyAsk, IngestBatch, RegisterHolder, RequestGuildMembers,
    SendMessage, Snowflake, TypingStart, UpdatePresence, UpdateVoiceState, ValidationError,
};
use serde::de::DeserializeOwned;

/// Discord's limit on message content, in characters.
pub const MAX_CONTENT_CHARS: usize = 2000;
/// Discord's limit on a message nonce, in characters.
pub const MAX_NONCE_CHARS: usize = 25;

/// Activities in one presence update (Discord shows one; a few are accepted).
pub const MAX_ACTIVITIES: usize = 5;
/// An activity name, in characters.
pub const MAX_ACTIVITY_NAME_CHARS: usize = 128;
/// The highest activity type Discord defines (5, competing).
pub const MAX_ACTIVITY_TYPE: u8 = 5;
/// Request Guild Members: `query` characters, `user_ids` entries and `limit`.
pub const MAX_MEMBER_QUERY_CHARS: usize = 100;
pub const MAX_MEMBER_IDS: usize = 100;
pub const MAX_MEMBER_LIMIT: u32 = 100;
/// Request Guild Members: Discord's nonce limit, in bytes (here printable ASCII, so characters).
pub const MAX_MEMBERS_NONCE_BYTES: usize = 32;

/// Rules beyond the shape of a type.
pub trait Validate {
    fn validate(&self) -> Result<(), ValidationError>;
}

/// Parses and validates `body` as `T`.
pub fn parse<T: DeserializeOwned + Validate>(body: &[u8]) -> Result<T, ValidationError> {
    let value = parse_shape::<T>(body)?;
    value.validate()?;
    Ok(value)
}

/// Parses `body` as `T`, checking only what serde checks.
pub fn parse_shape<T: DeserializeOwned>(body: &[u8]) -> Result<T, ValidationError> {
    // serde would also read a struct from a JSON array of its fields in order; a body must be an
    // object so that every value is matched to a field by name.
    match body.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'{') => {}
        None => {
            return Err(ValidationError {
                field: None,
                message: "body is empty".into(),
            })
        }
        Some(_) => {
            return Err(ValidationError {
                field: None,
                message: "body must be a JSON object".into(),
            })
        }
    }
    let de = &mut serde_json::Deserializer::from_slice(body);
    let value: T = serde_path_to_error::deserialize(&mut *de).map_err(shape_error)?;
    // One object and nothing after it but whitespace: `{…}garbage` or `{…}{…}` is not a body.
    de.end().map_err(|e| ValidationError {
        field: None,
        message: format!("body is not valid JSON: {}", strip_location(&e.to_string())),
    })?;
    Ok(value)
}

fn shape_error(e: serde_path_to_error::Error<serde_json::Error>) -> ValidationError {
    let path = e.path().to_string();
    let inner = e.into_inner();
    let message = strip_location(&inner.to_string());
    if inner.is_syntax() || inner.is_eof() {
        return ValidationError {
            field: None,
            message: format!("body is not valid JSON: {message}"),
        };
    }
    // The path of an unknown field already ends with its name.
    if let Some(name) = message
        .strip_prefix("unknown field `")
        .and_then(|rest| rest.split('`').next())
    {
        return ValidationError::field(path, format!("unknown field `{name}`"));
    }
    if let Some(name) = message
        .strip_prefix("missing field `")
        .and_then(|rest| rest.split('`').next())
    {
        let field = if path == "." {
            name.to_string()
        } else {
            format!("{path}.{name}")
        };
        return ValidationError::field(field, "is required");
    }
    if path == "." {
        ValidationError {
            field: None,
            message: format!("body: {message}"),
        }
    } else {
        ValidationError::field(path, message)
    }
}

/// serde_json appends " at line L column C"; the field path says more to a browser.
fn strip_location(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_string(),
        None => message.to_string(),
    }
}

impl Validate for SendMessage {
    fn validate(&self) -> Result<(), ValidationError> {
        let chars = self.content.chars().count();
        if chars == 0 || self.content.trim().is_empty() {
            return Err(ValidationError::field(
                "content",
                "must not be empty or only whitespace",
            ));
        }
        if chars > MAX_CONTENT_CHARS {
            return Err(ValidationError::field(
                "content",
                format!("is {chars} characters; at most {MAX_CONTENT_CHARS} are allowed"),
            ));
        }
        if let Some(nonce) = &self.nonce {
            let n = nonce.chars().count();
            if n == 0 || n > MAX_NONCE_CHARS {
                return Err(ValidationError::field(
                    "nonce",
                    format!("must be 1 to {MAX_NONCE_CHARS} characters, got {n}"),
                ));
            }
        }
        Ok(())
    }
}

impl Validate for AddReaction {
    fn validate(&self) -> Result<(), ValidationError> {
        check_emoji(&self.emoji).map_err(|m| ValidationError::field("emoji", m))
    }
}

impl Validate for TypingStart {
    fn validate(&self) -> Result<(), ValidationError> {
        Ok(())
    }
}

impl Validate for UpdateVoiceState {
    fn validate(&self) -> Result<(), ValidationError> {
        Ok(())
    }
}

impl Validate for UpdatePresence {
    fn validate(&self) -> Result<(), ValidationError> {
        let Some(activities) = &self.activities else {
            return Ok(());
        };
        if activities.len() > MAX_ACTIVITIES {
            return Err(ValidationError::field(
                "activities",
                format!(
                    "has {} entries; at most {MAX_ACTIVITIES} are allowed",
                    activities.len()
                ),
            ));
        }
        for (i, a) in activities.iter().enumerate() {
            let chars = a.name.chars().count();
            if chars == 0 || a.name.trim().is_empty() || chars > MAX_ACTIVITY_NAME_CHARS {
                return Err(ValidationError::field(
                    format!("activities[{i}].name"),
                    format!("must be 1 to {MAX_ACTIVITY_NAME_CHARS} characters, not only whitespace (got {chars})"),
                ));
            }
            if a.kind > MAX_ACTIVITY_TYPE {
                return Err(ValidationError::field(
                    format!("activities[{i}].type"),
                    format!("must be 0 to {MAX_ACTIVITY_TYPE}, got {}", a.kind),
                ));
            }
        }
        Ok(())
    }
}

impl Validate for RequestGuildMembers {
    fn validate(&self) -> Result<(), ValidationError> {
        match (&self.query, &self.user_ids) {
            (None, None) => {
                return Err(ValidationError::field(
                    "query",
                    "one of query or user_ids is required",
                ))
            }
            (Some(_), Some(_)) => {
                return Err(ValidationError::field(
                    "user_ids",
                    "cannot be combined with query; give one of them",
                ))
            }
            (Some(q), None) => {
                let chars = q.chars().count();
                if chars > MAX_MEMBER_QUERY_CHARS {
                    return Err(ValidationError::field(
                        "query",
                        format!(
                            "is {chars} characters; at most {MAX_MEMBER_QUERY_CHARS} are allowed"
                        ),
                    ));
                }
            }
            (None, Some(ids)) => {
                if ids.is_empty() || ids.len() > MAX_MEMBER_IDS {
                    return Err(ValidationError::field(
                        "user_ids",
                        format!("must hold 1 to {MAX_MEMBER_IDS} ids, got {}", ids.len()),
                    ));
                }
            }
        }
        if self.limit > MAX_MEMBER_LIMIT {
            return Err(ValidationError::field(
                "limit",
                format!("must be 0 to {MAX_MEMBER_LIMIT}, got {}", self.limit),
            ));
        }
        if let Some(nonce) = &self.nonce {
            let ok = (1..=MAX_MEMBERS_NONCE_BYTES).contains(&nonce.len())
                && nonce.bytes().all(|b| (0x20..=0x7e).contains(&b));
            if !ok {
                return Err(ValidationError::field(
                    "nonce",
                    format!("must be 1 to {MAX_MEMBERS_NONCE_BYTES} printable ASCII characters"),
                ));
            }
        }
        Ok(())
    }
}

impl Validate for Command {
    fn validate(&self) -> Result<(), ValidationError> {
        let result = match self {
            Command::SendMessage(c) => c.validate(),
            Command::AddReaction(c) => c.validate(),
            Command::TypingStart(c) => c.validate(),
            Command::UpdateVoiceState(c) => c.validate(),
            Command::UpdatePresence(c) => c.validate(),
            Command::RequestGuildMembers(c) => c.validate(),
        };
        let kind = "body";
        result.map_err(|e| ValidationError {
            field: e.field.map(|f| format!("{kind}.{f}")),
            message: e.message,
        })
    }
}

impl Validate for crate::HolderCommand {
    fn validate(&self) -> Result<(), ValidationError> {
        self.command.validate().map_err(|e| ValidationError {
            field: e.field.map(|f| format!("command.{f}")),
            message: e.message,
        })
    }
}

impl Validate for IngestBatch {
    fn validate(&self) -> Result<(), ValidationError> {
        // Ids increase per shard (each shard numbers from its own `s`); shards interleave.
        let mut last: std::collections::HashMap<u32, u64> = std::collections::HashMap::new();
        for (i, env) in self.envelopes.iter().enumerate() {
            if let Some(prev) = last.insert(env.shard, env.id) {
                if env.id <= prev {
                    return Err(ValidationError::field(
                        format!("envelopes[{i}].id"),
                        format!(
                            "ids must increase within a batch per shard ({} after {} on shard {})",
                            env.id, prev, env.shard
                        ),
                    ));
                }
            }
            if env.kind.is_empty() {
                return Err(ValidationError::field(
                    format!("envelopes[{i}].type"),
                    "must not be empty",
                ));
            }
        }
        for (i, gap) in self.gaps.iter().enumerate() {
            if gap.to_id < gap.from_id {
                return Err(ValidationError::field(
                    format!("gaps[{i}].to_id"),
                    "is before from_id",
                ));
            }
        }
        for (i, s) in self.shards.iter().enumerate() {
            if s.count == 0 || s.shard >= s.count {
                return Err(ValidationError::field(
                    format!("shards[{i}].shard"),
                    format!("shard {} is not below count {}", s.shard, s.count),
                ));
            }
        }
        Ok(())
    }
}

/// Largest shard count accepted from a holder (Discord's largest bots run a few thousand).
pub const MAX_SHARD_COUNT: u32 = 1 << 16;
/// Largest `max_concurrency` accepted (Discord hands out 1, 16, 32, 64, ...).
pub const MAX_CONCURRENCY: u32 = 1024;

fn check_holder_id(id: &str) -> Result<(), ValidationError> {
    if id.is_empty() || id.len() > 128 || id.chars().any(|c| c.is_control()) {
        return Err(ValidationError::field(
            "holder_id",
            "must be 1 to 128 characters, no control characters",
        ));
    }
    Ok(())
}

impl Validate for RegisterHolder {
    fn validate(&self) -> Result<(), ValidationError> {
        check_holder_id(&self.holder_id)?;
        let rest = self
            .url
            .strip_prefix("http://")
            .or_else(|| self.url.strip_prefix("https://"));
        if self.url.len() > 512
            || rest.is_none_or(|r| {
                r.is_empty() || r.contains(['?', '#']) || r.chars().any(char::is_whitespace)
            })
        {
            return Err(ValidationError::field(
                "url",
                "must be an http(s) base URL like http://10.0.0.5:8790 (no query, at most 512)",
            ));
        }
        let r = self.shards;
        if r.count == 0 || r.count > MAX_SHARD_COUNT {
            return Err(ValidationError::field(
                "shards.count",
                format!("must be 1 to {MAX_SHARD_COUNT}"),
            ));
        }
        if r.last >= r.count {
            return Err(ValidationError::field(
                "shards.last",
                format!("shard {} is not below count {}", r.last, r.count),
            ));
        }
        if r.first > r.last {
            return Err(ValidationError::field("shards.first", "is after last"));
        }
        Ok(())
    }
}

impl Validate for IdentifyAsk {
    fn validate(&self) -> Result<(), ValidationError> {
        check_holder_id(&self.holder_id)?;
        if self.count == 0 || self.count > MAX_SHARD_COUNT {
            return Err(ValidationError::field(
                "count",
                format!("must be 1 to {MAX_SHARD_COUNT}"),
            ));
        }
        if self.shard >= self.count {
            return Err(ValidationError::field(
                "shard",
                format!("shard {} is not below count {}", self.shard, self.count),
            ));
        }
        if self.max_concurrency == 0 || self.max_concurrency > MAX_CONCURRENCY {
            return Err(ValidationError::field(
                "max_concurrency",
                format!("must be 1 to {MAX_CONCURRENCY}"),
            ));
        }
        Ok(())
    }
}

/// A reaction emoji is either a unicode emoji or a custom emoji as `name:id` (Discord's route form).
pub fn check_emoji(emoji: &str) -> Result<(), String> {
    if let Some((name, id)) = emoji.split_once(':') {
        let name_ok = (2..=32).contains(&name.len())
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if !name_ok {
            return Err(format!(
                "custom emoji name {name:?} must be 2 to 32 letters, digits or underscores"
            ));
        }
        id.parse::<Snowflake>()
            .map_err(|e| format!("custom emoji id: {e}"))?;
        return Ok(());
    }
    let chars = emoji.chars().count();
    if chars == 0 {
        return Err("must not be empty".into());
    }
    if chars > 16 {
        return Err(format!(
            "is {chars} characters; a unicode emoji is at most 16"
        ));
    }
    if emoji.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("must not contain whitespace or control characters".into());
    }
    if emoji.is_ascii() {
        return Err("must be a unicode emoji or a custom emoji as name:id".into());
    }
    if emoji
        .chars()
        .any(|c| matches!(c, '/' | '?' | '#' | '%' | '<' | '>'))
    {
        return Err("must not contain URL or markup characters".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{HolderCommand, TypingStart};

    #[test]
    fn nothing_may_follow_the_object() {
        // Found by the `ingest_parse` and `command_validate` fuzz targets.
        let ok = br#" {"channel_id":"1"} "#;
        assert!(parse::<TypingStart>(ok).is_ok());
        for bad in [
            &br#"{"channel_id":"1"}x"#[..],
            br#"{"channel_id":"1"}{"channel_id":"2"}"#,
            br#"{"channel_id":"1"}]"#,
        ] {
            let e = parse::<TypingStart>(bad).unwrap_err();
            assert_eq!(e.field, None);
            assert!(e.message.starts_with("body is not valid JSON"), "{e}");
        }
    }

    #[test]
    fn holder_registration_and_identify_asks() {
        let ok = br#"{"version":"1.0","holder_id":"h1","url":"http://127.0.0.1:8790","shards":{"first":0,"last":1,"count":4}}"#;
        assert!(parse::<RegisterHolder>(ok).is_ok());
        let field = |body: &str| parse::<RegisterHolder>(body.as_bytes()).unwrap_err().field;
        let base = std::str::from_utf8(ok).unwrap();
        assert_eq!(
            field(&base.replace(r#""last":1"#, r#""last":4"#)).as_deref(),
            Some("shards.last")
        );
        assert_eq!(
            field(&base.replace(r#""first":0"#, r#""first":2"#)).as_deref(),
            Some("shards.first")
        );
        assert_eq!(
            field(&base.replace("http://127.0.0.1:8790", "ftp://x")).as_deref(),
            Some("url")
        );
        assert_eq!(
            field(&base.replace(r#""h1""#, r#""""#)).as_deref(),
            Some("holder_id")
        );
        let ask = |s: u32, c: u32, m: u32| {
            parse::<IdentifyAsk>(
                format!(r#"{{"version":"1.0","holder_id":"h","shard":{s},"count":{c},"max_concurrency":{m}}}"#)
                    .as_bytes(),
            )
            .map_err(|e| e.field)
        };
        assert!(ask(3, 4, 2).is_ok());
        assert_eq!(ask(4, 4, 2).unwrap_err().as_deref(), Some("shard"));
        assert_eq!(
            ask(0, 4, 0).unwrap_err().as_deref(),
            Some("max_concurrency")
        );
        assert_eq!(ask(0, 0, 1).unwrap_err().as_deref(), Some("count"));
    }

    #[test]
    fn a_command_has_only_kind_and_body() {
        let body = br#"{"version":"1.0","command_id":"c","user":"u","guild_id":"1","traceparent":"t","wait_ms":1,
            "command":{"kind":"typing_start","body":{"channel_id":"2"},"extra":1}}"#;
        let e = parse::<HolderCommand>(body).unwrap_err();
        assert!(e.to_string().contains("extra"), "{e}");
    }
}
