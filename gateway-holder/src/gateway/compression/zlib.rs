//! zlib-stream transport decompression (FACTS.md): one inflate context for the whole connection, and
//! a message is complete only when the accumulated bytes end with `00 00 ff ff`, so one message may
//! span several WebSocket messages. A fresh `Inflater` per connection, never reused across reconnects.
//!
//! The 2-byte zlib header is checked and skipped here and the rest inflated as raw deflate: the
//! zlib checksum (adler32 over every inflated byte, ~2% of the holder's CPU at full rate) is only
//! ever compared at the end of a stream, and a Gateway stream never ends.

use super::{DecompressError, Output, MAX_MESSAGE_BYTES};
use flate2::{Decompress, FlushDecompress, Status};

/// The sync-flush suffix that ends every complete zlib-stream message.
pub const SUFFIX: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

fn error(msg: impl Into<String>) -> DecompressError {
    DecompressError::new("zlib-stream", msg)
}

pub struct Inflater {
    ctx: Decompress,
    compressed: Vec<u8>,
    out: Output,
    /// The stream's zlib header was read.
    header_done: bool,
}

impl Default for Inflater {
    fn default() -> Self {
        Self::new()
    }
}

impl Inflater {
    pub fn new() -> Self {
        Inflater {
            ctx: Decompress::new(false),
            compressed: Vec::new(),
            out: Output::new(),
            header_done: false,
        }
    }

    /// Moves out the message the last `push` returned (no copy), see [`Output::take`].
    pub fn take_message(&mut self) -> Vec<u8> {
        self.out.take()
    }

    /// Returns a buffer from `take_message` for reuse, see [`Output::give_back`].
    pub fn give_back(&mut self, buf: Vec<u8>) {
        self.out.give_back(buf);
    }

