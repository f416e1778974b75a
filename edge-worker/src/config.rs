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
    /// The default guild for `/api/stream` and the other `?guild=` routes when none is named
    /// (`GUILD_ID`; `default` when unset, which names no guild).
    pub guild_id: String,
    /// `GUILD_IDS` (comma-separated): when set, the only guilds served besides `GUILD_ID`;
    /// empty: every guild the bot is in.
    pub allow_guilds: Vec<contracts::Snowflake>,
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
    /// A guild hub of the holder's shards that got no batch for this long gets an empty
    /// keep-alive batch with the next batch of that holder (`HUB_KEEPALIVE_MS`).
    pub hub_keepalive_ms: u64,
    /// The bot-wide IDENTIFY queue: one grant per bucket per this long (`IDENTIFY_WINDOW_MS`).
    pub identify_window_ms: u64,
    /// How often holders are asked to re-register (`HOLDER_REGISTER_MS`); three missed
    /// intervals and a holder counts as gone.
    pub holder_register_ms: u64,
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
/// `HUB_KEEPALIVE_MS` is at most this by default (and a quarter of `LINK_QUIET_MS` if shorter).
pub const DEFAULT_HUB_KEEPALIVE_MS: u64 = 1_000;
pub const DEFAULT_IDENTIFY_WINDOW_MS: u64 = 5_000;
pub const DEFAULT_HOLDER_REGISTER_MS: u64 = 10_000;

impl Config {
    /// Reads every setting through `get` (the variable's value, if set).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let get = |name: &str| get(name).map(|v| v.trim().to_string());
        let guild_id = match get("GUILD_ID") {
            Some(g) if !g.is_empty() => check_guild("GUILD_ID", &g)?,
            _ => DEFAULT_GUILD.to_string(),
        };
        let mut allow_guilds = Vec::new();
        for g in list(get("GUILD_IDS")) {
            allow_guilds.push(
                check_guild("GUILD_IDS", &g)?
                    .parse()
                    .expect("checked as a snowflake"),
            );
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
        let link_quiet_ms = number(&get, "LINK_QUIET_MS", DEFAULT_LINK_QUIET_MS, 100, 3_600_000)?;
        let hub_keepalive_ms = number(
            &get,
            "HUB_KEEPALIVE_MS",
            DEFAULT_HUB_KEEPALIVE_MS.min(link_quiet_ms / 4),
            20,
            600_000,
        )?;
        if hub_keepalive_ms * 2 > link_quiet_ms {
            return Err(ConfigError {
                var: "HUB_KEEPALIVE_MS",
                message: format!(
                    "{hub_keepalive_ms} must be at most half of LINK_QUIET_MS ({link_quiet_ms}), or quiet guilds' links would flap"
                ),
            });
        }
        Ok(Config {
            guild_id,
            allow_guilds,
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
            link_quiet_ms,
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
            hub_keepalive_ms,
            identify_window_ms: number(
                &get,
                "IDENTIFY_WINDOW_MS",
                DEFAULT_IDENTIFY_WINDOW_MS,
                1,
                600_000,
            )?,
            holder_register_ms: number(
                &get,
                "HOLDER_REGISTER_MS",
                DEFAULT_HOLDER_REGISTER_MS,
                100,
                3_600_000,
            )?,
        })
    }

    /// The default guild, when `GUILD_ID` names one.
    pub fn default_guild(&self) -> Option<contracts::Snowflake> {
        self.guild_id.parse().ok()
    }

    /// Whether this edge may serve `guild` at all (`GUILD_IDS`, when set, and `GUILD_ID`).
    pub fn allows(&self, guild: contracts::Snowflake) -> bool {
        crate::bot::registry::allowed(guild, self.default_guild(), &self.allow_guilds)
    }

    /// The guild a `?guild=` value names, or the default guild when it names none.
    pub fn requested_guild(&self, requested: Option<&str>) -> Result<contracts::Snowflake, String> {
        match requested.map(str::trim).filter(|g| !g.is_empty()) {
            Some(g) => g
                .parse()
                .map_err(|e| format!("guild {g:?} is not a guild id: {e}")),
            None => self.default_guild().ok_or_else(|| {
                "this edge has no default guild (GUILD_ID); name one with ?guild=".to_string()
            }),
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
        assert_eq!(c.default_guild(), None, "GUILD_ID unset names no guild");
        assert!(c.requested_guild(None).is_err());
        assert_eq!(c.hub_keepalive_ms, 1_000);
        assert_eq!(c.identify_window_ms, 5_000);
        assert_eq!(c.holder_register_ms, 10_000);
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
        use contracts::Snowflake;
        assert_eq!(c.requested_guild(None), Ok(Snowflake(42)));
        assert_eq!(c.requested_guild(Some("43")), Ok(Snowflake(43)));
        assert!(c.requested_guild(Some("x")).is_err());
        assert!(c.allows(Snowflake(42)) && c.allows(Snowflake(43)));
        assert!(!c.allows(Snowflake(44)), "GUILD_IDS set: an allow-list");
        let open = cfg(&[("GUILD_ID", "42"), ("GUILD_IDS", "")]).unwrap();
        assert!(
            open.allows(Snowflake(44)),
            "GUILD_IDS unset: any guild the bot is in"
        );

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
    fn keepalive_follows_the_quiet_limit() {
        assert_eq!(
            cfg(&[("LINK_QUIET_MS", "1500")]).unwrap().hub_keepalive_ms,
            375
        );
        assert_eq!(
            cfg(&[("HUB_KEEPALIVE_MS", "250")])
                .unwrap()
                .hub_keepalive_ms,
            250
        );
        assert_eq!(
            cfg(&[("LINK_QUIET_MS", "1000"), ("HUB_KEEPALIVE_MS", "600")])
                .unwrap_err()
                .var,
            "HUB_KEEPALIVE_MS"
        );
        assert_eq!(
            cfg(&[("IDENTIFY_WINDOW_MS", "0")]).unwrap_err().var,
            "IDENTIFY_WINDOW_MS"
        );
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
