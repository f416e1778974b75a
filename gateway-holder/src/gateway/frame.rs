//! One pass over a whole gateway message: checks that it is JSON and finds what the holder needs
//! (`op`, `s`, `t`, the exact bytes of `d`, and `guild_id`/`channel_id` at the top level of `d`),
//! without building anything. The envelope is then spliced from these spans (`envelope.rs`), so
//! `d` goes out byte for byte as Discord sent it.
//!
//! Why not serde: decoding the frame with `d: &RawValue`, re-encoding the envelope with serde and a
//! separate routing scan walked every byte three times and cost about a third of the holder's CPU
//! at the ceiling (perf). serde_json is still the reference: the tests (and the `gateway_inflate`
//! fuzz target) compare this scanner's verdict and fields with `serde_json::from_slice::<Frame>`
//! (`session.rs`) on many shapes, escapes, numbers and broken inputs. No crate fitted: simd-json
//! and sonic-rs build a tape or DOM (or skip without validating), and the holder must both
//! validate every byte and keep raw spans.
//!
//! Validation is full RFC 8259 grammar, as serde_json's: strings without raw control characters
//! and with valid escapes (`\uXXXX` needs 4 hex digits), numbers `-?(0|[1-9][0-9]*)(.[0-9]+)?
//! ([eE][+-]?[0-9]+)?`, `true`/`false`/`null`, commas and colons where they belong, nothing after
//! the frame but whitespace. Nesting is tracked on a reused heap stack, so depth never touches the
//! call stack. A message that fails is rejected whole with the byte offset and what was expected.
//! Where it is stricter than serde: the frame must be an object (serde's derive would also take
//! an array of the fields in order) and the whole message must be UTF-8 (serde checks only `d` and
//! the strings it decodes). Routing ids, like before, are hints: a key written with escapes is not
//! recognized and a malformed id is dropped (`d` itself is never touched).

use contracts::Snowflake;
use std::borrow::Cow;

/// What the holder needs from one gateway message; spans borrow the message.
#[derive(Debug, PartialEq, Eq)]
pub struct FrameView<'a> {
    pub op: u8,
    /// `s`; `None` when absent or `null`.
    pub s: Option<u64>,
    /// `t` decoded; `None` when absent or `null`.
    pub t: Option<Cow<'a, str>>,
    /// `t` as it appears in the message: a JSON string, quotes included.
    pub t_json: Option<&'a str>,
    /// `d` byte for byte (no surrounding whitespace); `None` when absent or `null`.
    pub d: Option<&'a str>,
    pub guild_id: Option<Snowflake>,
    pub channel_id: Option<Snowflake>,
}

/// Why a message was rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanError {
    /// Byte offset where the message went wrong.
    pub at: usize,
    pub what: Cow<'static, str>,
}

impl std::fmt::Display for ScanError {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(f, "{} at byte {}", self.what, self.at)
    }
}

impl std::error::Error for ScanError {}

/// The inner functions' failure: empty, so their `Result<usize, Fail>` comes back in registers
/// (a `ScanError` made every token's result go through memory). What went wrong waits in
/// `DETAIL` until `scan` returns it.
struct Fail;

thread_local! {
    static DETAIL: std::cell::RefCell<Option<ScanError>> = const { std::cell::RefCell::new(None) };
}

#[cold]
fn fail<T>(e: ScanError) -> Result<T, Fail> {
    DETAIL.with(|d| *d.borrow_mut() = Some(e));
    Err(Fail)
}

fn err<T>(at: usize, what: &'static str) -> Result<T, Fail> {
    fail(ScanError {
        at,
        what: Cow::Borrowed(what),
    })
}

/// A scanner; keeps its nesting stack between messages so a message costs no allocation.
#[derive(Default)]
pub struct Scanner {
    stack: Vec<u8>,
}

impl Scanner {
    pub fn new() -> Scanner {
        Scanner::default()
    }

