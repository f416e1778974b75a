//! Voice-channel membership and drop-out detection for one guild, as plain data so it can be
//! stored in the Durable Object and tested natively.
//!
//! Fed by GUILD_CREATE (`voice_states`, the full truth) and VOICE_STATE_UPDATE (one change), it
//! emits the `voice.*` stream events of SPEC.md. A leave starts a grace period: coming back to any
//! voice channel of the guild within it is `voice.recovered`, staying away is `voice.dropout`, fired
//! by [`VoiceTracker::due_dropouts`] from a Durable Object alarm set to [`VoiceTracker::next_due`].
//! Every GUILD_CREATE after the first (a re-identify, where updates may have been missed) is
//! diffed against what is known, so clients never keep a ghost member.

use contracts::{Snowflake, Version, VoiceEvent, VoiceEventKind, VoiceFlags};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The fields of a Discord voice state this tracker uses (GUILD_CREATE's `voice_states` items and
/// VOICE_STATE_UPDATE's `d`); everything else Discord sends is ignored.
#[derive(Clone, Debug, Deserialize)]
pub struct DiscordVoiceState {
    #[serde(default)]
    pub guild_id: Option<Snowflake>,
    pub channel_id: Option<Snowflake>,
    pub user_id: Snowflake,
    #[serde(default)]
    pub mute: bool,
    #[serde(default)]
    pub deaf: bool,
    #[serde(default)]
    pub self_mute: bool,
    #[serde(default)]
    pub self_deaf: bool,
    #[serde(default)]
    pub self_stream: Option<bool>,
    #[serde(default)]
    pub self_video: bool,
}

impl DiscordVoiceState {
    fn flags(&self) -> VoiceFlags {
        VoiceFlags {
            mute: self.mute,
            deaf: self.deaf,
            self_mute: self.self_mute,
            self_deaf: self.self_deaf,
            self_stream: self.self_stream.unwrap_or(false),
            self_video: self.self_video,
        }
    }
}

/// Who is in a voice channel, and since when.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    pub user_id: Snowflake,
    pub channel_id: Snowflake,
    pub flags: VoiceFlags,
    /// Unix ms of the join (or of the move into this channel).
    pub since: u64,
}

/// A leave whose grace period is running.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pending {
    pub channel_id: Snowflake,
    pub left_at: u64,
    pub due_at: u64,
}

/// One guild's voice membership and pending drop-outs; serializable for Durable Object storage.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VoiceTracker {
    pub guild_id: Option<Snowflake>,
    /// False until the first GUILD_CREATE: that one seeds silently.
    pub seeded: bool,
    pub members: BTreeMap<Snowflake, Member>,
    pub pending: BTreeMap<Snowflake, Pending>,
}

impl VoiceTracker {
    fn event(
        &self,
        kind: VoiceEventKind,
        user_id: Snowflake,
        channel_id: Snowflake,
        from: Option<Snowflake>,
        flags: Option<VoiceFlags>,
        at: u64,
    ) -> VoiceEvent {
        VoiceEvent {
            version: Version,
            kind,
            guild_id: self.guild_id.unwrap_or(Snowflake(0)),
            user_id,
            channel_id,
            from_channel_id: from,
            flags,
            at,
        }
    }

