//! Discord's REST error bodies: `{message, code}` for simple errors and
//! `{message: "Invalid Form Body", code: 50035, errors: {...}}` for validation failures.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

/// `{message, code}` with a status.
pub fn error(status: StatusCode, code: u32, message: &str) -> Response {
    (status, Json(json!({"message": message, "code": code}))).into_response()
}

/// 401 as Discord sends it.
pub fn unauthorized() -> Response {
    error(StatusCode::UNAUTHORIZED, 0, "401: Unauthorized")
}

/// 404 for a route that doesn't exist.
pub fn not_found() -> Response {
    error(StatusCode::NOT_FOUND, 0, "404: Not Found")
}

/// 405 for a known path with the wrong method.
pub fn method_not_allowed() -> Response {
    error(StatusCode::METHOD_NOT_ALLOWED, 0, "405: Method Not Allowed")
}

/// 404 Unknown Channel (10003).
pub fn unknown_channel() -> Response {
    error(StatusCode::NOT_FOUND, 10003, "Unknown Channel")
}

/// 403 Missing Access (50001): a channel of a guild the bot is no longer in.
pub fn missing_access() -> Response {
    error(StatusCode::FORBIDDEN, 50001, "Missing Access")
}

/// 400 for a request without a Discord-style `User-Agent` (Discord's edge blocks these; the
/// sim answers with a body that says why).
pub fn bad_user_agent(got: Option<&str>) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({
            "message": "discord-sim: missing or invalid User-Agent; Discord requires `User-Agent: DiscordBot ($url, $versionNumber)`",
            "code": 0,
            "user_agent": got,
        })),
    )
        .into_response()
}

/// 404 Unknown Message (10008).
pub fn unknown_message() -> Response {
    error(StatusCode::NOT_FOUND, 10008, "Unknown Message")
}

/// 400 Unknown Emoji (10014).
pub fn unknown_emoji() -> Response {
    error(StatusCode::BAD_REQUEST, 10014, "Unknown Emoji")
}

/// 400: the body isn't JSON (50109).
pub fn invalid_json() -> Response {
    error(
        StatusCode::BAD_REQUEST,
        50109,
        "The request body contains invalid JSON.",
    )
}

/// 400: empty message (50006).
pub fn empty_message() -> Response {
    error(
        StatusCode::BAD_REQUEST,
        50006,
        "Cannot send an empty message",
    )
}

/// One field error for [`invalid_form_body`].
pub struct FieldError {
    /// Field path, e.g. `content`.
    pub field: &'static str,
    /// Discord's error code, e.g. `BASE_TYPE_MAX_LENGTH`.
    pub code: &'static str,
    /// Text.
    pub message: String,
}

/// 400 Invalid Form Body (50035) with Discord's nested `errors` object.
pub fn invalid_form_body(errors: Vec<FieldError>) -> Response {
    let mut map = serde_json::Map::new();
    for e in errors {
        map.insert(
            e.field.to_owned(),
            json!({"_errors": [{"code": e.code, "message": e.message}]}),
        );
    }
    (
        StatusCode::BAD_REQUEST,
        Json(json!({"message": "Invalid Form Body", "code": 50035, "errors": Value::Object(map)})),
    )
        .into_response()
}
