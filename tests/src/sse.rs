//! An incremental `text/event-stream` reader over a raw socket, with deadlines.

use crate::http::{self, Dechunker};
use std::collections::VecDeque;
use std::io::{self, Read};
use std::net::TcpStream;
use std::time::{Duration, Instant};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    pub id: Option<u64>,
    pub event: String,
    pub data: String,
}

impl Event {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.data)
            .unwrap_or_else(|e| panic!("data not JSON ({e}): {}", self.data))
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Item {
    Event(Event),
    Comment(String),
    Retry(u64),
}

/// The items of one event block (the text between two blank lines, without them), in order:
/// comments and `retry:` as they come, then the event if any field named one.
pub fn parse_block(text: &str, mut emit: impl FnMut(Item)) {
    let mut ev = Event {
        id: None,
        event: "message".into(),
        data: String::new(),
    };
    let mut has_field = false;
    for line in text.split('\n') {
        if let Some(c) = line.strip_prefix(':') {
            emit(Item::Comment(c.trim().to_string()));
            continue;
        }
        let (k, v) = line.split_once(':').unwrap_or((line, ""));
        let v = v.strip_prefix(' ').unwrap_or(v);
        match k {
            "retry" => emit(Item::Retry(v.parse().unwrap_or(0))),
            "id" => {
                ev.id = v.parse().ok();
                has_field = true;
            }
            "event" => {
                ev.event = v.to_string();
                has_field = true;
            }
            "data" => {
                if !ev.data.is_empty() {
                    ev.data.push('\n');
                }
                ev.data.push_str(v);
                has_field = true;
            }
            _ => {}
        }
    }
    if has_field {
        emit(Item::Event(ev));
    }
}

/// Turns the bytes of an SSE response body (chunked or not, split anywhere) into items, each
/// stamped with when the bytes completing it arrived. Shared by the blocking [`SseClient`] and
/// the benches' async `sse_fleet::AsyncSse`.
pub struct SseDecoder<T> {
    chunked: bool,
    dec: Dechunker,
    /// Decoded body bytes not yet parsed into items.
    buf: Vec<u8>,
    /// Where the next search for a blank line starts in `buf`.
    scanned: usize,
    items: VecDeque<(Item, T)>,
    /// The chunked body's last chunk arrived.
    pub ended: bool,
}

impl<T: Copy> SseDecoder<T> {
    pub fn new(chunked: bool) -> Self {
        SseDecoder {
            chunked,
            dec: Dechunker::default(),
            buf: Vec::new(),
            scanned: 0,
            items: VecDeque::new(),
            ended: false,
        }
    }

    /// Takes in bytes read off the socket at `at`.
    pub fn absorb(&mut self, raw: &[u8], at: T) {
        if self.chunked {
            let mut out = Vec::with_capacity(raw.len());
            self.dec.feed(raw, &mut out);
            self.buf.extend_from_slice(&out);
            self.ended |= self.dec.done;
        } else {
            self.buf.extend_from_slice(raw);
        }
        let mut start = 0;
        loop {
            let from = self.scanned.max(start);
            let Some(rel) = self.buf[from..].windows(2).position(|w| w == b"\n\n") else {
                self.scanned = self.buf.len().saturating_sub(1).max(start);
                break;
            };
            let end = from + rel;
            let text = String::from_utf8_lossy(&self.buf[start..end]).into_owned();
            start = end + 2;
            self.scanned = start;
            parse_block(&text, |item| self.items.push_back((item, at)));
        }
        if start > 0 {
            self.buf.drain(..start);
            self.scanned -= start;
        }
    }

    /// The oldest item not yet taken.
    pub fn pop(&mut self) -> Option<(Item, T)> {
        self.items.pop_front()
    }

    /// What the body held that is not an item (an error response's body).
    pub fn rest_text(&self) -> String {
        String::from_utf8_lossy(&self.buf).into_owned()
    }
}

pub struct SseClient {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    stream: TcpStream,
    body: SseDecoder<Instant>,
    pub closed: bool,
    /// Error body when the status is not 200.
    pub error_body: String,
}

