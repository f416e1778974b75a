//! Shared test helpers: start a sim with short timings, a raw websocket gateway client (with
//! zlib-stream inflation) and a minimal HTTP/1.1 client, so tests can send exactly the bytes
//! they mean to, including bad ones.

#![allow(dead_code)]

use std::time::Duration;

use discord_sim::{Sim, SimConfig};
use flate2::{Decompress, FlushDecompress};
use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// Upper bound for any single wait in a test.
pub const WAIT: Duration = Duration::from_secs(10);

/// Every intent bit the demo guild's events need, incl. the privileged ones.
pub const ALL_INTENTS: u64 =
    (1 << 0) | (1 << 1) | (1 << 7) | (1 << 9) | (1 << 10) | (1 << 11) | (1 << 15);

/// A sim on 127.0.0.1:0 with `config`.
pub async fn start(config: SimConfig) -> Sim {
    Sim::start("127.0.0.1:0".parse().unwrap(), config)
        .await
        .expect("sim starts")
}

/// A short heartbeat interval (tests don't wait 41 s), long enough that raw clients that don't
/// heartbeat aren't timed out on a busy machine, and no IDENTIFY pacing (tests that identify
/// many times would wait 5 s each; `tests/identify.rs` tests the pacing).
pub fn fast_config() -> SimConfig {
    SimConfig {
        heartbeat_interval: Duration::from_millis(5000),
        identify_window: Duration::ZERO,
        ..SimConfig::default()
    }
}

/// A sim with [`fast_config`].
pub async fn start_fast() -> Sim {
    start(fast_config()).await
}

/// What a raw client got.
#[derive(Debug)]
pub enum Got {
    /// A payload.
    Payload(Value),
    /// A close frame (code).
    Close(Option<u16>),
    /// The connection ended without a close frame.
    Ended,
}

/// A raw gateway client.
pub struct Raw {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    inflate: Option<Decompress>,
    buf: Vec<u8>,
    /// Websocket messages received (a split zlib message counts more than once).
    pub ws_messages: u64,
    /// Text of the last payload received, exactly as sent.
    pub last_text: String,
}

impl Raw {
    /// Connects to `base` (e.g. `sim.gateway_url()`), appending the query clients use.
    pub async fn connect(base: &str, zlib: bool) -> Raw {
        let url = format!(
            "{base}/?v=10&encoding=json{}",
            if zlib { "&compress=zlib-stream" } else { "" }
        );
        Self::connect_url(&url, zlib).await
    }

    /// Connects to exactly `url`.
    pub async fn connect_url(url: &str, zlib: bool) -> Raw {
        Self::connect_with(url, zlib, &[]).await
    }

