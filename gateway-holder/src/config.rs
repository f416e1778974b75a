//! The holder's configuration, read once from the environment (SPEC.md, "gateway-holder
//! configuration"). Every problem is reported as one [`ConfigError`] naming the variable, so a bad
//! deployment fails at start with a line an operator can act on, never halfway through a session.

use std::{fmt, net::SocketAddr, path::PathBuf};
use url::Url;

/// GUILDS | GUILD_MEMBERS | GUILD_MODERATION | GUILD_VOICE_STATES | GUILD_MESSAGES |
/// GUILD_MESSAGE_REACTIONS | GUILD_MESSAGE_TYPING | MESSAGE_CONTENT.
pub const DEFAULT_INTENTS: u64 =
    1 | 1 << 1 | 1 << 2 | 1 << 7 | 1 << 9 | 1 << 10 | 1 << 11 | 1 << 15;

/// Every intent bit Discord defines (0-16, 20, 21, 24, 25); any other bit gets close code 4013.
pub const KNOWN_INTENTS: u64 = ((1 << 17) - 1) | (1 << 20) | (1 << 21) | (1 << 24) | (1 << 25);

/// A secret string: its `Debug` and `Display` never show the value.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }
    /// The value itself, for the one place that must send it (a header).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// Gateway transport compression (`DISCORD_COMPRESS`), asked for with the URL's `compress` query.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    ZstdStream,
    ZlibStream,
    None,
}

impl Compression {
    /// The `compress` query value (and `DISCORD_COMPRESS` spelling); `None` for no compression.
    pub fn query_value(self) -> Option<&'static str> {
        match self {
            Compression::ZstdStream => Some("zstd-stream"),
            Compression::ZlibStream => Some("zlib-stream"),
            Compression::None => None,
        }
    }

    /// The compression a `compress` query value asks for (`None` if it is not one we speak).
    pub fn from_query(value: &str) -> Option<Compression> {
        match value {
            "zstd-stream" => Some(Compression::ZstdStream),
            "zlib-stream" => Some(Compression::ZlibStream),
            _ => None,
        }
    }
}

/// `DISCORD_SHARDS`: which shards this holder runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ShardSpec {
    /// `auto`: every shard of `GET /gateway/bot`'s recommended count.
    Auto,
    /// `N`: all N shards.
    All(u32),
    /// `A-B/N`: shards A..=B of N.
    Range { first: u32, last: u32, count: u32 },
}

impl ShardSpec {
    /// The shard ids and the total, given the count Discord recommends.
    pub fn resolve(self, recommended: u32) -> (std::ops::RangeInclusive<u32>, u32) {
        match self {
            ShardSpec::Auto => {
                let n = recommended.max(1);
                (0..=n - 1, n)
            }
            ShardSpec::All(n) => (0..=n - 1, n),
            ShardSpec::Range { first, last, count } => (first..=last, count),
        }
    }

    /// This holder's share of something the whole bot has (Discord's REST global limit): its
    /// shards over the bot's, or all of it with `auto`/`N`.
    pub fn share(self) -> f64 {
        match self {
            ShardSpec::Auto | ShardSpec::All(_) => 1.0,
            ShardSpec::Range { first, last, count } => {
                f64::from(last - first + 1) / f64::from(count)
            }
        }
    }

    fn parse(v: &str) -> Result<ShardSpec, String> {
        let v = v.trim();
        let number = |s: &str| s.trim().parse::<u32>().map_err(|_| ());
        let bad = || format!("{v:?} is not \"auto\", a shard count N, or a range A-B/N");
        if v == "auto" {
            return Ok(ShardSpec::Auto);
        }
        if let Some((range, count)) = v.split_once('/') {
            let (a, b) = range.split_once('-').ok_or_else(bad)?;
            let (first, last, count) = match (number(a), number(b), number(count)) {
                (Ok(a), Ok(b), Ok(n)) => (a, b, n),
                _ => return Err(bad()),
            };
            if count == 0 || first > last || last >= count {
                return Err(format!(
                    "{v:?}: the range must satisfy A <= B < N (shard ids count from 0)"
                ));
            }
            return Ok(ShardSpec::Range { first, last, count });
        }
        match number(v) {
            Ok(0) => Err(format!("{v:?}: a bot runs at least one shard")),
            Ok(n) => Ok(ShardSpec::All(n)),
            Err(()) => Err(bad()),
        }
    }
}

/// `IDENTIFY_QUEUE`: who paces this holder's IDENTIFYs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IdentifyQueueKind {
    /// This process paces its own shards (one holder per bot).
    Local,
    /// The edge's bot-wide queue (`POST {EDGE_URL}/link/identify`), for several holders of a bot.
    Edge,
}

