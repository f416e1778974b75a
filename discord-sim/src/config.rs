//! Everything a test or the binary can tune: the bot token, gateway timings, the seeded guilds,
//! sharding and identify limits, and the REST limits.
//!
//! `SimConfig::default()` is the demo setup: token `sim-token`, Discord's 41.25 s heartbeat, and
//! one guild (id `1000000000000000001`) with two text channels, two voice channels and five
//! members. [`SimConfig::with_guilds`] adds more guilds (distinct snowflakes that spread over
//! shards); [`guild_id_on_shard`] makes a guild id that lands on a chosen shard. Tests shorten
//! timings by overriding single fields.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::gateway::intents;

/// Configuration of one simulator instance.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// The only bot token accepted (on the gateway without or with a `Bot ` prefix, on REST as
    /// `Authorization: Bot <token>`).
    pub token: String,
    /// Sent in HELLO.
    pub heartbeat_interval: Duration,
    /// How long past `heartbeat_interval` a connection may stay silent before the sim closes it
    /// and expires its session. `None`: half the interval.
    pub heartbeat_slack: Option<Duration>,
    /// The guilds the bot is in at start, in order (the first is the one [`SimConfig::guild`]
    /// returns, and the one events and traffic without a guild of their own go to).
    pub guilds: Vec<GuildSeed>,
    /// The bot's own user.
    pub bot_user: UserSeed,
    /// Application id reported in READY.
    pub application_id: u64,
    /// Privileged intents the "developer portal" has enabled; asking for others closes with 4014.
    pub privileged_intents_allowed: u64,
    /// How long a session whose connection went away can still be resumed.
    pub resume_window: Duration,
    /// Split each zlib-stream message across two websocket messages (only the last ends with the
    /// `00 00 ff ff` sync-flush suffix), to exercise client buffering.
    pub split_zlib_frames: bool,
    /// Split every compressed message: a zlib-stream message across two websocket messages (as
    /// `split_zlib_frames`), a zstd-stream message into three websocket frames of one message (a
    /// binary frame without FIN and two continuations; a zstd message has no suffix to wait for,
    /// so it can only be fragmented), to exercise client reassembly.
    pub split_compressed_frames: bool,
    /// Dispatches kept per session for RESUME replay. A resume from before the oldest kept
    /// dispatch is refused with 4007.
    pub max_backlog: usize,
    /// Records kept per kind (gateway payloads, REST calls, emitted dispatches). Older ones are
    /// dropped. 0 disables recording (benchmarks).
    pub record_limit: usize,
    /// `session_start_limit.total`; each IDENTIFY uses one; at zero IDENTIFY closes with 4004
    /// (Discord resets the token of a bot that runs out).
    pub session_start_total: u32,
    /// `shards` recommended by `GET /gateway/bot`.
    pub recommended_shards: u32,
    /// `session_start_limit.max_concurrency` of `GET /gateway/bot`: IDENTIFYs are paced per
    /// bucket `shard_id % max_concurrency` (0 is treated as 1).
    pub max_concurrency: u32,
    /// At most one IDENTIFY per bucket per this long (Discord: 5 s); one sooner is answered with
    /// op 9 Invalid Session `d: false`, as Discord's docs say. Zero disables the check.
    pub identify_window: Duration,
    /// A session whose shard would hold more guilds than this is closed with 4011 (Discord:
    /// 2500).
    pub max_guilds_per_shard: usize,
    /// Large-bot sharding: `num_shards` must be a multiple of this, or IDENTIFY is closed with
    /// 4010 (Discord's "Sharding for Large Bots"). `None`: any count.
    pub shard_count_multiple: Option<u64>,
    /// REST calls without a `User-Agent: DiscordBot ($url, $versionNumber)` are refused with 400
    /// (Discord's "User Agent" rule; Discord itself answers with a Cloudflare block).
    pub require_user_agent: bool,
    /// `s` of a new session's first dispatch (READY). Discord starts at 1; 0 tests clients that
    /// mistake `s: 0` for "no sequence".
    pub first_seq: u64,
    /// Per-connection gateway send limit (Discord: 120 per 60 s), exceeded: close 4008.
    pub gateway_send_limit: RouteLimit,
    /// Op 8 Request Guild Members: one per guild per this long (Discord: 30 s); a sooner one gets
    /// a `RATE_LIMITED` dispatch.
    pub member_request_window: Duration,
    /// REST limits.
    pub rest: RestLimits,
    /// How long `nonce` + `enforce_nonce` deduplicates message sends.
    pub nonce_window: Duration,
    /// `Retry-After` used by `Fault::RateLimitStorm`.
    pub storm_retry_after: Duration,
    /// What a RESUME of a timed-out session (heartbeats stopped, or past `resume_window`) gets.
    /// `false` (default, Discord's docs): op 9 Invalid Session `d: false`; the 4009 close is sent
    /// when the session times out on a live connection. `true`: the RESUME is closed with 4009.
    pub expired_resume_closes_4009: bool,
    /// READY's `resume_gateway_url` when set (e.g. a closed port, to test a client's fallback to
    /// the `GET /gateway/bot` URL); `None`: `ws://ADDR/resume`.
    pub advertised_resume_url: Option<String>,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            token: "sim-token".to_owned(),
            heartbeat_interval: Duration::from_millis(41_250),
            heartbeat_slack: None,
            guilds: vec![GuildSeed::default()],
            bot_user: UserSeed {
                id: 1_000_000_000_000_000_900,
                username: "sim-bot".to_owned(),
                global_name: None,
                bot: true,
            },
            application_id: 1_000_000_000_000_000_900,
            privileged_intents_allowed: intents::PRIVILEGED,
            resume_window: Duration::from_secs(120),
            split_zlib_frames: false,
            split_compressed_frames: false,
            max_backlog: 100_000,
            record_limit: 1_000_000,
            session_start_total: 1000,
            recommended_shards: 1,
            max_concurrency: 1,
            identify_window: Duration::from_secs(5),
            max_guilds_per_shard: 2500,
            shard_count_multiple: None,
            require_user_agent: true,
            first_seq: 1,
            gateway_send_limit: RouteLimit::new(120, Duration::from_secs(60)),
            member_request_window: Duration::from_secs(30),
            rest: RestLimits::default(),
            nonce_window: Duration::from_secs(300),
            storm_retry_after: Duration::from_secs(1),
            expired_resume_closes_4009: false,
            advertised_resume_url: None,
        }
    }
}

