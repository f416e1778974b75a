//! The Discord Gateway (v10, JSON, optional zlib-stream): the websocket endpoint and its rules.
//!
//! - `connection.rs`: one connection's task (HELLO, heartbeats, IDENTIFY, RESUME, writing frames).
//! - `session.rs`: sessions, sequence numbers and the replay backlog.
//! - `client_commands.rs`: ops 3, 4 and 8 (presence, voice state, member requests) and their answers.
//! - `close_codes.rs`, `intents.rs`, `limits.rs`: Discord's rules, as data.
//! - `zlib.rs`: the per-connection deflate stream.

pub mod client_commands;
pub mod close_codes;
pub mod connection;
pub mod intents;
pub mod limits;
pub mod session;
pub mod zlib;

use std::sync::Arc;

use axum::extract::{State, WebSocketUpgrade};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use crate::state::SimState;
use connection::ConnParams;

/// Gateway routes: `/` (the URL from `GET /gateway/bot`) and `/resume` (READY's
/// `resume_gateway_url`); clients append `/?v=10&encoding=json[&compress=zlib-stream]`.
pub fn router() -> Router<Arc<SimState>> {
    Router::new()
        .route("/", get(upgrade))
        .route("/resume", get(upgrade))
        .route("/resume/", get(upgrade))
}

async fn upgrade(
    State(state): State<Arc<SimState>>,
    uri: Uri,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    if state
        .faults
        .refuse_gateway
        .load(std::sync::atomic::Ordering::Relaxed)
    {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "discord-sim: the gateway is down (refuse_gateway fault)",
        )
            .into_response();
    }
    let mut zlib = false;
    let mut bad_version = false;
    for pair in uri
        .query()
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
    {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        match k {
            "v" => bad_version = v != "10",
            "encoding" if v != "json" => {
                return (
                    StatusCode::BAD_REQUEST,
                    "discord-sim supports encoding=json only",
                )
                    .into_response()
            }
            "compress" => match v {
                "zlib-stream" => zlib = true,
                _ => {
                    return (
                        StatusCode::BAD_REQUEST,
                        "discord-sim supports compress=zlib-stream only",
                    )
                        .into_response()
                }
            },
            _ => {}
        }
    }
    let params = ConnParams {
        path: uri.path().to_owned(),
        query: uri.query().map(str::to_owned),
        zlib,
        bad_version,
        user_agent: headers
            .get("user-agent")
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned()),
    };
    // Let oversized payloads through the websocket layer so the gateway can close with 4002
    // like Discord instead of failing the read.
    ws.max_message_size(1 << 20)
        .max_frame_size(1 << 20)
        .on_upgrade(move |socket| connection::serve(state, socket, params))
}
