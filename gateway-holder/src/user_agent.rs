//! The `User-Agent` every request to Discord carries. Discord's API reference requires
//! `DiscordBot ($url, $versionNumber)` of every HTTP API client, and discord.com's front proxy may
//! refuse requests without one; the holder also sends it on the Gateway handshake (some
//! Discord-compatible servers close a connection without one).
//!
//! An operator may append to it (`HOLDER_USER_AGENT_EXTRA`, e.g. the deployment's name); the
//! required prefix always stays first.

/// The project's home, named in the `User-Agent`.
pub const PROJECT_URL: &str = "https://github.com/discord-realtime-bridge/gateway-holder";

/// `DiscordBot (URL, VERSION)` with `extra` appended after a space.
pub fn build(extra: Option<&str>) -> Result<String, String> {
    let base = format!("DiscordBot ({PROJECT_URL}, {})", env!("CARGO_PKG_VERSION"));
    match extra.map(str::trim).filter(|e| !e.is_empty()) {
        None => Ok(base),
        Some(e) if e.len() > 200 => Err("is longer than 200 characters".into()),
        // A header value: printable ASCII only, or the request could not be built.
        Some(e) if !e.bytes().all(|b| (0x20..0x7f).contains(&b)) => {
            Err("must be printable ASCII (it is appended to the User-Agent header)".into())
        }
        Some(e) => Ok(format!("{base} {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn discord_shape_with_an_optional_suffix() {
        let ua = build(None).unwrap();
        assert_eq!(
            ua,
            format!("DiscordBot ({PROJECT_URL}, {})", env!("CARGO_PKG_VERSION"))
        );
        assert_eq!(build(Some("  ")).unwrap(), ua);
        assert_eq!(build(Some("prod-eu")).unwrap(), format!("{ua} prod-eu"));
        assert!(build(Some("a\nb")).is_err());
        assert!(build(Some(&"x".repeat(201))).is_err());
    }
}