impl SimConfig {
    /// The silence after which a connection counts as dead.
    pub fn heartbeat_timeout(&self) -> Duration {
        self.heartbeat_interval + self.heartbeat_slack.unwrap_or(self.heartbeat_interval / 2)
    }

    /// The first seeded guild.
    ///
    /// # Panics
    ///
    /// When `guilds` is empty.
    pub fn guild(&self) -> &GuildSeed {
        self.guilds
            .first()
            .expect("SimConfig::guilds is empty: there is no first guild")
    }

    /// The default configuration with `n` guilds: the demo guild first, then
    /// [`GuildSeed::numbered`] guilds 1..n, whose ids spread round-robin over any shard count.
    pub fn with_guilds(n: usize) -> Self {
        Self {
            guilds: (0..n).map(GuildSeed::numbered).collect(),
            ..Self::default()
        }
    }
}

/// The shard a guild's events go to: `(guild_id >> 22) % num_shards` (Discord's sharding
/// formula).
pub fn shard_of(guild_id: u64, num_shards: u64) -> u64 {
    (guild_id >> 22) % num_shards.max(1)
}

/// A guild snowflake (timestamp near the demo guild's) that lands on `shard` of `num_shards`;
/// `nth` picks one of many such ids (the `nth + 1`-th timestamp on that shard). Ids differ for
/// different `nth` with the same `num_shards`; the same timestamp can come out for another
/// `(shard, num_shards)` pair (it is then on both), so build one sim's guilds from one
/// `num_shards`.
///
/// ```
/// use discord_sim::config::{guild_id_on_shard, shard_of};
/// let id = guild_id_on_shard(2, 4, 0);
/// assert_eq!(shard_of(id, 4), 2);
/// assert_ne!(guild_id_on_shard(2, 4, 1), id);
/// ```
pub fn guild_id_on_shard(shard: u64, num_shards: u64, nth: u64) -> u64 {
    let n = num_shards.max(1);
    let base = (demo::GUILD_ID >> 22) + 1_000;
    let ts = base - base % n + shard % n + nth * n;
    (ts << 22) | 1
}

