//! The Discord Gateway (v10, JSON, optional zlib-stream or zstd-stream): the websocket endpoint
//! and its rules.
//!
//! - `connection.rs`: one connection's task (HELLO, heartbeats, IDENTIFY, RESUME, writing frames).
//! - `session.rs`: sessions, sequence numbers and the replay backlog.
//! - `client_commands.rs`: ops 3, 4 and 8 (presence, voice state, member requests) and their answers.
//! - `close_codes.rs`, `intents.rs`, `limits.rs`: Discord's rules, as data.
//! - `zlib.rs`, `zstd.rs`: the per-connection deflate and zstd streams.
//! - `socket.rs`: the websocket upgrade and a socket that can fragment a message.

pub mod client_commands;
pub mod close_codes;
pub mod connection;
pub mod intents;
pub mod limits;
pub mod session;
pub mod socket;
pub mod zlib;
pub mod zstd;

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use crate::state::SimState;
use connection::{Compress, ConnParams};

/// Gateway routes: `/` (the URL from `GET /gateway/bot`) and `/resume` (READY's
/// `resume_gateway_url`); clients append
/// `/?v=10&encoding=json[&compress=zlib-stream|zstd-stream]`.
pub fn router() -> Router<Arc<SimState>> {
    Router::new()
        .route("/", get(upgrade))
        .route("/resume", get(upgrade))
        .route("/resume/", get(upgrade))
}

async fn upgrade(State(state): State<Arc<SimState>>, mut req: Request) -> Response {
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
    let uri = req.uri().clone();
    let mut compress = Compress::None;
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
            "compress" => {
                match v {
                    "zlib-stream" => compress = Compress::Zlib,
                    "zstd-stream" => compress = Compress::Zstd,
                    _ => return (
                        StatusCode::BAD_REQUEST,
                        "discord-sim supports compress=zlib-stream and compress=zstd-stream only",
                    )
                        .into_response(),
                }
            }
            _ => {}
        }
    }
    let params = ConnParams {
        path: uri.path().to_owned(),
        query: uri.query().map(str::to_owned),
        compress,
        bad_version,
        user_agent: req
            .headers()
            .get("user-agent")
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned()),
    };
    let on_upgrade = req.extensions_mut().remove::<hyper::upgrade::OnUpgrade>();
    let (response, on_upgrade) = socket::accept(req.method(), req.headers(), on_upgrade);
    let Some(on_upgrade) = on_upgrade else {
        return response;
    };
    // A zstd-stream message can only be split into frames of one websocket message (zlib-stream
    // splits into separate messages instead, in the connection).
    let frames = if compress == Compress::Zstd && state.config.split_compressed_frames {
        3
    } else {
        1
    };
    tokio::spawn(async move {
        let Ok(upgraded) = on_upgrade.await else {
            return;
        };
        // Let oversized payloads through the websocket layer so the gateway can close with 4002
        // like Discord instead of failing the read.
        let socket = socket::SimSocket::new(upgraded, 1 << 20, frames).await;
        connection::serve(state, socket, params).await;
    });
    response
}
