//! The gateway close codes the simulator sends, with Discord's reasons, and what each means for
//! the session (resumable or not).

/// A close code Discord sends, with its documented meaning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CloseCode(pub u16);

impl CloseCode {
    /// 4000 Unknown error.
    pub const UNKNOWN_ERROR: Self = Self(4000);
    /// 4001 Unknown opcode.
    pub const UNKNOWN_OPCODE: Self = Self(4001);
    /// 4002 Decode error (bad JSON, oversized payload).
    pub const DECODE_ERROR: Self = Self(4002);
    /// 4003 Not authenticated (payload before IDENTIFY).
    pub const NOT_AUTHENTICATED: Self = Self(4003);
    /// 4004 Authentication failed.
    pub const AUTHENTICATION_FAILED: Self = Self(4004);
    /// 4005 Already authenticated.
    pub const ALREADY_AUTHENTICATED: Self = Self(4005);
    /// 4007 Invalid seq on RESUME.
    pub const INVALID_SEQ: Self = Self(4007);
    /// 4008 Rate limited (too many payloads).
    pub const RATE_LIMITED: Self = Self(4008);
    /// 4009 Session timed out.
    pub const SESSION_TIMED_OUT: Self = Self(4009);
    /// 4010 Invalid shard.
    pub const INVALID_SHARD: Self = Self(4010);
    /// 4011 Sharding required (the session would hold too many guilds).
    pub const SHARDING_REQUIRED: Self = Self(4011);
    /// 4012 Invalid API version.
    pub const INVALID_API_VERSION: Self = Self(4012);
    /// 4013 Invalid intent(s).
    pub const INVALID_INTENTS: Self = Self(4013);
    /// 4014 Disallowed intent(s).
    pub const DISALLOWED_INTENTS: Self = Self(4014);

    /// Discord's reason text, sent in the close frame.
    pub fn reason(self) -> &'static str {
        match self.0 {
            4000 => "Unknown error.",
            4001 => "Unknown opcode.",
            4002 => "Decode error.",
            4003 => "Not authenticated.",
            4004 => "Authentication failed.",
            4005 => "Already authenticated.",
            4007 => "Invalid seq.",
            4008 => "Rate limited.",
            4009 => "Session timed out.",
            4010 => "Invalid shard.",
            4011 => "Sharding required.",
            4012 => "Invalid API version.",
            4013 => "Invalid intent(s).",
            4014 => "Disallowed intent(s).",
            _ => "",
        }
    }

    /// Whether the session survives this close (the client may RESUME). Per Discord's docs,
    /// 4007 and 4009 need a new session and 4004, 4010-4014 forbid reconnecting at all.
    pub fn session_survives(self) -> bool {
        !matches!(self.0, 4004 | 4007 | 4009..=4014)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resumability_follows_the_docs() {
        for code in [4000, 4001, 4002, 4003, 4005, 4008] {
            assert!(CloseCode(code).session_survives(), "{code}");
        }
        for code in [4004, 4007, 4009, 4010, 4011, 4012, 4013, 4014] {
            assert!(!CloseCode(code).session_survives(), "{code}");
        }
        assert_eq!(CloseCode::DECODE_ERROR.reason(), "Decode error.");
    }
}
