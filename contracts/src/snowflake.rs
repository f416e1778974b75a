//! Discord ids ("snowflakes"): 64-bit integers that travel as decimal strings, because JavaScript
//! numbers lose precision above 2^53. Parsing refuses anything but 1-20 ASCII digits that fit a
//! non-zero `u64`, so a malformed id never reaches a Discord route.

use serde::{de, Deserialize, Deserializer, Serialize, Serializer};
use std::{fmt, str::FromStr};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Snowflake(pub u64);

impl Snowflake {
    pub fn get(self) -> u64 {
        self.0
    }
}

/// Why a string is not a snowflake.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BadSnowflake(&'static str);

impl fmt::Display for BadSnowflake {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(self.0)
    }
}

impl FromStr for Snowflake {
    type Err = BadSnowflake;
    fn from_str(s: &str) -> Result<Self, BadSnowflake> {
        if s.is_empty() || s.len() > 20 || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(BadSnowflake(
                "expected a snowflake: a string of 1 to 20 decimal digits",
            ));
        }
        match s.parse::<u64>() {
            Ok(0) => Err(BadSnowflake("a snowflake is never 0")),
            Ok(v) => Ok(Snowflake(v)),
            Err(_) => Err(BadSnowflake("snowflake is larger than 64 bits")),
        }
    }
}

impl fmt::Display for Snowflake {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl Serialize for Snowflake {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Snowflake {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl de::Visitor<'_> for Visitor {
            type Value = Snowflake;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a snowflake: a string of 1 to 20 decimal digits")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Snowflake, E> {
                v.parse().map_err(E::custom)
            }
        }
        d.deserialize_str(Visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_round_trip() {
        let s: Snowflake = "175928847299117063".parse().unwrap();
        assert_eq!(s.0, 175928847299117063);
        assert_eq!(s.to_string(), "175928847299117063");
        assert_eq!(serde_json::to_string(&s).unwrap(), "\"175928847299117063\"");
    }

    #[test]
    fn refuses_bad_forms() {
        for bad in [
            "",
            "0",
            "12a",
            "-5",
            " 1",
            "184467440737095516160",
            "18446744073709551616",
        ] {
            assert!(bad.parse::<Snowflake>().is_err(), "{bad:?} accepted");
        }
        assert!(
            serde_json::from_str::<Snowflake>("123").is_err(),
            "numbers are not accepted"
        );
    }
}
