//! `compress=zstd-stream` on the wire, read by a raw client that sees websocket frames (not just
//! messages): one zstd context per connection, every message flushed so it decodes on its own
//! context at once, never the end of the frame; `split_compressed_frames` fragments a message
//! into three frames of one websocket message; `Fault::CorruptFrame` sends a message no decoder
//! accepts without touching the connection's context. (tests/twilight.rs is the zlib-stream
//! client; the zstd twilight check lives in `twilight-peer/`, see its Cargo.toml for why.)

use std::time::Duration;

use discord_sim::config::demo;
use discord_sim::{Fault, Sim, SimConfig, SimEvent};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;
use zstd_safe::{DCtx, InBuffer, OutBuffer};

const WAIT: Duration = Duration::from_secs(10);

async fn sim(split: bool) -> Sim {
    Sim::start(
        "127.0.0.1:0".parse().unwrap(),
        SimConfig {
            heartbeat_interval: Duration::from_millis(5000),
            identify_window: Duration::ZERO,
            split_compressed_frames: split,
            ..SimConfig::default()
        },
    )
    .await
    .expect("sim starts")
}

/// One websocket frame as the server sent it (server frames are never masked).
#[derive(Debug)]
struct Frame {
    fin: bool,
    opcode: u8,
    payload: Vec<u8>,
}

struct Raw {
    tcp: TcpStream,
    dctx: DCtx<'static>,
}

impl Raw {
    /// The websocket handshake by hand (RFC 6455's sample key), on `query`.
    async fn connect(sim: &Sim, query: &str) -> Raw {
        let mut tcp = TcpStream::connect(sim.addr()).await.unwrap();
        let req = format!(
            "GET /?{query} HTTP/1.1\r\nHost: {}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
             Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
            sim.addr()
        );
        tcp.write_all(req.as_bytes()).await.unwrap();
        let mut head = Vec::new();
        while !head.ends_with(b"\r\n\r\n") {
            head.push(tcp.read_u8().await.unwrap());
        }
        let head = String::from_utf8(head).unwrap();
        assert!(head.starts_with("HTTP/1.1 101"), "{head}");
        assert!(
            head.to_ascii_lowercase()
                .contains("sec-websocket-accept: s3pplmbitxaq9kygzzhzrbk+xoo="),
            "{head}"
        );
        Raw {
            tcp,
            dctx: DCtx::create(),
        }
    }

    async fn frame(&mut self) -> Frame {
        timeout(WAIT, async {
            let b0 = self.tcp.read_u8().await.unwrap();
            let b1 = self.tcp.read_u8().await.unwrap();
            assert_eq!(b1 & 0x80, 0, "a server frame is never masked");
            let len = match b1 & 0x7f {
                126 => u64::from(self.tcp.read_u16().await.unwrap()),
                127 => self.tcp.read_u64().await.unwrap(),
                n => u64::from(n),
            };
            let mut payload = vec![0; len as usize];
            self.tcp.read_exact(&mut payload).await.unwrap();
            Frame {
                fin: b0 & 0x80 != 0,
                opcode: b0 & 0x0f,
                payload,
            }
        })
        .await
        .expect("a frame in time")
    }

    /// The frames of the next data message (skipping pings).
    async fn message_frames(&mut self) -> Vec<Frame> {
        let mut frames = vec![];
        loop {
            let f = self.frame().await;
            if f.opcode == 9 || f.opcode == 10 {
                continue;
            }
            let fin = f.fin;
            frames.push(f);
            if fin {
                return frames;
            }
        }
    }

    /// Decompresses one websocket message on the connection's context, as a client must: all of
    /// it comes out at once, and the zstd frame goes on (zstd never reports its end).
    fn decode(&mut self, message: &[u8]) -> Result<Value, &'static str> {
        let mut out: Vec<u8> = Vec::with_capacity(1 << 16);
        let mut input = InBuffer::around(message);
        loop {
            let len = out.len();
            let (hint, full) = {
                let mut o = OutBuffer::around_pos(&mut out, len);
                let hint = self
                    .dctx
                    .decompress_stream(&mut o, &mut input)
                    .map_err(zstd_safe::get_error_name)?;
                (hint, o.pos() == o.capacity())
            };
            if input.pos() == message.len() && !full {
                assert_ne!(hint, 0, "a message ended the zstd frame");
                return Ok(serde_json::from_slice(&out).expect("a whole JSON message"));
            }
            out.reserve(out.capacity());
        }
    }

    /// The next message, which must be one unfragmented binary frame.
    async fn payload(&mut self) -> Value {
        let mut frames = self.message_frames().await;
        assert_eq!(frames.len(), 1, "unfragmented by default");
        assert_eq!(frames[0].opcode, 2, "binary");
        let f = frames.remove(0);
        self.decode(&f.payload).unwrap()
    }

    /// A masked text frame (client frames must be masked).
    async fn send(&mut self, v: Value) {
        let data = v.to_string().into_bytes();
        let mut frame = vec![0x81];
        match data.len() {
            n if n < 126 => frame.push(0x80 | n as u8),
            n => {
                frame.push(0x80 | 126);
                frame.extend_from_slice(&(n as u16).to_be_bytes());
            }
        }
        let mask = [0x12, 0x34, 0x56, 0x78];
        frame.extend_from_slice(&mask);
        frame.extend(data.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        self.tcp.write_all(&frame).await.unwrap();
    }

    async fn identify(&mut self) {
        self.send(serde_json::json!({"op": 2, "d": {
            "token": "sim-token",
            "intents": 1 | 1 << 9 | 1 << 15,
            "properties": {"os": "linux", "browser": "raw", "device": "raw"},
        }}))
        .await;
    }
}

