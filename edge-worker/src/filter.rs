//! The stream's query: `?types=`, `?channels=`, `?last_event_id=`, `?guild=`, parsed strictly
//! (a bad value is a 400 naming the parameter), and the per-client filter applied at fan-out.
//!
//! Filters select Discord dispatches; the edge's own `status` and `gap` events always pass, since
//! a client that filters on `MESSAGE_CREATE` still needs to know when Discord is offline or when
//! events were lost.

use contracts::{Snowflake, ValidationError};

/// At most this many values per filter.
pub const MAX_FILTER_VALUES: usize = 100;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Filter {
    types: Option<Vec<String>>,
    channels: Option<Vec<u64>>,
}

impl Filter {
    pub fn is_all(&self) -> bool {
        self.types.is_none() && self.channels.is_none()
    }

    /// Does an event with this name and channel reach the client? `control` marks the edge's
    /// own events (`status`, `gap`).
    pub fn matches(&self, name: &str, channel: Option<u64>, control: bool) -> bool {
        if control {
            return true;
        }
        if let Some(types) = &self.types {
            if !types.iter().any(|t| t == name) {
                return false;
            }
        }
        if let Some(channels) = &self.channels {
            match channel {
                Some(c) if channels.contains(&c) => {}
                _ => return false,
            }
        }
        true
    }
}

/// Everything `GET /api/stream` reads from its query string.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StreamQuery {
    pub filter: Filter,
    pub last_event_id: Option<u64>,
    pub guild: Option<String>,
}

/// Parses the query string (without `?`).
pub fn parse_query(query: &str) -> Result<StreamQuery, ValidationError> {
    let mut q = StreamQuery::default();
    for (key, value) in pairs(query) {
        match key.as_str() {
            "types" => {
                let mut types = Vec::new();
                for t in value.split(',').map(str::trim).filter(|t| !t.is_empty()) {
                    if !crate::sse::valid_name(t) {
                        return Err(ValidationError::field(
                            "types",
                            format!("{t:?} is not an event name"),
                        ));
                    }
                    types.push(t.to_string());
                }
                check_count("types", types.len())?;
                q.filter.types = Some(types);
            }
            "channels" => {
                let mut channels = Vec::new();
                for c in value.split(',').map(str::trim).filter(|c| !c.is_empty()) {
                    let id: Snowflake = c
                        .parse()
                        .map_err(|e| ValidationError::field("channels", format!("{c:?}: {e}")))?;
                    channels.push(id.get());
                }
                check_count("channels", channels.len())?;
                q.filter.channels = Some(channels);
            }
            "last_event_id" => q.last_event_id = Some(parse_cursor("last_event_id", &value)?),
            "guild" => q.guild = Some(value),
            // Unknown parameters (cache busters, tracking) are ignored.
            _ => {}
        }
    }
    Ok(q)
}

/// A `Last-Event-ID` header or `last_event_id` value: the edge's cursor, a decimal number.
pub fn parse_cursor(field: &str, value: &str) -> Result<u64, ValidationError> {
    let v = value.trim();
    if v.is_empty() || v.len() > 19 || !v.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ValidationError::field(
            field,
            "must be an event id from this stream (a decimal number)",
        ));
    }
    v.parse()
        .map_err(|_| ValidationError::field(field, "is out of range"))
}

fn check_count(field: &str, n: usize) -> Result<(), ValidationError> {
    if n == 0 {
        return Err(ValidationError::field(
            field,
            "must list at least one value",
        ));
    }
    if n > MAX_FILTER_VALUES {
        return Err(ValidationError::field(
            field,
            format!("lists {n} values; at most {MAX_FILTER_VALUES} are allowed"),
        ));
    }
    Ok(())
}

/// `application/x-www-form-urlencoded` pairs, percent-decoded (invalid escapes kept literally).
pub fn pairs(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k), decode(v))
        })
        .collect()
}

fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h * 16 + l);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_filters_and_cursor() {
        let q =
            parse_query("types=MESSAGE_CREATE%2CTYPING_START&channels=5,6&last_event_id=42&x=1")
                .unwrap();
        assert_eq!(q.last_event_id, Some(42));
        assert!(q.filter.matches("MESSAGE_CREATE", Some(5), false));
        assert!(!q.filter.matches("MESSAGE_CREATE", Some(7), false));
        assert!(!q.filter.matches("MESSAGE_CREATE", None, false));
        assert!(!q.filter.matches("GUILD_CREATE", Some(5), false));
        assert!(q.filter.matches("status", None, true));
        assert!(parse_query("").unwrap().filter.is_all());
    }

    #[test]
    fn names_the_bad_parameter() {
        assert_eq!(
            parse_query("channels=abc").unwrap_err().field.as_deref(),
            Some("channels")
        );
        assert_eq!(
            parse_query("types=a%0Ab").unwrap_err().field.as_deref(),
            Some("types")
        );
        assert_eq!(
            parse_query("types=").unwrap_err().field.as_deref(),
            Some("types")
        );
        assert_eq!(
            parse_query("last_event_id=-1")
                .unwrap_err()
                .field
                .as_deref(),
            Some("last_event_id")
        );
        assert!(parse_cursor("Last-Event-ID", "99999999999999999999").is_err());
    }

    #[test]
    fn decodes_percent_escapes() {
        assert_eq!(decode("a%20b+c%zz%4"), "a b c%zz%4");
    }
}
