//! `compress=zstd-stream`: one zstd compression context for the connection's lifetime. Every
//! message is compressed into it and flushed (`ZSTD_e_flush`), never ended, so each websocket
//! message is one whole gateway message that a client decodes with its one streaming
//! decompression context, and later messages may refer back to earlier ones.
//!
//! Optionally (`SimConfig::split_compressed_frames`) a message goes out as several websocket
//! frames of one message (see `socket.rs`): unlike zlib-stream there is no suffix to wait for, so
//! a zstd message can't be spread over several websocket messages, only fragmented.

use zstd_safe::zstd_sys::ZSTD_EndDirective::ZSTD_e_flush;
use zstd_safe::{CCtx, CParameter, InBuffer, OutBuffer};

/// zstd's fastest regular level: the sim compresses every message once per connection, on the
/// benches' critical path, and at 1 it costs about what zlib-stream's fast level does. (The level
/// barely changes a decoder's work.) The window stays at the level's default (512 KiB), well
/// inside what any decoder accepts.
const LEVEL: i32 = 1;

/// The per-connection compressor.
pub struct ZstdStream {
    cctx: CCtx<'static>,
    total_in: u64,
}

impl std::fmt::Debug for ZstdStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ZstdStream")
            .field("total_in", &self.total_in)
            .finish()
    }
}

impl Default for ZstdStream {
    fn default() -> Self {
        Self::new()
    }
}

impl ZstdStream {
    /// A fresh context (the first message carries the frame header).
    pub fn new() -> Self {
        let mut cctx = CCtx::create();
        cctx.set_parameter(CParameter::CompressionLevel(LEVEL))
            .expect("a valid zstd level");
        Self { cctx, total_in: 0 }
    }

    /// Compresses one message and flushes it, so a client can decode all of it from this output.
    pub fn compress(&mut self, input: &[u8]) -> Vec<u8> {
        let mut out: Vec<u8> = Vec::with_capacity(input.len() / 2 + 64);
        let mut src = InBuffer::around(input);
        loop {
            if out.capacity() - out.len() < 64 {
                out.reserve(out.capacity().max(256));
            }
            let len = out.len();
            // Only fails on a broken context or parameters, which `new` rules out.
            let left = self
                .cctx
                .compress_stream2(
                    &mut OutBuffer::around_pos(&mut out, len),
                    &mut src,
                    ZSTD_e_flush,
                )
                .expect("zstd flush");
            if left == 0 && src.pos() == input.len() {
                self.total_in += input.len() as u64;
                return out;
            }
        }
    }
}

/// One websocket message that no zstd-stream decoder accepts: a block header of the reserved
/// block type (3) where the client expects the next block, and no zstd magic number where it
/// expects a frame. It never goes through the connection's context, so the sim's stream stays
/// intact (the client must drop the connection anyway).
pub const CORRUPT: [u8; 6] = [0x06, 0x00, 0x00, 0xde, 0xad, 0x00];

#[cfg(test)]
mod tests {
    use super::*;
    use zstd_safe::DCtx;

    /// What a client does: one streaming context, each message decompressed until its input is
    /// consumed.
    fn decode(d: &mut DCtx<'static>, input: &[u8]) -> Result<Vec<u8>, &'static str> {
        let mut out: Vec<u8> = Vec::with_capacity(1 << 16);
        let mut src = InBuffer::around(input);
        loop {
            let len = out.len();
            let full = {
                let mut o = OutBuffer::around_pos(&mut out, len);
                d.decompress_stream(&mut o, &mut src)
                    .map_err(zstd_safe::get_error_name)?;
                o.pos() == o.capacity()
            };
            if src.pos() == input.len() && !full {
                return Ok(out);
            }
            out.reserve(out.capacity());
        }
    }

    #[test]
    fn one_context_many_messages() {
        let mut z = ZstdStream::new();
        let mut d = DCtx::create();
        let mut sizes = vec![];
        for i in 0..50 {
            let msg = format!(
                "{{\"op\":0,\"s\":{i},\"d\":{{\"content\":\"{}\"}}}}",
                "x".repeat(i * 37)
            );
            let c = z.compress(msg.as_bytes());
            sizes.push(c.len());
            assert_eq!(decode(&mut d, &c).unwrap(), msg.as_bytes());
        }
        // Later messages lean on the shared window: far smaller than the first ones' share.
        let m = r#"{"op":0,"t":"MESSAGE_CREATE","d":{"content":"same"}}"#;
        let first = z.compress(m.as_bytes());
        let second = z.compress(m.as_bytes());
        assert!(second.len() < first.len(), "{second:?} vs {first:?}");
        assert_eq!(decode(&mut d, &first).unwrap(), m.as_bytes());
        assert_eq!(decode(&mut d, &second).unwrap(), m.as_bytes());
        assert!(DCtx::create()
            .decompress_stream(
                &mut OutBuffer::around(&mut vec![0u8; 256][..]),
                &mut InBuffer::around(&second)
            )
            .is_err());
    }

    #[test]
    fn large_message_compresses_completely() {
        let mut z = ZstdStream::new();
        let mut d = DCtx::create();
        let msg: Vec<u8> = (0..300_000u32)
            .map(|i| b'a' + (i.wrapping_mul(2_654_435_761) >> 27) as u8 % 26)
            .collect();
        let c = z.compress(&msg);
        assert_eq!(decode(&mut d, &c).unwrap(), msg);
        assert_eq!(decode(&mut d, &z.compress(b"{}")).unwrap(), b"{}");
    }

    #[test]
    fn the_corrupt_message_is_refused_mid_stream_and_at_the_start() {
        let mut z = ZstdStream::new();
        let mut d = DCtx::create();
        assert_eq!(
            decode(&mut d, &z.compress(b"{\"op\":11}")).unwrap(),
            b"{\"op\":11}"
        );
        assert!(decode(&mut d, &CORRUPT).is_err());
        assert!(decode(&mut DCtx::create(), &CORRUPT).is_err());
    }
}
