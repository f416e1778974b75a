//! `POST /api/dev/session`: a browser session for local development and the demo, so the demo
//! console can send commands without anyone handling a secret. Only when `DEV_LOGIN=true` (never
//! set in production): it mints an HS256 session (`scope` "read write", one day) with the edge's own
//! `CLIENT_JWT_SECRET` for a random demo user and sets it as the `rt_session` cookie (HttpOnly,
//! SameSite=Strict), so the page's JavaScript never sees the token.

use crate::auth::SESSION_COOKIE;

/// How long a demo session lasts.
pub const DEV_SESSION_SECS: u64 = 24 * 3600;

/// The `Set-Cookie` value for a demo session of user `sub`, issued at `now_secs`.
pub fn session_cookie(sub: &str, now_secs: u64, secret: &[u8]) -> String {
    let claims = serde_json::json!({
        "sub": sub,
        "exp": now_secs + DEV_SESSION_SECS,
        "scope": "read write",
    });
    let token = crate::jwt::sign(&claims.to_string(), secret);
    format!(
        "{SESSION_COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age={DEV_SESSION_SECS}"
    )
}

/// A demo user id from random bytes (`demo-` and 16 hex digits).
pub fn demo_user(random: [u8; 8]) -> String {
    let hex: String = random.iter().map(|b| format!("{b:02x}")).collect();
    format!("demo-{hex}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cookie_carries_a_session_the_edge_accepts() {
        let cookie = session_cookie("demo-1", 1_000, b"secret");
        assert!(
            cookie.contains("HttpOnly")
                && cookie.contains("SameSite=Strict")
                && cookie.starts_with("rt_session=")
        );
        let token = cookie
            .trim_start_matches("rt_session=")
            .split(';')
            .next()
            .unwrap();
        let claims = crate::jwt::verify(token, b"secret", 1_500).expect("valid");
        assert_eq!(claims.sub.as_deref(), Some("demo-1"));
        assert!(claims.has_scope("write") && claims.has_scope("read"));
        assert!(crate::jwt::verify(token, b"other", 1_500).is_err());
    }

    #[test]
    fn demo_users_are_distinct() {
        assert_ne!(demo_user([1; 8]), demo_user([2; 8]));
        assert_eq!(demo_user([0xab; 8]), "demo-abababababababab");
    }
}
