//! The edge's SSE framing (`edge_worker::sse`): a stream of events with arbitrary ids, names and
//! data, `: ping` comments and `retry:` lines is encoded and read back by the WHATWG
//! "interpreting an event stream" algorithm written out below.
//!
//! Checks: every event whose name `sse::valid_name` accepts (the encoder's precondition; the edge's
//! callers pass Discord names checked at ingest or their own constants) comes back as exactly one
//! event with the same id, the same name and the same data with line breaks turned into spaces (the
//! encoder's documented rule, equal to `sse::one_line`), empty data included (one `data:` line
//! always makes the data buffer non-empty, so the spec dispatches it); no field other than `id`, `event`, `data` and `retry` ever appears, and no
//! extra event does. `valid_name` itself never accepts a name that could end a line or start
//! with a space.

#![no_main]

use edge_worker::sse;
use libfuzzer_sys::{arbitrary::Unstructured, fuzz_target};

#[derive(Debug, PartialEq, Eq)]
struct Dispatched {
    last_event_id: String,
    event_type: String,
    data: String,
}

#[derive(Default)]
struct Parsed {
    events: Vec<Dispatched>,
    retries: Vec<u64>,
    other_fields: Vec<String>,
}

/// WHATWG HTML, "9.2.6 Interpreting an event stream", for one whole stream.
fn parse(stream: &str) -> Parsed {
    let stream = stream.strip_prefix('\u{feff}').unwrap_or(stream);
    let mut out = Parsed::default();
    let mut data = String::new();
    let mut event_type = String::new();
    let mut id_buffer = String::new();
    let mut line = String::new();
    let mut chars = stream.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\r' | '\n' => {
                if c == '\r' && chars.peek() == Some(&'\n') {
                    chars.next();
                }
                process_line(&line, &mut out, &mut data, &mut event_type, &mut id_buffer);
                line.clear();
            }
            c => line.push(c),
        }
    }
    // A line without its end of line, and an event without its blank line, are never dispatched.
    out
}

fn process_line(
    line: &str,
    out: &mut Parsed,
    data: &mut String,
    event_type: &mut String,
    id_buffer: &mut String,
) {
    if line.is_empty() {
        // Dispatch.
        let last_event_id = id_buffer.clone();
        if data.is_empty() {
            event_type.clear();
            return;
        }
        if data.ends_with('\n') {
            data.pop();
        }
        let name = if event_type.is_empty() {
            "message".to_string()
        } else {
            std::mem::take(event_type)
        };
        out.events.push(Dispatched {
            last_event_id,
            event_type: name,
            data: std::mem::take(data),
        });
        event_type.clear();
        return;
    }
    if line.starts_with(':') {
        return;
    }
    let (field, value) = match line.split_once(':') {
        Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
        None => (line, ""),
    };
    match field {
        "event" => *event_type = value.to_string(),
        "data" => {
            data.push_str(value);
            data.push('\n');
        }
        "id" => {
            if !value.contains('\0') {
                *id_buffer = value.to_string();
            }
        }
        "retry" => {
            if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
                out.retries
                    .push(value.parse().expect("a retry fits u64 here"));
            }
        }
        other => out.other_fields.push(other.to_string()),
    }
}

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let mut stream = String::new();
    let mut expected = Vec::new();
    let mut retries = Vec::new();
    while !u.is_empty() && expected.len() < 16 {
        match u.int_in_range(0..=5u8).unwrap_or(0) {
            0 => stream.push_str(std::str::from_utf8(sse::PING).expect("ASCII")),
            1 => {
                let ms = u.arbitrary::<u64>().unwrap_or(0);
                stream.push_str(&sse::retry(ms));
                retries.push(ms);
            }
            _ => {
                let id = u.arbitrary::<u64>().unwrap_or(0);
                let name = u.arbitrary::<String>().unwrap_or_default();
                let json = u.arbitrary::<String>().unwrap_or_default();
                if !sse::valid_name(&name) {
                    continue;
                }
                assert!(!name.contains(['\r', '\n']), "valid_name accepted {name:?}");
                assert!(!name.starts_with(' '), "valid_name accepted {name:?}");
                let one_line = sse::one_line(json.clone());
                let spaced: String = json
                    .chars()
                    .map(|c| if c == '\r' || c == '\n' { ' ' } else { c })
                    .collect();
                assert_eq!(
                    one_line, spaced,
                    "one_line does not replace line breaks 1:1"
                );

                let before = stream.len();
                sse::event(&mut stream, id, &name, &json);
                assert!(
                    stream.ends_with("\n\n"),
                    "an event must end with a blank line"
                );
                assert_eq!(
                    stream[before..].matches('\n').count(),
                    4,
                    "an event is three lines and a blank line"
                );
                // Even empty data is one `data:` line, so the data buffer is "\n" and the event
                // is dispatched (with empty data).
                expected.push(Dispatched {
                    last_event_id: id.to_string(),
                    event_type: name,
                    data: spaced,
                });
            }
        }
    }
    let parsed = parse(&stream);
    assert!(
        parsed.other_fields.is_empty(),
        "forged fields {:?} in {stream:?}",
        parsed.other_fields
    );
    assert_eq!(parsed.retries, retries, "retry lines differ");
    assert_eq!(parsed.events, expected, "events differ in {stream:?}");
});
