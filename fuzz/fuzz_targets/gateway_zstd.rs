//! The holder's zstd-stream input path: `gateway_holder::gateway::compression::zstd::ZstdStream`
//! (one decompression context per connection, one gateway message per websocket message), then
//! the decoding of each message as the holder does it (`common/gateway.rs`, shared with
//! `gateway_inflate`).
//!
//! The first byte picks a mode:
//! - even: raw. The rest is split into websocket messages, each a length byte and then that many
//!   bytes, fed to one `ZstdStream` as a connection would. Checks: never panics, never returns
//!   more than the 64 MiB bound; after an error the holder drops the connection, so the run
//!   stops. Every message is decoded as the holder decodes it.
//! - odd: differential. Up to six messages are compressed with libzstd on one shared context at
//!   an arbitrary level (-5 to 9), each flushed as Discord does (and, now and then, the frame ended and a
//!   new one begun, which a server may also do). Checks: each websocket message comes back as
//!   exactly its message, and a message cut short (a sender that split one gateway message over
//!   two websocket messages) is refused or yields no more than a prefix of it, never a panic.

#![no_main]

#[path = "common/gateway.rs"]
mod gateway;

use gateway::decode;
use gateway_holder::gateway::compression::{zstd::ZstdStream, MAX_MESSAGE_BYTES};
use libfuzzer_sys::{arbitrary::Unstructured, fuzz_target};
use zstd_safe::zstd_sys::ZSTD_EndDirective::{ZSTD_e_end, ZSTD_e_flush};
use zstd_safe::{CCtx, CParameter, InBuffer, OutBuffer, ResetDirective};

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode & 1 == 0 {
        raw(rest);
    } else {
        differential(rest);
    }
});

fn raw(mut data: &[u8]) {
    let mut rx = ZstdStream::new();
    while let Some((&len, tail)) = data.split_first() {
        let (message, tail) = tail.split_at(usize::from(len).min(tail.len()));
        data = tail;
        match rx.push(message) {
            Ok(Some(m)) => {
                assert!(m.len() <= MAX_MESSAGE_BYTES, "past the bound");
                let m = m.to_vec();
                decode(&m);
            }
            Ok(None) => {}
            // The holder ends the connection; the next one gets a fresh context.
            Err(_) => return,
        }
    }
}

thread_local! {
    /// The sender's context, kept across runs (allocating a level's tables every run costs more
    /// than the run) and reset to a new session at the start of each.
    static SENDER: std::cell::RefCell<CCtx<'static>> = std::cell::RefCell::new(CCtx::create());
}

fn differential(data: &[u8]) {
    SENDER.with(|tx| differential_with(&mut tx.borrow_mut(), data));
}

fn differential_with(tx: &mut CCtx<'static>, data: &[u8]) {
    let mut u = Unstructured::new(data);
    // Negative (fast) levels to 9: the window and match finders a gateway would use.
    let level = u.int_in_range(-5..=9i32).unwrap_or(3);
    let count = u.int_in_range(1..=6u8).unwrap_or(1);
    tx.reset(ResetDirective::SessionOnly)
        .expect("a session reset");
    tx.set_parameter(CParameter::CompressionLevel(level))
        .expect("a valid level");
    let mut rx = ZstdStream::new();
    for _ in 0..count {
        let repeat = u.int_in_range(1..=32usize).unwrap_or(1);
        let len = u.arbitrary_len::<u8>().unwrap_or(0).min(1024);
        let unit = u.bytes(len).unwrap_or(&[]);
        let message = unit.repeat(repeat);
        let end_frame = u.ratio(1, 8u8).unwrap_or(false);
        let compressed = compress(tx, &message, end_frame);
        if u.ratio(1, 8u8).unwrap_or(false) && compressed.len() > 1 {
            // A sender that cuts a message in two: the holder refuses the first part or hands
            // on at most a prefix of the message (then the stream is broken: the connection
            // ends, as after any error).
            let cut = usize::from(u.arbitrary::<u16>().unwrap_or(0)) % (compressed.len() - 1) + 1;
            match rx.push(&compressed[..cut]) {
                Ok(Some(part)) => assert!(
                    message.starts_with(part),
                    "a cut message gave bytes that are not its prefix"
                ),
                Ok(None) | Err(_) => {}
            }
            return;
        }
        let got = rx
            .push(&compressed)
            .unwrap_or_else(|e| panic!("valid stream refused: {e}"));
        match got {
            Some(got) => assert!(got == &message[..], "decompressed bytes differ"),
            None => assert!(message.is_empty(), "a message's bytes went missing"),
        }
        if let Ok(text) = std::str::from_utf8(&message) {
            decode(text.as_bytes());
        }
    }
}

/// One message on the connection's shared context: flushed (Discord's way), or with the frame
/// ended (the next message then starts a new frame).
fn compress(tx: &mut CCtx<'static>, data: &[u8], end_frame: bool) -> Vec<u8> {
    let directive = if end_frame { ZSTD_e_end } else { ZSTD_e_flush };
    let mut out: Vec<u8> = Vec::with_capacity(zstd_safe::compress_bound(data.len()) + 64);
    let mut input = InBuffer::around(data);
    loop {
        let len = out.len();
        let left = tx
            .compress_stream2(
                &mut OutBuffer::around_pos(&mut out, len),
                &mut input,
                directive,
            )
            .expect("compression does not fail");
        if left == 0 && input.pos() == data.len() {
            return out;
        }
        out.reserve(out.capacity().max(1024));
    }
}
