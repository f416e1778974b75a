//! The guild as it is now: members, channels, who is in which voice channel, and which messages
//! exist. Events change it (a VOICE_STATE_UPDATE moves someone, GUILD_MEMBER_REMOVE removes them),
//! so a client that identifies later gets a GUILD_CREATE that agrees with the events before it,
//! and REST can answer "Unknown Message" for reactions to messages that never existed.

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

/// Mutable state of the one guild.
#[derive(Debug)]
pub struct GuildState {
    /// Guild id.
    pub id: u64,
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
