//! Gateway intents: which bits exist, which are privileged, and which intent each event needs.
//!
//! IDENTIFY is checked against these (4013 for bits Discord doesn't define, 4014 for privileged
//! intents the application isn't allowed), and dispatches are only sent to sessions whose intents
//! cover them, as Discord does.

/// `GUILDS` (1 << 0).
pub const GUILDS: u64 = 1 << 0;
/// `GUILD_MEMBERS` (privileged).
pub const GUILD_MEMBERS: u64 = 1 << 1;
/// `GUILD_MODERATION`.
pub const GUILD_MODERATION: u64 = 1 << 2;
/// `GUILD_VOICE_STATES`.
pub const GUILD_VOICE_STATES: u64 = 1 << 7;
/// `GUILD_PRESENCES` (privileged).
pub const GUILD_PRESENCES: u64 = 1 << 8;
/// `GUILD_MESSAGES`.
pub const GUILD_MESSAGES: u64 = 1 << 9;
/// `GUILD_MESSAGE_REACTIONS`.
pub const GUILD_MESSAGE_REACTIONS: u64 = 1 << 10;
/// `GUILD_MESSAGE_TYPING`.
pub const GUILD_MESSAGE_TYPING: u64 = 1 << 11;
/// `MESSAGE_CONTENT` (privileged): without it, guild messages arrive with empty content.
pub const MESSAGE_CONTENT: u64 = 1 << 15;

/// The privileged intents.
pub const PRIVILEGED: u64 = GUILD_MEMBERS | GUILD_PRESENCES | MESSAGE_CONTENT;

/// Every bit Discord defines in API v10: 0..=16, 20, 21, 24, 25.
pub const VALID: u64 = 0x1_FFFF | (1 << 20) | (1 << 21) | (1 << 24) | (1 << 25);

/// Why an intents value was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IntentsError {
    /// Undefined bits or not a number: close 4013.
    Invalid,
    /// Privileged bits the application may not use: close 4014.
    Disallowed,
}

/// Checks the `intents` field of an IDENTIFY.
pub fn check(intents: u64, privileged_allowed: u64) -> Result<(), IntentsError> {
    if intents & !VALID != 0 {
        return Err(IntentsError::Invalid);
    }
    if intents & PRIVILEGED & !privileged_allowed != 0 {
        return Err(IntentsError::Disallowed);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_bits() {
        assert_eq!(check(GUILDS | GUILD_MESSAGES, 0), Ok(()));
        assert_eq!(check(1 << 17, PRIVILEGED), Err(IntentsError::Invalid));
        assert_eq!(check(1 << 40, PRIVILEGED), Err(IntentsError::Invalid));
        assert_eq!(check(MESSAGE_CONTENT, 0), Err(IntentsError::Disallowed));
        assert_eq!(check(MESSAGE_CONTENT, MESSAGE_CONTENT), Ok(()));
        assert_eq!(check(VALID, PRIVILEGED), Ok(()));
    }
}
