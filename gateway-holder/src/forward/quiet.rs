//! A TCP socket for the ingest link whose answers don't wake the process.
//!
//! At light traffic every dispatch is its own POST, and the edge's answer arrives a fraction of a
//! millisecond after the request, when the holder has just gone back to sleep: a second wake-up per
//! event (epoll, context switch, the hyper task, the forwarder) on top of the one for the dispatch
//! itself, roughly doubling the CPU per event. This socket is registered with the reactor for
//! *writability only* while the link is quiet, so an answer simply waits in the kernel's receive
//! queue; the forwarder reads it when it wakes up anyway (the next dispatch) or when
//! [`Ctl::listen`] is called (a timer bounds the wait, see `poster.rs`). Reads and writes are
//! first tried directly (one syscall, no readiness round trip); only when the kernel says
//! `WouldBlock` while listening is the socket re-registered for readability and awaited through
//! the reactor as usual.
//!
//! Everything here is safe code: `AsyncFd` with a chosen `Interest` instead of socket options.

use futures::task::AtomicWaker;
use std::{
    io::{self, IoSlice, Read, Write},
    net::TcpStream,
    pin::Pin,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    task::{ready, Context, Poll},
};
use tokio::io::{unix::AsyncFd, AsyncRead, AsyncWrite, Interest, ReadBuf};

/// Shared switch between the socket (inside hyper's connection) and the poster.
#[derive(Debug, Default)]
pub struct Ctl {
    listening: AtomicBool,
    reader: AtomicWaker,
}

impl Ctl {
    /// A switch that starts listening (connection setup, TLS handshake).
    pub fn listening() -> Arc<Ctl> {
        let c = Ctl::default();
        c.listening.store(true, Ordering::SeqCst);
        Arc::new(c)
    }

    /// Reads go ahead (and wake the reader parked by quiet mode).
    pub fn listen(&self) {
        if !self.listening.swap(true, Ordering::SeqCst) {
            self.reader.wake();
        }
    }

    /// Until the next [`Ctl::listen`], a read that finds nothing waits without the reactor.
    pub fn quiet(&self) {
        self.listening.store(false, Ordering::SeqCst);
    }

    pub fn is_listening(&self) -> bool {
        self.listening.load(Ordering::SeqCst)
    }
}

pub struct QuietTcp {
    /// `None` only for the instant of a re-registration (and after one failed).
    fd: Option<AsyncFd<TcpStream>>,
    /// Registered for readability too (the slow path: listening and nothing there yet).
    readable: bool,
    /// Turns left to yield before registering for readability after a read that emptied the socket.
    yields: u8,
    ctl: Arc<Ctl>,
}

/// `AsyncFd::with_interest` is deprecated because an arbitrary `AsRawFd` type could close or swap
/// its descriptor while registered; a `TcpStream` owns its descriptor and keeps it until dropped,
/// which `AsyncFd` does only after deregistering. Its replacement is `unsafe`, which this
/// workspace forbids.
#[allow(deprecated)]
fn registered(stream: TcpStream, interest: Interest) -> io::Result<AsyncFd<TcpStream>> {
    AsyncFd::with_interest(stream, interest)
}

/// See `QuietTcp::yields`: enough for the poster to take an answer from hyper (response, then body).
const YIELDS_AFTER_DRAIN: u8 = 4;

fn gone() -> io::Error {
    io::Error::new(
        io::ErrorKind::NotConnected,
        "ingest socket lost its registration",
    )
}

impl QuietTcp {
    /// Takes a connected stream (made non-blocking here).
    pub fn new(stream: TcpStream, ctl: Arc<Ctl>) -> io::Result<QuietTcp> {
        stream.set_nonblocking(true)?;
        Ok(QuietTcp {
            fd: Some(registered(stream, Interest::WRITABLE)?),
            readable: false,
            yields: 0,
            ctl,
        })
    }

    fn stream(&self) -> io::Result<&TcpStream> {
        self.fd.as_ref().map(|f| f.get_ref()).ok_or_else(gone)
    }

    fn register(&mut self, readable: bool) -> io::Result<()> {
        if self.readable == readable {
            return Ok(());
        }
        let stream = self.fd.take().ok_or_else(gone)?.into_inner();
        let interest = if readable {
            Interest::READABLE | Interest::WRITABLE
        } else {
            Interest::WRITABLE
        };
        self.fd = Some(registered(stream, interest)?);
        self.readable = readable;
        Ok(())
    }
}

/// One direct attempt; `None` for `WouldBlock`.
fn attempt<T>(mut f: impl FnMut() -> io::Result<T>) -> Option<io::Result<T>> {
    loop {
        match f() {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return None,
            r => return Some(r),
        }
    }
}

