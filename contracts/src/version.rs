//! The protocol version marker. Every payload carries `"version": "1.0"`; a payload with any other
//! version is refused with an error that names the field, so a mismatched holder and edge fail loudly
//! instead of misreading each other.

use serde::{de, Deserialize, Deserializer, Serialize, Serializer};

/// The one version this crate speaks.
pub const VERSION: &str = "1.0";

/// Serializes as `"1.0"`; deserializing anything else is an error. When a request body omits the
/// field, `Default` stands for the current version.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Version;

impl Serialize for Version {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(VERSION)
    }
}

impl<'de> Deserialize<'de> for Version {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl de::Visitor<'_> for Visitor {
            type Value = Version;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                write!(f, "the string \"{VERSION}\"")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Version, E> {
                if v == VERSION {
                    Ok(Version)
                } else {
                    Err(E::custom(format_args!(
                        "unsupported version {v:?}, this side speaks \"{VERSION}\""
                    )))
                }
            }
        }
        d.deserialize_str(Visitor)
    }
}