/// `limit` requests per `per`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteLimit {
    /// Requests allowed in one window.
    pub limit: u32,
    /// Window length.
    pub per: Duration,
}

impl RouteLimit {
    /// `limit` per `per`.
    pub const fn new(limit: u32, per: Duration) -> Self {
        Self { limit, per }
    }
}

/// REST rate limits, per bucket and major parameter (the channel id), plus the global limit.
#[derive(Clone, Debug)]
pub struct RestLimits {
    /// Requests per second across all routes (Discord: 50).
    pub global_per_sec: u32,
    /// `POST /channels/{id}/messages` (bucket per channel).
    pub message_send: RouteLimit,
    /// `PUT /channels/{id}/messages/{mid}/reactions/{emoji}/@me` (bucket per channel).
    pub reaction_add: RouteLimit,
    /// `POST /channels/{id}/typing` (bucket per channel).
    pub typing: RouteLimit,
    /// `GET /gateway/bot`.
    pub gateway_bot: RouteLimit,
}

impl Default for RestLimits {
    fn default() -> Self {
        Self {
            global_per_sec: 50,
            message_send: RouteLimit::new(5, Duration::from_secs(5)),
            reaction_add: RouteLimit::new(1, Duration::from_millis(250)),
            typing: RouteLimit::new(5, Duration::from_secs(5)),
            gateway_bot: RouteLimit::new(10, Duration::from_secs(5)),
        }
    }
}

/// A user (member or bot).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserSeed {
    /// Snowflake.
    pub id: u64,
    /// Unique username.
    pub username: String,
    /// Display name, if any.
    #[serde(default)]
    pub global_name: Option<String>,
    /// Whether this is a bot account.
    #[serde(default)]
    pub bot: bool,
}

impl UserSeed {
    /// A human user.
    pub fn human(id: u64, username: &str, global_name: &str) -> Self {
        Self {
            id,
            username: username.to_owned(),
            global_name: Some(global_name.to_owned()),
            bot: false,
        }
    }
}

/// Channel type, as Discord numbers them (0 text, 2 voice).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChannelKind {
    /// `GUILD_TEXT` (0).
    Text,
    /// `GUILD_VOICE` (2).
    Voice,
}

impl ChannelKind {
    /// Discord's numeric channel type.
    pub fn discord_type(self) -> u8 {
        match self {
            Self::Text => 0,
            Self::Voice => 2,
        }
    }
}

/// A guild channel.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelSeed {
    /// Snowflake.
    pub id: u64,
    /// Channel name.
    pub name: String,
    /// Text or voice.
    pub kind: ChannelKind,
}

/// Someone sitting in a voice channel.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VoiceStateSeed {
    /// The member.
    pub user_id: u64,
    /// The voice channel.
    pub channel_id: u64,
    /// Self-muted.
    #[serde(default)]
    pub self_mute: bool,
    /// Self-deafened.
    #[serde(default)]
    pub self_deaf: bool,
}

/// A guild the simulated bot is in, as it is at start.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuildSeed {
    /// Snowflake (the default is `1000000000000000001`).
    pub id: u64,
    /// Guild name.
    pub name: String,
    /// Owner (must be one of `members`).
    pub owner_id: u64,
    /// Text and voice channels.
    pub channels: Vec<ChannelSeed>,
    /// Members (the bot is added automatically).
    pub members: Vec<UserSeed>,
    /// Who is in voice at start.
    pub voice_states: Vec<VoiceStateSeed>,
}

