//! The gateway's websocket, upgraded here (hyper's upgrade and tokio-tungstenite, as axum's
//! `WebSocketUpgrade` does) for the one thing axum's `WebSocket` can't do: send one message as
//! several websocket frames (a binary frame without FIN, then continuation frames), which every
//! client must reassemble (RFC 6455 §5.4) and which `SimConfig::split_compressed_frames` asks
//! for on zstd-stream connections.
//!
//! [`SimSocket`] speaks axum's [`Message`] and [`axum::Error`], so the connection code reads and
//! writes it exactly like an axum `WebSocket`.

use std::pin::Pin;
use std::task::{ready, Context, Poll};

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use futures::{Sink, Stream};
use hyper::upgrade::{OnUpgrade, Upgraded};
use hyper_util::rt::TokioIo;
use tokio_tungstenite::tungstenite::{
    self as ts,
    protocol::{frame::coding::OpCode, frame::Frame, Role, WebSocketConfig},
};
use tokio_tungstenite::WebSocketStream;

/// One upgraded gateway connection.
pub struct SimSocket {
    ws: WebSocketStream<TokioIo<Upgraded>>,
    /// Send each binary message as this many frames (1: unfragmented).
    binary_frames: usize,
}

/// Checks the upgrade request (RFC 6455 §4.2.1) and answers it: the 101 response and the pending
/// upgrade, or the refusal (405/426/400) and `None`.
pub fn accept(
    method: &Method,
    headers: &HeaderMap,
    on_upgrade: Option<OnUpgrade>,
) -> (Response, Option<OnUpgrade>) {
    let refuse = |status: StatusCode, why: &'static str| ((status, why).into_response(), None);
    if method != Method::GET {
        return refuse(
            StatusCode::METHOD_NOT_ALLOWED,
            "websocket upgrade needs GET",
        );
    }
    let has = |name: header::HeaderName, token: &str| {
        headers.get_all(name).iter().any(|v| {
            v.to_str()
                .is_ok_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
        })
    };
    if !has(header::CONNECTION, "upgrade") || !has(header::UPGRADE, "websocket") {
        return refuse(
            StatusCode::UPGRADE_REQUIRED,
            "the gateway speaks websocket only (Connection: upgrade, Upgrade: websocket)",
        );
    }
    if headers
        .get(header::SEC_WEBSOCKET_VERSION)
        .map(HeaderValue::as_bytes)
        != Some(b"13")
    {
        return refuse(StatusCode::BAD_REQUEST, "Sec-WebSocket-Version must be 13");
    }
    let Some(key) = headers.get(header::SEC_WEBSOCKET_KEY) else {
        return refuse(StatusCode::BAD_REQUEST, "Sec-WebSocket-Key is missing");
    };
    let Some(on_upgrade) = on_upgrade else {
        return refuse(
            StatusCode::UPGRADE_REQUIRED,
            "connection cannot be upgraded",
        );
    };
    let response = (
        StatusCode::SWITCHING_PROTOCOLS,
        [
            (header::CONNECTION, "upgrade".to_owned()),
            (header::UPGRADE, "websocket".to_owned()),
            (
                header::SEC_WEBSOCKET_ACCEPT,
                ts::handshake::derive_accept_key(key.as_bytes()),
            ),
        ],
    )
        .into_response();
    (response, Some(on_upgrade))
}

impl SimSocket {
    /// The server side of an upgraded connection; messages and frames above `max_size` bytes
    /// are refused by the read side.
    pub async fn new(upgraded: Upgraded, max_size: usize, binary_frames: usize) -> SimSocket {
        let mut config = WebSocketConfig::default();
        config.max_message_size = Some(max_size);
        config.max_frame_size = Some(max_size);
        let ws =
            WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, Some(config))
                .await;
        SimSocket {
            ws,
            binary_frames: binary_frames.max(1),
        }
    }
}

fn from_ts(m: ts::Message) -> Option<Message> {
    Some(match m {
        ts::Message::Text(t) => Message::Text(Utf8Bytes::from(t.as_str())),
        ts::Message::Binary(b) => Message::Binary(b),
        ts::Message::Ping(b) => Message::Ping(b),
        ts::Message::Pong(b) => Message::Pong(b),
        ts::Message::Close(f) => Message::Close(f.map(|f| CloseFrame {
            code: f.code.into(),
            reason: Utf8Bytes::from(f.reason.as_str()),
        })),
        // Never produced by reads.
        ts::Message::Frame(_) => return None,
    })
}

fn to_ts(m: Message) -> Result<ts::Message, axum::Error> {
    Ok(match m {
        Message::Text(t) => ts::Message::Text(
            ts::Utf8Bytes::try_from(axum::body::Bytes::from(t)).map_err(axum::Error::new)?,
        ),
        Message::Binary(b) => ts::Message::Binary(b),
        Message::Ping(b) => ts::Message::Ping(b),
        Message::Pong(b) => ts::Message::Pong(b),
        Message::Close(f) => ts::Message::Close(f.map(|f| ts::protocol::CloseFrame {
            code: f.code.into(),
            reason: ts::Utf8Bytes::from(f.reason.as_str().to_owned()),
        })),
    })
}

impl Stream for SimSocket {
    type Item = Result<Message, axum::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        loop {
            match ready!(Pin::new(&mut self.ws).poll_next(cx)) {
                None => return Poll::Ready(None),
                Some(Err(e)) => return Poll::Ready(Some(Err(axum::Error::new(e)))),
                Some(Ok(m)) => {
                    if let Some(m) = from_ts(m) {
                        return Poll::Ready(Some(Ok(m)));
                    }
                }
            }
        }
    }
}

impl Sink<Message> for SimSocket {
    type Error = axum::Error;

    fn poll_ready(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Pin::new(&mut self.ws)
            .poll_ready(cx)
            .map_err(axum::Error::new)
    }

    fn start_send(mut self: Pin<&mut Self>, item: Message) -> Result<(), Self::Error> {
        let parts = self.binary_frames;
        match item {
            Message::Binary(b) if parts > 1 && b.len() >= parts => {
                // One message, `parts` frames: the first carries the opcode, the rest are
                // continuations, only the last has FIN. tungstenite queues each as written.
                let step = b.len().div_ceil(parts);
                let mut at = 0;
                while at < b.len() {
                    let end = (at + step).min(b.len());
                    let opcode = if at == 0 {
                        OpCode::Data(ts::protocol::frame::coding::Data::Binary)
                    } else {
                        OpCode::Data(ts::protocol::frame::coding::Data::Continue)
                    };
                    let frame = Frame::message(b.slice(at..end), opcode, end == b.len());
                    Pin::new(&mut self.ws)
                        .start_send(ts::Message::Frame(frame))
                        .map_err(axum::Error::new)?;
                    at = end;
                }
                Ok(())
            }
            other => Pin::new(&mut self.ws)
                .start_send(to_ts(other)?)
                .map_err(axum::Error::new),
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Pin::new(&mut self.ws)
            .poll_flush(cx)
            .map_err(axum::Error::new)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Pin::new(&mut self.ws)
            .poll_close(cx)
            .map_err(axum::Error::new)
    }
}
