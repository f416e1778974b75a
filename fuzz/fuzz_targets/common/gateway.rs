//! Shared by the holder's gateway targets (`gateway_inflate`, `gateway_zstd`): a whole message,
//! decompressed, goes through exactly what the holder does with it.

use contracts::{validate, IngestBatch};
use gateway_holder::gateway::envelope::{self, Arena, Fields, SessionPart};
use gateway_holder::gateway::frame::{FrameView, Scanner};
use gateway_holder::gateway::session::{Frame, Hello, Ready};

/// A whole message, decoded as `session::on_message` and `dispatch` decode it (`frame::Scanner`),
/// checked against serde's decoding (`session::Frame`, the holder's previous one): the same
/// verdict and fields, except where the scanner is stricter by design (not UTF-8, an array frame).
pub fn decode(bytes: &[u8]) {
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
            assert_eq!(
                (e.guild_id, e.channel_id),
                (frame.guild_id, frame.channel_id)
            );
        }
        Err(e) => assert!(
            kind.is_empty(),
            "the contract refuses a holder envelope: {e}"
        ),
    }
}