    /// Connects to exactly `url` with extra handshake headers.
    pub async fn connect_with(url: &str, zlib: bool, headers: &[(&'static str, &str)]) -> Raw {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        let mut req = url.into_client_request().expect("a websocket URL");
        for (k, v) in headers {
            req.headers_mut()
                .insert(*k, v.parse().expect("a header value"));
        }
        let (ws, _) = timeout(WAIT, tokio_tungstenite::connect_async(req))
            .await
            .expect("connect in time")
            .expect("connect");
        Raw {
            ws,
            inflate: zlib.then(|| Decompress::new(true)),
            buf: Vec::new(),
            ws_messages: 0,
            last_text: String::new(),
        }
    }

    /// The next payload, close or end.
    pub async fn next(&mut self) -> Got {
        loop {
            let msg = timeout(WAIT, self.ws.next())
                .await
                .expect("gateway answered in time");
            self.ws_messages += 1;
            match msg {
                None | Some(Err(_)) => return Got::Ended,
                Some(Ok(Message::Close(frame))) => {
                    return Got::Close(frame.map(|f| u16::from(f.code)))
                }
                Some(Ok(Message::Text(t))) => {
                    assert!(
                        self.inflate.is_none(),
                        "text frame on a zlib-stream connection"
                    );
                    self.last_text = t.as_str().to_owned();
                    return Got::Payload(serde_json::from_str(t.as_str()).expect("JSON"));
                }
                Some(Ok(Message::Binary(b))) => {
                    let z = self
                        .inflate
                        .as_mut()
                        .expect("binary frame without zlib-stream");
                    self.buf.extend_from_slice(&b);
                    if !self.buf.ends_with(&[0, 0, 0xff, 0xff]) {
                        continue;
                    }
                    let mut out: Vec<u8> = Vec::with_capacity(self.buf.len() * 8 + 1024);
                    loop {
                        if out.capacity() - out.len() < 4096 {
                            out.reserve(out.capacity().max(4096));
                        }
                        let (in0, out0) = (z.total_in(), z.total_out());
                        z.decompress_vec(&self.buf, &mut out, FlushDecompress::Sync)
                            .expect("inflate");
                        let used = (z.total_in() - in0) as usize;
                        self.buf.drain(..used);
                        let progressed = used > 0 || z.total_out() > out0;
                        if (self.buf.is_empty() && out.len() < out.capacity()) || !progressed {
                            break;
                        }
                    }
                    self.last_text = String::from_utf8(out).expect("UTF-8");
                    return Got::Payload(serde_json::from_str(&self.last_text).expect("JSON"));
                }
                Some(Ok(_)) => continue,
            }
        }
    }

    /// The next payload; panics on close/end.
    pub async fn payload(&mut self) -> Value {
        match self.next().await {
            Got::Payload(v) => v,
            other => panic!("expected a payload, got {other:?}"),
        }
    }

    /// The next dispatch (skipping heartbeat ACKs).
    pub async fn dispatch(&mut self) -> Value {
        loop {
            let v = self.payload().await;
            if v["op"] == 0 {
                return v;
            }
            assert_eq!(v["op"], 11, "unexpected payload {v}");
        }
    }

    /// Waits for a close frame (skipping payloads) and returns its code.
    pub async fn close_code(&mut self) -> Option<u16> {
        loop {
            match self.next().await {
                Got::Payload(_) => continue,
                Got::Close(code) => return code,
                Got::Ended => return None,
            }
        }
    }

    /// Sends a JSON value as text.
    pub async fn send(&mut self, v: Value) {
        self.send_text(v.to_string()).await;
    }

    /// Sends raw text.
    pub async fn send_text(&mut self, s: String) {
        let _ = self.ws.send(Message::Text(s.into())).await;
    }

    /// Closes with a code.
    pub async fn close(&mut self, code: u16) {
        let _ = self
            .ws
            .close(Some(tokio_tungstenite::tungstenite::protocol::CloseFrame {
                code: CloseCode::from(code),
                reason: "".into(),
            }))
            .await;
    }

    /// Reads HELLO and returns `heartbeat_interval`.
    pub async fn hello(&mut self) -> u64 {
        let v = self.payload().await;
        assert_eq!(v["op"], 10, "first payload must be HELLO: {v}");
        v["d"]["heartbeat_interval"].as_u64().expect("interval")
    }

    /// Sends IDENTIFY.
    pub async fn identify(&mut self, token: &str, intents: u64) {
        self.send(identify_payload(token, intents)).await;
    }

    /// HELLO, IDENTIFY, READY, GUILD_CREATE; returns (session_id, resume_gateway_url).
    pub async fn handshake(&mut self, token: &str, intents: u64) -> (String, String) {
        self.hello().await;
        self.handshake_after_hello(token, intents).await
    }

    /// IDENTIFY, READY, GUILD_CREATE (HELLO already read).
    pub async fn handshake_after_hello(&mut self, token: &str, intents: u64) -> (String, String) {
        self.identify(token, intents).await;
        let ready = self.dispatch().await;
        assert_eq!(ready["t"], "READY");
        assert_eq!(ready["s"], 1);
        let gc = self.dispatch().await;
        assert_eq!(gc["t"], "GUILD_CREATE");
        assert_eq!(gc["s"], 2);
        (
            ready["d"]["session_id"].as_str().unwrap().to_owned(),
            ready["d"]["resume_gateway_url"]
                .as_str()
                .unwrap()
                .to_owned(),
        )
    }
}

/// The exact `d` text of a dispatch frame as the sim writes it (`{"t":…,"s":…,"op":0,"d":D}`).
pub fn d_text(frame: &str) -> &str {
    let at = frame.find(",\"op\":0,\"d\":").expect("dispatch frame") + ",\"op\":0,\"d\":".len();
    &frame[at..frame.len() - 1]
}

/// A RESUME payload.
pub fn resume_payload(token: &str, session_id: &str, seq: u64) -> Value {
    json!({"op": 6, "d": {"token": token, "session_id": session_id, "seq": seq}})
}

/// An IDENTIFY payload.
pub fn identify_payload(token: &str, intents: u64) -> Value {
    json!({"op": 2, "d": {
        "token": token,
        "intents": intents,
        "properties": {"os": "linux", "browser": "test", "device": "test"},
    }})
}

/// A minimal HTTP answer.
#[derive(Debug)]
pub struct HttpResponse {
    /// Status code.
    pub status: u16,
    /// Headers, names lowercased.
    pub headers: Vec<(String, String)>,
    /// Body text.
    pub body: String,
}

impl HttpResponse {
    /// A header value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("JSON body ({e}): {}", self.body))
    }
}

/// The `User-Agent` [`http`] sends unless told otherwise (Discord's documented form).
pub const USER_AGENT: &str = "DiscordBot (https://github.com/example/discord-sim-tests, 0.1.0)";

/// One HTTP/1.1 request (connection closed after), to `addr`. Sends [`USER_AGENT`] unless
/// `headers` has a `user-agent` (an empty value sends none at all).
pub async fn http(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> HttpResponse {
    let mut s = timeout(WAIT, TcpStream::connect(addr))
        .await
        .unwrap()
        .unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n");
    if !headers
        .iter()
        .any(|(k, _)| k.eq_ignore_ascii_case("user-agent"))
    {
        req.push_str(&format!("user-agent: {USER_AGENT}\r\n"));
    }
    for (k, v) in headers.iter().filter(|(_, v)| !v.is_empty()) {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    let body = body.unwrap_or("");
    if !body.is_empty() || method != "GET" {
        req.push_str(&format!(
            "content-type: application/json\r\ncontent-length: {}\r\n",
            body.len()
        ));
    }
    req.push_str("\r\n");
    req.push_str(body);
    s.write_all(req.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    timeout(WAIT, s.read_to_end(&mut raw))
        .await
        .unwrap()
        .unwrap();
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, rest) = text.split_once("\r\n\r\n").expect("HTTP head");
    let mut lines = head.lines();
    let status: u16 = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let chunked = headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.contains("chunked"));
    let body = if chunked {
        dechunk(rest)
    } else {
        rest.to_owned()
    };
    HttpResponse {
        status,
        headers,
        body,
    }
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.push_str(&rest[..n]);
        s = &rest[n + 2..];
    }
    out
}

/// A REST call with the bot token.
pub async fn rest(sim: &Sim, method: &str, path: &str, body: Option<&str>) -> HttpResponse {
    let auth = format!("Bot {}", sim.config().token);
    http(
        sim.addr(),
        method,
        &format!("/api/v10{path}"),
        &[("authorization", &auth)],
        body,
    )
    .await
}

/// An IDENTIFY payload with `shard: [shard, num_shards]`.
pub fn identify_shard_payload(token: &str, intents: u64, shard: u64, num_shards: u64) -> Value {
    let mut p = identify_payload(token, intents);
    p["d"]["shard"] = json!([shard, num_shards]);
    p
}

/// A raw client identified as one shard, with what it got at the start.
pub struct ShardClient {
    /// The connection.
    pub raw: Raw,
    /// READY's `d`.
    pub ready: Value,
    /// The GUILD_CREATE / GUILD_DELETE dispatches that followed READY, one per READY guild.
    pub guilds: Vec<Value>,
}

impl ShardClient {
    /// Connects, identifies as `[shard, num_shards]` with every intent, reads READY and one
    /// dispatch per guild READY lists.
    pub async fn connect(sim: &Sim, shard: u64, num_shards: u64) -> ShardClient {
        let mut raw = Raw::connect(&sim.gateway_url(), false).await;
        raw.hello().await;
        raw.send(identify_shard_payload(
            &sim.config().token,
            ALL_INTENTS,
            shard,
            num_shards,
        ))
        .await;
        let ready = raw.dispatch().await;
        assert_eq!(ready["t"], "READY", "{ready}");
        let n = ready["d"]["guilds"].as_array().expect("guilds").len();
        let mut guilds = Vec::with_capacity(n);
        for _ in 0..n {
            guilds.push(raw.dispatch().await);
        }
        ShardClient {
            raw,
            ready: ready["d"].clone(),
            guilds,
        }
    }

