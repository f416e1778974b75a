//! The envelope of one dispatch (`contracts::Envelope`, SPEC.md), written as JSON by splicing: the
//! fixed parts and numbers are written here, `t` and `d` are copied verbatim from the gateway
//! message (`frame.rs` checked both are JSON), and the session id is escaped once per session.
//! Field order and meaning are those of serde's encoding of `contracts::Envelope`; the tests parse
//! the result with `contracts` and compare.
//!
//! Envelopes are written one after another into 64 KiB blocks ([`Arena`]) and handed out as
//! `Bytes` sharing their block, so an envelope costs no allocation of its own (a ~1 KiB one is
//! past glibc's per-thread cache and cost a slow `malloc`/`free` pair each); a block is freed, or
//! reused, once every envelope in it is delivered.

use bytes::{BufMut, Bytes, BytesMut};
use contracts::Snowflake;

/// Below glibc's mmap threshold (128 KiB), so a block is heap memory, not a fresh mapping.
const BLOCK: usize = 64 * 1024;

/// Where envelopes are written (see the module doc).
#[derive(Default)]
pub struct Arena {
    buf: BytesMut,
}

impl Arena {
    pub fn new() -> Arena {
        Arena::default()
    }
}

/// The parts of an envelope that stay the same for a whole session.
#[derive(Debug, Clone)]
pub struct SessionPart {
    /// `,"shard":N,"session_id":"…","seq":` with the id escaped as JSON.
    middle: String,
}

impl SessionPart {
    pub fn new(shard: u32, session_id: &str) -> SessionPart {
        let mut middle = String::with_capacity(session_id.len() + 40);
        middle.push_str(r#","shard":"#);
        middle.push_str(itoa::Buffer::new().format(shard));
        middle.push_str(r#","session_id":"#);
        middle.push_str(&serde_json::to_string(session_id).expect("a string always serializes"));
        middle.push_str(r#","seq":"#);
        SessionPart { middle }
    }
}

/// The varying parts of one envelope.
pub struct Fields<'a> {
    pub id: u64,
    pub seq: u64,
    /// `t` as a JSON string, quotes included (`None`: the holder writes `"UNKNOWN"`).
    pub t_json: Option<&'a str>,
    pub guild_id: Option<Snowflake>,
    pub channel_id: Option<Snowflake>,
    pub received_at: u64,
    /// `d` as JSON, verbatim (`None`: `null`).
    pub d: Option<&'a str>,
}

/// The envelope as JSON bytes.
pub fn encode(arena: &mut Arena, session: &SessionPart, f: &Fields<'_>) -> Bytes {
    let d = f.d.unwrap_or("null");
    let t = f.t_json.unwrap_or(r#""UNKNOWN""#);
    // An upper bound: the fixed text, five integers of at most 20 digits, and the spliced parts.
    let need = d.len() + t.len() + session.middle.len() + 200;
    let out = &mut arena.buf;
    if out.capacity() < need {
        out.reserve(need.max(BLOCK));
    }
    let mut num = itoa::Buffer::new();
    out.extend_from_slice(br#"{"version":"1.0","id":"#);
    out.extend_from_slice(num.format(f.id).as_bytes());
    out.extend_from_slice(session.middle.as_bytes());
    out.extend_from_slice(num.format(f.seq).as_bytes());
    out.extend_from_slice(br#","type":"#);
    out.extend_from_slice(t.as_bytes());
    if let Some(g) = f.guild_id {
        out.extend_from_slice(br#","guild_id":""#);
        out.extend_from_slice(num.format(g.0).as_bytes());
        out.put_u8(b'"');
    }
    if let Some(c) = f.channel_id {
        out.extend_from_slice(br#","channel_id":""#);
        out.extend_from_slice(num.format(c.0).as_bytes());
        out.put_u8(b'"');
    }
    out.extend_from_slice(br#","received_at":"#);
    out.extend_from_slice(num.format(f.received_at).as_bytes());
    out.extend_from_slice(br#","d":"#);
    out.extend_from_slice(d.as_bytes());
    out.put_u8(b'}');
    out.split().freeze()
}

#[cfg(test)]
mod tests {
    use super::*;
    use contracts::{Envelope, Version};
    use serde_json::value::RawValue;

    #[test]
    fn matches_serdes_encoding_of_the_contract_type() {
        let mut arena = Arena::new();
        let mut earlier = vec![];
        for (session_id, t, guild, channel, d) in [
            (
                "abc",
                Some(r#""MESSAGE_CREATE""#),
                Some(1u64),
                Some(2u64),
                Some(r#"{"a": [1, "\u00e9"] }"#),
            ),
            (
                "q\"uo\\te\u{e9}",
                Some(r#""TYPING_START""#),
                None,
                Some(u64::MAX),
                Some("[]"),
            ),
            ("s", None, Some(81384788765712384), None, None),
        ] {
            let part = SessionPart::new(3, session_id);
            let json = encode(
                &mut arena,
                &part,
                &Fields {
                    id: 42,
                    seq: 7,
                    t_json: t,
                    guild_id: guild.map(Snowflake),
                    channel_id: channel.map(Snowflake),
                    received_at: 1_700_000_000_000,
                    d,
                },
            );
            let want = Envelope {
                version: Version,
                id: 42,
                shard: 3,
                session_id: session_id.into(),
                seq: 7,
                kind: t.map_or("UNKNOWN".into(), |t| serde_json::from_str(t).unwrap()),
                guild_id: guild.map(Snowflake),
                channel_id: channel.map(Snowflake),
                received_at: 1_700_000_000_000,
                d: RawValue::from_string(d.unwrap_or("null").into()).unwrap(),
            };
            // Byte for byte what serde writes for the contract type...
            assert_eq!(
                String::from_utf8(json.to_vec()).unwrap(),
                serde_json::to_string(&want).unwrap()
            );
            earlier.push((json.clone(), serde_json::to_string(&want).unwrap()));
            // ...and the contract's own strict parser takes it in a batch, `d` untouched.
            let batch = format!(
                r#"{{"version":"1.0","holder_id":"h","epoch":"e","batch":1,"envelopes":[{}]}}"#,
                String::from_utf8(json.to_vec()).unwrap()
            );
            let back: contracts::IngestBatch =
                contracts::validate::parse(batch.as_bytes()).unwrap();
            assert_eq!(back.envelopes[0].d.get(), d.unwrap_or("null"));
            assert_eq!(back.envelopes[0].session_id, session_id);
        }
        // Later envelopes in the same block never disturb earlier ones.
        for (json, want) in earlier {
            assert_eq!(json, want.as_bytes());
        }
    }

    #[test]
    fn envelopes_share_blocks_and_a_big_one_gets_its_own() {
        let mut arena = Arena::new();
        let part = SessionPart::new(0, "s");
        let big = format!("\"{}\"", "x".repeat(3 * BLOCK));
        let mut all = vec![];
        for i in 0..200u64 {
            let d = if i == 100 { big.as_str() } else { r#"{"n":1}"# };
            let f = Fields {
                id: i,
                seq: i,
                t_json: Some(r#""T""#),
                guild_id: None,
                channel_id: None,
                received_at: 0,
                d: Some(d),
            };
            all.push((encode(&mut arena, &part, &f), d.len()));
        }
        for (i, (json, d_len)) in all.iter().enumerate() {
            let v: serde_json::Value = serde_json::from_slice(json).unwrap();
            assert_eq!(v["id"], i as u64);
            assert!(json.len() > *d_len);
        }
    }
}