    /// Checks a whole message and finds its fields.
    pub fn scan<'a>(&mut self, bytes: &'a [u8]) -> Result<FrameView<'a>, ScanError> {
        self.frame(bytes).map_err(|Fail| {
            DETAIL.with(|d| d.borrow_mut().take()).unwrap_or(ScanError {
                at: 0,
                what: Cow::Borrowed("invalid message"),
            })
        })
    }

    fn frame<'a>(&mut self, bytes: &'a [u8]) -> Result<FrameView<'a>, Fail> {
        let text = std::str::from_utf8(bytes).or_else(|e| err(e.valid_up_to(), "not UTF-8"))?;
        let b = bytes;
        let mut i = ws(b, 0);
        if b.get(i) != Some(&b'{') {
            return err(i, "a gateway message must be a JSON object");
        }
        i = ws(b, i + 1);
        let mut op: Option<u8> = None;
        let mut s: Option<Option<u64>> = None;
        let mut t: Option<Option<(Cow<'a, str>, &'a str)>> = None;
        let mut d: Option<Option<&'a str>> = None;
        let mut route = Route::default();
        if b.get(i) == Some(&b'}') {
            i += 1;
        } else {
            loop {
                if b.get(i) != Some(&b'"') {
                    return err(i, "expected a key");
                }
                let key_at = i;
                let key_end = string(b, i)?;
                let key = key_text(text, key_at, key_end)?;
                i = colon(b, key_end)?;
                match key.as_ref() {
                    "op" => {
                        if op.is_some() {
                            return err(key_at, "duplicate field `op`");
                        }
                        let end = number(b, i)?;
                        op = Some(u8::try_from(integer(b, i, end, "field `op`")?).or_else(
                            |_| err(i, "field `op`: out of range for an opcode (0-255)"),
                        )?);
                        i = end;
                    }
                    "s" => {
                        if s.is_some() {
                            return err(key_at, "duplicate field `s`");
                        }
                        if b.get(i) == Some(&b'n') {
                            i = literal(b, i, b"null")?;
                            s = Some(None);
                        } else {
                            let end = number(b, i)?;
                            s = Some(Some(integer(b, i, end, "field `s`")?));
                            i = end;
                        }
                    }
                    "t" => {
                        if t.is_some() {
                            return err(key_at, "duplicate field `t`");
                        }
                        match b.get(i) {
                            Some(b'n') => {
                                i = literal(b, i, b"null")?;
                                t = Some(None);
                            }
                            Some(b'"') => {
                                let end = string(b, i)?;
                                let json = &text[i..end];
                                t = Some(Some((decode_string(json, i)?, json)));
                                i = end;
                            }
                            _ => return err(i, "field `t`: expected a string or null"),
                        }
                    }
                    "d" => {
                        if d.is_some() {
                            return err(key_at, "duplicate field `d`");
                        }
                        if b.get(i) == Some(&b'n') {
                            i = literal(b, i, b"null")?;
                            d = Some(None);
                        } else {
                            let end = self.data(b, i, &mut route)?;
                            d = Some(Some(&text[i..end]));
                            i = end;
                        }
                    }
                    _ => i = self.value(b, i)?,
                }
                i = ws(b, i);
                match b.get(i) {
                    Some(b',') => i = ws(b, i + 1),
                    Some(b'}') => {
                        i += 1;
                        break;
                    }
                    Some(_) => return err(i, "expected `,` or `}`"),
                    None => return err(i, "message ends inside the frame object"),
                }
            }
        }
        if ws(b, i) != b.len() {
            return err(ws(b, i), "trailing characters after the frame");
        }
        let Some(op) = op else {
            return err(0, "missing field `op`");
        };
        let (t, t_json) = match t.flatten() {
            Some((t, json)) => (Some(t), Some(json)),
            None => (None, None),
        };
        Ok(FrameView {
            op,
            s: s.flatten(),
            t,
            t_json,
            d: d.flatten(),
            guild_id: route.guild,
            channel_id: route.channel,
        })
    }

    /// `d` starting at `b[i]`: one value, and when it is an object, the ids at its top level.
    fn data(&mut self, b: &[u8], mut i: usize, route: &mut Route) -> Result<usize, Fail> {
        if b.get(i) != Some(&b'{') {
            return self.value(b, i);
        }
        i = ws(b, i + 1);
        if b.get(i) == Some(&b'}') {
            return Ok(i + 1);
        }
        loop {
            if b.get(i) != Some(&b'"') {
                return err(i, "expected a key");
            }
            let key_end = string(b, i)?;
            let key = &b[i + 1..key_end - 1];
            i = colon(b, key_end)?;
            let end = self.value(b, i)?;
            if !route.done() {
                match key {
                    b"guild_id" => route.guild = id(&b[i..end]),
                    b"channel_id" => route.channel = id(&b[i..end]),
                    _ => {}
                }
            }
            i = ws(b, end);
            match b.get(i) {
                Some(b',') => i = ws(b, i + 1),
                Some(b'}') => return Ok(i + 1),
                Some(_) => return err(i, "expected `,` or `}`"),
                None => return err(i, "message ends inside an object"),
            }
        }
    }

    /// One JSON value starting at `b[i]` (no leading whitespace); the index just past it.
    #[inline(always)]
    fn value(&mut self, b: &[u8], i: usize) -> Result<usize, Fail> {
        match b.get(i) {
            Some(b'"') => string(b, i),
            Some(b'-' | b'0'..=b'9') => number(b, i),
            _ => self.nested(b, i),
        }
    }

    /// Any value, objects and arrays included, nesting tracked on `self.stack`.
    fn nested(&mut self, b: &[u8], mut i: usize) -> Result<usize, Fail> {
        let stack = &mut self.stack;
        stack.clear();
        loop {
            // A value starts at `i`.
            match b.get(i) {
                Some(b'{') => {
                    i = ws(b, i + 1);
                    if b.get(i) == Some(&b'}') {
                        i += 1;
                    } else {
                        stack.push(b'{');
                        i = key(b, i)?;
                        continue;
                    }
                }
                Some(b'[') => {
                    i = ws(b, i + 1);
                    if b.get(i) == Some(&b']') {
                        i += 1;
                    } else {
                        stack.push(b'[');
                        continue;
                    }
                }
                Some(b'"') => i = string(b, i)?,
                Some(b't') => i = literal(b, i, b"true")?,
                Some(b'f') => i = literal(b, i, b"false")?,
                Some(b'n') => i = literal(b, i, b"null")?,
                Some(b'-' | b'0'..=b'9') => i = number(b, i)?,
                Some(_) => return err(i, "expected a value"),
                None => return err(i, "message ends where a value should be"),
            }
            // A value ended at `i`: close what it ended, or move to the next element.
            loop {
                let Some(&open) = stack.last() else {
                    return Ok(i);
                };
                i = ws(b, i);
                match (b.get(i), open) {
                    (Some(b','), b'{') => {
                        i = key(b, ws(b, i + 1))?;
                        break;
                    }
                    (Some(b','), _) => {
                        i = ws(b, i + 1);
                        break;
                    }
                    (Some(b'}'), b'{') | (Some(b']'), b'[') => {
                        i += 1;
                        stack.pop();
                    }
                    (Some(_), b'{') => return err(i, "expected `,` or `}`"),
                    (Some(_), _) => return err(i, "expected `,` or `]`"),
                    (None, _) => return err(i, "message ends inside an object or array"),
                }
            }
        }
    }
}

