//! The scanner against serde_json (the holder's previous decoding, `session::Frame`): the same
//! verdict and the same fields on hand-written shapes, on generated frames and on their mutations.

use super::*;
use crate::gateway::session::{snowflake, Frame, Routing};
use rand::{rngs::StdRng, Rng, SeedableRng};

/// What serde says, in the scanner's terms; `None` when it refuses the message.
/// `(op, s, t, d)` of an accepted message.
type Fields = (u8, Option<u64>, Option<String>, Option<String>);

fn serde_view(bytes: &[u8]) -> Option<Fields> {
    let f: Frame = serde_json::from_slice(bytes).ok()?;
    Some((
        f.op,
        f.s,
        f.t.map(|t| t.into_owned()),
        f.d.map(|d| d.get().to_owned()),
    ))
}

fn ours(bytes: &[u8]) -> Option<Fields> {
    let f = Scanner::new().scan(bytes).ok()?;
    if let (Some(t), Some(json)) = (&f.t, f.t_json) {
        // `t_json` is the JSON of `t`, verbatim.
        assert_eq!(&serde_json::from_str::<String>(json).unwrap(), t);
        assert!(bytes.windows(json.len()).any(|w| w == json.as_bytes()));
    }
    Some((
        f.op,
        f.s,
        f.t.map(|t| t.into_owned()),
        f.d.map(str::to_owned),
    ))
}

/// Same verdict and fields as serde, except where the module doc says the scanner is stricter.
fn agree(bytes: &[u8]) {
    let mine = ours(bytes);
    if std::str::from_utf8(bytes).is_err() {
        assert!(mine.is_none(), "accepted non-UTF-8: {bytes:?}");
        return;
    }
    let text = String::from_utf8_lossy(bytes);
    if text.trim_start().starts_with('[') {
        assert!(mine.is_none(), "accepted an array frame: {text}");
        return;
    }
    assert_eq!(mine, serde_view(bytes), "{text}");
}

#[test]
fn agrees_with_serde_on_frame_shapes() {
    let cases = [
        r#"{"op":0,"s":1,"t":"MESSAGE_CREATE","d":{"content":"hi"}}"#,
        r#"{"t":"X","s":2,"op":0,"d":[1,2,{"a":null}]}"#,
        r#"  {  "op" : 11 , "d" :  null  }  "#,
        "{\"op\":10,\"d\":{\"heartbeat_interval\":41250}}\n",
        r#"{"op":9,"d":false}"#,
        r#"{"op":9,"d":true,"s":null,"t":null}"#,
        r#"{"op":0,"s":18446744073709551615,"t":"A","d":1}"#,
        r#"{"op":0,"s":18446744073709551616,"t":"A","d":1}"#,
        r#"{"op":255}"#,
        r#"{"op":256}"#,
        r#"{"op":-1}"#,
        r#"{"op":-0}"#,
        r#"{"op":1.0}"#,
        r#"{"op":1e0}"#,
        r#"{"op":01}"#,
        r#"{"op":"1"}"#,
        r#"{"op":0,"s":-0}"#,
        r#"{"op":0,"s":5.5}"#,
        r#"{}"#,
        r#"{"d":{}}"#,
        r#"{"op":0,"op":0}"#,
        r#"{"op":0,"d":1,"d":2}"#,
        r#"{"op":0,"t":"A","t":"B"}"#,
        r#"{"op":0,"s":1,"s":1}"#,
        r#"{"op":0,"x":1,"x":2}"#,
        r#"{"o\u0070":7,"\u0074":"\u0041\n\ud83d\ude00"}"#,
        r#"{"op":0,"t":"\ud83d"}"#,
        r#"{"op":0,"x":"\ud83d"}"#,
        r#"{"op":0,"t":5}"#,
        r#"{"op":0,"d":"\u00e9\"\\\/\b\f\n\r\t"}"#,
        r#"{"op":0,"d":"\x"}"#,
        r#"{"op":0,"d":"\u12"}"#,
        r#"{"op":0,"d":"\u12G4"}"#,
        "{\"op\":0,\"d\":\"a\tb\"}",
        "{\"op\":0,\"d\":\"a\u{7f}b\u{e9}\u{1F600}\"}",
        r#"{"op":0,"d":[[[[[[[]]]]]]]}"#,
        r#"{"op":0,"d":[[[[[[[]]]]]]}"#,
        r#"{"op":0,"d":{"a":[1,-2,3.5e-7,0,-0.0,1E+2,true,false,null,"x",{}]}}"#,
        r#"{"op":0,"d":[1,]}"#,
        r#"{"op":0,"d":{"a":1,}}"#,
        r#"{"op":0,"d":{,}}"#,
        r#"{"op":0,"d":{"a" 1}}"#,
        r#"{"op":0,"d":{1:2}}"#,
        r#"{"op":0,"d":[1 2]}"#,
        r#"{"op":0,"d":-}"#,
        r#"{"op":0,"d":1.}"#,
        r#"{"op":0,"d":.5}"#,
        r#"{"op":0,"d":1e}"#,
        r#"{"op":0,"d":+1}"#,
        r#"{"op":0,"d":tru}"#,
        r#"{"op":0,"d":nulll}"#,
        r#"{"op":0,"d":nul}"#,
        r#"{"op":0,"s":nul}"#,
        r#"{"op":0,"d":NaN}"#,
        r#"{"op":0}x"#,
        r#"{"op":0}{}"#,
        r#"{"op":0"#,
        r#"{"op":0,"#,
        r#"{"op""#,
        r#"{"op":0 "d":1}"#,
        r#"{"op":0,,"d":1}"#,
        r#"{,"op":0}"#,
        "",
        "   ",
        "null",
        "0",
        r#""op""#,
        r#"[0,null,1,"T"]"#,
        "{\"op\":0,\"d\":\"\u{2028}\"}",
    ];
    for c in cases {
        agree(c.as_bytes());
    }
    for bad in [
        &b"{\"op\":0,\"d\":\"\xff\"}"[..],
        b"{\"op\":0,\"x\":\"\xc3\"}",
    ] {
        agree(bad);
    }
}

