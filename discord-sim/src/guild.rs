//! The guilds as they are now: for each, members, channels, who is in which voice channel, and
//! which messages exist. Events change them (a VOICE_STATE_UPDATE moves someone,
//! GUILD_MEMBER_REMOVE removes them), so a client that identifies later gets GUILD_CREATEs that
//! agree with the events before them, and REST can answer "Unknown Message" for reactions to
//! messages that never existed.
//!
//! [`Guilds`] is the bot's membership: the guilds it is in (some may be unavailable during an
//! outage) and the ones it left (kept, so REST can tell "Missing Access" from "Unknown Channel"
//! and a rejoin gets the old state back).

use std::collections::{BTreeMap, HashMap, VecDeque};

use serde_json::{json, Value};

use crate::clock::unix_micros;
use crate::config::{ChannelKind, ChannelSeed, GuildSeed, UserSeed};
use crate::payloads::{self, VoiceStateArgs};

/// Messages remembered for reactions and deletes.
const MESSAGES_KEPT: usize = 50_000;

/// Someone in a voice channel.
#[derive(Clone, Debug)]
pub struct VoiceEntry {
    /// The voice channel.
    pub channel_id: u64,
    /// Self-muted.
    pub self_mute: bool,
    /// Self-deafened.
    pub self_deaf: bool,
    /// Voice session id.
    pub session_id: String,
}

/// Mutable state of one guild.
#[derive(Debug)]
pub struct GuildState {
    /// Guild id.
    pub id: u64,
    /// In an outage: Discord sends nothing for it, and sessions that identify get a
    /// GUILD_DELETE `{id, unavailable: true}` instead of its GUILD_CREATE.
    pub unavailable: bool,
    name: String,
    owner_id: u64,
    channels: Vec<ChannelSeed>,
    members: Vec<(UserSeed, u64)>,
    voice: BTreeMap<u64, VoiceEntry>,
    messages: HashMap<u64, u64>,
    message_order: VecDeque<u64>,
    bot: UserSeed,
    created_us: u64,
}

impl GuildState {
    /// The guild at start, with the bot as a member.
    pub fn new(seed: &GuildSeed, bot: &UserSeed) -> Self {
        let now = unix_micros();
        let mut members: Vec<(UserSeed, u64)> =
            seed.members.iter().map(|u| (u.clone(), now)).collect();
        if !members.iter().any(|(u, _)| u.id == bot.id) {
            members.push((bot.clone(), now));
        }
        let voice = seed
            .voice_states
            .iter()
            .map(|v| {
                (
                    v.user_id,
                    VoiceEntry {
                        channel_id: v.channel_id,
                        self_mute: v.self_mute,
                        self_deaf: v.self_deaf,
                        session_id: format!("voice-{}", v.user_id),
                    },
                )
            })
            .collect();
        Self {
            id: seed.id,
            unavailable: false,
            name: seed.name.clone(),
            owner_id: seed.owner_id,
            channels: seed.channels.clone(),
            members,
            voice,
            messages: HashMap::new(),
            message_order: VecDeque::new(),
            bot: bot.clone(),
            created_us: now,
        }
    }

    /// The guild's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// All channels.
    pub fn channels(&self) -> &[ChannelSeed] {
        &self.channels
    }

    /// The bot user.
    pub fn bot(&self) -> &UserSeed {
        &self.bot
    }

    /// A channel by id.
    pub fn channel(&self, id: u64) -> Option<&ChannelSeed> {
        self.channels.iter().find(|c| c.id == id)
    }

    /// Channels of a kind.
    pub fn channels_of(&self, kind: ChannelKind) -> Vec<u64> {
        self.channels
            .iter()
            .filter(|c| c.kind == kind)
            .map(|c| c.id)
            .collect()
    }

    /// Current members (user, joined-at micros).
    pub fn members(&self) -> &[(UserSeed, u64)] {
        &self.members
    }

    /// A member by id.
    pub fn member(&self, id: u64) -> Option<&(UserSeed, u64)> {
        self.members.iter().find(|(u, _)| u.id == id)
    }

    /// A member by id, or a stand-in user for scripted events about someone not in the seed.
    pub fn user_or_stand_in(&self, id: u64) -> (UserSeed, u64) {
        self.member(id).cloned().unwrap_or_else(|| {
            (
                UserSeed {
                    id,
                    username: format!("user{id}"),
                    global_name: None,
                    bot: false,
                },
                self.created_us,
            )
        })
    }

    /// Adds a member that is not there yet (scripted events about new users).
    pub fn ensure_member(&mut self, user: UserSeed) {
        if self.member(user.id).is_none() {
            self.members.push((user, unix_micros()));
        }
    }

    /// Removes a member (and their voice state); returns them if they were there.
    pub fn remove_member(&mut self, id: u64) -> Option<UserSeed> {
        self.voice.remove(&id);
        let idx = self.members.iter().position(|(u, _)| u.id == id)?;
        Some(self.members.remove(idx).0)
    }

    /// Where someone is in voice.
    pub fn voice_of(&self, user_id: u64) -> Option<&VoiceEntry> {
        self.voice.get(&user_id)
    }

