//! The holder's Gateway input path: zlib-stream inflation
//! (`gateway_holder::gateway::compression::zlib::Inflater`) and the decoding of whole messages
//! into gateway frames (`gateway::frame::Scanner`, checked against serde's
//! `gateway::session::Frame`) and spliced envelopes (`gateway::envelope`), in
//! `common/gateway.rs`, shared with `gateway_zstd`.
//!
//! The first byte picks a mode:
//! - even: raw. The rest is split into frames, each a length byte and then that many bytes, fed
//!   to one `Inflater` as a connection would. Checks: never panics; a message is returned exactly
//!   when the bytes since the last one end with `00 00 ff ff`; after an error the holder drops the
//!   connection, so the run stops. Every message is decoded as the holder decodes it (the scanner
//!   must agree with serde), and the envelope of a dispatch, sent in an ingest batch, must be
//!   accepted by `contracts` with `d` byte-identical (or be refused only for the one rule a
//!   gateway frame can break: an empty `t`).
//! - odd: differential. Up to four messages are compressed with flate2 on one shared context, each
//!   sync-flushed as Discord does, each split into frames at arbitrary points. Checks: the
//!   `Inflater` returns nothing until a message's last frame and then exactly that message.
//!   Splits after which the bytes so far end in `00 00 ff ff` are moved on: a frame ending in the
//!   suffix completes a message by the protocol's definition, so a sender never cuts there.

#![no_main]

#[path = "common/gateway.rs"]
mod gateway;

use flate2::{Compress, Compression, FlushCompress};
use gateway::decode;
use gateway_holder::gateway::compression::zlib::{Inflater, SUFFIX};
use libfuzzer_sys::{arbitrary::Unstructured, fuzz_target};

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
    let mut rx = Inflater::new();
    let mut pending: Vec<u8> = Vec::new();
    while let Some((&len, tail)) = data.split_first() {
        let (frame, tail) = tail.split_at(usize::from(len).min(tail.len()));
        data = tail;
        pending.extend_from_slice(frame);
        match rx.push(frame) {
            Ok(Some(message)) => {
                assert!(pending.ends_with(&SUFFIX), "a message without the suffix");
                pending.clear();
                decode(message);
            }
            Ok(None) => assert!(!pending.ends_with(&SUFFIX), "the suffix but no message"),
            // The holder ends the connection; the next one gets a fresh Inflater.
            Err(_) => return,
        }
    }
}

fn differential(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let level = u.int_in_range(0..=9u32).unwrap_or(6);
    let count = u.int_in_range(1..=4u8).unwrap_or(1);
    let mut tx = Compress::new(Compression::new(level), true);
    let mut rx = Inflater::new();
    for _ in 0..count {
        let repeat = u.int_in_range(1..=32usize).unwrap_or(1);
        let len = u.arbitrary_len::<u8>().unwrap_or(0).min(1024);
        let unit = u.bytes(len).unwrap_or(&[]);
        let message = unit.repeat(repeat);
        if message.is_empty() {
            // Discord never sends an empty message, and a sync flush of nothing may emit
            // nothing (flate2's zlib-rs backend, which the holder now uses, does not repeat the
            // empty block), so there is no suffix to wait for.
            continue;
        }
        let compressed = compress(&mut tx, &message);

        let mut cuts: Vec<usize> = (0..u.int_in_range(0..=6u8).unwrap_or(0))
            .filter_map(|_| u.arbitrary::<u16>().ok())
            .map(|c| usize::from(c) % compressed.len().max(1))
            .filter(|&c| c > 0)
            .collect();
        cuts.sort_unstable();
        cuts.dedup();
        cuts.retain(|&c| !compressed[..c].ends_with(&SUFFIX));
        cuts.push(compressed.len());

        let mut start = 0;
        for (i, &end) in cuts.iter().enumerate() {
            let got = rx
                .push(&compressed[start..end])
                .unwrap_or_else(|e| panic!("valid stream refused: {e}"));
            if i + 1 < cuts.len() {
                assert!(got.is_none(), "a message before its last frame");
            } else {
                let got = got.expect("the last frame completes the message");
                assert!(
                    got == &message[..],
                    "inflated bytes differ from the message"
                );
            }
            start = end;
        }
        if let Ok(text) = std::str::from_utf8(&message) {
            decode(text.as_bytes());
        }
    }
}

/// One message through a sync flush on the connection's shared compression context.
fn compress(tx: &mut Compress, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut input = data;
    loop {
        out.reserve(input.len() + input.len() / 8 + 1024);
        let before = tx.total_in();
        tx.compress_vec(input, &mut out, FlushCompress::Sync)
            .expect("compression does not fail");
        input = &input[(tx.total_in() - before) as usize..];
        if input.is_empty() && out.len() < out.capacity() && out.ends_with(&SUFFIX) {
            return out;
        }
    }
}
