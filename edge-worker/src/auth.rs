//! Who may call what: the holder's `LINK_TOKEN` for `/link/*` and `/metrics`, and browser
//! sessions (HS256 JWT by `Authorization: Bearer` or the `rt_session` cookie) for `/api/*`.

use crate::config::Secrets;
use crate::jwt::{self, Claims};
use contracts::ErrorCode;
use subtle::ConstantTimeEq;

/// The cookie that carries a browser session (`EventSource` can't set headers).
pub const SESSION_COOKIE: &str = "rt_session";

/// A refusal, ready to become an error body. `message` never contains a secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Denied {
    pub code: ErrorCode,
    pub message: String,
}

impl Denied {
    fn unauthorized(message: impl Into<String>) -> Self {
        Denied {
            code: ErrorCode::Unauthorized,
            message: message.into(),
        }
    }
}

/// The token of an `Authorization: Bearer <token>` header.
pub fn bearer(authorization: Option<&str>) -> Option<&str> {
    let value = authorization?.trim();
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// The value of cookie `name` in a `Cookie` header.
pub fn cookie<'a>(header: Option<&'a str>, name: &str) -> Option<&'a str> {
    header?.split(';').find_map(|pair| {
        let (k, v) = pair.trim().split_once('=')?;
        (k.trim() == name).then(|| v.trim().trim_matches('"'))
    })
}

/// Constant-time comparison, so response timing reveals nothing about the token. Lengths may
/// differ without leaking the secret's content (`subtle` returns false early only on length).
pub fn tokens_equal(given: &str, expected: &str) -> bool {
    bool::from(given.as_bytes().ct_eq(expected.as_bytes()))
}

/// Checks the holder's `LINK_TOKEN` bearer.
pub fn check_link(secrets: &Secrets, authorization: Option<&str>) -> Result<(), Denied> {
    let Some(expected) = secrets.link_token.as_deref() else {
        return Err(Denied {
            code: ErrorCode::Internal,
            message: "the edge has no LINK_TOKEN configured".into(),
        });
    };
    match bearer(authorization) {
        Some(given) if link_matches(given, expected, secrets.link_token_previous.as_deref()) => {
            Ok(())
        }
        Some(_) => Err(Denied::unauthorized("link token is wrong")),
        None => Err(Denied::unauthorized(
            "missing `Authorization: Bearer <LINK_TOKEN>`",
        )),
    }
}

/// `given` against the current token and, during a rotation, the previous one. Both comparisons
/// always run (constant time, no early exit that would tell which one matched).
fn link_matches(given: &str, current: &str, previous: Option<&str>) -> bool {
    let now = given.as_bytes().ct_eq(current.as_bytes());
    let before = match previous {
        Some(p) => given.as_bytes().ct_eq(p.as_bytes()),
        None => subtle::Choice::from(0),
    };
    bool::from(now | before)
}

/// Decides whether a browser may send commands: a valid session with the `write` scope (never
/// `PUBLIC_READ`). A header token wins over the cookie. Returns the session's claims.
pub fn check_write(
    secrets: &Secrets,
    authorization: Option<&str>,
    cookie_header: Option<&str>,
    now_secs: u64,
) -> Result<Claims, Denied> {
    let Some(token) = bearer(authorization).or_else(|| cookie(cookie_header, SESSION_COOKIE))
    else {
        return Err(Denied::unauthorized(
            "a session is required: `Authorization: Bearer <jwt>` or cookie rt_session",
        ));
    };
    let Some(secret) = secrets.jwt_secret.as_deref() else {
        return Err(Denied::unauthorized(
            "sessions are not configured on this edge (no CLIENT_JWT_SECRET)",
        ));
    };
    match jwt::verify(token, secret.as_bytes(), now_secs) {
        Ok(claims) if claims.sub.as_deref().is_none_or(str::is_empty) => Err(Denied::unauthorized(
            "session has no `sub`: commands need a user",
        )),
        Ok(claims) if claims.has_scope("write") => Ok(claims),
        Ok(_) => Err(Denied {
            code: ErrorCode::Forbidden,
            message: "session lacks the `write` scope".into(),
        }),
        Err(e) => Err(Denied::unauthorized(e.to_string())),
    }
}

/// Who is reading: a verified session, or anyone when `PUBLIC_READ` is on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reader {
    Session(Claims),
    Public,
}