    /// Applies one VOICE_STATE_UPDATE received at `at` (unix ms).
    pub fn apply_update(
        &mut self,
        state: &DiscordVoiceState,
        at: u64,
        grace_ms: u64,
    ) -> Vec<VoiceEvent> {
        if self.guild_id.is_none() {
            self.guild_id = state.guild_id;
        }
        let user = state.user_id;
        let flags = state.flags();
        let previous = self.members.get(&user).cloned();
        let mut out = vec![];
        match (previous, state.channel_id) {
            (None, None) => {}
            (Some(prev), None) => {
                self.members.remove(&user);
                out.push(self.event(
                    VoiceEventKind::Leave,
                    user,
                    prev.channel_id,
                    None,
                    Some(prev.flags),
                    at,
                ));
                self.pending.insert(
                    user,
                    Pending {
                        channel_id: prev.channel_id,
                        left_at: at,
                        due_at: at.saturating_add(grace_ms),
                    },
                );
            }
            (None, Some(channel)) => {
                self.members.insert(
                    user,
                    Member {
                        user_id: user,
                        channel_id: channel,
                        flags,
                        since: at,
                    },
                );
                out.push(self.event(VoiceEventKind::Join, user, channel, None, Some(flags), at));
                if let Some(p) = self.pending.remove(&user) {
                    out.push(self.event(
                        VoiceEventKind::Recovered,
                        user,
                        channel,
                        Some(p.channel_id),
                        Some(flags),
                        at,
                    ));
                }
            }
            (Some(prev), Some(channel)) if prev.channel_id != channel => {
                self.members.insert(
                    user,
                    Member {
                        user_id: user,
                        channel_id: channel,
                        flags,
                        since: at,
                    },
                );
                out.push(self.event(
                    VoiceEventKind::Move,
                    user,
                    channel,
                    Some(prev.channel_id),
                    Some(flags),
                    at,
                ));
            }
            (Some(prev), Some(channel)) => {
                if prev.flags != flags {
                    self.members.insert(user, Member { flags, ..prev });
                    out.push(self.event(
                        VoiceEventKind::Update,
                        user,
                        channel,
                        None,
                        Some(flags),
                        at,
                    ));
                }
            }
        }
        out
    }

    /// Rebuilds membership from a GUILD_CREATE's `voice_states` and returns the differences as
    /// events (none for the very first one, which only seeds).
    pub fn reseed(
        &mut self,
        guild_id: Snowflake,
        states: &[DiscordVoiceState],
        at: u64,
        grace_ms: u64,
    ) -> Vec<VoiceEvent> {
        self.guild_id = Some(guild_id);
        if !self.seeded {
            self.seeded = true;
            self.members = states
                .iter()
                .filter_map(|s| {
                    s.channel_id.map(|c| {
                        (
                            s.user_id,
                            Member {
                                user_id: s.user_id,
                                channel_id: c,
                                flags: s.flags(),
                                since: at,
                            },
                        )
                    })
                })
                .collect();
            // A leave seen before the first GUILD_CREATE must not become a dropout for someone
            // the seed shows present.
            let members = &self.members;
            self.pending.retain(|u, _| !members.contains_key(u));
            return vec![];
        }
        let mut out = vec![];
        let present: BTreeMap<Snowflake, &DiscordVoiceState> = states
            .iter()
            .filter(|s| s.channel_id.is_some())
            .map(|s| (s.user_id, s))
            .collect();
        // Gone while we weren't looking: a leave (and a grace period, as for any leave).
        let gone: Vec<Snowflake> = self
            .members
            .keys()
            .filter(|u| !present.contains_key(u))
            .copied()
            .collect();
        for user in gone {
            let leave = DiscordVoiceState {
                guild_id: Some(guild_id),
                channel_id: None,
                user_id: user,
                mute: false,
                deaf: false,
                self_mute: false,
                self_deaf: false,
                self_stream: None,
                self_video: false,
            };
            out.extend(self.apply_update(&leave, at, grace_ms));
        }
        for state in present.values() {
            out.extend(self.apply_update(state, at, grace_ms));
        }
        out
    }

    /// Drop-outs whose grace period ended by `now`; they leave the pending list.
    pub fn due_dropouts(&mut self, now: u64) -> Vec<VoiceEvent> {
        let due: Vec<(Snowflake, Pending)> = self
            .pending
            .iter()
            .filter(|(_, p)| p.due_at <= now)
            .map(|(u, p)| (*u, p.clone()))
            .collect();
        due.into_iter()
            .map(|(user, p)| {
                self.pending.remove(&user);
                self.event(
                    VoiceEventKind::Dropout,
                    user,
                    p.channel_id,
                    None,
                    None,
                    p.left_at,
                )
            })
            .collect()
    }

