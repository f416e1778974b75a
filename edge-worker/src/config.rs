//! The edge's settings, read from Worker vars and secrets (`[vars]`, `.dev.vars`, `--var`,
//! `wrangler secret`). Parsing is pure: the caller passes a lookup function, so the rules (defaults,
//! bounds, error messages naming the variable) are unit-tested natively.
//!
//! Secrets (`LINK_TOKEN`, `CLIENT_JWT_SECRET`) are kept in [`Secrets`], whose `Debug` never prints
//! them; no error message ever quotes a secret's value.

use std::fmt;

/// A setting that could not be used, naming the variable (never quoting a secret).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    pub var: &'static str,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "configuration variable {}: {}", self.var, self.message)
    }
}

impl std::error::Error for ConfigError {}

/// Settings of the stream, the replay window and the holder link (non-secret).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// The default guild for `/api/stream` and the guild `/link/ingest` feeds.
    pub guild_id: String,
    /// Further guilds `?guild=` may name (`GUILD_IDS`, comma-separated).
    pub extra_guilds: Vec<String>,
    pub public_read: bool,
    /// `DEV_LOGIN=true`: `POST /api/dev/session` hands out demo sessions (local development only).
    pub dev_login: bool,
    /// Exact origins allowed to call the browser routes with credentials.
    pub allowed_origins: Vec<String>,
    /// A `: ping` comment at least this often on every stream.
    pub heartbeat_ms: u64,
    /// The `retry:` hint sent on connect.
    pub retry_ms: u64,
    /// The replay window keeps at most this many events...
    pub replay_max_events: u64,
    /// ...and none older than this.
    pub replay_max_age_ms: u64,
    /// No batch and no keep-alive from the holder for this long: the link is down.
    pub link_quiet_ms: u64,
    /// Largest accepted ingest body.
    pub max_ingest_bytes: u64,
    /// Chunks (one per ingest batch) a client may have queued before it is closed as slow.
    pub client_queue_max: usize,
    /// Commands settings (`/api/actions/*`).
    pub commands: CommandsConfig,
}

/// Where and how browser commands are forwarded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommandsConfig {
    /// The holder's base URL (`POST {HOLDER_URL}/commands`), without a trailing `/`.
    pub holder_url: String,
    /// How long the holder may wait for Discord before answering `queued`.
    pub wait_ms: u64,
    /// Per-user limit: tokens per second and bucket size.
    pub rate_per_sec: u64,
    pub burst: u64,
    /// Largest accepted command body.
    pub max_body_bytes: u64,
}

/// The two secrets, kept apart so `Debug` can't leak them.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secrets {
    pub link_token: Option<String>,
    pub jwt_secret: Option<String>,
    /// During a rotation, the previous `LINK_TOKEN`, still accepted on `/link/*` and `/metrics`.
    pub link_token_previous: Option<String>,
}

impl fmt::Debug for Secrets {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.debug_struct("Secrets")
            .field("link_token", &self.link_token.as_ref().map(|_| "<set>"))
            .field("jwt_secret", &self.jwt_secret.as_ref().map(|_| "<set>"))
            .field(
                "link_token_previous",
                &self.link_token_previous.as_ref().map(|_| "<set>"),
            )
            .finish()
    }
}

pub const DEFAULT_HEARTBEAT_MS: u64 = 15_000;
pub const DEFAULT_RETRY_MS: u64 = 2_000;
pub const DEFAULT_REPLAY_MAX_EVENTS: u64 = 10_000;
pub const DEFAULT_REPLAY_MAX_AGE_MS: u64 = 300_000;
pub const DEFAULT_LINK_QUIET_MS: u64 = 30_000;
pub const DEFAULT_MAX_INGEST_BYTES: u64 = 1 << 20;
pub const DEFAULT_CLIENT_QUEUE_MAX: usize = 1_000;
const DEFAULT_GUILD: &str = "default";
pub const DEFAULT_HOLDER_URL: &str = "http://127.0.0.1:8790";
pub const DEFAULT_COMMAND_WAIT_MS: u64 = 2_000;
pub const DEFAULT_ACTION_RATE_PER_SEC: u64 = 10;
pub const DEFAULT_ACTION_BURST: u64 = 20;
pub const DEFAULT_MAX_ACTION_BYTES: u64 = 16 * 1024;