#[derive(Clone, Debug)]
pub struct Config {
    pub bot_token: Secret,
    pub api_url: Url,
    pub gateway_url: Option<Url>,
    pub intents: u64,
    pub compression: Compression,
    pub shards: ShardSpec,
    pub identify_queue: IdentifyQueueKind,
    pub edge_url: Url,
    pub link_token: Secret,
    /// `LINK_TOKEN_PREVIOUS`: during a rotation, a second token `POST /commands` accepts (the
    /// holder always sends `LINK_TOKEN`). See README.md, "Rotating LINK_TOKEN".
    pub link_token_previous: Option<Secret>,
    pub listen: SocketAddr,
    /// `HOLDER_PUBLIC_URL`: where the edge reaches this holder's `POST /commands`.
    pub public_url: Url,
    pub state_dir: PathBuf,
    /// The `User-Agent` of every REST call and the gateway handshake (see `user_agent.rs`).
    pub user_agent: String,
    pub log_json: bool,
    pub tuning: Tuning,
}

/// Operational knobs beyond SPEC.md's table (README.md lists them); the defaults suit production,
/// tests shrink the times.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tuning {
    /// `HOLDER_RECONNECT_BASE_MS` (500): first reconnect backoff step; op 9 waits 2-10 × this.
    pub reconnect_base_ms: u64,
    /// `HOLDER_RECONNECT_MAX_MS` (60000): the backoff cap.
    pub reconnect_max_ms: u64,
    /// `HOLDER_BUFFER_MEMORY_BYTES` (16 MiB): undelivered envelopes kept in memory before spilling.
    pub buffer_memory_bytes: u64,
    /// `HOLDER_SPILL_MAX_BYTES` (1 GiB): spill bound; past it the oldest are dropped with a gap.
    pub spill_max_bytes: u64,
    /// `HOLDER_KEEPALIVE_MS` (2000): an empty batch with the gateway state after this much quiet.
    pub keepalive_ms: u64,
    /// `HOLDER_FLUSH_TIMEOUT_MS` (5000): on shutdown, how long to try the edge before spilling.
    pub flush_timeout_ms: u64,
    /// `HOLDER_BATCH_LINGER_MS` (0): hold a small batch up to this long for company. 0 sends at
    /// once when the link is idle (lowest latency); a few ms trades latency for fewer POSTs.
    pub batch_linger_ms: u64,
    /// `HOLDER_COMMAND_QUEUE` (1000): commands the outbound queue holds before `queue_full`.
    pub command_queue: u64,
    /// `HOLDER_COMMAND_DEADLINE_MS` (30000): a command not done by then fails instead of running late.
    pub command_deadline_ms: u64,
    /// `HOLDER_INVALID_REQUEST_LIMIT` (9000): invalid Discord answers (401/403/429) per 10 minutes
    /// before REST calls stop; Discord bans the IP at 10,000.
    pub invalid_request_limit: u64,
    /// `HOLDER_MEMBER_REQUEST_INTERVAL_MS` (30500): Request Guild Members (op 8) is paced at one
    /// per guild per this long (Discord's 30 s plus half a second of skew; tests shrink it).
    pub member_request_interval_ms: u64,
    /// `HOLDER_IDENTIFY_WINDOW_MS` (5000): one IDENTIFY per rate-limit bucket per this long
    /// (Discord's 5 s; tests with a simulator that doesn't pace shrink it).
    pub identify_window_ms: u64,
}

impl Default for Tuning {
    fn default() -> Self {
        Tuning {
            reconnect_base_ms: 500,
            reconnect_max_ms: 60_000,
            buffer_memory_bytes: 16 << 20,
            spill_max_bytes: 1 << 30,
            keepalive_ms: 2000,
            flush_timeout_ms: 5000,
            batch_linger_ms: 0,
            command_queue: 1000,
            command_deadline_ms: 30_000,
            invalid_request_limit: 9_000,
            member_request_interval_ms: 30_500,
            identify_window_ms: 5_000,
        }
    }
}

/// A configuration problem: which variable, and what is wrong with it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    pub variable: &'static str,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "{}: {}", self.variable, self.message)
    }
}