    /// When the next drop-out falls due (for the Durable Object alarm).
    pub fn next_due(&self) -> Option<u64> {
        self.pending.values().map(|p| p.due_at).min()
    }

    /// `GET /api/voice`: channels and their members, optionally one channel.
    pub fn snapshot(&self, channel: Option<Snowflake>) -> serde_json::Value {
        let mut channels: BTreeMap<String, Vec<&Member>> = BTreeMap::new();
        for m in self
            .members
            .values()
            .filter(|m| channel.is_none_or(|c| c == m.channel_id))
        {
            channels
                .entry(m.channel_id.to_string())
                .or_default()
                .push(m);
        }
        serde_json::json!({
            "version": contracts::VERSION,
            "guild_id": self.guild_id,
            "channels": channels,
            "pending_dropouts": self.pending.iter()
                .filter(|(_, p)| channel.is_none_or(|c| c == p.channel_id))
                .map(|(u, p)| serde_json::json!({"user_id": u, "channel_id": p.channel_id, "left_at": p.left_at, "due_at": p.due_at}))
                .collect::<Vec<_>>(),
        })
    }
}

/// Voice settings: `VOICE_GRACE_MS` (default 30000) and `LEGACY_VOICE_WS` (default true).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VoiceConfig {
    pub grace_ms: u64,
    pub legacy_ws: bool,
}

pub const DEFAULT_GRACE_MS: u64 = 30_000;

