//! The gateway holder: the one process that talks to Discord's Gateway.
//!
//! Layout:
//! - [`config`]: the environment variables of SPEC.md, validated once at start.

pub mod config;