impl std::error::Error for ConfigError {}

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Config, ConfigError> {
        Config::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads configuration through `get` (tests pass a map).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let var = |name: &'static str| get(name).filter(|v| !v.trim().is_empty());
        let err = |variable: &'static str, message: String| ConfigError { variable, message };

        let bot_token = secret("DISCORD_BOT_TOKEN", var("DISCORD_BOT_TOKEN"))?;
        let link_token = secret("LINK_TOKEN", var("LINK_TOKEN"))?;
        let link_token_previous = var("LINK_TOKEN_PREVIOUS")
            .map(|v| secret("LINK_TOKEN_PREVIOUS", Some(v)))
            .transpose()?;

        let api_url = url(
            "DISCORD_API_URL",
            var("DISCORD_API_URL")
                .as_deref()
                .unwrap_or("https://discord.com/api/v10"),
            &["http", "https"],
        )?;
        let gateway_url = var("DISCORD_GATEWAY_URL")
            .map(|v| url("DISCORD_GATEWAY_URL", &v, &["ws", "wss"]))
            .transpose()?;
        let edge_url = url(
            "EDGE_URL",
            var("EDGE_URL")
                .as_deref()
                .unwrap_or("http://127.0.0.1:8787"),
            &["http", "https"],
        )?;

        let intents = match var("DISCORD_INTENTS") {
            None => DEFAULT_INTENTS,
            Some(v) => {
                let bits: u64 = v.trim().parse().map_err(|_| {
                    err(
                        "DISCORD_INTENTS",
                        format!("{v:?} is not a decimal intents bitfield"),
                    )
                })?;
                let unknown = bits & !KNOWN_INTENTS;
                if unknown != 0 {
                    return Err(err(
                        "DISCORD_INTENTS",
                        format!("{bits} sets bits Discord does not define (0x{unknown:x})"),
                    ));
                }
                bits
            }
        };

        let compression = match var("DISCORD_COMPRESS").as_deref().map(str::trim) {
            None => Compression::ZstdStream,
            Some("none") => Compression::None,
            Some(v) => match Compression::from_query(v) {
                Some(c) => c,
                None => {
                    return Err(err(
                        "DISCORD_COMPRESS",
                        format!("{v:?} is not one of \"zstd-stream\", \"zlib-stream\", \"none\""),
                    ))
                }
            },
        };

        let listen_raw = var("HOLDER_LISTEN").unwrap_or_else(|| "127.0.0.1:8790".into());
        let listen: SocketAddr = listen_raw.trim().parse().map_err(|_| {
            err(
                "HOLDER_LISTEN",
                format!("{listen_raw:?} is not an address like 127.0.0.1:8790"),
            )
        })?;

        let public_url = url(
            "HOLDER_PUBLIC_URL",
            &var("HOLDER_PUBLIC_URL").unwrap_or_else(|| format!("http://{listen}")),
            &["http", "https"],
        )?;
        let shards = match var("DISCORD_SHARDS") {
            None => ShardSpec::Auto,
            Some(v) => ShardSpec::parse(&v).map_err(|m| err("DISCORD_SHARDS", m))?,
        };
        let identify_queue = match var("IDENTIFY_QUEUE").as_deref().map(str::trim) {
            None | Some("local") => IdentifyQueueKind::Local,
            Some("edge") => IdentifyQueueKind::Edge,
            Some(other) => {
                return Err(err(
                    "IDENTIFY_QUEUE",
                    format!("{other:?} is not one of \"local\", \"edge\""),
                ))
            }
        };
        let user_agent = crate::user_agent::build(var("HOLDER_USER_AGENT_EXTRA").as_deref())
            .map_err(|m| err("HOLDER_USER_AGENT_EXTRA", m))?;

        let state_dir =
            PathBuf::from(var("HOLDER_STATE_DIR").unwrap_or_else(|| "./.holder-state".into()));

        let log_json = match var("LOG_FORMAT").as_deref().map(str::trim) {
            None | Some("text") => false,
            Some("json") => true,
            Some(other) => {
                return Err(err(
                    "LOG_FORMAT",
                    format!("{other:?} is not one of \"json\", \"text\""),
                ))
            }
        };
        let number = |name: &'static str, default: u64, min: u64| -> Result<u64, ConfigError> {
            match var(name) {
                None => Ok(default),
                Some(v) => match v.trim().parse::<u64>() {
                    Ok(n) if n >= min => Ok(n),
                    _ => Err(err(
                        name,
                        format!("{v:?} is not a whole number of at least {min}"),
                    )),
                },
            }
        };
        let d = Tuning::default();
        let tuning = Tuning {
            reconnect_base_ms: number("HOLDER_RECONNECT_BASE_MS", d.reconnect_base_ms, 1)?,
            reconnect_max_ms: number("HOLDER_RECONNECT_MAX_MS", d.reconnect_max_ms, 1)?,
            buffer_memory_bytes: number("HOLDER_BUFFER_MEMORY_BYTES", d.buffer_memory_bytes, 0)?,
            spill_max_bytes: number("HOLDER_SPILL_MAX_BYTES", d.spill_max_bytes, 0)?,
            keepalive_ms: number("HOLDER_KEEPALIVE_MS", d.keepalive_ms, 10)?,
            flush_timeout_ms: number("HOLDER_FLUSH_TIMEOUT_MS", d.flush_timeout_ms, 0)?,
            batch_linger_ms: number("HOLDER_BATCH_LINGER_MS", d.batch_linger_ms, 0)?,
            command_queue: number("HOLDER_COMMAND_QUEUE", d.command_queue, 1)?,
            command_deadline_ms: number("HOLDER_COMMAND_DEADLINE_MS", d.command_deadline_ms, 1)?,
            invalid_request_limit: number(
                "HOLDER_INVALID_REQUEST_LIMIT",
                d.invalid_request_limit,
                1,
            )?,
            member_request_interval_ms: number(
                "HOLDER_MEMBER_REQUEST_INTERVAL_MS",
                d.member_request_interval_ms,
                1,
            )?,
            identify_window_ms: number("HOLDER_IDENTIFY_WINDOW_MS", d.identify_window_ms, 0)?,
        };

        Ok(Config {
            log_json,
            tuning,
            bot_token,
            api_url,
            gateway_url,
            intents,
            compression,
            shards,
            identify_queue,
            edge_url,
            link_token,
            link_token_previous,
            listen,
            public_url,
            state_dir,
            user_agent,
        })
    }
}

