//! zstd-stream transport decompression (FACTS.md): one zstd decompression context for the
//! connection's lifetime. Each WebSocket message is one whole gateway message, flushed by the
//! sender but never ending the zstd frame, so the streaming decompressor is called until the
//! message's input is consumed and all its output is out; it need not (and usually does not)
//! return 0. A fresh `ZstdStream` per connection, never reused across reconnects.
//!
//! A message that stops inside a zstd block (a sender that split one gateway message over two
//! WebSocket messages, or cut one short) is an error rather than half a message: after a flushed
//! message the decoder is always waiting for the next block's 3-byte header, and zstd says so in
//! the hint it returns. The connection then ends and the session RESUMEs, so nothing is lost.
//!
//! The C reference implementation through `zstd-safe` (see the README's dependency table); the
//! window is zstd's own default limit (2^27 bytes), which every decoder accepts, so any window a
//! server picks decodes.

use super::{DecompressError, Output, MAX_MESSAGE_BYTES};
use zstd_safe::{DCtx, InBuffer, OutBuffer};

/// What `ZSTD_decompressStream` asks for next when it stands between two blocks
/// (`ZSTD_blockHeaderSize`); 0 when a frame just ended.
const NEXT_BLOCK_HEADER: usize = 3;

fn error(msg: impl Into<String>) -> DecompressError {
    DecompressError::new("zstd-stream", msg)
}

pub struct ZstdStream {
    ctx: DCtx<'static>,
    out: Output,
}

impl Default for ZstdStream {
    fn default() -> Self {
        Self::new()
    }
}

