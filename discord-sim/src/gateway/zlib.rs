//! `compress=zlib-stream`: one deflate context per connection; every message is compressed into it
//! and ends with a sync flush, so its last four bytes are `00 00 ff ff`.
//!
//! Optionally a message is split across two websocket messages: the client must buffer until the
//! suffix arrives, as Discord's docs require.

use flate2::{Compress, Compression, FlushCompress, Status};

/// The sync-flush suffix that ends every complete message.
pub const SUFFIX: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

/// The per-connection compressor.
pub struct ZlibStream {
    compress: Compress,
}

impl std::fmt::Debug for ZlibStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ZlibStream")
            .field("total_in", &self.compress.total_in())
            .finish()
    }
}

impl Default for ZlibStream {
    fn default() -> Self {
        Self::new()
    }
}

impl ZlibStream {
    /// A fresh context (with the zlib header, which the first message carries).
    pub fn new() -> Self {
        Self {
            compress: Compress::new(Compression::fast(), true),
        }
    }

    /// Compresses one message and sync-flushes, so the output ends with [`SUFFIX`].
    pub fn compress(&mut self, input: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(input.len() / 2 + 64);
        let start_in = self.compress.total_in();
        loop {
            let consumed = (self.compress.total_in() - start_in) as usize;
            if out.capacity() - out.len() < 64 {
                out.reserve(out.capacity().max(256));
            }
            let status = self
                .compress
                .compress_vec(&input[consumed..], &mut out, FlushCompress::Sync)
                .unwrap_or(Status::StreamEnd);
            let consumed = (self.compress.total_in() - start_in) as usize;
            // Done once all input is in and the flush fitted (space was left over).
            if consumed == input.len() && out.len() < out.capacity() && out.ends_with(&SUFFIX) {
                return out;
            }
            if status == Status::StreamEnd {
                return out;
            }
        }
    }
}

/// One websocket message no zlib-stream decoder accepts: a deflate block of the reserved type
/// (BTYPE 11), with the suffix that makes a client decode it. It never goes through the
/// connection's context.
pub const CORRUPT: [u8; 8] = [0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0xff, 0xff];

/// Splits a compressed message in two at a point where the first part does not itself end with
/// the suffix (which would make a client treat it as complete). Messages too short to split come
/// back whole.
pub fn split(message: Vec<u8>) -> Vec<Vec<u8>> {
    if message.len() < 8 {
        return vec![message];
    }
    let mut at = message.len() / 2;
    while at > 1 && message[..at].ends_with(&SUFFIX) {
        at -= 1;
    }
    let tail = message[at..].to_vec();
    let mut head = message;
    head.truncate(at);
    vec![head, tail]
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::{Decompress, FlushDecompress};

    fn inflate(d: &mut Decompress, input: &[u8]) -> String {
        let mut out = Vec::with_capacity(1 << 16);
        d.decompress_vec(input, &mut out, FlushDecompress::Sync)
            .unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn one_context_many_messages() {
        let mut z = ZlibStream::new();
        let mut d = Decompress::new(true);
        for i in 0..50 {
            let msg = format!(
                "{{\"op\":0,\"s\":{i},\"d\":{{\"content\":\"{}\"}}}}",
                "x".repeat(i * 37)
            );
            let c = z.compress(msg.as_bytes());
            assert!(c.ends_with(&SUFFIX));
            assert_eq!(inflate(&mut d, &c), msg);
        }
    }

    #[test]
    fn large_message_compresses_completely() {
        let mut z = ZlibStream::new();
        let mut d = Decompress::new(true);
        let msg: String = (0..200_000)
            .map(|i| char::from(b'a' + (i * 7 % 26) as u8))
            .collect();
        let c = z.compress(msg.as_bytes());
        assert!(c.ends_with(&SUFFIX));
        let mut out = Vec::with_capacity(msg.len() + 16);
        d.decompress_vec(&c, &mut out, FlushDecompress::Sync)
            .unwrap();
        assert_eq!(out, msg.as_bytes());
    }

    #[test]
    fn the_corrupt_message_is_refused() {
        let mut z = ZlibStream::new();
        let mut d = Decompress::new(true);
        assert_eq!(inflate(&mut d, &z.compress(b"{\"op\":11}")), "{\"op\":11}");
        let mut out = Vec::with_capacity(64);
        assert!(d
            .decompress_vec(&CORRUPT, &mut out, FlushDecompress::Sync)
            .is_err());
    }

    #[test]
    fn split_keeps_bytes_and_only_last_part_is_complete() {
        let mut z = ZlibStream::new();
        let c = z.compress(b"{\"op\":10,\"d\":{\"heartbeat_interval\":41250}}");
        let parts = split(c.clone());
        assert_eq!(parts.len(), 2);
        assert!(!parts[0].ends_with(&SUFFIX));
        assert!(parts[1].ends_with(&SUFFIX));
        assert_eq!(parts.concat(), c);
    }
}
