//! Many SSE clients on one thread, for the benchmarks: an async `text/event-stream` reader over a
//! tokio `TcpStream` (HTTP/1.1, chunked or not), stamping each event with the time the bytes that
//! completed it were read off the socket.
//!
//! Why not one OS thread per client (as [`crate::sse::SseClient`] is used by the tests): with 500
//! clients on 2 cores, every broadcast woke 500 threads that each did a `setsockopt` + `read` +
//! parse, competing with workerd for the same cores, and a client's receipt time was taken only
//! once its thread got scheduled. On one event loop an event costs one `epoll_wait` wake-up for
//! all ready sockets and a read each; the fleet's own CPU time is reported beside the figures so
//! a saturated client side shows up instead of silently inflating latency.

use crate::http::header;
use crate::sse::{Item, SseDecoder};
use std::future::Future;
use std::io;
use std::sync::mpsc;
use std::thread;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Unix microseconds.
pub fn now_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_micros() as u64
}

/// utime + stime of the calling thread, in seconds (`/proc/thread-self/stat`).
pub fn thread_cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").ok()?;
    let rest = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    // CLK_TCK is 100 on every Linux this runs on; proc_stat asks getconf, which a hot loop can't.
    Some(ticks as f64 / 100.0)
}

/// A bench's clients: `n` tasks on one thread of their own (a current-thread tokio runtime).
pub struct Fleet<T> {
    join: thread::JoinHandle<(Vec<T>, Option<f64>)>,
    done: mpsc::Receiver<()>,
}

impl<T: Send + 'static> Fleet<T> {
    /// Starts `n` tasks, each the future `task()` makes. Returns at once; a task that should
    /// report its connection does so through what `task` captured.
    pub fn start<F, Fut>(n: usize, task: F) -> Fleet<T>
    where
        F: Fn() -> Fut + Send + 'static,
        Fut: Future<Output = T> + Send + 'static,
    {
        let (done_tx, done) = mpsc::channel();
        let join = thread::Builder::new()
            .name("sse-fleet".into())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("fleet runtime");
                let cpu_before = thread_cpu_seconds();
                let outs = rt.block_on(async move {
                    let tasks: Vec<_> = (0..n).map(|_| tokio::spawn(task())).collect();
                    let mut outs = Vec::with_capacity(n);
                    for t in tasks {
                        outs.push(t.await.expect("client task"));
                    }
                    outs
                });
                let cpu = cpu_before.zip(thread_cpu_seconds()).map(|(b, a)| a - b);
                let _ = done_tx.send(());
                (outs, cpu)
            })
            .expect("spawn the SSE fleet");
        Fleet { join, done }
    }

    /// Waits up to `settle` for every task to end, then calls `stop` (which must make the
    /// others end soon); returns every task's result, in start order, and the thread's CPU
    /// seconds (`None` when /proc could not be read).
    pub fn finish(self, settle: Duration, stop: impl FnOnce()) -> (Vec<T>, Option<f64>) {
        let _ = self.done.recv_timeout(settle);
        stop();
        self.join.join().expect("SSE fleet thread")
    }
}

/// One SSE response being read.
pub struct AsyncSse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    stream: TcpStream,
    body: SseDecoder<u64>,
    /// The read buffer, kept between reads.
    chunk: Vec<u8>,
    pub closed: bool,
}

impl AsyncSse {
    /// Connects to 127.0.0.1:`port`, sends `GET path` with `headers`, reads the response head.
    pub async fn connect(port: u16, path: &str, headers: &[(&str, &str)]) -> io::Result<AsyncSse> {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).await?;
        stream.set_nodelay(true)?;
        let mut req = format!(
            "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAccept: text/event-stream\r\nConnection: close\r\n"
        );
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        req.push_str("\r\n");
        stream.write_all(req.as_bytes()).await?;
        let mut raw = Vec::with_capacity(1024);
        let head_end = loop {
            if let Some(i) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
                break i;
            }
            if raw.len() > 64 * 1024 {
                return Err(io::Error::other("response head over 64 KiB"));
            }
            let mut chunk = [0u8; 4096];
            let n = stream.read(&mut chunk).await?;
            if n == 0 {
                return Err(io::Error::other("closed before the response head"));
            }
            raw.extend_from_slice(&chunk[..n]);
        };
        let head = String::from_utf8_lossy(&raw[..head_end]).into_owned();
        let mut lines = head.split("\r\n");
        let status = lines
            .next()
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| io::Error::other(format!("bad status line in {head:?}")))?;
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
            .collect();
        let chunked = header(&headers, "transfer-encoding").is_some_and(|v| v.contains("chunked"));
        let mut c = AsyncSse {
            status,
            headers,
            stream,
            body: SseDecoder::new(chunked),
            chunk: vec![0u8; 16 * 1024],
            closed: false,
        };
        c.absorb(&raw[head_end + 4..], now_us());
        Ok(c)
    }

    fn absorb(&mut self, raw: &[u8], at_us: u64) {
        self.body.absorb(raw, at_us);
        self.closed |= self.body.ended;
    }

    /// The next item and the unix µs its last bytes were read, or None when `timeout` passes
    /// or the stream ends (then `closed` is set).
    pub async fn next(&mut self, timeout: Duration) -> Option<(Item, u64)> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(item) = self.body.pop() {
                return Some(item);
            }
            if self.closed {
                return None;
            }
            match tokio::time::timeout_at(deadline, self.stream.read(&mut self.chunk)).await {
                Err(_) => return None,
                Ok(Ok(0)) | Ok(Err(_)) => self.closed = true,
                Ok(Ok(n)) => {
                    let at = now_us();
                    let chunk = std::mem::take(&mut self.chunk);
                    self.absorb(&chunk[..n], at);
                    self.chunk = chunk;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sse::Event;
    use std::io::{Read, Write};

    #[test]
    fn reads_chunked_events_split_anywhere() {
        let body = "retry: 2000\n\n: ping\n\nid: 7\nevent: MESSAGE_CREATE\ndata: {\"a\":1}\n\n";
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut req = [0u8; 1024];
            let _ = s.read(&mut req).unwrap();
            s.write_all(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n")
                .unwrap();
            // One byte per chunk: every boundary is split.
            for b in body.bytes() {
                s.write_all(format!("1\r\n{}\r\n", b as char).as_bytes())
                    .unwrap();
            }
            s.write_all(b"0\r\n\r\n").unwrap();
        });
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let items = rt.block_on(async {
            let mut c = AsyncSse::connect(port, "/api/stream", &[]).await.unwrap();
            assert_eq!(c.status, 200);
            let mut items = Vec::new();
            while let Some((i, _)) = c.next(Duration::from_secs(10)).await {
                items.push(i);
            }
            assert!(c.closed);
            items
        });
        server.join().unwrap();
        assert_eq!(
            items,
            vec![
                Item::Retry(2000),
                Item::Comment("ping".into()),
                Item::Event(Event {
                    id: Some(7),
                    event: "MESSAGE_CREATE".into(),
                    data: "{\"a\":1}".into()
                })
            ]
        );
    }
}
