//! Gateway transport compression: one [`Decompressor`] per connection, built from the URL's
//! `compress` query (so a RESUME on `resume_gateway_url` asks for, and decodes, the same), and
//! never reused across reconnects.
//!
//! - [`zlib`]: `zlib-stream`, one inflate context; a message ends with `00 00 ff ff` and may span
//!   several WebSocket messages.
//! - [`zstd`]: `zstd-stream`, one zstd decompression context; each WebSocket message is one
//!   gateway message and does not end the zstd frame.
//!
//! Both bound what a peer can make the holder hold ([`MAX_MESSAGE_BYTES`], compressed and
//! decompressed) and turn any bad input into a [`DecompressError`], which ends the connection
//! (the session RESUMEs on a new one with a fresh context), never a panic.

pub mod zlib;
pub mod zstd;

use crate::config::Compression;

/// The largest message, compressed or decompressed, a peer may make us hold.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024 * 1024;

/// Input the connection's stream could not decompress (the connection must end).
#[derive(Debug)]
pub struct DecompressError {
    /// `zlib-stream` or `zstd-stream`.
    pub stream: &'static str,
    pub reason: String,
}

impl DecompressError {
    pub fn new(stream: &'static str, reason: impl Into<String>) -> Self {
        DecompressError {
            stream,
            reason: reason.into(),
        }
    }
}

impl std::fmt::Display for DecompressError {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(f, "{}: {}", self.stream, self.reason)
    }
}

impl std::error::Error for DecompressError {}

/// One connection's decompression context.
pub enum Decompressor {
    Zlib(zlib::Inflater),
    Zstd(zstd::ZstdStream),
}

impl Decompressor {
    /// The context for `compression`; `None` for uncompressed connections.
    pub fn new(compression: Compression) -> Option<Decompressor> {
        match compression {
            Compression::ZlibStream => Some(Decompressor::Zlib(zlib::Inflater::new())),
            Compression::ZstdStream => Some(Decompressor::Zstd(zstd::ZstdStream::new())),
            Compression::None => None,
        }
    }

    /// The context for a gateway URL's `compress` query (`None` without one).
    pub fn for_url(url: &url::Url) -> Option<Decompressor> {
        let compression = url
            .query_pairs()
            .find(|(k, _)| k == "compress")
            .and_then(|(_, v)| Compression::from_query(&v))
            .unwrap_or(Compression::None);
        Decompressor::new(compression)
    }

    /// Feeds one binary WebSocket message. Returns the whole decompressed gateway message once
    /// there is one, `None` while more input is needed (or, for zstd, when the input held no
    /// message bytes). The slice is valid until the next call.
    pub fn push(&mut self, frame: &[u8]) -> Result<Option<&[u8]>, DecompressError> {
        match self {
            Decompressor::Zlib(z) => z.push(frame),
            Decompressor::Zstd(z) => z.push(frame),
        }
    }

    /// Moves out the message the last `push` returned (no copy).
    pub fn take_message(&mut self) -> Vec<u8> {
        match self {
            Decompressor::Zlib(z) => z.take_message(),
            Decompressor::Zstd(z) => z.take_message(),
        }
    }

    /// Returns a buffer from `take_message` for reuse.
    pub fn give_back(&mut self, buf: Vec<u8>) {
        match self {
            Decompressor::Zlib(z) => z.give_back(buf),
            Decompressor::Zstd(z) => z.give_back(buf),
        }
    }
}

/// The decompressed-message buffer both streams write into: handed out without a copy
/// ([`Output::take`]) and recycled ([`Output::give_back`]), so a message costs no allocation.
pub(crate) struct Output {
    out: Vec<u8>,
    /// A buffer given back after a `take`, to decompress the next message into.
    spare: Vec<u8>,
}

impl Output {
    pub(crate) fn new() -> Output {
        Output {
            out: Vec::with_capacity(64 * 1024),
            spare: Vec::new(),
        }
    }

    /// The buffer, emptied, for the next message.
    pub(crate) fn start(&mut self) -> &mut Vec<u8> {
        self.out.clear();
        &mut self.out
    }

    /// At least 16 KiB of free capacity in `out` (growing by doubling, from 64 KiB).
    pub(crate) fn make_room(out: &mut Vec<u8>) {
        if out.capacity() - out.len() < 16 * 1024 {
            out.reserve(out.capacity().max(64 * 1024));
        }
    }

    /// Moves out the last message; the next is written into the buffer last given back, or a new
    /// one.
    pub(crate) fn take(&mut self) -> Vec<u8> {
        std::mem::replace(&mut self.out, std::mem::take(&mut self.spare))
    }

    /// Keeps `buf` for reuse (a very large one is let go).
    pub(crate) fn give_back(&mut self, mut buf: Vec<u8>) {
        if buf.capacity() <= 1024 * 1024 && buf.capacity() > self.spare.capacity() {
            buf.clear();
            self.spare = buf;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_url_query_picks_the_stream() {
        let url = |s: &str| url::Url::parse(s).unwrap();
        assert!(matches!(
            Decompressor::for_url(&url("ws://h/?v=10&encoding=json&compress=zstd-stream")),
            Some(Decompressor::Zstd(_))
        ));
        assert!(matches!(
            Decompressor::for_url(&url("ws://h/?v=10&compress=zlib-stream")),
            Some(Decompressor::Zlib(_))
        ));
        assert!(Decompressor::for_url(&url("ws://h/?v=10&encoding=json")).is_none());
        assert!(Decompressor::for_url(&url("ws://h/?compress=gzip")).is_none());
    }

    #[test]
    fn errors_name_their_stream() {
        let mut z = Decompressor::new(Compression::ZstdStream).unwrap();
        let e = z.push(b"definitely not zstd").unwrap_err();
        assert_eq!(e.stream, "zstd-stream");
        assert!(e.to_string().starts_with("zstd-stream: "), "{e}");
        let mut z = Decompressor::new(Compression::ZlibStream).unwrap();
        let e = z.push(&[1, 2, 3, 0, 0, 0xff, 0xff]).unwrap_err();
        assert!(e.to_string().starts_with("zlib-stream: "), "{e}");
    }

    #[test]
    fn buffers_are_recycled_and_large_ones_let_go() {
        let mut o = Output::new();
        o.start().extend_from_slice(b"abc");
        let first = o.take();
        assert_eq!(first, b"abc");
        let cap = first.capacity();
        o.give_back(first);
        assert_eq!(o.spare.capacity(), cap);
        o.start().push(1);
        let _second = o.take();
        assert_eq!(
            o.out.capacity(),
            cap,
            "the next message goes into the buffer given back"
        );
        o.give_back(Vec::with_capacity(4 << 20));
        assert!(o.spare.capacity() < 4 << 20, "a 4 MiB buffer is not kept");
    }
}