    /// All voice states.
    pub fn voice_states(&self) -> impl Iterator<Item = (&u64, &VoiceEntry)> {
        self.voice.iter()
    }

    /// Sets or clears someone's voice channel; returns the voice session id.
    pub fn set_voice(
        &mut self,
        user_id: u64,
        channel_id: Option<u64>,
        self_mute: bool,
        self_deaf: bool,
    ) -> String {
        match channel_id {
            Some(channel_id) => {
                let session_id = self
                    .voice
                    .get(&user_id)
                    .map(|v| v.session_id.clone())
                    .unwrap_or_else(|| format!("voice-{user_id}-{}", unix_micros()));
                self.voice.insert(
                    user_id,
                    VoiceEntry {
                        channel_id,
                        self_mute,
                        self_deaf,
                        session_id: session_id.clone(),
                    },
                );
                session_id
            }
            None => self
                .voice
                .remove(&user_id)
                .map(|v| v.session_id)
                .unwrap_or_else(|| format!("voice-{user_id}")),
        }
    }

    /// Remembers a message so reactions and deletes can find it.
    pub fn remember_message(&mut self, message_id: u64, channel_id: u64) {
        self.messages.insert(message_id, channel_id);
        self.message_order.push_back(message_id);
        while self.message_order.len() > MESSAGES_KEPT {
            if let Some(old) = self.message_order.pop_front() {
                self.messages.remove(&old);
            }
        }
    }

    /// Forgets a deleted message.
    pub fn forget_message(&mut self, message_id: u64) {
        self.messages.remove(&message_id);
    }

    /// The channel a known message is in.
    pub fn message_channel(&self, message_id: u64) -> Option<u64> {
        self.messages.get(&message_id).copied()
    }

    /// A recent message id in a channel, if any (for generated reactions).
    pub fn recent_message(&self, pick: usize) -> Option<(u64, u64)> {
        let n = self.message_order.len();
        if n == 0 {
            return None;
        }
        let id = self.message_order[n - 1 - pick % n.min(20)];
        self.messages.get(&id).map(|c| (id, *c))
    }

    /// The GUILD_CREATE payload as a session with `intents` gets it: without GUILD_MEMBERS only
    /// the bot and members in voice are listed, without GUILD_VOICE_STATES no voice states.
    pub fn guild_create_for(&self, intents: u64) -> Value {
        let mut guild = self.guild_create();
        if intents & crate::gateway::intents::GUILD_MEMBERS == 0 {
            let bot = self.bot.id;
            if let Some(Value::Array(ms)) = guild.get_mut("members") {
                ms.retain(|m| {
                    let id = m["user"]["id"]
                        .as_str()
                        .and_then(|s| s.parse::<u64>().ok())
                        .unwrap_or(0);
                    id == bot || self.voice.contains_key(&id)
                });
            }
        }
        if intents & crate::gateway::intents::GUILD_VOICE_STATES == 0 {
            guild["voice_states"] = json!([]);
        }
        guild
    }

    /// The GUILD_CREATE payload: the whole guild with channels, members and voice states.
    pub fn guild_create(&self) -> Value {
        let channels: Vec<Value> = self
            .channels
            .iter()
            .enumerate()
            .map(|(i, c)| payloads::channel(c, self.id, i))
            .collect();
        let members: Vec<Value> = self
            .members
            .iter()
            .map(|(u, j)| payloads::member(u, *j, true))
            .collect();
        let voice_states: Vec<Value> = self
            .voice
            .iter()
            .filter_map(|(uid, v)| {
                let (user, joined) = self.member(*uid)?;
                Some(payloads::voice_state(&VoiceStateArgs {
                    guild_id: self.id,
                    channel_id: Some(v.channel_id),
                    user,
                    joined_at_us: *joined,
                    session_id: &v.session_id,
                    self_mute: v.self_mute,
                    self_deaf: v.self_deaf,
                    with_member: false,
                }))
            })
            .collect();
        let bot_joined = self
            .member(self.bot.id)
            .map(|m| m.1)
            .unwrap_or(self.created_us);
        json!({
            "id": self.id.to_string(),
            "name": self.name,
            "icon": null,
            "icon_hash": null,
            "splash": null,
            "discovery_splash": null,
            "owner_id": self.owner_id.to_string(),
            "region": "deprecated",
            "afk_channel_id": null,
            "afk_timeout": 300,
            "widget_enabled": false,
            "widget_channel_id": null,
            "verification_level": 0,
            "default_message_notifications": 0,
            "explicit_content_filter": 0,
            "roles": [payloads::everyone_role(self.id)],
            "emojis": [],
            "features": [],
            "mfa_level": 0,
            "application_id": null,
            "system_channel_id": self.channels_of(ChannelKind::Text).first().map(|c| c.to_string()),
            "system_channel_flags": 0,
            "rules_channel_id": null,
            "max_presences": null,
            "max_members": 500_000,
            "vanity_url_code": null,
            "description": null,
            "banner": null,
            "premium_tier": 0,
            "premium_subscription_count": 0,
            "preferred_locale": "en-US",
            "public_updates_channel_id": null,
            "max_video_channel_users": 25,
            "max_stage_video_channel_users": 50,
            "nsfw": false,
            "nsfw_level": 0,
            "stickers": [],
            "premium_progress_bar_enabled": false,
            "safety_alerts_channel_id": null,
            "joined_at": crate::clock::iso8601(bot_joined),
            "large": false,
            "unavailable": false,
            "member_count": self.members.len(),
            "voice_states": voice_states,
            "members": members,
            "channels": channels,
            "threads": [],
            "presences": [],
            "stage_instances": [],
            "guild_scheduled_events": [],
            "soundboard_sounds": [],
        })
    }
}