impl SseClient {
    pub fn connect(port: u16, path: &str, headers: &[(&str, &str)]) -> io::Result<SseClient> {
        let mut h: Vec<(&str, &str)> = vec![("Accept", "text/event-stream")];
        h.extend_from_slice(headers);
        let (status, headers, reader) = http::send(port, "GET", path, &h, b"")?;
        Ok(Self::from_parts(status, headers, reader))
    }

    /// A stream whose request was written to `stream` already: reads the response head.
    pub fn from_raw(stream: TcpStream) -> SseClient {
        let mut reader = std::io::BufReader::new(stream);
        let (status, headers) = http::read_head(&mut reader).expect("response head");
        Self::from_parts(status, headers, reader)
    }

    fn from_parts(
        status: u16,
        headers: Vec<(String, String)>,
        reader: std::io::BufReader<TcpStream>,
    ) -> SseClient {
        let chunked =
            http::header(&headers, "transfer-encoding").is_some_and(|v| v.contains("chunked"));
        let leftover = reader.buffer().to_vec();
        let stream = reader.into_inner();
        let mut c = SseClient {
            status,
            headers,
            stream,
            body: SseDecoder::new(chunked),
            closed: false,
            error_body: String::new(),
        };
        c.absorb(&leftover);
        if status != 200 {
            // Read the (small) error body.
            let deadline = Instant::now() + Duration::from_secs(5);
            while !c.closed && Instant::now() < deadline {
                c.fill(deadline);
            }
            c.error_body = c.body.rest_text();
        }
        c
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        http::header(&self.headers, name)
    }

    fn absorb(&mut self, raw: &[u8]) {
        self.body.absorb(raw, Instant::now());
        self.closed |= self.body.ended;
    }

    /// Reads once, waiting at most until `deadline`.
    fn fill(&mut self, deadline: Instant) {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || self.closed {
            return;
        }
        let _ = self
            .stream
            .set_read_timeout(Some(left.max(Duration::from_millis(1))));
        let mut buf = [0u8; 65536];
        match self.stream.read(&mut buf) {
            Ok(0) => self.closed = true,
            Ok(n) => self.absorb(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                if std::env::var_os("EDGE_BENCH_DEBUG").is_some() {
                    eprintln!("sse read error: {e:?}");
                }
                self.closed = true
            }
        }
    }

    /// The next item with its arrival time, or None when `timeout` passes or the stream ends.
    pub fn next_timed(&mut self, timeout: Duration) -> Option<(Item, Instant)> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(item) = self.body.pop() {
                return Some(item);
            }
            if self.closed || Instant::now() >= deadline {
                return None;
            }
            self.fill(deadline);
        }
    }

    pub fn next_item(&mut self, timeout: Duration) -> Option<Item> {
        self.next_timed(timeout).map(|(i, _)| i)
    }

    /// The next event (skipping comments and `retry:`).
    pub fn next_event(&mut self, timeout: Duration) -> Option<Event> {
        let deadline = Instant::now() + timeout;
        loop {
            match self.next_item(deadline.saturating_duration_since(Instant::now()))? {
                Item::Event(e) => return Some(e),
                _ => continue,
            }
        }
    }

    /// Events until one satisfies `stop` (included), failing after `timeout`.
    pub fn events_until(
        &mut self,
        timeout: Duration,
        mut stop: impl FnMut(&Event) -> bool,
    ) -> Vec<Event> {
        let deadline = Instant::now() + timeout;
        let mut out = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.next_event(left) {
                Some(e) => {
                    let done = stop(&e);
                    out.push(e);
                    if done {
                        return out;
                    }
                }
                None => panic!(
                    "stream ended or timed out after {timeout:?}; got {} events, last {:?}",
                    out.len(),
                    out.last()
                ),
            }
        }
    }

    /// Whatever events arrive within `window` (for asserting that nothing more comes).
    pub fn drain_for(&mut self, window: Duration) -> Vec<Event> {
        let deadline = Instant::now() + window;
        let mut out = Vec::new();
        while let Some(e) = self.next_event(deadline.saturating_duration_since(Instant::now())) {
            out.push(e);
        }
        out
    }
}
