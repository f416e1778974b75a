//! One WebSocket connection to the Gateway: connect (rustls, no OpenSSL), turn frames into whole
//! JSON messages (through the connection's own zstd-stream or zlib-stream context when compression
//! is on), send text, and close without ending the session. A fresh `Connection` per attempt, so no
//! decompression or heartbeat state ever leaks from one socket to the next.

use super::compression::Decompressor;
use crate::config::Compression;
use futures::{SinkExt, StreamExt};
use std::time::Duration;
use tokio::net::TcpStream;
use tokio_tungstenite::{
    tungstenite::{
        protocol::{frame::coding::CloseCode, CloseFrame, WebSocketConfig},
        Message,
    },
    MaybeTlsStream, WebSocketStream,
};

/// The close code the holder uses when it leaves a connection but wants to RESUME (anything but
/// 1000/1001, which end the Discord session).
pub const RESUMABLE_CLOSE: u16 = 4000;

pub struct Connection {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    /// Built from the URL's `compress` query, so it is always the stream the URL asked for.
    decompressor: Option<Decompressor>,
}

/// What came off the socket.
pub enum Incoming {
    /// A whole JSON message.
    Message(Vec<u8>),
    /// A close frame (with its code), or the stream ended without one (`None`).
    Closed(Option<u16>),
}

#[derive(Debug)]
pub struct ConnError(pub String);

impl std::fmt::Display for ConnError {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// `base` plus the query Discord expects: `v=10&encoding=json` and the compression.
pub fn gateway_url(base: &str, compression: Compression) -> Result<url::Url, ConnError> {
    let mut url = url::Url::parse(base).map_err(|e| ConnError(format!("bad gateway URL: {e}")))?;
    if url.path().is_empty() {
        url.set_path("/");
    }
    let keep: Vec<(String, String)> = url
        .query_pairs()
        .filter(|(k, _)| k != "v" && k != "encoding" && k != "compress")
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    {
        let mut q = url.query_pairs_mut();
        q.clear();
        for (k, v) in &keep {
            q.append_pair(k, v);
        }
        q.append_pair("v", "10").append_pair("encoding", "json");
        if let Some(c) = compression.query_value() {
            q.append_pair("compress", c);
        }
    }
    Ok(url)
}

impl Connection {
    pub async fn connect(
        url: &url::Url,
        timeout: Duration,
        user_agent: &str,
    ) -> Result<Connection, ConnError> {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        let mut config = WebSocketConfig::default();
        config.max_message_size = Some(64 << 20);
        config.max_frame_size = Some(64 << 20);
        // tungstenite zero-fills the free part of its read buffer, up to this size, before every
        // read: 128 KiB (the default) per read cost more than the read itself when messages come
        // one at a time. 16 KiB still takes dozens of compressed dispatches per read at full rate.
        config.read_buffer_size = 16 * 1024;
        let mut request = url
            .as_str()
            .into_client_request()
            .map_err(|e| ConnError(format!("bad gateway URL: {e}")))?;
        let ua = user_agent
            .parse()
            .map_err(|_| ConnError("the User-Agent is not a valid header value".into()))?;
        request.headers_mut().insert("User-Agent", ua);
        let fut = tokio_tungstenite::connect_async_with_config(request, Some(config), true);
        let (ws, _) = tokio::time::timeout(timeout, fut)
            .await
            .map_err(|_| ConnError("connect timed out".into()))?
            .map_err(|e| ConnError(format!("connect failed: {e}")))?;
        Ok(Connection {
            ws,
            decompressor: Decompressor::for_url(url),
        })
    }

    /// The next whole message. Cancel-safe: a partial zlib message stays in the decompressor.
    /// Input the stream can't decompress is an error (the caller ends the connection and
    /// RESUMEs on a new one, with a fresh context).
    pub async fn recv(&mut self) -> Result<Incoming, ConnError> {
        loop {
            let msg = match self.ws.next().await {
                None => return Ok(Incoming::Closed(None)),
                Some(Err(e)) => return Err(ConnError(format!("socket error: {e}"))),
                Some(Ok(m)) => m,
            };
            match msg {
                Message::Text(t) => return Ok(Incoming::Message(t.as_bytes().to_vec())),
                Message::Binary(b) => match self.decompressor.as_mut() {
                    Some(d) => match d.push(&b) {
                        Ok(Some(_)) => return Ok(Incoming::Message(d.take_message())),
                        Ok(None) => continue,
                        Err(e) => {
                            // The stream can't go on: the caller drops the connection and
                            // RESUMEs on a new one, with a fresh context.
                            tracing::warn!(
                                stream = e.stream,
                                bytes = b.len(),
                                error = %e.reason,
                                "undecodable compressed gateway message; dropping the connection to RESUME"
                            );
                            return Err(ConnError(format!(
                                "bad compressed data ({} bytes): {e}",
                                b.len()
                            )));
                        }
                    },
                    None => return Ok(Incoming::Message(b.to_vec())),
                },
                Message::Close(frame) => {
                    return Ok(Incoming::Closed(frame.map(|f| u16::from(f.code))))
                }
                // tungstenite answers pings itself.
                Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => continue,
            }
        }
    }

    /// Gives a message's buffer back for the next one (saves an allocation per message).
    pub fn recycle(&mut self, buf: Vec<u8>) {
        if let Some(d) = self.decompressor.as_mut() {
            d.give_back(buf);
        }
    }

    pub async fn send_text(&mut self, text: String) -> Result<(), ConnError> {
        self.ws
            .send(Message::text(text))
            .await
            .map_err(|e| ConnError(format!("send failed: {e}")))
    }

    /// Sends a close frame with `code` (never 1000/1001 from the holder) and waits briefly for the
    /// peer; a dead peer just gets the TCP connection dropped.
    pub async fn close(mut self, code: u16) {
        let frame = CloseFrame {
            code: CloseCode::from(code),
            reason: "".into(),
        };
        let _ = tokio::time::timeout(Duration::from_secs(1), async {
            if self.ws.send(Message::Close(Some(frame))).await.is_ok() {
                while let Some(Ok(_)) = self.ws.next().await {}
            }
        })
        .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_carry_version_encoding_and_compression() {
        let u = gateway_url("wss://gateway.discord.gg", Compression::ZlibStream).unwrap();
        assert_eq!(
            u.as_str(),
            "wss://gateway.discord.gg/?v=10&encoding=json&compress=zlib-stream"
        );
        let u = gateway_url(
            "wss://gateway.discord.gg/?compress=zlib-stream",
            Compression::ZstdStream,
        )
        .unwrap();
        assert_eq!(
            u.as_str(),
            "wss://gateway.discord.gg/?v=10&encoding=json&compress=zstd-stream"
        );
        let u = gateway_url("ws://127.0.0.1:9/gw?v=9&x=1", Compression::None).unwrap();
        assert_eq!(u.as_str(), "ws://127.0.0.1:9/gw?x=1&v=10&encoding=json");
        assert!(gateway_url("not a url", Compression::None).is_err());
    }
}
