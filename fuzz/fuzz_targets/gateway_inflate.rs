//! The holder's Gateway input path: zlib-stream inflation
//! (`gateway_holder::gateway::inflate::Inflater`) and the decoding of whole messages into gateway
//! frames (`gateway::frame::Scanner`, checked against serde's `gateway::session::Frame`) and
//! spliced envelopes (`gateway::envelope`).
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

use contracts::{validate, IngestBatch};
use flate2::{Compress, Compression, FlushCompress};
use gateway_holder::gateway::inflate::Inflater;
use gateway_holder::gateway::envelope::{self, Arena, Fields, SessionPart};
use gateway_holder::gateway::frame::{FrameView, Scanner};
use gateway_holder::gateway::session::{Frame, Hello, Ready};
use libfuzzer_sys::{arbitrary::Unstructured, fuzz_target};

const SUFFIX: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

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

/// A whole message, decoded as `session::on_message` and `dispatch` decode it (`frame::Scanner`),
/// checked against serde's decoding (`session::Frame`, the holder's previous one): the same
/// verdict and fields, except where the scanner is stricter by design (not UTF-8, an array frame).
fn decode(bytes: &[u8]) {
    let ours = Scanner::new().scan(bytes);
    let serde = serde_json::from_slice::<Frame>(bytes);
    let stricter =
        std::str::from_utf8(bytes).is_err() || bytes.trim_ascii_start().first() == Some(&b'[');
    match (&ours, &serde) {
        (Ok(f), Ok(s)) => {
            assert_eq!(f.op, s.op, "op");
            assert_eq!(f.s, s.s, "s");
            assert_eq!(f.t.as_deref(), s.t.as_deref(), "t");
            assert_eq!(f.d, s.d.map(|d| d.get()), "d");
        }
        (Err(_), Ok(_)) => assert!(stricter, "the scanner refused a frame serde accepts"),
        (Ok(_), Err(e)) => panic!("the scanner accepted a frame serde refuses: {e}"),
        (Err(_), Err(_)) => {}
    }
    let Ok(frame) = ours else {
        return;
    };
    match frame.op {
        0 => dispatch(frame),
        9 => {
            let _resumable = frame.d == Some("true");
        }
        10 => {
            if let Some(h) = frame.d.and_then(|d| serde_json::from_str::<Hello>(d).ok()) {
                let _ = std::time::Duration::from_millis(h.heartbeat_interval.max(1));
            }
        }
        _ => {}
    }
}

/// The envelope the holder splices (`gateway::envelope`), in an ingest batch: `contracts` must
/// accept it with `d` byte-identical (or refuse it only for the one rule a gateway frame can
/// break: an empty `t`).
fn dispatch(frame: FrameView<'_>) {
    let kind = frame.t.as_deref().unwrap_or("UNKNOWN");
    let Some(seq) = frame.s else {
        return;
    };
    if kind == "READY" {
        let _ = serde_json::from_str::<Ready>(frame.d.unwrap_or("null"));
    }
    let json = envelope::encode(
        &mut Arena::new(),
        &SessionPart::new(1, "session \"\u{e9}"),
        &Fields {
            id: 1,
            seq,
            t_json: frame.t_json,
            guild_id: frame.guild_id,
            channel_id: frame.channel_id,
            received_at: 1,
            d: frame.d,
        },
    );
    let batch = format!(
        r#"{{"version":"1.0","holder_id":"holder","epoch":"epoch","batch":1,"envelopes":[{}]}}"#,
        std::str::from_utf8(&json).expect("an envelope is UTF-8")
    );
    match validate::parse::<IngestBatch>(batch.as_bytes()) {
        Ok(b) => {
            let e = &b.envelopes[0];
            assert_eq!(e.d.get(), frame.d.unwrap_or("null"), "d changed on the way");
            assert_eq!(e.kind, kind, "t changed on the way");
            assert_eq!((e.guild_id, e.channel_id), (frame.guild_id, frame.channel_id));
        }
        Err(e) => assert!(kind.is_empty(), "the contract refuses a holder envelope: {e}"),
    }
}
