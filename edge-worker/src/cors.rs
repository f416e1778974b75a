//! CORS for the browser routes: an exact allow-list of origins (`ALLOWED_ORIGINS`), credentials
//! allowed, and therefore never `*`. `/link/*` and `/metrics` never answer with CORS headers.

/// Headers a browser may send on `/api/*` (`Last-Event-ID` for manual reconnects).
pub const ALLOW_HEADERS: &str = "Authorization, Content-Type, Last-Event-ID, traceparent";
pub const ALLOW_METHODS: &str = "GET, POST, OPTIONS";
/// Browsers may cache a preflight answer this long.
pub const MAX_AGE_SECS: &str = "600";

/// The origin to echo in `Access-Control-Allow-Origin`, if `origin` is on the list.
pub fn allowed<'a>(allow_list: &[String], origin: Option<&'a str>) -> Option<&'a str> {
    let origin = origin?;
    allow_list.iter().any(|o| o == origin).then_some(origin)
}

/// Headers for an actual (non-preflight) response to an allowed origin.
pub fn response_headers(origin: &str) -> Vec<(&'static str, String)> {
    vec![
        ("Access-Control-Allow-Origin", origin.to_string()),
        ("Access-Control-Allow-Credentials", "true".into()),
        ("Vary", "Origin".into()),
    ]
}

/// Headers for a preflight (`OPTIONS`) answer to an allowed origin.
pub fn preflight_headers(origin: &str) -> Vec<(&'static str, String)> {
    let mut h = response_headers(origin);
    h.push(("Access-Control-Allow-Methods", ALLOW_METHODS.into()));
    h.push(("Access-Control-Allow-Headers", ALLOW_HEADERS.into()));
    h.push(("Access-Control-Max-Age", MAX_AGE_SECS.into()));
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_listed_origins_are_echoed_never_a_wildcard() {
        let list = vec!["http://a.test".to_string()];
        assert_eq!(allowed(&list, Some("http://a.test")), Some("http://a.test"));
        assert_eq!(allowed(&list, Some("http://a.test.evil")), None);
        assert_eq!(allowed(&list, Some("null")), None);
        assert_eq!(allowed(&list, None), None);
        let h = preflight_headers("http://a.test");
        assert!(h.iter().all(|(_, v)| v != "*"));
        assert!(h
            .iter()
            .any(|(k, v)| *k == "Access-Control-Allow-Credentials" && v == "true"));
    }
}