/// Ids of the default demo guild, for tests that want to name them.
pub mod demo {
    /// The demo guild.
    pub const GUILD_ID: u64 = 1_000_000_000_000_000_001;
    /// `#general` (text).
    pub const GENERAL: u64 = 1_000_000_000_000_000_101;
    /// `#random` (text).
    pub const RANDOM: u64 = 1_000_000_000_000_000_102;
    /// `Lounge` (voice).
    pub const LOUNGE: u64 = 1_000_000_000_000_000_201;
    /// `Gaming` (voice).
    pub const GAMING: u64 = 1_000_000_000_000_000_202;
    /// Members alice, bob, carol, dave, erin.
    pub const ALICE: u64 = 1_000_000_000_000_001_001;
    /// bob.
    pub const BOB: u64 = 1_000_000_000_000_001_002;
    /// carol.
    pub const CAROL: u64 = 1_000_000_000_000_001_003;
    /// dave.
    pub const DAVE: u64 = 1_000_000_000_000_001_004;
    /// erin.
    pub const ERIN: u64 = 1_000_000_000_000_001_005;
    /// The bot user.
    pub const BOT: u64 = 1_000_000_000_000_000_900;
}

/// Names of [`GuildSeed::numbered`] guilds (then `Sim Guild N`).
const GUILD_NAMES: &[(&str, [&str; 3])] = &[
    ("Sim Guild", ["general", "random", "Lounge"]),
    ("Rust Club", ["rust-help", "showcase", "Pair Room"]),
    ("Gaming Night", ["lfg", "clips", "Squad Voice"]),
    ("Study Group", ["homework", "resources", "Quiet Room"]),
    ("Book Nook", ["reading", "reviews", "Reading Room"]),
];

impl GuildSeed {
    /// A guild with id `id` named `name`: text channels `id + 100` and `id + 101`, voice channel
    /// `id + 200`, the demo members (alice…erin; users can be in many guilds), nobody in voice.
    pub fn generated(id: u64, name: &str) -> Self {
        Self::generated_with(id, name, ["general", "random", "Lounge"])
    }

    fn generated_with(id: u64, name: &str, channels: [&str; 3]) -> Self {
        let base = Self::default();
        let ch = |id, name: &str, kind| ChannelSeed {
            id,
            name: name.to_owned(),
            kind,
        };
        Self {
            id,
            name: name.to_owned(),
            owner_id: base.owner_id,
            channels: vec![
                ch(id + 100, channels[0], ChannelKind::Text),
                ch(id + 101, channels[1], ChannelKind::Text),
                ch(id + 200, channels[2], ChannelKind::Voice),
            ],
            members: base.members,
            voice_states: vec![],
        }
    }

    /// Guild `i` of a multi-guild setup: 0 is the demo guild ([`GuildSeed::default`]); `i >= 1`
    /// gets the id whose timestamp is the demo guild's plus `i` (so guilds `0..n` land on shards
    /// round-robin for any shard count), a distinct name and distinct channel names, with
    /// channels as in [`GuildSeed::generated`].
    pub fn numbered(i: usize) -> Self {
        if i == 0 {
            return Self::default();
        }
        let id = (((demo::GUILD_ID >> 22) + i as u64) << 22) | 1;
        match GUILD_NAMES.get(i) {
            Some((name, channels)) => Self::generated_with(id, name, *channels),
            None => Self::generated(id, &format!("Sim Guild {i}")),
        }
    }
}

impl Default for GuildSeed {
    fn default() -> Self {
        use demo::*;
        let ch = |id, name: &str, kind| ChannelSeed {
            id,
            name: name.to_owned(),
            kind,
        };
        Self {
            id: GUILD_ID,
            name: "Sim Guild".to_owned(),
            owner_id: ALICE,
            channels: vec![
                ch(GENERAL, "general", ChannelKind::Text),
                ch(RANDOM, "random", ChannelKind::Text),
                ch(LOUNGE, "Lounge", ChannelKind::Voice),
                ch(GAMING, "Gaming", ChannelKind::Voice),
            ],
            members: vec![
                UserSeed::human(ALICE, "alice", "Alice"),
                UserSeed::human(BOB, "bob", "Bob"),
                UserSeed::human(CAROL, "carol", "Carol"),
                UserSeed::human(DAVE, "dave", "Dave"),
                UserSeed::human(ERIN, "erin", "Erin"),
            ],
            voice_states: vec![
                VoiceStateSeed {
                    user_id: ALICE,
                    channel_id: LOUNGE,
                    self_mute: false,
                    self_deaf: false,
                },
                VoiceStateSeed {
                    user_id: BOB,
                    channel_id: LOUNGE,
                    self_mute: true,
                    self_deaf: false,
                },
            ],
        }
    }
}