impl ZstdStream {
    pub fn new() -> Self {
        ZstdStream {
            ctx: DCtx::create(),
            out: Output::new(),
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

    /// Decompresses one WebSocket message into one gateway message. `None` when it held no
    /// message bytes (an empty message, or only a frame header). The slice is valid until the
    /// next call.
    pub fn push(&mut self, message: &[u8]) -> Result<Option<&[u8]>, DecompressError> {
        if message.is_empty() {
            return Ok(None);
        }
        if message.len() > MAX_MESSAGE_BYTES {
            return Err(error("message larger than 64 MiB"));
        }
        let out = self.out.start();
        let mut input = InBuffer::around(message);
        let hint = loop {
            Output::make_room(out);
            let (in_before, out_before) = (input.pos(), out.len());
            let (hint, full) = {
                let mut output = OutBuffer::around_pos(&mut *out, out_before);
                let hint = self
                    .ctx
                    .decompress_stream(&mut output, &mut input)
                    .map_err(|code| error(zstd_safe::get_error_name(code)))?;
                (hint, output.pos() == output.capacity())
            };
            if out.len() > MAX_MESSAGE_BYTES {
                // zstd turns a few bytes into megabytes: bound the output, not only the input.
                return Err(error("decompressed message larger than 64 MiB"));
            }
            if input.pos() == message.len() && !full {
                // All input read and zstd had room to spare: nothing of this message is left
                // inside the context.
                break hint;
            }
            if input.pos() == in_before && out.len() == out_before && !full {
                return Err(error("decompression made no progress"));
            }
        };
        if hint != 0 && hint != NEXT_BLOCK_HEADER {
            return Err(error(
                "the message ended inside a zstd block (one gateway message must be one whole \
                 WebSocket message)",
            ));
        }
        if out.is_empty() {
            return Ok(None);
        }
        Ok(Some(out.as_slice()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use zstd_safe::zstd_sys::ZSTD_EndDirective::ZSTD_e_flush;
    use zstd_safe::{CCtx, CParameter};

    /// A zstd-stream sender: one compression context, each message flushed (never ended).
    struct Sender(CCtx<'static>);
    impl Sender {
        fn new(level: i32) -> Self {
            let mut c = CCtx::create();
            c.set_parameter(CParameter::CompressionLevel(level))
                .unwrap();
            Sender(c)
        }
        fn message(&mut self, data: &[u8]) -> Vec<u8> {
            let mut out: Vec<u8> = Vec::with_capacity(zstd_safe::compress_bound(data.len()) + 64);
            let mut input = InBuffer::around(data);
            loop {
                let len = out.len();
                let left = self
                    .0
                    .compress_stream2(
                        &mut OutBuffer::around_pos(&mut out, len),
                        &mut input,
                        ZSTD_e_flush,
                    )
                    .unwrap();
                if left == 0 && input.pos() == data.len() {
                    return out;
                }
                out.reserve(4096);
            }
        }
    }

    fn big() -> Vec<u8> {
        (0..200_000u32)
            .flat_map(|i| format!("{i},").into_bytes())
            .collect()
    }

    #[test]
    fn messages_share_one_context_and_never_end_the_frame() {
        let mut tx = Sender::new(3);
        let mut rx = ZstdStream::new();
        let a = br#"{"op":10,"d":{"heartbeat_interval":41250}}"#;
        let c = br#"{"op":11}"#;
        let big = big();
        assert_eq!(rx.push(&tx.message(a)).unwrap().unwrap(), a);
        // Larger than the 64 KiB starting buffer: several calls for one message.
        assert_eq!(rx.push(&tx.message(&big)).unwrap().unwrap(), &big[..]);
        let again = tx.message(a);
        // The repeat refers back into the window: a fresh context can't read it.
        assert!(again.len() < a.len() / 2, "{} bytes", again.len());
        assert!(ZstdStream::new().push(&again).is_err());
        assert_eq!(rx.push(&again).unwrap().unwrap(), a);
        // Taking a message out and giving the buffer back keeps the stream going.
        let took = rx.take_message();
        assert_eq!(took, a);
        rx.give_back(took);
        assert_eq!(rx.push(&tx.message(c)).unwrap().unwrap(), c);
        assert_eq!(rx.take_message(), c);
        for _ in 0..3 {
            assert_eq!(rx.push(&tx.message(&big)).unwrap().unwrap(), &big[..]);
        }
    }

    #[test]
    fn a_message_split_over_two_websocket_messages_is_an_error() {
        let mut tx = Sender::new(3);
        let mut rx = ZstdStream::new();
        assert!(rx.push(&tx.message(b"[0]")).unwrap().is_some());
        let m = tx.message(&big());
        let e = rx.push(&m[..m.len() / 2]).unwrap_err();
        assert!(e.to_string().contains("inside a zstd block"), "{e}");
        // Cut inside the first message's frame header, too.
        let mut tx = Sender::new(3);
        let first = tx.message(b"[1]");
        assert!(ZstdStream::new().push(&first[..2]).is_err());
    }

    #[test]
    fn an_empty_message_is_nothing() {
        let mut tx = Sender::new(1);
        let mut rx = ZstdStream::new();
        assert!(rx.push(b"").unwrap().is_none());
        assert_eq!(rx.push(&tx.message(b"{}")).unwrap().unwrap(), b"{}");
        assert!(rx.push(b"").unwrap().is_none());
        assert_eq!(rx.push(&tx.message(b"[]")).unwrap().unwrap(), b"[]");
    }

    #[test]
    fn a_stream_of_ended_frames_also_decodes() {
        // A sender that ends the frame after every message (not what Discord does) still decodes:
        // zstd returns 0 and the next message starts a new frame.
        let mut rx = ZstdStream::new();
        for msg in [&b"{\"a\":1}"[..], b"{\"b\":2}", b"{\"a\":1}"] {
            let mut buf = vec![0; 256];
            let n = zstd_safe::compress(&mut buf[..], msg, 3).unwrap();
            assert_eq!(rx.push(&buf[..n]).unwrap().unwrap(), msg);
        }
    }

    #[test]
    fn bombs_and_oversized_input_are_refused() {
        let mut tx = Sender::new(1);
        let zeros = vec![b' '; MAX_MESSAGE_BYTES + 1];
        let bomb = tx.message(&zeros);
        assert!(bomb.len() < 64 * 1024, "{} bytes", bomb.len());
        let refused = |r: Result<Option<&[u8]>, DecompressError>| match r {
            Ok(m) => panic!("accepted {} bytes", m.map_or(0, <[u8]>::len)),
            Err(e) => e.to_string(),
        };
        let e = refused(ZstdStream::new().push(&bomb));
        assert!(e.contains("decompressed message larger than 64 MiB"), "{e}");
        // Exactly at the bound is fine.
        let fits = Sender::new(1).message(&zeros[..MAX_MESSAGE_BYTES]);
        assert_eq!(
            ZstdStream::new().push(&fits).unwrap().map(<[u8]>::len),
            Some(MAX_MESSAGE_BYTES)
        );
        let e = refused(ZstdStream::new().push(&vec![0; MAX_MESSAGE_BYTES + 1]));
        assert!(
            e.starts_with("zstd-stream: message larger than 64 MiB"),
            "{e}"
        );
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let mut rx = ZstdStream::new();
        assert!(rx
            .push(&[0x28, 0xb5, 0x2f, 0xfd, 0xff, 0xff, 0xff, 0xff])
            .is_err());
        let mut tx = Sender::new(3);
        let mut rx = ZstdStream::new();
        assert!(rx.push(&tx.message(b"[1]")).unwrap().is_some());
        let mut m = tx.message(&big());
        let at = m.len() / 2;
        m[at] ^= 0xff;
        m[at + 1] ^= 0x55;
        // Corruption in the middle of a block: an error, or (if zstd can't tell) a message the
        // frame scanner will refuse; never a panic.
        let _ = rx.push(&m);
    }
}
