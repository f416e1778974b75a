//! What a Gateway close code means for the session (FACTS.md, "Close codes"). Kept apart from the
//! connection code so the table can be read, and tested, against Discord's documentation line by line.
//! Unlike twilight, 4007 and 4009 start a new session: the old one can't be resumed.

/// What the session does after the socket closed with a given code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CloseAction {
    /// Reconnect and RESUME the same session.
    Resume,
    /// Reconnect with a fresh IDENTIFY (the session is gone).
    Reidentify,
    /// Never reconnect: exit with this meaning.
    Fatal(&'static str),
}

/// Discord's name for a gateway close code, for logs and metrics labels.
pub fn meaning(code: u16) -> &'static str {
    match code {
        1000 => "normal closure",
        1001 => "going away",
        1006 => "abnormal closure",
        4000 => "unknown error",
        4001 => "unknown opcode",
        4002 => "decode error",
        4003 => "not authenticated",
        4004 => "authentication failed",
        4005 => "already authenticated",
        4007 => "invalid seq",
        4008 => "rate limited",
        4009 => "session timed out",
        4010 => "invalid shard",
        4011 => "sharding required",
        4012 => "invalid API version",
        4013 => "invalid intent(s)",
        4014 => "disallowed intent(s)",
        _ => "unrecognised close code",
    }
}

/// Classifies a close code sent by Discord. `None` (the TCP connection ended without a close frame)
/// and unknown codes reconnect and resume: the session may well still exist.
pub fn classify(code: Option<u16>) -> CloseAction {
    match code {
        Some(4007) | Some(4009) => CloseAction::Reidentify,
        Some(c @ (4004 | 4010..=4014)) => CloseAction::Fatal(meaning(c)),
        _ => CloseAction::Resume,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follows_the_documented_table() {
        for c in [4000, 4001, 4002, 4003, 4005, 4008] {
            assert_eq!(classify(Some(c)), CloseAction::Resume, "{c}");
        }
        for c in [4007, 4009] {
            assert_eq!(classify(Some(c)), CloseAction::Reidentify, "{c}");
        }
        for c in [4004, 4010, 4011, 4012, 4013, 4014] {
            assert!(matches!(classify(Some(c)), CloseAction::Fatal(_)), "{c}");
        }
        assert_eq!(classify(None), CloseAction::Resume);
        assert_eq!(classify(Some(1006)), CloseAction::Resume);
        assert_eq!(classify(Some(4999)), CloseAction::Resume);
        assert_eq!(meaning(4004), "authentication failed");
        assert_eq!(meaning(4014), "disallowed intent(s)");
    }
}