#[derive(Default)]
struct Route {
    guild: Option<Snowflake>,
    channel: Option<Snowflake>,
}

impl Route {
    fn done(&self) -> bool {
        self.guild.is_some() && self.channel.is_some()
    }
}

#[inline(always)]
fn ws(b: &[u8], mut i: usize) -> usize {
    while let Some(b' ' | b'\n' | b'\r' | b'\t') = b.get(i) {
        i += 1;
    }
    i
}

/// `b[i]` starts an object key: the key, whitespace, `:` and whitespace; the index of the value.
#[inline(always)]
fn key(b: &[u8], i: usize) -> Result<usize, Fail> {
    if b.get(i) != Some(&b'"') {
        return err(i, "expected a key");
    }
    colon(b, string(b, i)?)
}

/// After a key ending at `i`: whitespace, `:`, whitespace; the index of the value.
#[inline(always)]
fn colon(b: &[u8], i: usize) -> Result<usize, Fail> {
    let i = ws(b, i);
    if b.get(i) != Some(&b':') {
        return err(i, "expected `:`");
    }
    Ok(ws(b, i + 1))
}

const ONES: u64 = u64::from_ne_bytes([1; 8]);
const HIGH: u64 = ONES << 7;

/// The first index from `i` holding `"`, `\` or a control character (< 0x20), or `b.len()`.
/// Eight bytes at a time: a byte is flagged when subtracting from it borrows (it was below the
/// subtrahend) and its own high bit was clear. Borrows only ever flag bytes *after* a real hit,
/// and the lowest flag is taken, so the answer is exact.
#[inline]
fn plain_run_end(b: &[u8], mut i: usize) -> usize {
    while let Some(chunk) = b.get(i..i + 16) {
        let lo = special(u64::from_le_bytes(chunk[..8].try_into().expect("8 bytes")));
        let hi = special(u64::from_le_bytes(chunk[8..].try_into().expect("8 bytes")));
        if lo != 0 {
            return i + (lo.trailing_zeros() / 8) as usize;
        }
        if hi != 0 {
            return i + 8 + (hi.trailing_zeros() / 8) as usize;
        }
        i += 16;
    }
    if let Some(chunk) = b.get(i..i + 8) {
        let hits = special(u64::from_le_bytes(chunk.try_into().expect("8 bytes")));
        if hits != 0 {
            return i + (hits.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    while let Some(&c) = b.get(i) {
        if c == b'"' || c == b'\\' || c < 0x20 {
            break;
        }
        i += 1;
    }
    i
}

/// The high bit of each byte of `w` that is a quote, a backslash or below 0x20 is set (and maybe bits of
/// later bytes; see `plain_run_end`).
#[inline(always)]
fn special(w: u64) -> u64 {
    let ctrl = w.wrapping_sub(ONES * 0x20) & !w;
    let q = w ^ (ONES * u64::from(b'"'));
    let quote = q.wrapping_sub(ONES) & !q;
    let s = w ^ (ONES * u64::from(b'\\'));
    let slash = s.wrapping_sub(ONES) & !s;
    (ctrl | quote | slash) & HIGH
}

/// `b[i]` is `"`: the index just past the closing quote.
#[inline(always)]
fn string(b: &[u8], i: usize) -> Result<usize, Fail> {
    let mut j = i + 1;
    loop {
        j = plain_run_end(b, j);
        match b.get(j) {
            Some(b'"') => return Ok(j + 1),
            Some(b'\\') => match b.get(j + 1) {
                Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => j += 2,
                Some(b'u') => {
                    match b.get(j + 2..j + 6) {
                        Some(hex) if hex.iter().all(u8::is_ascii_hexdigit) => {}
                        Some(_) => return err(j, "invalid \\u escape"),
                        None => return err(j, "message ends inside a string"),
                    }
                    j += 6;
                }
                Some(_) => return err(j, "invalid escape"),
                None => return err(j, "message ends inside a string"),
            },
            Some(_) => return err(j, "control character in a string"),
            None => return err(j, "message ends inside a string"),
        }
    }
}

/// `b[i]` starts a number (`-` or a digit): the index just past it.
#[inline(always)]
fn number(b: &[u8], i: usize) -> Result<usize, Fail> {
    let digits = |mut j: usize| {
        while let Some(b'0'..=b'9') = b.get(j) {
            j += 1;
        }
        j
    };
    let mut j = i;
    if b.get(j) == Some(&b'-') {
        j += 1;
    }
    match b.get(j) {
        Some(b'0') => {
            j += 1;
            if let Some(b'0'..=b'9') = b.get(j) {
                return err(j, "invalid number (leading zero)");
            }
        }
        Some(b'1'..=b'9') => j = digits(j + 1),
        _ => return err(j, "invalid number"),
    }
    if b.get(j) == Some(&b'.') {
        let k = digits(j + 1);
        if k == j + 1 {
            return err(k, "invalid number (no digit after `.`)");
        }
        j = k;
    }
    if let Some(b'e' | b'E') = b.get(j) {
        j += 1;
        if let Some(b'+' | b'-') = b.get(j) {
            j += 1;
        }
        let k = digits(j);
        if k == j {
            return err(k, "invalid number (no digit in the exponent)");
        }
        j = k;
    }
    Ok(j)
}

/// The number `b[i..end]` (already checked by `number`) as a non-negative integer, as serde
/// decodes it into an unsigned field: no fraction or exponent, no sign, within 64 bits.
fn integer(b: &[u8], i: usize, end: usize, field: &'static str) -> Result<u64, Fail> {
    let n = &b[i..end];
    if n.iter().any(|c| matches!(c, b'.' | b'e' | b'E')) {
        return fail(ScanError {
            at: i,
            what: format!("{field}: expected an integer").into(),
        });
    }
    if n.first() == Some(&b'-') {
        // serde_json too refuses every negative here, `-0` included (it reads that as a float).
        return fail(ScanError {
            at: i,
            what: format!("{field}: negative").into(),
        });
    }
    match n.iter().try_fold(0u64, |v, &c| {
        v.checked_mul(10)?.checked_add(u64::from(c - b'0'))
    }) {
        Some(v) => Ok(v),
        None => fail(ScanError {
            at: i,
            what: format!("{field}: out of range").into(),
        }),
    }
}

/// `true`, `false` or `null` at `b[i]`.
fn literal(b: &[u8], i: usize, word: &'static [u8]) -> Result<usize, Fail> {
    if b.get(i..i + word.len()) == Some(word) {
        Ok(i + word.len())
    } else {
        err(i, "invalid literal")
    }
}

/// The JSON string `json` (already checked by `string`), decoded; borrowed when it has no escape.
fn decode_string(json: &str, at: usize) -> Result<Cow<'_, str>, Fail> {
    let inner = &json[1..json.len() - 1];
    if !inner.contains('\\') {
        return Ok(Cow::Borrowed(inner));
    }
    // Rare (Discord writes no escapes in keys or `t`): let serde decode, e.g. surrogate pairs.
    match serde_json::from_str::<String>(json) {
        Ok(s) => Ok(Cow::Owned(s)),
        Err(e) => fail(ScanError {
            at,
            what: format!("undecodable string ({e})").into(),
        }),
    }
}

/// A top-level key `text[at..end]` (a checked JSON string), decoded.
#[inline(always)]
fn key_text(text: &str, at: usize, end: usize) -> Result<Cow<'_, str>, Fail> {
    let inner = &text[at + 1..end - 1];
    if inner.len() <= 8 && !inner.as_bytes().contains(&b'\\') {
        // The usual short key without escapes: no call.
        return Ok(Cow::Borrowed(inner));
    }
    decode_string(&text[at..end], at)
}

/// A string value of 1 to 20 plain digits, not 0 and within 64 bits, as a snowflake (what
/// `Snowflake::from_str` accepts).
fn id(v: &[u8]) -> Option<Snowflake> {
    let digits = v.strip_prefix(b"\"")?.strip_suffix(b"\"")?;
    if digits.is_empty() || digits.len() > 20 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let n = if digits.len() < 20 {
        // 19 digits always fit in 64 bits: no overflow checks on the usual snowflake.
        digits
            .iter()
            .fold(0u64, |n, &c| n * 10 + u64::from(c - b'0'))
    } else {
        digits.iter().try_fold(0u64, |n, &c| {
            n.checked_mul(10)?.checked_add(u64::from(c - b'0'))
        })?
    };
    (n != 0).then_some(Snowflake(n))
}

#[cfg(test)]
mod tests;
