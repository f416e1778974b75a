//! Server-Sent Events framing. Every frame is built here, so the rules live in one place: field
//! values never contain CR or LF (a stray newline would split an event or inject a field), `data`
//! is one JSON object on one line, and frames end with a blank line.

use std::fmt::Write;

/// Names the edge gives its own events (dispatches use Discord's upper-case names).
pub const STATUS: &str = "status";
pub const GAP: &str = "gap";

/// The `: ping` comment.
pub const PING: &[u8] = b": ping\n\n";

/// `retry: <ms>` sent once on connect.
pub fn retry(ms: u64) -> String {
    format!("retry: {ms}\n\n")
}

/// One event: `id`, `event`, `data`. `data` is JSON; line breaks in it can only be insignificant
/// whitespace between tokens (JSON strings escape them), so they become spaces, keeping the event
/// on one `data:` line with the same meaning.
pub fn event(out: &mut String, id: u64, name: &str, json: &str) {
    debug_assert!(valid_name(name), "bad event name {name:?}");
    let _ = write!(out, "id: {id}\nevent: {name}\ndata: ");
    if json.contains(['\n', '\r']) {
        out.extend(
            json.chars()
                .map(|c| if c == '\n' || c == '\r' { ' ' } else { c }),
        );
    } else {
        out.push_str(json);
    }
    out.push_str("\n\n");
}

/// An event name is safe on an `event:` line: 1-64 printable ASCII characters, no spaces.
pub fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_graphic())
}

/// Removes line breaks from JSON text (see [`event`]); used where data is stored pre-framed.
pub fn one_line(json: String) -> String {
    if json.contains(['\n', '\r']) {
        json.replace(['\n', '\r'], " ")
    } else {
        json
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_well_formed() {
        let mut s = String::new();
        event(&mut s, 7, "MESSAGE_CREATE", "{\"a\":\n1}");
        assert_eq!(s, "id: 7\nevent: MESSAGE_CREATE\ndata: {\"a\": 1}\n\n");
        assert_eq!(retry(2000), "retry: 2000\n\n");
        assert_eq!(one_line("{\r\n}".into()), "{  }");
        assert!(valid_name("voice.join") && !valid_name("a b") && !valid_name("a\nb"));
        assert!(!valid_name(""));
    }
}