impl VoiceConfig {
    /// Reads the settings through `get`; a bad value names the variable.
    pub fn from_lookup(
        get: impl Fn(&str) -> Option<String>,
    ) -> Result<VoiceConfig, crate::config::ConfigError> {
        let get = |k: &str| {
            get(k)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        let grace_ms = match get("VOICE_GRACE_MS") {
            None => DEFAULT_GRACE_MS,
            Some(v) => match v.parse::<u64>() {
                Ok(n) if (1..=86_400_000).contains(&n) => n,
                _ => {
                    return Err(crate::config::ConfigError {
                        var: "VOICE_GRACE_MS",
                        message: format!("expected milliseconds in 1..=86400000, got {v:?}"),
                    })
                }
            },
        };
        let legacy_ws = match get("LEGACY_VOICE_WS").as_deref() {
            None | Some("true") | Some("1") => true,
            Some("false") | Some("0") => false,
            Some(other) => {
                return Err(crate::config::ConfigError {
                    var: "LEGACY_VOICE_WS",
                    message: format!("expected true or false, got {other:?}"),
                })
            }
        };
        Ok(VoiceConfig {
            grace_ms,
            legacy_ws,
        })
    }
}

/// The parts of a GUILD_CREATE the tracker reads.
#[derive(Debug, Deserialize)]
struct GuildCreate {
    id: Snowflake,
    #[serde(default)]
    unavailable: Option<bool>,
    #[serde(default)]
    voice_states: Option<Vec<DiscordVoiceState>>,
}

impl VoiceTracker {
    /// Feeds one ingested dispatch (`kind` = Discord's `t`, `d` its raw JSON, `at` the holder's
    /// `received_at`). Only GUILD_CREATE and VOICE_STATE_UPDATE of this tracker's guild
    /// (`guild`, when the hub knows it) matter; anything else, or a `d` that does not parse,
    /// changes nothing. Returns `None` when the dispatch was not a voice input, else the events.
    pub fn feed(
        &mut self,
        kind: &str,
        guild: Option<Snowflake>,
        d: &str,
        at: u64,
        grace_ms: u64,
    ) -> Option<Vec<VoiceEvent>> {
        let mine = guild.or(self.guild_id);
        let ours = |g: Option<Snowflake>| match (mine, g) {
            (Some(mine), Some(g)) => mine == g,
            _ => true,
        };
        match kind {
            "GUILD_CREATE" => {
                let gc: GuildCreate = serde_json::from_str(d).ok()?;
                // An outage notice carries no voice states: it is not the truth about membership.
                if gc.unavailable == Some(true) || !ours(Some(gc.id)) {
                    return None;
                }
                let states = gc.voice_states?;
                Some(self.reseed(gc.id, &states, at, grace_ms))
            }
            "VOICE_STATE_UPDATE" => {
                let state: DiscordVoiceState = serde_json::from_str(d).ok()?;
                if state.guild_id.is_none() || !ours(state.guild_id) {
                    return None;
                }
                Some(self.apply_update(&state, at, grace_ms))
            }
            _ => None,
        }
    }
}

/// A voice event as a stored stream event: name `voice.*`, its channel for `?channels=`, and the
/// contracts `VoiceEvent` as data (cursor and time are set when it is appended).
pub fn edge_event(event: &VoiceEvent) -> crate::event::EdgeEvent {
    crate::event::EdgeEvent {
        cursor: 0,
        at: 0,
        name: event.kind.event_name().to_string(),
        channel: Some(event.channel_id.get()),
        data: serde_json::to_string(event).expect("voice event serializes"),
        user: None,
    }
}

/// The deprecated WebSocket's messages (`/api/internal/events`): unversioned, as the old
/// voice-dropout clients expect. A move is a leave from one channel and a join to the other;
/// flag updates have no old form.
pub fn legacy_messages(event: &VoiceEvent) -> Vec<String> {
    let msg = |kind: &str, channel: Snowflake, at: u64| {
        serde_json::json!({
            "type": kind,
            "channelId": channel.to_string(),
            "userId": event.user_id.to_string(),
            "at": at,
        })
        .to_string()
    };
    match event.kind {
        VoiceEventKind::Join => vec![msg("voice_join", event.channel_id, event.at)],
        VoiceEventKind::Leave => vec![msg("voice_leave", event.channel_id, event.at)],
        VoiceEventKind::Move => {
            let mut out = vec![];
            if let Some(from) = event.from_channel_id {
                out.push(msg("voice_leave", from, event.at));
            }
            out.push(msg("voice_join", event.channel_id, event.at));
            out
        }
        VoiceEventKind::Dropout => vec![msg("voice_dropout", event.channel_id, event.at)],
        VoiceEventKind::Recovered => vec![msg("voice_recovered", event.channel_id, event.at)],
        VoiceEventKind::Update => vec![],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use VoiceEventKind::*;

    const G: Snowflake = Snowflake(1);
    const GRACE: u64 = 30_000;

    fn vs(user: u64, channel: Option<u64>) -> DiscordVoiceState {
        DiscordVoiceState {
            guild_id: Some(G),
            channel_id: channel.map(Snowflake),
            user_id: Snowflake(user),
            mute: false,
            deaf: false,
            self_mute: false,
            self_deaf: false,
            self_stream: None,
            self_video: false,
        }
    }

    fn kinds(events: &[VoiceEvent]) -> Vec<(VoiceEventKind, u64, u64)> {
        events
            .iter()
            .map(|e| (e.kind, e.user_id.0, e.channel_id.0))
            .collect()
    }

    fn seeded(states: &[DiscordVoiceState]) -> VoiceTracker {
        let mut t = VoiceTracker::default();
        assert!(
            t.reseed(G, states, 0, GRACE).is_empty(),
            "the first GUILD_CREATE only seeds"
        );
        t
    }

    #[test]
    fn join_move_update_leave() {
        let mut t = seeded(&[]);
        assert_eq!(
            kinds(&t.apply_update(&vs(5, Some(100)), 10, GRACE)),
            [(Join, 5, 100)]
        );
        let moved = t.apply_update(&vs(5, Some(200)), 20, GRACE);
        assert_eq!(kinds(&moved), [(Move, 5, 200)]);
        assert_eq!(moved[0].from_channel_id, Some(Snowflake(100)));
        let mut muted = vs(5, Some(200));
        muted.self_mute = true;
        let upd = t.apply_update(&muted, 30, GRACE);
        assert_eq!(kinds(&upd), [(Update, 5, 200)]);
        assert!(upd[0].flags.unwrap().self_mute);
        assert!(
            t.apply_update(&muted, 31, GRACE).is_empty(),
            "no change, no event"
        );
        assert_eq!(
            kinds(&t.apply_update(&vs(5, None), 40, GRACE)),
            [(Leave, 5, 200)]
        );
        assert!(t.members.is_empty());
        assert_eq!(t.next_due(), Some(40 + GRACE));
    }

    #[test]
    fn dropout_after_grace_and_only_once() {
        let mut t = seeded(&[vs(5, Some(100))]);
        t.apply_update(&vs(5, None), 1_000, GRACE);
        assert!(t.due_dropouts(1_000 + GRACE - 1).is_empty());
        let drop = t.due_dropouts(1_000 + GRACE);
        assert_eq!(kinds(&drop), [(Dropout, 5, 100)]);
        assert_eq!(drop[0].at, 1_000, "a dropout is dated by the leave");
        assert!(t.due_dropouts(10_000_000).is_empty());
        assert_eq!(t.next_due(), None);
    }

    #[test]
    fn quick_rejoin_recovers_and_cancels_the_dropout() {
        let mut t = seeded(&[vs(5, Some(100))]);
        t.apply_update(&vs(5, None), 1_000, GRACE);
        let back = t.apply_update(&vs(5, Some(300)), 5_000, GRACE);
        assert_eq!(kinds(&back), [(Join, 5, 300), (Recovered, 5, 300)]);
        assert!(t.due_dropouts(1_000_000).is_empty());
    }

    #[test]
    fn a_reidentify_emits_the_corrections() {
        let mut t = seeded(&[vs(1, Some(100)), vs(2, Some(100)), vs(3, Some(200))]);
        // While the holder was away: 1 left, 2 moved to 200, 4 joined 100; 3 unchanged.
        let events = t.reseed(
            G,
            &[vs(2, Some(200)), vs(3, Some(200)), vs(4, Some(100))],
            50,
            GRACE,
        );
        let mut got = kinds(&events);
        got.sort_by_key(|k| (k.1, k.2));
        assert_eq!(got, [(Leave, 1, 100), (Move, 2, 200), (Join, 4, 100)]);
        assert_eq!(t.members.len(), 3);
        assert!(
            t.pending.contains_key(&Snowflake(1)),
            "a ghost's leave starts a grace period"
        );
    }

    #[test]
    fn survives_storage_round_trip() {
        let mut t = seeded(&[vs(1, Some(100))]);
        t.apply_update(&vs(1, None), 7, GRACE);
        let stored = serde_json::to_string(&t).unwrap();
        let back: VoiceTracker = serde_json::from_str(&stored).unwrap();
        assert_eq!(back, t);
    }

    #[test]
    fn parses_discord_payloads_and_ignores_extra_fields() {
        let d = r#"{"guild_id":"1","channel_id":"100","user_id":"5","session_id":"x","deaf":false,"mute":false,
                    "self_deaf":true,"self_mute":true,"self_video":false,"suppress":false,"member":{"user":{}}}"#;
        let s: DiscordVoiceState = serde_json::from_str(d).unwrap();
        assert!(s.self_deaf && s.self_mute && !s.flags().self_stream);
    }

    #[test]
    fn legacy_messages_keep_the_old_shape() {
        let mut t = seeded(&[vs(5, Some(100))]);
        let moved = t.apply_update(&vs(5, Some(200)), 9, GRACE);
        let msgs: Vec<serde_json::Value> = legacy_messages(&moved[0])
            .iter()
            .map(|m| serde_json::from_str(m).unwrap())
            .collect();
        assert_eq!(
            msgs[0],
            serde_json::json!({"type":"voice_leave","channelId":"100","userId":"5","at":9})
        );
        assert_eq!(
            msgs[1],
            serde_json::json!({"type":"voice_join","channelId":"200","userId":"5","at":9})
        );
        assert!(
            msgs.iter().all(|m| m.get("version").is_none()),
            "the old protocol is unversioned"
        );
    }

    #[test]
    fn feed_reads_discord_dispatches() {
        let mut t = VoiceTracker::default();
        let gc = r#"{"id":"1","name":"g","voice_states":[{"channel_id":"100","user_id":"5","session_id":"s","deaf":false,"mute":false,"self_deaf":false,"self_mute":false,"self_video":false,"suppress":false}]}"#;
        assert_eq!(t.feed("GUILD_CREATE", Some(G), gc, 1, GRACE), Some(vec![]));
        assert_eq!(t.members.len(), 1);
        assert_eq!(
            t.feed(
                "GUILD_CREATE",
                Some(G),
                r#"{"id":"1","unavailable":true}"#,
                2,
                GRACE
            ),
            None
        );
        assert_eq!(t.members.len(), 1, "an outage notice is not a reseed");
        let other = r#"{"guild_id":"2","channel_id":"100","user_id":"6"}"#;
        assert_eq!(
            t.feed("VOICE_STATE_UPDATE", Some(G), other, 3, GRACE),
            None,
            "another guild"
        );
        let leave = r#"{"guild_id":"1","channel_id":null,"user_id":"5"}"#;
        let ev = t
            .feed("VOICE_STATE_UPDATE", Some(G), leave, 4, GRACE)
            .unwrap();
        assert_eq!(kinds(&ev), [(Leave, 5, 100)]);
        assert_eq!(t.feed("MESSAGE_CREATE", Some(G), "{}", 5, GRACE), None);
        assert_eq!(
            t.feed("VOICE_STATE_UPDATE", Some(G), "not json", 6, GRACE),
            None
        );
        let e = edge_event(&ev[0]);
        assert_eq!((e.name.as_str(), e.channel), ("voice.leave", Some(100)));
        let back: VoiceEvent = serde_json::from_str(&e.data).unwrap();
        assert_eq!(back, ev[0]);
    }

    #[test]
    fn a_leave_before_the_seed_does_not_drop_out_someone_present() {
        let mut t = VoiceTracker::default();
        t.apply_update(&vs(5, Some(100)), 1, GRACE);
        t.apply_update(&vs(5, None), 2, GRACE);
        assert!(t.reseed(G, &[vs(5, Some(100))], 3, GRACE).is_empty());
        assert_eq!(t.next_due(), None);
    }

    #[test]
    fn config_defaults_and_errors() {
        let none = VoiceConfig::from_lookup(|_| None).unwrap();
        assert_eq!(
            none,
            VoiceConfig {
                grace_ms: DEFAULT_GRACE_MS,
                legacy_ws: true
            }
        );
        let off = VoiceConfig::from_lookup(|k| match k {
            "VOICE_GRACE_MS" => Some("500".into()),
            "LEGACY_VOICE_WS" => Some("false".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(
            off,
            VoiceConfig {
                grace_ms: 500,
                legacy_ws: false
            }
        );
        let bad = VoiceConfig::from_lookup(|k| (k == "VOICE_GRACE_MS").then(|| "soon".into()))
            .unwrap_err();
        assert_eq!(bad.var, "VOICE_GRACE_MS");
        let bad = VoiceConfig::from_lookup(|k| (k == "LEGACY_VOICE_WS").then(|| "maybe".into()))
            .unwrap_err();
        assert_eq!(bad.var, "LEGACY_VOICE_WS");
    }

    #[test]
    fn snapshot_filters_by_channel() {
        let t = seeded(&[vs(1, Some(100)), vs(2, Some(200))]);
        let all = t.snapshot(None);
        assert_eq!(all["channels"].as_object().unwrap().len(), 2);
        let one = t.snapshot(Some(Snowflake(200)));
        assert_eq!(one["channels"]["200"][0]["user_id"], "2");
        assert!(one["channels"].get("100").is_none());
    }
}