fn message(content: String) -> SimEvent {
    SimEvent::MessageCreate {
        channel_id: demo::GENERAL,
        author_id: demo::ALICE,
        content,
    }
}

#[tokio::test]
async fn one_context_one_frame_per_message_never_the_end_of_the_zstd_frame() {
    let sim = sim(false).await;
    let mut raw = Raw::connect(&sim, "v=10&encoding=json&compress=zstd-stream").await;
    let hello = raw.payload().await;
    assert_eq!(hello["op"], 10);
    raw.identify().await;
    let ready = raw.payload().await;
    assert_eq!(ready["t"], "READY");
    assert_eq!(raw.payload().await["t"], "GUILD_CREATE");
    let mut sizes = vec![];
    for i in 0..5 {
        let content = "the same words again ".repeat(20) + &i.to_string();
        sim.emit(message(content.clone())).await;
        let frames = raw.message_frames().await;
        assert_eq!(frames.len(), 1);
        sizes.push(frames[0].payload.len());
        let m = raw.decode(&frames[0].payload).unwrap();
        assert_eq!(m["t"], "MESSAGE_CREATE");
        assert_eq!(m["d"]["content"], content.as_str());
    }
    // The context is shared: a repeat costs a fraction of the first one's bytes.
    assert!(sizes[4] * 2 < sizes[0], "{sizes:?}");
    let conns = sim.connections();
    assert!(conns[0].zstd && !conns[0].zlib, "{conns:?}");
    sim.shutdown().await;
}

#[tokio::test]
async fn split_compressed_frames_fragments_each_zstd_message_into_three_frames() {
    let sim = sim(true).await;
    let mut raw = Raw::connect(&sim, "v=10&encoding=json&compress=zstd-stream").await;
    let whole = |frames: Vec<Frame>| {
        assert_eq!(frames.len(), 3, "{frames:?}");
        assert_eq!(
            frames.iter().map(|f| (f.opcode, f.fin)).collect::<Vec<_>>(),
            [(2, false), (0, false), (0, true)],
            "a binary frame, then continuations, FIN on the last"
        );
        frames
            .into_iter()
            .flat_map(|f| f.payload)
            .collect::<Vec<u8>>()
    };
    let hello = whole(raw.message_frames().await);
    assert_eq!(raw.decode(&hello).unwrap()["op"], 10);
    raw.identify().await;
    for t in ["READY", "GUILD_CREATE"] {
        let m = whole(raw.message_frames().await);
        assert_eq!(raw.decode(&m).unwrap()["t"], t);
    }
    sim.emit(message("fragmented".into())).await;
    let m = whole(raw.message_frames().await);
    assert_eq!(raw.decode(&m).unwrap()["d"]["content"], "fragmented");
    sim.shutdown().await;
}

#[tokio::test]
async fn a_corrupt_frame_is_refused_by_a_decoder_and_leaves_the_stream_intact() {
    let sim = sim(false).await;
    let mut raw = Raw::connect(&sim, "v=10&encoding=json&compress=zstd-stream").await;
    raw.payload().await;
    raw.identify().await;
    raw.payload().await;
    raw.payload().await;
    sim.fault(Fault::CorruptFrame).await;
    let corrupt = raw.message_frames().await;
    assert_eq!(corrupt.len(), 1);
    // Refused by a decoder at any point of a stream: here, a fresh one.
    let mut fresh = DCtx::create();
    let mut out = vec![0u8; 256];
    assert!(fresh
        .decompress_stream(
            &mut OutBuffer::around(&mut out[..]),
            &mut InBuffer::around(&corrupt[0].payload)
        )
        .is_err());
    // The sim's own context was not touched: the next message decodes on the client's context
    // as if the corrupt one never came.
    sim.emit(message("still fine".into())).await;
    assert_eq!(raw.payload().await["d"]["content"], "still fine");
    assert_eq!(sim.stats().corrupt_frames_sent, 1);
    sim.shutdown().await;
}

#[tokio::test]
async fn unknown_compression_is_refused_at_the_upgrade() {
    let sim = sim(false).await;
    let mut tcp = TcpStream::connect(sim.addr()).await.unwrap();
    tcp.write_all(
        b"GET /?v=10&encoding=json&compress=gzip HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\n\
          Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\
          Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
    )
    .await
    .unwrap();
    let mut head = vec![0; 12];
    tcp.read_exact(&mut head).await.unwrap();
    assert_eq!(&head, b"HTTP/1.1 400");
    // And a plain GET (no upgrade) is told the gateway speaks websocket.
    let mut tcp = TcpStream::connect(sim.addr()).await.unwrap();
    tcp.write_all(b"GET /?v=10&encoding=json HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    tcp.read_exact(&mut head).await.unwrap();
    assert_eq!(&head, b"HTTP/1.1 426");
    sim.shutdown().await;
}
