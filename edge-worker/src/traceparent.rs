//! W3C trace context (`traceparent`): `00-<32 hex trace id>-<16 hex span id>-<2 hex flags>`.
//! The browser's header is carried through when valid; otherwise the edge makes a new one.

/// Whether `value` is a `traceparent` the edge may pass on. Version `00` must be exactly 55
/// characters; a later version may carry more after a `-` (W3C: parse what you know). Version
/// `ff`, upper-case hex and all-zero ids are invalid.
pub fn is_valid(value: &str) -> bool {
    let b = value.as_bytes();
    let lower_hex = |s: &[u8]| s.iter().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f'));
    if b.len() < 55 || !lower_hex(&b[0..2]) || &b[0..2] == b"ff" {
        return false;
    }
    if &b[0..2] == b"00" && b.len() != 55 {
        return false;
    }
    if b.len() > 55 && b[55] != b'-' {
        return false;
    }
    b[2] == b'-'
        && b[35] == b'-'
        && b[52] == b'-'
        && lower_hex(&b[3..35])
        && lower_hex(&b[36..52])
        && lower_hex(&b[53..55])
        && b[3..35].iter().any(|&c| c != b'0')
        && b[36..52].iter().any(|&c| c != b'0')
}

/// The trace id of a valid `traceparent` (for logs).
pub fn trace_id(value: &str) -> &str {
    value.get(3..35).unwrap_or("")
}

/// A new sampled `traceparent` from 24 random bytes (16 for the trace id, 8 for the span id).
/// All-zero ids (invalid) are nudged to non-zero.
pub fn generate(random: [u8; 24]) -> String {
    let mut trace = hex(&random[..16]);
    let mut span = hex(&random[16..]);
    if random[..16].iter().all(|&b| b == 0) {
        trace.replace_range(31..32, "1");
    }
    if random[16..].iter().all(|&b| b == 0) {
        span.replace_range(15..16, "1");
    }
    format!("00-{trace}-{span}-01")
}

/// The browser's `traceparent` when valid, else a new one.
pub fn carry_or_new(header: Option<&str>, random: [u8; 24]) -> String {
    match header.map(str::trim) {
        Some(h) if is_valid(h) => h.to_string(),
        _ => generate(random),
    }
}

pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 15) as usize] as char);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn validates() {
        assert!(is_valid(GOOD));
        assert!(!is_valid(&GOOD.to_uppercase()));
        assert!(!is_valid(
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01"
        ));
        assert!(!is_valid(
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01"
        ));
        assert!(!is_valid(&GOOD.replacen("00", "ff", 1)));
        assert!(
            !is_valid(&format!("{GOOD}-x")),
            "version 00 has no extra fields"
        );
        assert!(is_valid(&format!("01{}-extra", &GOOD[2..])));
        assert!(!is_valid("junk"));
        assert!(!is_valid(&GOOD.replace('-', "_")));
        assert_eq!(trace_id(GOOD), "4bf92f3577b34da6a3ce929d0e0e4736");
    }

    #[test]
    fn generates_and_carries() {
        let t = generate([7; 24]);
        assert!(is_valid(&t), "{t}");
        assert!(is_valid(&generate([0; 24])));
        assert_eq!(carry_or_new(Some(GOOD), [1; 24]), GOOD);
        let fresh = carry_or_new(Some("bad"), [1; 24]);
        assert!(is_valid(&fresh) && fresh != GOOD);
        assert!(is_valid(&carry_or_new(None, [2; 24])));
    }
}