#[test]
fn errors_say_where_and_what() {
    let e = Scanner::new()
        .scan(br#"{"op":0,"d":{"a":[1,]}}"#)
        .unwrap_err();
    assert_eq!(e.at, 20, "{e}");
    assert!(e.to_string().contains("expected a value at byte 20"), "{e}");
    let e = Scanner::new().scan(br#"{"op":300}"#).unwrap_err();
    assert!(e.to_string().contains("field `op`"), "{e}");
    let e = Scanner::new().scan(br#"{"s":1}"#).unwrap_err();
    assert!(e.to_string().contains("missing field `op`"), "{e}");
}

/// The routing ids against serde's decoding of `d` (the `Routing` struct): the cases of the
/// previous routing scan.
#[test]
fn routing_agrees_with_serde_on_dispatch_shapes() {
    let cases = [
        r#"{"guild_id":"81384788765712384","channel_id":"81384788765712385","content":"hi"}"#,
        r#"{ "content" : "a \"quoted\" } ] { [ , : \\", "nested": {"guild_id": "1", "x": [1, {"channel_id": "2"}]},
            "channel_id" : "42" , "n": -1.5e3, "t": true, "f": false, "z": null }"#,
        r#"{"member":{"user":{"id":"7"}},"guild_id":"9"}"#,
        r#"{"guild_id":null,"channel_id":"0"}"#,
        r#"{"guild_id":"12x","channel_id":"123456789012345678901"}"#,
        r#"{"emoji":"\u00e9\ud83d\ude00","guild_id":"5"}"#,
        r#"{}"#,
        r#"[{"guild_id":"1"}]"#,
        r#""guild_id""#,
        r#"{"a":[[[]]],"b":{"c":{}},"channel_id":"3"}"#,
        r#"{"guild_id":"18446744073709551615","channel_id":"18446744073709551616"}"#,
        r#"{"guild_id":"00000000000000000001","channel_id":"000000000000000000001"}"#,
        r#"{"guild_id":"","channel_id":"-1"}"#,
        r#"{"guild_id":"1 ","channel_id":"+2"}"#,
    ];
    for d in cases {
        let frame = format!(r#"{{"op":0,"s":1,"t":"X","d":{d}}}"#);
        let f = Scanner::new().scan(frame.as_bytes()).expect(d);
        let r: Routing = serde_json::from_str(d).unwrap_or_default();
        assert_eq!(
            (f.guild_id, f.channel_id),
            (snowflake(r.guild_id), snowflake(r.channel_id)),
            "{d}"
        );
        assert_eq!(f.d, Some(d));
    }
}

/// Random JSON, written compactly or with random whitespace.
struct Gen {
    rng: StdRng,
}

impl Gen {
    fn ws(&mut self, out: &mut String) {
        for _ in 0..self.rng.gen_range(0..3) {
            if self.rng.gen_bool(0.3) {
                out.push([' ', '\n', '\r', '\t'][self.rng.gen_range(0..4)]);
            }
        }
    }

    fn string(&mut self, out: &mut String) {
        out.push('"');
        for _ in 0..self.rng.gen_range(0..12) {
            match self.rng.gen_range(0..12) {
                0 => out.push_str(
                    ["\\\"", "\\\\", "\\/", "\\b", "\\f", "\\n", "\\r", "\\t"]
                        [self.rng.gen_range(0..8)],
                ),
                1 => out.push_str(&format!("\\u{:04x}", self.rng.gen_range(0..0xd800u32))),
                2 => out.push_str("\\ud83d\\ude00"),
                3 => out.push(['é', '😀', '\u{2028}', 'ß', '中'][self.rng.gen_range(0..5)]),
                4 => out.push_str("guild_id"),
                _ => match self.rng.gen_range(b' '..=b'~') {
                    b'"' | b'\\' => out.push('x'),
                    c => out.push(c as char),
                },
            }
        }
        out.push('"');
    }

    fn number(&mut self, out: &mut String) {
        if self.rng.gen_bool(0.3) {
            out.push('-');
        }
        if self.rng.gen_bool(0.2) {
            out.push('0');
        } else {
            let shift = self.rng.gen_range(0..60);
            out.push_str(&self.rng.gen_range(1..u64::MAX >> shift).to_string());
        }
        if self.rng.gen_bool(0.2) {
            out.push_str(&format!(".{}", self.rng.gen_range(0..1000)));
        }
        if self.rng.gen_bool(0.2) {
            out.push_str(["e", "E", "e+", "e-"][self.rng.gen_range(0..4)]);
            out.push_str(&self.rng.gen_range(0..300).to_string());
        }
    }

    fn value(&mut self, out: &mut String, depth: u32) {
        let k = if depth > 4 {
            self.rng.gen_range(0..6)
        } else {
            self.rng.gen_range(0..8)
        };
        match k {
            0 => out.push_str("null"),
            1 => out.push_str(if self.rng.gen() { "true" } else { "false" }),
            2 | 3 => self.number(out),
            4 | 5 => self.string(out),
            6 => {
                out.push('[');
                let n = self.rng.gen_range(0..4);
                for i in 0..n {
                    if i > 0 {
                        out.push(',');
                    }
                    self.ws(out);
                    self.value(out, depth + 1);
                    self.ws(out);
                }
                out.push(']');
            }
            _ => self.object(
                out,
                depth,
                &["guild_id", "channel_id", "id", "content", "a\\u0062"],
            ),
        }
    }

    fn object(&mut self, out: &mut String, depth: u32, keys: &[&str]) {
        out.push('{');
        let n = self.rng.gen_range(0..5);
        for i in 0..n {
            if i > 0 {
                out.push(',');
            }
            self.ws(out);
            if self.rng.gen_bool(0.7) {
                out.push_str(&format!("\"{}\"", keys[self.rng.gen_range(0..keys.len())]));
            } else {
                self.string(out);
            }
            self.ws(out);
            out.push(':');
            self.ws(out);
            if self.rng.gen_bool(0.3) {
                out.push_str(&format!("\"{}\"", self.rng.gen_range(0..u64::MAX)));
            } else {
                self.value(out, depth + 1);
            }
            self.ws(out);
        }
        out.push('}');
    }
}

impl Gen {
    /// A gateway-like frame: `op`, `s`, `t`, `d` (and sometimes an unknown key) in any order,
    /// usually well typed.
    fn frame(&mut self, out: &mut String) {
        let mut parts: Vec<String> = vec![];
        let mut v = String::new();
        let op = if self.rng.gen_bool(0.9) {
            self.rng.gen_range(0..12u32).to_string()
        } else {
            self.value(&mut v, 3);
            std::mem::take(&mut v)
        };
        parts.push(format!(r#""op":{op}"#));
        if self.rng.gen_bool(0.8) {
            let s = if self.rng.gen_bool(0.8) {
                self.rng.gen::<u64>().to_string()
            } else {
                self.value(&mut v, 3);
                std::mem::take(&mut v)
            };
            parts.push(format!(r#""s":{s}"#));
        }
        if self.rng.gen_bool(0.8) {
            if self.rng.gen_bool(0.8) {
                self.string(&mut v);
            } else {
                self.value(&mut v, 3);
            }
            parts.push(format!(r#""t":{}"#, std::mem::take(&mut v)));
        }
        if self.rng.gen_bool(0.9) {
            if self.rng.gen_bool(0.7) {
                self.object(
                    &mut v,
                    0,
                    &["guild_id", "channel_id", "id", "content", "a\\u0062"],
                );
            } else {
                self.value(&mut v, 0);
            }
            parts.push(format!(r#""d":{}"#, std::mem::take(&mut v)));
        }
        if self.rng.gen_bool(0.2) {
            self.value(&mut v, 2);
            parts.push(format!(r#""x":{}"#, std::mem::take(&mut v)));
        }
        for i in (1..parts.len()).rev() {
            parts.swap(i, self.rng.gen_range(0..=i));
        }
        out.push('{');
        for (i, p) in parts.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            self.ws(out);
            out.push_str(p);
            self.ws(out);
        }
        out.push('}');
    }
}

/// Generated frames (`op`/`s`/`t`/`d` in any order, any value, duplicates and unknown keys) and
/// single-byte mutations of them: the scanner and serde agree on every one.
#[test]
fn agrees_with_serde_on_generated_frames_and_their_mutations() {
    let mut g = Gen {
        rng: StdRng::seed_from_u64(0x5eed),
    };
    let mut valid = 0;
    for _ in 0..20_000 {
        let mut frame = String::new();
        g.ws(&mut frame);
        if g.rng.gen_bool(0.8) {
            g.frame(&mut frame);
        } else {
            g.object(&mut frame, 0, &["op", "s", "t", "d", "x", "o\\u0070"]);
        }
        g.ws(&mut frame);
        agree(frame.as_bytes());
        valid += usize::from(serde_view(frame.as_bytes()).is_some());

        let mut bytes = frame.clone().into_bytes();
        if !bytes.is_empty() {
            let at = g.rng.gen_range(0..bytes.len());
            let junk = b"{}[]\",:\\ 0-.eE+tfnu\x01\xc3x"[g.rng.gen_range(0..22)];
            match g.rng.gen_range(0..3) {
                0 => {
                    bytes.remove(at);
                }
                1 => bytes.insert(at, junk),
                _ => bytes[at] = junk,
            }
            agree(&bytes);
        }
        // Every cut of a small frame.
        if frame.len() < 40 {
            for cut in 0..frame.len() {
                agree(&frame.as_bytes()[..cut]);
            }
        }
    }
    // The generator must produce accepted frames too, not only refusals.
    assert!(valid > 8_000, "only {valid} generated frames were valid");
}

#[test]
fn plain_runs_end_exactly_at_the_first_special_byte() {
    let mut rng = StdRng::seed_from_u64(7);
    for _ in 0..20_000 {
        let len = rng.gen_range(0..40);
        let bytes: Vec<u8> = (0..len)
            .map(|_| match rng.gen_range(0..10) {
                0 => b"\"\\\x00\x1f\x20\x7f\x80\xff"[rng.gen_range(0..8)],
                _ => rng.gen_range(0x20..=0xff),
            })
            .collect();
        let start = rng.gen_range(0..=len);
        let expect = (start..len)
            .find(|&i| matches!(bytes[i], b'"' | b'\\' | 0..=0x1f))
            .unwrap_or(len);
        assert_eq!(
            plain_run_end(&bytes, start),
            expect,
            "{bytes:?} from {start}"
        );
    }
}

/// `cargo test --release -p gateway-holder --lib scan_speed -- --ignored --nocapture`: the scanner
/// against serde's decoding on a Discord-like MESSAGE_CREATE (for profiling, not a check).
#[test]
#[ignore]
fn scan_speed() {
    let frame = br#"{"t":"MESSAGE_CREATE","s":1234,"op":0,"d":{"type":0,"tts":false,"timestamp":"2026-11-26T12:00:00.000000+00:00","pinned":false,"nonce":"1310000000000000000","mentions":[],"mention_roles":[],"mention_everyone":false,"member":{"roles":["1000000000000000010"],"premium_since":null,"pending":false,"nick":null,"mute":false,"joined_at":"2026-01-01T00:00:00.000000+00:00","flags":0,"deaf":false,"communication_disabled_until":null,"avatar":null},"id":"1310000000000000123","flags":0,"embeds":[],"edited_timestamp":null,"content":"hello there \u00e9 \"quoted\" \ud83d\ude00 some more words in a chat message","components":[],"channel_id":"1000000000000000100","author":{"username":"alice","public_flags":0,"id":"1000000000000000001","global_name":"Alice","discriminator":"0","avatar_decoration_data":null,"avatar":"a1b2c3d4e5f6"},"attachments":[],"guild_id":"1000000000000000000","_sim_sent_us":1764158400000000}}"#;
    let n = 200_000;
    let mut sc = Scanner::new();
    let t = std::time::Instant::now();
    for _ in 0..n {
        std::hint::black_box(sc.scan(std::hint::black_box(frame)).unwrap());
    }
    let ours = t.elapsed();
    let t = std::time::Instant::now();
    for _ in 0..n {
        std::hint::black_box(std::str::from_utf8(std::hint::black_box(frame)).is_ok());
    }
    println!(
        "from_utf8 {:.0} ns/frame",
        t.elapsed().as_nanos() as f64 / n as f64
    );
    let t = std::time::Instant::now();
    for _ in 0..n {
        let f: Frame = serde_json::from_slice(std::hint::black_box(frame)).unwrap();
        std::hint::black_box(f.d);
    }
    let serde = t.elapsed();
    println!(
        "{} bytes: scanner {:.0} ns/frame, serde {:.0} ns/frame",
        frame.len(),
        ours.as_nanos() as f64 / n as f64,
        serde.as_nanos() as f64 / n as f64
    );
}