    /// Guild ids of the GUILD_CREATEs it got at the start, sorted.
    pub fn created_ids(&self) -> Vec<u64> {
        let mut ids: Vec<u64> = self
            .guilds
            .iter()
            .filter(|g| g["t"] == "GUILD_CREATE")
            .map(|g| g["d"]["id"].as_str().unwrap().parse().unwrap())
            .collect();
        ids.sort_unstable();
        ids
    }

    /// Guild ids READY listed, sorted.
    pub fn ready_ids(&self) -> Vec<u64> {
        let mut ids: Vec<u64> = self.ready["guilds"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| g["id"].as_str().unwrap().parse().unwrap())
            .collect();
        ids.sort_unstable();
        ids
    }
}

/// `d.guild_id` of a dispatch as a number.
pub fn guild_of(dispatch: &Value) -> Option<u64> {
    dispatch["d"]["guild_id"]
        .as_str()
        .and_then(|s| s.parse().ok())
}

/// A dispatch without a guild (routed to shard 0 only), to use as a "nothing came before this"
/// marker on shard 0.
pub fn marker(tag: &str) -> discord_sim::SimEvent {
    discord_sim::SimEvent::Raw {
        t: "SIM_MARKER".to_owned(),
        d: json!({"tag": tag}),
        intent: 0,
    }
}

/// A marker for the shard that holds `guild_id` (routed by its `guild_id`).
pub fn guild_marker(tag: &str, guild_id: u64) -> discord_sim::SimEvent {
    discord_sim::SimEvent::Raw {
        t: "SIM_MARKER".to_owned(),
        d: json!({"tag": tag, "guild_id": guild_id.to_string()}),
        intent: 0,
    }
}