impl Config {
    /// Reads every setting through `get` (the variable's value, if set).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let get = |name: &str| get(name).map(|v| v.trim().to_string());
        let guild_id = match get("GUILD_ID") {
            Some(g) if !g.is_empty() => check_guild("GUILD_ID", &g)?,
            _ => DEFAULT_GUILD.to_string(),
        };
        let mut extra_guilds = Vec::new();
        for g in list(get("GUILD_IDS")) {
            extra_guilds.push(check_guild("GUILD_IDS", &g)?);
        }
        let public_read = match get("PUBLIC_READ").as_deref() {
            None | Some("") | Some("false") | Some("0") => false,
            Some("true") | Some("1") => true,
            Some(other) => {
                return Err(ConfigError {
                    var: "PUBLIC_READ",
                    message: format!("expected true or false, got {other:?}"),
                })
            }
        };
        let mut allowed_origins = Vec::new();
        for o in list(get("ALLOWED_ORIGINS")) {
            if o == "*" {
                return Err(ConfigError {
                    var: "ALLOWED_ORIGINS",
                    message: "`*` is not allowed: credentials are sent, list exact origins".into(),
                });
            }
            if !(o.starts_with("http://") || o.starts_with("https://")) || o.ends_with('/') {
                return Err(ConfigError {
                    var: "ALLOWED_ORIGINS",
                    message: format!("{o:?} is not an origin like https://app.example.com"),
                });
            }
            allowed_origins.push(o);
        }
        Ok(Config {
            guild_id,
            extra_guilds,
            public_read,
            dev_login: get("DEV_LOGIN").is_some_and(|v| v.trim() == "true"),
            allowed_origins,
            heartbeat_ms: number(&get, "SSE_HEARTBEAT_MS", DEFAULT_HEARTBEAT_MS, 50, 300_000)?,
            retry_ms: number(&get, "SSE_RETRY_MS", DEFAULT_RETRY_MS, 10, 600_000)?,
            replay_max_events: number(
                &get,
                "REPLAY_MAX_EVENTS",
                DEFAULT_REPLAY_MAX_EVENTS,
                1,
                10_000_000,
            )?,
            replay_max_age_ms: number(
                &get,
                "REPLAY_MAX_AGE_MS",
                DEFAULT_REPLAY_MAX_AGE_MS,
                1_000,
                7 * 24 * 3_600_000,
            )?,
            link_quiet_ms: number(&get, "LINK_QUIET_MS", DEFAULT_LINK_QUIET_MS, 100, 3_600_000)?,
            max_ingest_bytes: number(
                &get,
                "MAX_INGEST_BYTES",
                DEFAULT_MAX_INGEST_BYTES,
                1_024,
                100 << 20,
            )?,
            client_queue_max: number(
                &get,
                "CLIENT_QUEUE_MAX",
                DEFAULT_CLIENT_QUEUE_MAX as u64,
                1,
                100_000,
            )? as usize,
            commands: commands_config(&get)?,
        })
    }

    /// The hub a `?guild=` value names, or the default guild; `None` for a guild this edge
    /// does not serve.
    pub fn guild_for(&self, requested: Option<&str>) -> Option<&str> {
        match requested {
            None | Some("") => Some(&self.guild_id),
            Some(g) if g == self.guild_id => Some(&self.guild_id),
            Some(g) => self
                .extra_guilds
                .iter()
                .find(|x| *x == g)
                .map(|s| s.as_str()),
        }
    }
}

impl Secrets {
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Secrets {
        let non_empty = |v: Option<String>| v.filter(|s| !s.is_empty());
        Secrets {
            link_token: non_empty(get("LINK_TOKEN")),
            jwt_secret: non_empty(get("CLIENT_JWT_SECRET")),
            link_token_previous: non_empty(get("LINK_TOKEN_PREVIOUS")),
        }
    }
}

fn commands_config(get: &impl Fn(&str) -> Option<String>) -> Result<CommandsConfig, ConfigError> {
    let holder_url = match get("HOLDER_URL").filter(|v| !v.is_empty()) {
        None => DEFAULT_HOLDER_URL.to_string(),
        Some(u) => {
            let u = u.trim_end_matches('/').to_string();
            let rest = u
                .strip_prefix("http://")
                .or_else(|| u.strip_prefix("https://"));
            if rest.is_none_or(|r| r.is_empty() || r.contains(['?', '#', ' '])) {
                return Err(ConfigError {
                    var: "HOLDER_URL",
                    message: format!("{u:?} is not a URL like http://127.0.0.1:8790"),
                });
            }
            u
        }
    };
    Ok(CommandsConfig {
        holder_url,
        wait_ms: number(get, "COMMAND_WAIT_MS", DEFAULT_COMMAND_WAIT_MS, 0, 10_000)?,
        rate_per_sec: number(
            get,
            "ACTION_RATE_PER_SEC",
            DEFAULT_ACTION_RATE_PER_SEC,
            1,
            10_000,
        )?,
        burst: number(get, "ACTION_BURST", DEFAULT_ACTION_BURST, 1, 100_000)?,
        max_body_bytes: number(
            get,
            "MAX_ACTION_BYTES",
            DEFAULT_MAX_ACTION_BYTES,
            256,
            1 << 20,
        )?,
    })
}

