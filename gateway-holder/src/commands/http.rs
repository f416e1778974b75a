//! `POST /commands` on `HOLDER_LISTEN`: the edge's way into the command queue. It checks
//! `LINK_TOKEN` in constant time, validates the body through `contracts`, queues the command, and
//! answers `200 sent` when Discord answers within the command's `wait_ms`, else `202 queued` (the
//! outcome then goes to the edge as a `command.result`). A full queue is `503 queue_full` at once.

use super::executor::{trace_id, Outcome};
use super::results::ResultPoster;
use super::service::{CommandService, QueueFull};
use crate::config::Secret;
use axum::{
    body::Body,
    extract::State,
    http::{header, HeaderMap, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    routing::post,
    Router,
};
use contracts::{
    CommandAnswer, CommandResultEvent, CommandResultPost, CommandStatus, ErrorBody, ErrorCode,
    HolderCommand, Version,
};
use std::sync::Arc;
use std::time::Duration;
use subtle::ConstantTimeEq;

/// Largest accepted command body (a 2000-character message is well under it).
pub const MAX_BODY_BYTES: usize = 32 * 1024;
/// The longest a request waits for Discord before answering `queued`.
const MAX_WAIT: Duration = Duration::from_secs(10);

#[derive(Clone)]
pub struct CommandsState {
    pub service: Arc<CommandService>,
    pub results: ResultPoster,
    /// `Bearer {LINK_TOKEN}`, and `Bearer {LINK_TOKEN_PREVIOUS}` during a rotation.
    pub link_auth: Arc<Vec<Secret>>,
}

pub fn routes(state: CommandsState) -> Router {
    Router::new()
        .route("/commands", post(post_command))
        .with_state(state)
}

fn json(status: StatusCode, body: &impl serde::Serialize) -> Response {
    let text = serde_json::to_string(body).expect("contract types serialize");
    (status, [(header::CONTENT_TYPE, "application/json")], text).into_response()
}

fn error(code: ErrorCode, message: impl Into<String>) -> Response {
    let status =
        StatusCode::from_u16(code.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    json(status, &ErrorBody::new(code, message))
}

async fn post_command(State(s): State<CommandsState>, headers: HeaderMap, body: Body) -> Response {
    let presented = headers
        .get(header::AUTHORIZATION)
        .map(|v| v.as_bytes())
        .unwrap_or_default();
    // Every accepted token is compared (constant time each), so timing tells nothing about which.
    let accepted = s.link_auth.iter().fold(subtle::Choice::from(0), |ok, t| {
        ok | presented.ct_eq(t.expose().as_bytes())
    });
    if !bool::from(accepted) {
        tracing::warn!("POST /commands with a missing or wrong LINK_TOKEN");
        return error(ErrorCode::Unauthorized, "missing or wrong LINK_TOKEN");
    }
    let bytes = match axum::body::to_bytes(body, MAX_BODY_BYTES).await {
        Ok(b) => b,
        Err(_) => {
            return error(
                ErrorCode::TooLarge,
                format!("body is over {MAX_BODY_BYTES} bytes"),
            )
        }
    };
    let command: HolderCommand = match contracts::validate::parse(&bytes) {
        Ok(c) => c,
        Err(e) => return json(StatusCode::BAD_REQUEST, &ErrorBody::from(e)),
    };
    let trace = trace_id(&command.traceparent).to_string();
    let traceparent = HeaderValue::from_str(&command.traceparent).ok();
    tracing::info!(
        trace_id = %trace,
        command_id = %command.command_id,
        kind = command.command.kind(),
        channel_id = %command.command.channel_id().map_or("-".to_string(), |c| c.to_string()),
        "command received"
    );
    let wait = Duration::from_millis(command.wait_ms).min(MAX_WAIT);
    let (command_id, user, guild_id, tp) = (
        command.command_id.clone(),
        command.user.clone(),
        command.guild_id,
        command.traceparent.clone(),
    );
    let mut outcome = match s.service.submit(command) {
        Ok(rx) => rx,
        Err(QueueFull) => {
            tracing::warn!(trace_id = %trace, command_id = %command_id, "command queue full");
            let mut r = error(
                ErrorCode::QueueFull,
                format!("the command queue holds {} commands", s.service.capacity()),
            );
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            return r;
        }
    };
    let mut response = match tokio::time::timeout(wait, &mut outcome).await {
        Ok(Ok(Outcome::Sent(result))) => json(
            StatusCode::OK,
            &CommandAnswer {
                version: Version,
                command_id,
                status: CommandStatus::Sent,
                result,
            },
        ),
        Ok(Ok(Outcome::Failed(detail))) => {
            let status =
                StatusCode::from_u16(detail.code.http_status()).unwrap_or(StatusCode::BAD_GATEWAY);
            json(
                status,
                &ErrorBody {
                    version: Version,
                    error: detail,
                },
            )
        }
        Ok(Err(_)) => error(ErrorCode::Internal, "the command was dropped"),
        Err(_) => {
            // Not done within the wait: answer now, deliver the outcome on the stream later.
            let results = s.results.clone();
            let id = command_id.clone();
            tokio::spawn(async move {
                let Ok(outcome) = outcome.await else { return };
                let (status, result, error) = match outcome {
                    Outcome::Sent(r) => (CommandStatus::Sent, r, None),
                    Outcome::Failed(e) => (CommandStatus::Failed, None, Some(e)),
                };
                let post = CommandResultPost {
                    version: Version,
                    guild_id,
                    user,
                    event: CommandResultEvent {
                        version: Version,
                        command_id: id,
                        status,
                        result,
                        error,
                        traceparent: Some(tp),
                    },
                };
                results.post(&post).await;
            });
            json(
                StatusCode::ACCEPTED,
                &CommandAnswer {
                    version: Version,
                    command_id,
                    status: CommandStatus::Queued,
                    result: None,
                },
            )
        }
    };
    if let Some(tp) = traceparent {
        response.headers_mut().insert("traceparent", tp);
    }
    response
}