/// Decides whether a browser may read the stream. A header token wins over the cookie.
pub fn check_read(
    secrets: &Secrets,
    public_read: bool,
    authorization: Option<&str>,
    cookie_header: Option<&str>,
    now_secs: u64,
) -> Result<Reader, Denied> {
    let token = bearer(authorization).or_else(|| cookie(cookie_header, SESSION_COOKIE));
    let Some(token) = token else {
        return if public_read {
            Ok(Reader::Public)
        } else {
            Err(Denied::unauthorized(
                "a session is required: `Authorization: Bearer <jwt>` or cookie rt_session",
            ))
        };
    };
    let Some(secret) = secrets.jwt_secret.as_deref() else {
        return if public_read {
            Ok(Reader::Public)
        } else {
            Err(Denied::unauthorized(
                "sessions are not configured on this edge (no CLIENT_JWT_SECRET)",
            ))
        };
    };
    match jwt::verify(token, secret.as_bytes(), now_secs) {
        Ok(claims) if claims.has_scope("read") => Ok(Reader::Session(claims)),
        Ok(_) => Err(Denied {
            code: ErrorCode::Forbidden,
            message: "session lacks the `read` scope".into(),
        }),
        // A bad token is refused even when reading is public: the client meant to authenticate.
        Err(e) => Err(Denied::unauthorized(e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secrets() -> Secrets {
        Secrets {
            link_token: Some("link-secret".into()),
            jwt_secret: Some("jwt-secret".into()),
            link_token_previous: None,
        }
    }

    #[test]
    fn link_token_rotation_accepts_both() {
        let mut s = secrets();
        assert!(check_link(&s, Some("Bearer old-secret")).is_err());
        s.link_token_previous = Some("old-secret".into());
        assert!(check_link(&s, Some("Bearer old-secret")).is_ok());
        assert!(check_link(&s, Some("Bearer link-secret")).is_ok());
        assert!(check_link(&s, Some("Bearer other")).is_err());
    }

    #[test]
    fn write_access_rules() {
        let s = secrets();
        let rw = jwt::sign(
            r#"{"sub":"u","exp":100,"scope":"read write"}"#,
            b"jwt-secret",
        );
        let read = jwt::sign(r#"{"sub":"u","exp":100,"scope":"read"}"#, b"jwt-secret");
        let c = check_write(&s, Some(&format!("Bearer {rw}")), None, 10).unwrap();
        assert_eq!(c.sub.as_deref(), Some("u"));
        assert!(check_write(&s, None, Some(&format!("rt_session={rw}")), 10).is_ok());
        let e = check_write(&s, Some(&format!("Bearer {read}")), None, 10).unwrap_err();
        assert_eq!(e.code, ErrorCode::Forbidden);
        let e = check_write(&s, None, None, 10).unwrap_err();
        assert_eq!(e.code, ErrorCode::Unauthorized);
    }

    #[test]
    fn parses_bearer_and_cookies() {
        assert_eq!(bearer(Some("Bearer abc")), Some("abc"));
        assert_eq!(bearer(Some("bearer  abc ")), Some("abc"));
        assert_eq!(bearer(Some("Basic abc")), None);
        assert_eq!(bearer(Some("Bearer ")), None);
        assert_eq!(bearer(None), None);
        let c = Some("a=1; rt_session=tok; b=2");
        assert_eq!(cookie(c, "rt_session"), Some("tok"));
        assert_eq!(cookie(c, "x"), None);
        assert_eq!(cookie(Some("rt_session_x=1"), "rt_session"), None);
    }

    #[test]
    fn link_token_is_checked() {
        let s = secrets();
        assert!(check_link(&s, Some("Bearer link-secret")).is_ok());
        let wrong = check_link(&s, Some("Bearer link-secreT")).unwrap_err();
        assert_eq!(wrong.code, ErrorCode::Unauthorized);
        assert!(!wrong.message.contains("link-secret"));
        assert_eq!(
            check_link(&s, None).unwrap_err().code,
            ErrorCode::Unauthorized
        );
        let none = check_link(&Secrets::default(), Some("Bearer x")).unwrap_err();
        assert_eq!(none.code, ErrorCode::Internal);
        assert!(tokens_equal("abc", "abc") && !tokens_equal("abc", "abcd"));
    }

    #[test]
    fn read_access_rules() {
        let s = secrets();
        let read = jwt::sign(r#"{"sub":"u","exp":100,"scope":"read"}"#, b"jwt-secret");
        let write_only = jwt::sign(r#"{"sub":"u","exp":100,"scope":"write"}"#, b"jwt-secret");
        let bearer_read = format!("Bearer {read}");
        assert!(matches!(
            check_read(&s, false, Some(&bearer_read), None, 10),
            Ok(Reader::Session(_))
        ));
        let cookie_read = format!("rt_session={read}");
        assert!(check_read(&s, false, None, Some(&cookie_read), 10).is_ok());
        assert_eq!(
            check_read(&s, false, Some(&bearer_read), None, 100)
                .unwrap_err()
                .code,
            ErrorCode::Unauthorized
        );
        assert_eq!(
            check_read(&s, false, Some(&format!("Bearer {write_only}")), None, 10)
                .unwrap_err()
                .code,
            ErrorCode::Forbidden
        );
        assert_eq!(
            check_read(&s, false, None, None, 10).unwrap_err().code,
            ErrorCode::Unauthorized
        );
        assert_eq!(check_read(&s, true, None, None, 10), Ok(Reader::Public));
        assert!(check_read(&s, true, Some("Bearer junk"), None, 10).is_err());
    }
}
