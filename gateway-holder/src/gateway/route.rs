//! The routing hints of a dispatch (`guild_id`, `channel_id` at the top level of `d`), found by a
//! structural scan instead of a second serde pass over the whole payload.
//!
//! `d` has already been checked as JSON by the frame's parse (it is a `RawValue`), so the scan only
//! walks the top-level object: keys are compared as raw bytes, values are skipped by tracking
//! strings and nesting, and it stops as soon as both ids are found. It never panics and always
//! ends, whatever the input. Differences from decoding `d` with serde (the `Routing` struct in
//! `session.rs`): a key written with escapes is not recognized, and a wrongly typed id only loses
//! that id, not both. Both are hints; `d` itself goes out verbatim.

use contracts::Snowflake;

fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while matches!(b.get(i), Some(b' ' | b'\n' | b'\r' | b'\t')) {
        i += 1;
    }
    i
}

/// `b[i]` is an opening quote: the index of the closing one.
fn string_end(b: &[u8], i: usize) -> Option<usize> {
    let mut j = i + 1;
    loop {
        j += memchr::memchr2(b'"', b'\\', b.get(j..)?)?;
        if b[j] == b'"' {
            return Some(j);
        }
        j += 2;
    }
}

/// The index just past the value starting at `b[i]`.
fn value_end(b: &[u8], i: usize) -> Option<usize> {
    match *b.get(i)? {
        b'"' => Some(string_end(b, i)? + 1),
        b'{' | b'[' => {
            let mut depth = 0usize;
            let mut j = i;
            loop {
                match *b.get(j)? {
                    b'"' => j = string_end(b, j)?,
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            return Some(j + 1);
                        }
                    }
                    _ => {}
                }
                j += 1;
            }
        }
        _ => {
            let mut j = i;
            while !matches!(
                b.get(j),
                None | Some(b',' | b'}' | b']' | b' ' | b'\n' | b'\r' | b'\t')
            ) {
                j += 1;
            }
            (j > i).then_some(j)
        }
    }
}

/// A string value of 1 to 20 plain digits, not 0 and within 64 bits, as a snowflake (the rules of
/// `Snowflake::from_str`, without its UTF-8 and double digit checks).
fn id(v: &[u8]) -> Option<Snowflake> {
    let digits = v.strip_prefix(b"\"")?.strip_suffix(b"\"")?;
    if digits.is_empty() || digits.len() > 20 {
        return None;
    }
    let n = digits.iter().try_fold(0u64, |n, &c| {
        c.is_ascii_digit()
            .then(|| n.checked_mul(10)?.checked_add(u64::from(c - b'0')))
            .flatten()
    })?;
    (n != 0).then_some(Snowflake(n))
}

/// `(guild_id, channel_id)` from the top level of `d`.
pub fn route(d: &str) -> (Option<Snowflake>, Option<Snowflake>) {
    let b = d.as_bytes();
    let (mut guild, mut channel) = (None, None);
    let mut i = skip_ws(b, 0);
    if b.get(i) != Some(&b'{') {
        return (None, None);
    }
    i += 1;
    loop {
        i = skip_ws(b, i);
        if b.get(i) != Some(&b'"') {
            return (guild, channel);
        }
        let Some(key_end) = string_end(b, i) else {
            return (guild, channel);
        };
        let key = &b[i + 1..key_end];
        i = skip_ws(b, key_end + 1);
        if b.get(i) != Some(&b':') {
            return (guild, channel);
        }
        i = skip_ws(b, i + 1);
        let Some(end) = value_end(b, i) else {
            return (guild, channel);
        };
        match key {
            b"guild_id" => guild = id(&b[i..end]),
            b"channel_id" => channel = id(&b[i..end]),
            _ => {}
        }
        if guild.is_some() && channel.is_some() {
            return (guild, channel);
        }
        i = skip_ws(b, end);
        if b.get(i) != Some(&b',') {
            return (guild, channel);
        }
        i += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gateway::session::{snowflake, Routing};

    /// What the serde decoding of `d` says.
    fn serde_route(d: &str) -> (Option<Snowflake>, Option<Snowflake>) {
        let r: Routing = serde_json::from_str(d).unwrap_or_default();
        (snowflake(r.guild_id), snowflake(r.channel_id))
    }

    #[test]
    fn agrees_with_serde_on_dispatch_shapes() {
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
            r#"null"#,
            r#"{"a":[[[]]],"b":{"c":{}},"channel_id":"3"}"#,
            r#"{"guild_id":"18446744073709551615","channel_id":"18446744073709551616"}"#,
            r#"{"guild_id":"00000000000000000001","channel_id":"000000000000000000001"}"#,
            r#"{"guild_id":"","channel_id":"-1"}"#,
            r#"{"guild_id":"1 ","channel_id":"+2"}"#,
        ];
        for d in cases {
            serde_json::from_str::<serde_json::Value>(d).expect("test input is JSON");
            assert_eq!(route(d), serde_route(d), "{d}");
        }
    }

    #[test]
    fn never_panics_or_hangs_on_broken_input() {
        let base = r#"{"x":"a\"b","guild_id":"1","y":[{"z":"}"}],"channel_id":"2"}"#;
        for cut in 0..=base.len() {
            let _ = route(&base[..cut]);
        }
        for junk in [
            r#"{"a"#,
            r#"{"a":"#,
            r#"{"a":"\"#,
            r#"{"a":[}"#,
            "{",
            "}",
            r#"{"a"}"#,
            "{,}",
        ] {
            let _ = route(junk);
        }
        assert_eq!(route(base), (Some(Snowflake(1)), Some(Snowflake(2))));
    }
}