impl AsyncRead for QuietTcp {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.ctl.is_listening() {
            this.ctl.reader.register(cx.waker());
            if !this.ctl.is_listening() {
                // The next `listen` is for a new answer: read at once then.
                this.yields = 0;
                return Poll::Pending;
            }
        }
        if this.yields > 0 {
            // The last read emptied the socket, and what it got is usually the whole answer:
            // hyper is now only watching the idle connection. Give the poster a few turns to take
            // the answer and go quiet before this becomes a readiness registration (still
            // listening after that means more bytes are really wanted).
            this.yields -= 1;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        let read = |s: &TcpStream, buf: &mut ReadBuf<'_>| -> io::Result<bool> {
            let room = buf.remaining();
            let n = (&*s).read(buf.initialize_unfilled())?;
            buf.advance(n);
            Ok(n > 0 && n < room)
        };
        if let Some(r) = attempt(|| read(this.stream()?, buf)) {
            if r? {
                this.yields = YIELDS_AFTER_DRAIN;
            }
            return Poll::Ready(Ok(()));
        }
        this.register(true)?;
        let fd = this.fd.as_ref().ok_or_else(gone)?;
        loop {
            let mut guard = ready!(fd.poll_read_ready(cx))?;
            match guard.try_io(|s| read(s.get_ref(), buf)) {
                Ok(r) => return Poll::Ready(r.map(drop)),
                Err(_would_block) => continue,
            }
        }
    }
}

impl QuietTcp {
    fn poll_write_with(
        &mut self,
        cx: &mut Context<'_>,
        mut f: impl FnMut(&TcpStream) -> io::Result<usize>,
    ) -> Poll<io::Result<usize>> {
        if !self.ctl.is_listening() {
            // Back to quiet: the answer to this request must not wake the process.
            self.register(false)?;
        }
        if let Some(r) = attempt(|| f(self.stream()?)) {
            return Poll::Ready(r);
        }
        let fd = self.fd.as_ref().ok_or_else(gone)?;
        loop {
            let mut guard = ready!(fd.poll_write_ready(cx))?;
            match guard.try_io(|s| f(s.get_ref())) {
                Ok(r) => return Poll::Ready(r),
                Err(_would_block) => continue,
            }
        }
    }
}

impl AsyncWrite for QuietTcp {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.get_mut().poll_write_with(cx, |mut s| s.write(buf))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.get_mut()
            .poll_write_with(cx, |mut s| s.write_vectored(bufs))
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(
            self.stream()
                .and_then(|s| s.shutdown(std::net::Shutdown::Write)),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn pair() -> (QuietTcp, Arc<Ctl>, tokio::net::TcpStream) {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let (c, s) = tokio::join!(tokio::net::TcpStream::connect(addr), l.accept());
        let ctl = Ctl::listening();
        let q = QuietTcp::new(c.unwrap().into_std().unwrap(), ctl.clone()).unwrap();
        (q, ctl, s.unwrap().0)
    }

    #[tokio::test]
    async fn quiet_reads_wait_for_listen_and_then_get_the_bytes() {
        let (mut q, ctl, mut peer) = pair().await;
        ctl.quiet();
        q.write_all(b"request").await.unwrap();
        let mut got = [0u8; 7];
        peer.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"request");
        peer.write_all(b"answer").await.unwrap();

        let mut buf = [0u8; 16];
        let read = tokio::time::timeout(Duration::from_millis(100), q.read(&mut buf)).await;
        assert!(read.is_err(), "a quiet socket does not hand out the answer");

        let reader = tokio::spawn(async move {
            let mut buf = [0u8; 16];
            let n = q.read(&mut buf).await.unwrap();
            (q, buf[..n].to_vec())
        });
        tokio::task::yield_now().await;
        ctl.listen();
        let (mut q, got) = tokio::time::timeout(Duration::from_secs(5), reader)
            .await
            .expect("listen wakes the parked reader")
            .unwrap();
        assert_eq!(got, b"answer");

        // Listening with nothing there: the reactor path (re-registered for readability).
        let later = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            peer.write_all(b"late").await.unwrap();
            peer
        });
        let n = tokio::time::timeout(Duration::from_secs(5), q.read(&mut buf))
            .await
            .expect("a listening socket wakes on data")
            .unwrap();
        assert_eq!(&buf[..n], b"late");
        let mut peer = later.await.unwrap();

        // Quiet again after a write; end of stream is seen once listening.
        ctl.quiet();
        q.write_all(b"x").await.unwrap();
        assert_eq!(peer.read(&mut buf).await.unwrap(), 1);
        drop(peer);
        ctl.listen();
        let mut rest = vec![];
        tokio::time::timeout(Duration::from_secs(5), q.read_to_end(&mut rest))
            .await
            .expect("EOF arrives")
            .unwrap();
        assert!(rest.is_empty());
    }
}