/// Whether a channel id is one of the bot's guilds', one of a guild it left, or unknown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChannelOwner {
    /// In a guild the bot is in (index into [`Guilds::list`]).
    Current(usize),
    /// In a guild the bot left: Discord answers "Missing Access".
    Left,
    /// No guild the sim knows has it.
    Unknown,
}

/// The guilds the bot is in, and the ones it left.
#[derive(Debug)]
pub struct Guilds {
    list: Vec<GuildState>,
    left: Vec<GuildState>,
    bot: UserSeed,
}

impl Guilds {
    /// The seeded guilds, with the bot as a member of each.
    pub fn new(seeds: &[GuildSeed], bot: &UserSeed) -> Self {
        let mut list: Vec<GuildState> = Vec::with_capacity(seeds.len());
        for seed in seeds {
            if list.iter().any(|g| g.id == seed.id) {
                tracing::warn!(guild_id = seed.id, "duplicate guild seed ignored");
                continue;
            }
            list.push(GuildState::new(seed, bot));
        }
        Self {
            list,
            left: Vec::new(),
            bot: bot.clone(),
        }
    }

    /// The bot user.
    pub fn bot(&self) -> &UserSeed {
        &self.bot
    }

    /// Guilds the bot is in, in join order.
    pub fn list(&self) -> &[GuildState] {
        &self.list
    }

    /// Guilds the bot is in, mutable.
    pub fn list_mut(&mut self) -> &mut [GuildState] {
        &mut self.list
    }

    /// Guilds the bot left (most recent last).
    pub fn left(&self) -> &[GuildState] {
        &self.left
    }

    /// The first guild, if the bot is in any.
    pub fn first(&self) -> Option<&GuildState> {
        self.list.first()
    }

    /// A guild the bot is in.
    pub fn get(&self, id: u64) -> Option<&GuildState> {
        self.list.iter().find(|g| g.id == id)
    }

    /// A guild the bot is in, mutable.
    pub fn get_mut(&mut self, id: u64) -> Option<&mut GuildState> {
        self.list.iter_mut().find(|g| g.id == id)
    }

    /// Index of a guild the bot is in.
    pub fn index_of(&self, id: u64) -> Option<usize> {
        self.list.iter().position(|g| g.id == id)
    }

    /// Who has `channel_id`.
    pub fn channel_owner(&self, channel_id: u64) -> ChannelOwner {
        if let Some(i) = self
            .list
            .iter()
            .position(|g| g.channel(channel_id).is_some())
        {
            ChannelOwner::Current(i)
        } else if self.left.iter().any(|g| g.channel(channel_id).is_some()) {
            ChannelOwner::Left
        } else {
            ChannelOwner::Unknown
        }
    }

    /// The guild (the bot is in) that has `channel_id`, mutable.
    pub fn by_channel_mut(&mut self, channel_id: u64) -> Option<&mut GuildState> {
        self.list
            .iter_mut()
            .find(|g| g.channel(channel_id).is_some())
    }

    /// Whether dispatches for `guild_id` are sent now (the bot is in it and it is available).
    pub fn is_live(&self, guild_id: u64) -> bool {
        self.get(guild_id).is_some_and(|g| !g.unavailable)
    }

    /// Guilds (available or not) on shard `shard` of `num_shards`.
    pub fn on_shard(&self, shard: u64, num_shards: u64) -> impl Iterator<Item = &GuildState> {
        self.list
            .iter()
            .filter(move |g| crate::config::shard_of(g.id, num_shards) == shard)
    }

    /// The bot joins a guild: one it left before comes back as it was, a new one from `seed`.
    /// `None` if the bot is already in it.
    pub fn join(&mut self, seed: &GuildSeed) -> Option<&GuildState> {
        if self.get(seed.id).is_some() {
            return None;
        }
        let mut g = match self.left.iter().position(|g| g.id == seed.id) {
            Some(i) => self.left.remove(i),
            None => GuildState::new(seed, &self.bot),
        };
        g.unavailable = false;
        self.list.push(g);
        self.list.last()
    }

    /// The bot leaves (or is removed from) a guild; `false` if it wasn't in it.
    pub fn leave(&mut self, id: u64) -> bool {
        match self.index_of(id) {
            Some(i) => {
                let g = self.list.remove(i);
                self.left.retain(|l| l.id != id);
                self.left.push(g);
                true
            }
            None => false,
        }
    }
}