fn list(value: Option<String>) -> Vec<String> {
    value
        .unwrap_or_default()
        .split(',')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

fn check_guild(var: &'static str, g: &str) -> Result<String, ConfigError> {
    g.parse::<contracts::Snowflake>()
        .map(|s| s.to_string())
        .map_err(|e| ConfigError {
            var,
            message: format!("{g:?}: {e}"),
        })
}

fn number(
    get: &impl Fn(&str) -> Option<String>,
    var: &'static str,
    default: u64,
    min: u64,
    max: u64,
) -> Result<u64, ConfigError> {
    let Some(raw) = get(var).filter(|v| !v.is_empty()) else {
        return Ok(default);
    };
    let value: u64 = raw.parse().map_err(|_| ConfigError {
        var,
        message: format!("expected a whole number, got {raw:?}"),
    })?;
    if !(min..=max).contains(&value) {
        return Err(ConfigError {
            var,
            message: format!("{value} is outside {min}..={max}"),
        });
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn cfg(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn defaults_meet_the_issue_minimums() {
        let c = cfg(&[]).unwrap();
        assert!(c.replay_max_events >= 10_000);
        assert!(c.replay_max_age_ms >= 300_000);
        assert_eq!(c.heartbeat_ms, 15_000);
        assert!(!c.public_read);
        assert_eq!(c.guild_for(None), Some("default"));
    }

    #[test]
    fn parses_values_and_names_the_bad_variable() {
        let c = cfg(&[
            ("SSE_HEARTBEAT_MS", "250"),
            ("PUBLIC_READ", "true"),
            ("ALLOWED_ORIGINS", "http://a.test, https://b.test"),
            ("GUILD_ID", "42"),
            ("GUILD_IDS", "43"),
        ])
        .unwrap();
        assert_eq!(c.heartbeat_ms, 250);
        assert!(c.public_read);
        assert_eq!(c.allowed_origins, vec!["http://a.test", "https://b.test"]);
        assert_eq!(c.guild_for(Some("43")), Some("43"));
        assert_eq!(c.guild_for(Some("44")), None);

        let e = cfg(&[("REPLAY_MAX_EVENTS", "lots")]).unwrap_err();
        assert_eq!(e.var, "REPLAY_MAX_EVENTS");
        assert_eq!(
            cfg(&[("SSE_HEARTBEAT_MS", "0")]).unwrap_err().var,
            "SSE_HEARTBEAT_MS"
        );
        assert_eq!(
            cfg(&[("PUBLIC_READ", "yes")]).unwrap_err().var,
            "PUBLIC_READ"
        );
        assert_eq!(
            cfg(&[("ALLOWED_ORIGINS", "*")]).unwrap_err().var,
            "ALLOWED_ORIGINS"
        );
        assert_eq!(cfg(&[("GUILD_ID", "abc")]).unwrap_err().var, "GUILD_ID");
    }

    #[test]
    fn commands_settings() {
        let c = cfg(&[]).unwrap().commands;
        assert_eq!(c.holder_url, DEFAULT_HOLDER_URL);
        assert_eq!((c.wait_ms, c.rate_per_sec, c.burst), (2_000, 10, 20));
        let c = cfg(&[
            ("HOLDER_URL", "http://127.0.0.1:9/"),
            ("COMMAND_WAIT_MS", "0"),
        ])
        .unwrap()
        .commands;
        assert_eq!(c.holder_url, "http://127.0.0.1:9");
        assert_eq!(c.wait_ms, 0);
        assert_eq!(
            cfg(&[("HOLDER_URL", "ftp://x")]).unwrap_err().var,
            "HOLDER_URL"
        );
        assert_eq!(
            cfg(&[("ACTION_BURST", "0")]).unwrap_err().var,
            "ACTION_BURST"
        );
    }

    #[test]
    fn secrets_debug_hides_values() {
        let s = Secrets::from_lookup(|k| Some(format!("value-of-{k}")));
        let shown = format!("{s:?}");
        assert!(!shown.contains("value-of"), "{shown}");
        assert!(Secrets::from_lookup(|_| Some(String::new()))
            .link_token
            .is_none());
    }
}
