//! HS256 JSON Web Tokens for browser sessions.
//!
//! Only what the edge needs: verify a compact JWS signed with `CLIENT_JWT_SECRET`. The header's
//! `alg` is pinned to `HS256` (a token claiming `none` or an RSA algorithm is refused before any
//! signature work), the signature is checked in constant time by `hmac`, `exp` is required and
//! honoured, `nbf` is honoured when present, and `scope` is a space-separated string.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha256;
use std::fmt;

type HmacSha256 = Hmac<Sha256>;

/// Tokens longer than this are refused unread.
pub const MAX_TOKEN_LEN: usize = 4096;

/// The claims the edge uses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Claims {
    pub sub: Option<String>,
    /// Unix seconds.
    pub exp: u64,
    pub scopes: Vec<String>,
}

impl Claims {
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes.iter().any(|s| s == scope)
    }
}

/// Why a token was refused. The messages are safe to return to the browser: they never quote
/// the token or the secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JwtError {
    Malformed(&'static str),
    Algorithm,
    Signature,
    Expired,
    NotYetValid,
    MissingClaim(&'static str),
}

impl fmt::Display for JwtError {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            JwtError::Malformed(what) => write!(f, "session token is malformed: {what}"),
            JwtError::Algorithm => f.write_str("session token must be signed with HS256"),
            JwtError::Signature => f.write_str("session token signature is invalid"),
            JwtError::Expired => f.write_str("session token has expired"),
            JwtError::NotYetValid => f.write_str("session token is not valid yet"),
            JwtError::MissingClaim(c) => write!(f, "session token lacks the `{c}` claim"),
        }
    }
}

impl std::error::Error for JwtError {}

#[derive(Deserialize)]
struct Header {
    alg: String,
}

#[derive(Deserialize)]
struct RawClaims {
    #[serde(default)]
    sub: Option<String>,
    #[serde(default)]
    exp: Option<f64>,
    #[serde(default)]
    nbf: Option<f64>,
    #[serde(default)]
    scope: Option<String>,
}

/// Verifies `token` against `secret` at `now_secs` (Unix seconds).
pub fn verify(token: &str, secret: &[u8], now_secs: u64) -> Result<Claims, JwtError> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(JwtError::Malformed("too long"));
    }
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(JwtError::Malformed("expected three dot-separated parts"));
    };
    let header_bytes = URL_SAFE_NO_PAD
        .decode(h)
        .map_err(|_| JwtError::Malformed("header is not base64url"))?;
    let header: Header = serde_json::from_slice(&header_bytes)
        .map_err(|_| JwtError::Malformed("header is not a JSON object with `alg`"))?;
    if header.alg != "HS256" {
        return Err(JwtError::Algorithm);
    }
    let signature = URL_SAFE_NO_PAD
        .decode(s)
        .map_err(|_| JwtError::Malformed("signature is not base64url"))?;
    let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC accepts keys of any length");
    mac.update(h.as_bytes());
    mac.update(b".");
    mac.update(p.as_bytes());
    mac.verify_slice(&signature)
        .map_err(|_| JwtError::Signature)?;

    let payload = URL_SAFE_NO_PAD
        .decode(p)
        .map_err(|_| JwtError::Malformed("payload is not base64url"))?;
    let raw: RawClaims = serde_json::from_slice(&payload)
        .map_err(|_| JwtError::Malformed("payload is not a JSON object of claims"))?;
    let exp = raw.exp.ok_or(JwtError::MissingClaim("exp"))?;
    if !exp.is_finite() || exp < 0.0 {
        return Err(JwtError::Malformed("`exp` is not a time"));
    }
    if (now_secs as f64) >= exp {
        return Err(JwtError::Expired);
    }
    if let Some(nbf) = raw.nbf {
        if (now_secs as f64) < nbf {
            return Err(JwtError::NotYetValid);
        }
    }
    let scope = raw.scope.ok_or(JwtError::MissingClaim("scope"))?;
    Ok(Claims {
        sub: raw.sub,
        exp: exp as u64,
        scopes: scope.split_whitespace().map(str::to_string).collect(),
    })
}

/// Signs `claims_json` with HS256 (used by tests and local tooling; the edge never issues tokens).
pub fn sign(claims_json: &str, secret: &[u8]) -> String {
    let h = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let p = URL_SAFE_NO_PAD.encode(claims_json.as_bytes());
    let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC accepts keys of any length");
    mac.update(h.as_bytes());
    mac.update(b".");
    mac.update(p.as_bytes());
    let s = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
    format!("{h}.{p}.{s}")
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &[u8] = b"test-secret";

    #[test]
    fn accepts_a_valid_token_and_reads_scopes() {
        let t = sign(r#"{"sub":"u1","exp":2000,"scope":"read write"}"#, KEY);
        let c = verify(&t, KEY, 1000).unwrap();
        assert_eq!(c.sub.as_deref(), Some("u1"));
        assert!(c.has_scope("read") && c.has_scope("write"));
        assert!(!c.has_scope("rea"));
    }

    #[test]
    fn refuses_expired_wrong_key_missing_exp_and_tampering() {
        let t = sign(r#"{"sub":"u1","exp":2000,"scope":"read"}"#, KEY);
        assert_eq!(verify(&t, KEY, 2000), Err(JwtError::Expired));
        assert_eq!(verify(&t, b"other", 1000), Err(JwtError::Signature));
        let no_exp = sign(r#"{"sub":"u1","scope":"read"}"#, KEY);
        assert_eq!(verify(&no_exp, KEY, 1), Err(JwtError::MissingClaim("exp")));
        let no_scope = sign(r#"{"exp":2000}"#, KEY);
        assert_eq!(
            verify(&no_scope, KEY, 1),
            Err(JwtError::MissingClaim("scope"))
        );
        let nbf = sign(r#"{"exp":2000,"nbf":1500,"scope":"read"}"#, KEY);
        assert_eq!(verify(&nbf, KEY, 1000), Err(JwtError::NotYetValid));

        // Swap in a payload granting more scope, keeping the old signature.
        let parts: Vec<&str> = t.split('.').collect();
        let forged = URL_SAFE_NO_PAD.encode(br#"{"sub":"u1","exp":2000,"scope":"read write"}"#);
        let tampered = format!("{}.{}.{}", parts[0], forged, parts[2]);
        assert_eq!(verify(&tampered, KEY, 1000), Err(JwtError::Signature));
    }

    #[test]
    fn pins_the_algorithm() {
        let h = URL_SAFE_NO_PAD.encode(br#"{"alg":"none"}"#);
        let p = URL_SAFE_NO_PAD.encode(br#"{"exp":2000,"scope":"read"}"#);
        assert_eq!(
            verify(&format!("{h}.{p}."), KEY, 1),
            Err(JwtError::Algorithm)
        );
        for bad in ["", "a.b", "a.b.c.d", "!!.!!.!!"] {
            assert!(
                matches!(verify(bad, KEY, 1), Err(JwtError::Malformed(_))),
                "{bad}"
            );
        }
        assert!(matches!(
            verify(&"a".repeat(MAX_TOKEN_LEN + 1), KEY, 1),
            Err(JwtError::Malformed(_))
        ));
    }

    #[test]
    fn errors_never_quote_the_token() {
        let t = sign(r#"{"exp":1,"scope":"read"}"#, KEY);
        let msg = verify(&t, KEY, 5).unwrap_err().to_string();
        assert!(!msg.contains(&t[..10]));
    }
}
