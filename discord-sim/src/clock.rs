//! Time and identifiers: unix microseconds, Discord's ISO-8601 timestamps and snowflakes.
//!
//! Kept apart so every record, payload and id in the simulator agrees on one clock, and so the
//! snowflake generator (which must never hand out the same id twice) lives in one place.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Discord's epoch (2015-01-01T00:00:00Z) in unix milliseconds; snowflakes count from it.
pub const DISCORD_EPOCH_MS: u64 = 1_420_070_400_000;

/// Microseconds since the unix epoch, now.
pub fn unix_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// Formats unix microseconds the way Discord writes timestamps:
/// `2026-11-26T07:10:35.123000+00:00`.
pub fn iso8601(unix_us: u64) -> String {
    let secs = unix_us / 1_000_000;
    let micros = unix_us % 1_000_000;
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{micros:06}+00:00",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian calendar
/// (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Hands out unique, time-ordered snowflakes (timestamp << 22 | increment).
#[derive(Debug, Default)]
pub struct Snowflakes {
    last: AtomicU64,
}

impl Snowflakes {
    /// The next snowflake: derived from the current time, and strictly greater than any
    /// snowflake this generator returned before.
    pub fn next(&self) -> u64 {
        let now_ms = unix_micros() / 1000;
        let candidate = now_ms.saturating_sub(DISCORD_EPOCH_MS) << 22;
        let mut prev = self.last.load(Ordering::Relaxed);
        loop {
            let next = candidate.max(prev + 1);
            match self
                .last
                .compare_exchange_weak(prev, next, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return next,
                Err(actual) => prev = actual,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso8601_formats_known_instants() {
        assert_eq!(iso8601(0), "1970-01-01T00:00:00.000000+00:00");
        // 2024-02-29T12:34:56.789012Z
        assert_eq!(
            iso8601(1_709_210_096_789_012),
            "2024-02-29T12:34:56.789012+00:00"
        );
    }

    #[test]
    fn snowflakes_are_unique_and_increasing() {
        let gen = Snowflakes::default();
        let mut prev = 0;
        for _ in 0..10_000 {
            let id = gen.next();
            assert!(id > prev);
            prev = id;
        }
        // The timestamp part decodes to roughly now.
        let ms = (prev >> 22) + DISCORD_EPOCH_MS;
        let now_ms = unix_micros() / 1000;
        assert!(now_ms.abs_diff(ms) < 60_000);
    }
}

/// Serde helpers for snowflakes in the control API: written as strings (JSON numbers lose
/// precision past 2^53 in JavaScript), read from strings or numbers.
pub mod snowflake {
    use serde::{de, Deserialize, Deserializer, Serializer};

    /// Serialize a snowflake as a string.
    pub fn serialize<S: Serializer>(id: &u64, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(id)
    }

    /// Deserialize a snowflake from a string or a number.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Either {
            Num(u64),
            Str(String),
        }
        match Either::deserialize(d)? {
            Either::Num(n) => Ok(n),
            Either::Str(s) => s.parse().map_err(de::Error::custom),
        }
    }

    /// The same for `Option<u64>`.
    pub mod option {
        use serde::{Deserialize, Deserializer, Serializer};

        /// Serialize an optional snowflake as a string or null.
        pub fn serialize<S: Serializer>(id: &Option<u64>, s: S) -> Result<S::Ok, S::Error> {
            match id {
                Some(id) => s.collect_str(id),
                None => s.serialize_none(),
            }
        }

        /// Deserialize an optional snowflake from a string, a number or null.
        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
            #[derive(Deserialize)]
            struct Wrap(#[serde(with = "super")] u64);
            Ok(Option::<Wrap>::deserialize(d)?.map(|w| w.0))
        }
    }
}

/// Serde helpers: a `Duration` as integer milliseconds in JSON.
pub mod duration_ms {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    /// Serialize as milliseconds.
    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_millis() as u64)
    }

    /// Deserialize from milliseconds.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_millis(u64::deserialize(d)?))
    }
}