    /// Feeds one binary frame. Returns the whole decompressed message once the frame completes it,
    /// `None` while more frames are needed. The returned slice is valid until the next call.
    pub fn push(&mut self, frame: &[u8]) -> Result<Option<&[u8]>, DecompressError> {
        // A whole message in one frame (the usual case) is inflated from the frame itself.
        let whole = self.compressed.is_empty() && frame.ends_with(&SUFFIX);
        if !whole {
            self.compressed.extend_from_slice(frame);
            if !self.compressed.ends_with(&SUFFIX) {
                // Bound a stream that never completes a message (a broken peer).
                if self.compressed.len() > MAX_MESSAGE_BYTES {
                    return Err(error("message larger than 64 MiB"));
                }
                return Ok(None);
            }
        }
        let out = self.out.start();
        let mut input: &[u8] = if whole { frame } else { &self.compressed };
        if !self.header_done {
            // RFC 1950: deflate (CM 8) with a window of at most 32 KiB, a header checksum that is
            // a multiple of 31, and no preset dictionary.
            match input {
                [cmf, flg, rest @ ..]
                    if cmf & 0x0f == 8
                        && cmf >> 4 <= 7
                        && (u16::from(*cmf) << 8 | u16::from(*flg)) % 31 == 0
                        && flg & 0x20 == 0 =>
                {
                    input = rest;
                    self.header_done = true;
                }
                _ => {
                    self.compressed.clear();
                    return Err(error("the stream does not start with a zlib header"));
                }
            }
        }
        loop {
            Output::make_room(out);
            let before_in = self.ctx.total_in();
            let before_out = self.ctx.total_out();
            let status = self
                .ctx
                .decompress_vec(input, out, FlushDecompress::Sync)
                .map_err(|e| error(e.to_string()))?;
            if out.len() > MAX_MESSAGE_BYTES {
                // A small frame can inflate ~1000×: bound the output, not only the input.
                self.compressed.clear();
                return Err(error("inflated message larger than 64 MiB"));
            }
            let consumed = (self.ctx.total_in() - before_in) as usize;
            let produced = self.ctx.total_out() - before_out;
            input = &input[consumed..];
            match status {
                Status::StreamEnd => break,
                _ if input.is_empty() && out.len() < out.capacity() => break,
                _ if consumed == 0 && produced == 0 && out.len() < out.capacity() => {
                    return Err(error("inflate made no progress"))
                }
                _ => {}
            }
        }
        self.compressed.clear();
        if self.compressed.capacity() > 1024 * 1024 {
            self.compressed.shrink_to(64 * 1024);
        }
        Ok(Some(out.as_slice()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::{Compress, Compression, FlushCompress};

    /// A zlib-stream sender: one compression context, each message sync-flushed.
    struct Sender(Compress);
    impl Sender {
        fn new() -> Self {
            Sender(Compress::new(Compression::default(), true))
        }
        fn message(&mut self, data: &[u8]) -> Vec<u8> {
            let mut out = Vec::with_capacity(data.len() + 64);
            let mut input = data;
            loop {
                out.reserve(4096);
                let before = self.0.total_in();
                self.0
                    .compress_vec(input, &mut out, FlushCompress::Sync)
                    .unwrap();
                input = &input[(self.0.total_in() - before) as usize..];
                if input.is_empty() && out.ends_with(&SUFFIX) {
                    return out;
                }
            }
        }
    }

    #[test]
    fn messages_share_one_context_and_may_span_frames() {
        let mut tx = Sender::new();
        let mut rx = Inflater::new();
        let a = br#"{"op":10,"d":{"heartbeat_interval":41250}}"#;
        let big: Vec<u8> = (0..200_000u32)
            .flat_map(|i| format!("{i},").into_bytes())
            .collect();
        let c = br#"{"op":11}"#;

        assert_eq!(rx.push(&tx.message(a)).unwrap().unwrap(), a);
        let frames = tx.message(&big);
        let (first, rest) = frames.split_at(frames.len() / 3);
        assert!(rx.push(first).unwrap().is_none());
        let (mid, last) = rest.split_at(rest.len() - 2);
        assert!(rx.push(mid).unwrap().is_none());
        assert_eq!(rx.push(last).unwrap().unwrap(), &big[..]);
        // The third message depends on the dictionary built by the first two.
        assert_eq!(rx.push(&tx.message(c)).unwrap().unwrap(), c);
        assert_eq!(rx.push(&tx.message(a)).unwrap().unwrap(), a);
        // Taking a message out and giving the buffer back keeps the stream going.
        let took = rx.take_message();
        assert_eq!(took, a);
        rx.give_back(took);
        assert_eq!(rx.push(&tx.message(c)).unwrap().unwrap(), c);
        assert_eq!(rx.take_message(), c);
        assert_eq!(rx.push(&tx.message(&big)).unwrap().unwrap(), &big[..]);
    }

    #[test]
    fn the_zlib_header_is_checked_once_even_when_split() {
        let mut tx = Sender::new();
        let a = tx.message(br#"{"op":11}"#);
        // The header alone in the first frame, the rest in the second.
        let mut rx = Inflater::new();
        assert!(rx.push(&a[..1]).unwrap().is_none());
        assert_eq!(rx.push(&a[1..]).unwrap().unwrap(), br#"{"op":11}"#);
        assert_eq!(rx.push(&tx.message(b"[1]")).unwrap().unwrap(), b"[1]");
        // A raw deflate stream (no zlib header) is refused.
        let mut raw = Compress::new(Compression::default(), false);
        let mut out = Vec::with_capacity(64);
        raw.compress_vec(b"{}", &mut out, FlushCompress::Sync)
            .unwrap();
        assert!(Inflater::new().push(&out).is_err());
    }

    #[test]
    fn bombs_are_refused_at_the_bound() {
        let zeros = vec![b' '; MAX_MESSAGE_BYTES + 1];
        match Inflater::new().push(&Sender::new().message(&zeros)) {
            Ok(m) => panic!("accepted {} bytes", m.map_or(0, <[u8]>::len)),
            Err(e) => assert!(e.to_string().contains("larger than 64 MiB"), "{e}"),
        }
        let fits = Sender::new().message(&zeros[..MAX_MESSAGE_BYTES]);
        assert_eq!(
            Inflater::new().push(&fits).unwrap().map(<[u8]>::len),
            Some(MAX_MESSAGE_BYTES)
        );
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let mut rx = Inflater::new();
        let mut junk = vec![0x12, 0x34, 0x56, 0x78, 0x9a];
        junk.extend_from_slice(&SUFFIX);
        assert!(rx.push(&junk).is_err());
    }
}