fn secret(variable: &'static str, value: Option<String>) -> Result<Secret, ConfigError> {
    let value = value.ok_or_else(|| ConfigError {
        variable,
        message: "is required and not set".into(),
    })?;
    if value.chars().any(|c| c.is_whitespace() || c.is_control()) {
        // Never echo the value: it is a secret.
        return Err(ConfigError {
            variable,
            message: "contains whitespace or control characters".into(),
        });
    }
    Ok(Secret(value))
}

fn url(variable: &'static str, value: &str, schemes: &[&str]) -> Result<Url, ConfigError> {
    let parsed = Url::parse(value.trim()).map_err(|e| ConfigError {
        variable,
        message: format!("{value:?} is not a URL ({e})"),
    })?;
    if !schemes.contains(&parsed.scheme()) {
        return Err(ConfigError {
            variable,
            message: format!("{value:?} must use {}", schemes.join(" or ")),
        });
    }
    if parsed.host_str().is_none() {
        return Err(ConfigError {
            variable,
            message: format!("{value:?} has no host"),
        });
    }
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let mut env: HashMap<String, String> =
            [("DISCORD_BOT_TOKEN", "tok"), ("LINK_TOKEN", "link")]
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
        for (k, v) in pairs {
            env.insert(k.to_string(), v.to_string());
        }
        Config::from_lookup(|k| env.get(k).cloned())
    }

    #[test]
    fn defaults_follow_the_spec() {
        let c = config(&[]).unwrap();
        assert_eq!(c.api_url.as_str(), "https://discord.com/api/v10");
        assert_eq!(c.edge_url.as_str(), "http://127.0.0.1:8787/");
        assert_eq!(c.listen.to_string(), "127.0.0.1:8790");
        assert_eq!(c.intents, DEFAULT_INTENTS);
        assert_eq!(c.compression, Compression::ZstdStream);
        assert_eq!(c.state_dir, PathBuf::from("./.holder-state"));
        assert!(c.gateway_url.is_none());
        assert!(!c.log_json);
        assert_eq!(c.tuning, Tuning::default());
        let c = config(&[
            ("LOG_FORMAT", "json"),
            ("HOLDER_KEEPALIVE_MS", "50"),
            ("HOLDER_MEMBER_REQUEST_INTERVAL_MS", "1000"),
        ])
        .unwrap();
        assert!(c.log_json);
        assert_eq!(c.tuning.keepalive_ms, 50);
        assert_eq!(c.tuning.member_request_interval_ms, 1000);
    }

    #[test]
    fn compression_values() {
        for (v, c) in [
            ("zstd-stream", Compression::ZstdStream),
            (" zlib-stream ", Compression::ZlibStream),
            ("none", Compression::None),
        ] {
            assert_eq!(
                config(&[("DISCORD_COMPRESS", v)]).unwrap().compression,
                c,
                "{v}"
            );
        }
        for c in [Compression::ZstdStream, Compression::ZlibStream] {
            assert_eq!(Compression::from_query(c.query_value().unwrap()), Some(c));
        }
        assert_eq!(Compression::None.query_value(), None);
        // Only the names Discord documents; "none" is not a query value.
        for bad in ["zstd", "ZSTD-STREAM", "gzip"] {
            let e = config(&[("DISCORD_COMPRESS", bad)]).unwrap_err();
            assert_eq!(e.variable, "DISCORD_COMPRESS", "{bad:?}");
            assert!(e.to_string().contains("zstd-stream"), "{e}");
        }
        assert_eq!(Compression::from_query("none"), None);
    }

    #[test]
    fn each_bad_variable_is_named() {
        let cases: &[(&str, &str, &str)] = &[
            ("DISCORD_BOT_TOKEN", "", "DISCORD_BOT_TOKEN"),
            ("LINK_TOKEN", "", "LINK_TOKEN"),
            ("DISCORD_API_URL", "not a url", "DISCORD_API_URL"),
            ("DISCORD_API_URL", "ftp://x", "DISCORD_API_URL"),
            ("DISCORD_GATEWAY_URL", "http://x", "DISCORD_GATEWAY_URL"),
            ("DISCORD_INTENTS", "abc", "DISCORD_INTENTS"),
            ("DISCORD_INTENTS", "262144", "DISCORD_INTENTS"),
            ("DISCORD_COMPRESS", "zstd", "DISCORD_COMPRESS"),
            ("EDGE_URL", "127.0.0.1:8787", "EDGE_URL"),
            ("HOLDER_LISTEN", "localhost", "HOLDER_LISTEN"),
            ("LOG_FORMAT", "xml", "LOG_FORMAT"),
            ("DISCORD_SHARDS", "0", "DISCORD_SHARDS"),
            ("DISCORD_SHARDS", "two", "DISCORD_SHARDS"),
            ("DISCORD_SHARDS", "2-1/4", "DISCORD_SHARDS"),
            ("DISCORD_SHARDS", "0-4/4", "DISCORD_SHARDS"),
            ("DISCORD_SHARDS", "0-1", "DISCORD_SHARDS"),
            ("IDENTIFY_QUEUE", "remote", "IDENTIFY_QUEUE"),
            ("HOLDER_PUBLIC_URL", "holder:8790", "HOLDER_PUBLIC_URL"),
            ("HOLDER_USER_AGENT_EXTRA", "a\nb", "HOLDER_USER_AGENT_EXTRA"),
            ("HOLDER_KEEPALIVE_MS", "1", "HOLDER_KEEPALIVE_MS"),
            ("HOLDER_RECONNECT_BASE_MS", "-5", "HOLDER_RECONNECT_BASE_MS"),
            (
                "HOLDER_MEMBER_REQUEST_INTERVAL_MS",
                "0",
                "HOLDER_MEMBER_REQUEST_INTERVAL_MS",
            ),
        ];
        for (var, value, named) in cases {
            let e = config(&[(var, value)]).unwrap_err();
            assert_eq!(e.variable, *named, "{var}={value:?} gave {e}");
        }
    }

    #[test]
    fn shards_and_queue() {
        let c = config(&[]).unwrap();
        assert_eq!(c.shards, ShardSpec::Auto);
        assert_eq!(c.shards.resolve(3), (0..=2, 3));
        assert_eq!(c.identify_queue, IdentifyQueueKind::Local);
        assert_eq!(c.public_url.as_str(), "http://127.0.0.1:8790/");
        let c = config(&[("DISCORD_SHARDS", "4"), ("IDENTIFY_QUEUE", "edge")]).unwrap();
        assert_eq!(c.shards.resolve(1), (0..=3, 4));
        assert_eq!(c.identify_queue, IdentifyQueueKind::Edge);
        let c = config(&[("DISCORD_SHARDS", " 2-3/4 ")]).unwrap();
        assert_eq!(
            c.shards,
            ShardSpec::Range {
                first: 2,
                last: 3,
                count: 4
            }
        );
        assert_eq!(c.shards.resolve(9), (2..=3, 4));
        assert_eq!(c.shards.share(), 0.5);
        assert!(c.user_agent.starts_with("DiscordBot ("));
    }

    #[test]
    fn secrets_never_print() {
        let c = config(&[("DISCORD_BOT_TOKEN", "super-secret-value")]).unwrap();
        assert!(!format!("{c:?}").contains("super-secret-value"));
        let e = config(&[("LINK_TOKEN", "bad value with spaces")]).unwrap_err();
        assert!(!e.to_string().contains("bad value"));
    }
}
