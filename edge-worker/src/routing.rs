//! Splitting one `POST /link/ingest` batch by guild (pure; the Worker glue is `entry_ingest.rs`).
//!
//! A holder's batch may mix guilds and shards. The Worker sends each guild's envelopes, in batch
//! order, to that guild's `GuildHub` as a batch of its own, and everything without a guild
//! (READY, RESUMED, USER_UPDATE, DMs) to the bot-wide record in the `BotHub`:
//!
//! - A guild is the envelope's `guild_id`, or for GUILD_CREATE / GUILD_UPDATE / GUILD_DELETE
//!   (whose `d` names the guild as `id`) that id ([`guild_of`]).
//! - Each guild's sub-batch carries as `gateway` the state of the shard that carries the guild
//!   (`(guild_id >> 22) % count`, from the batch's `shards`), falling back to the batch's
//!   `gateway` ([`gateway_for`]).
//! - Gaps: a gap of shard `s` concerns every guild on `s`, a gap without a shard every guild of the
//!   holder. Guilds in this batch get theirs inside their sub-batch, in place ([`gaps_for`]); the
//!   other known guilds get theirs in a second round the BotHub names (it knows every guild).
//!   Every gap a hub sees names its shard, so each hub's dedup is per (epoch, shard).
//! - The default guild (`GUILD_ID`) takes part in every batch of a holder whose shards carry it
//!   (as a keep-alive when it has no envelopes): its head is the answer's `cursor`, as before
//!   there were several guilds.
//! - GUILD_CREATE / GUILD_DELETE also become registry changes for the BotHub ([`availability`]),
//!   with the guild's name from GUILD_CREATE / GUILD_UPDATE ([`guild_change`]).

use contracts::{
    Envelope, GatewayState, GuildAvailability, HolderGap, IngestBatch, ShardState, Snowflake,
    Version,
};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The bot-wide record's key in an ingest answer's `cursors`.
pub const BOT: &str = "bot";

/// The header on every request the Worker makes to a `GuildHub`: the hub's guild id. The Worker
/// always sets it itself (a browser's copy never reaches a hub).
pub const GUILD_HEADER: &str = "X-Rt-Guild";

/// The `d` fields of GUILD_CREATE / GUILD_UPDATE / GUILD_DELETE this module reads.
#[derive(Deserialize)]
struct GuildD {
    id: Snowflake,
    #[serde(default)]
    unavailable: Option<bool>,
    #[serde(default)]
    name: Option<String>,
}

fn is_guild_object(kind: &str) -> bool {
    matches!(kind, "GUILD_CREATE" | "GUILD_UPDATE" | "GUILD_DELETE")
}

/// The guild an envelope belongs to: its `guild_id`, or the `id` of a guild object's `d`.
pub fn guild_of(env: &Envelope) -> Option<Snowflake> {
    env.guild_id.or_else(|| {
        is_guild_object(&env.kind)
            .then(|| serde_json::from_str::<GuildD>(env.d.get()).ok())
            .flatten()
            .map(|g| g.id)
    })
}

/// What a dispatch says about the bot's membership of a guild: GUILD_CREATE → available (or
/// unavailable when marked so), GUILD_DELETE with `unavailable: true` → unavailable (an outage),
/// GUILD_DELETE without it → removed (the bot left or was kicked).
pub fn availability(kind: &str, d: &str) -> Option<(Snowflake, GuildAvailability)> {
    if kind != "GUILD_CREATE" && kind != "GUILD_DELETE" {
        return None;
    }
    let g: GuildD = serde_json::from_str(d).ok()?;
    Some((g.id, availability_of(kind, &g)?))
}

fn availability_of(kind: &str, g: &GuildD) -> Option<GuildAvailability> {
    let outage = g.unavailable == Some(true);
    Some(match (kind, outage) {
        ("GUILD_CREATE", false) => GuildAvailability::Available,
        ("GUILD_DELETE", false) => GuildAvailability::Removed,
        ("GUILD_CREATE" | "GUILD_DELETE", true) => GuildAvailability::Unavailable,
        _ => return None,
    })
}

/// The registry change a dispatch makes: GUILD_CREATE / GUILD_DELETE its [`availability`] (and
/// GUILD_CREATE the guild's `name`), GUILD_UPDATE a new `name` alone. `d` is parsed once.
pub fn guild_change(kind: &str, d: &str) -> Option<GuildChange> {
    if !matches!(kind, "GUILD_CREATE" | "GUILD_DELETE" | "GUILD_UPDATE") {
        return None;
    }
    let g: GuildD = serde_json::from_str(d).ok()?;
    let availability = availability_of(kind, &g);
    if availability.is_none() && g.name.is_none() {
        return None;
    }
    Some(GuildChange {
        guild: g.id,
        availability,
        name: g.name,
    })
}

/// The shard that carries `guild` by the batch's `shards` (Discord's formula with their
/// `count`); `None` when the holder sent no shard list (an older, single-shard holder).
pub fn shard_by_count(guild: Snowflake, shards: &[ShardState]) -> Option<u32> {
    shards
        .first()
        .map(|s| contracts::link::shard_of(guild.get(), s.count))
}

/// Whether a holder running `shards` carries `guild` (no shard list: it carries everything).
pub fn covers(shards: &[ShardState], guild: Snowflake) -> bool {
    shards.is_empty()
        || shards
            .iter()
            .any(|s| contracts::link::shard_of(guild.get(), s.count) == s.shard)
}

/// The state of the shard carrying `guild`, else the batch's `gateway`.
pub fn gateway_for(
    guild: Snowflake,
    shards: &[ShardState],
    fallback: Option<GatewayState>,
) -> Option<GatewayState> {
    shards
        .iter()
        .find(|s| contracts::link::shard_of(guild.get(), s.count) == s.shard)
        .map(|s| s.state)
        .or(fallback)
}

/// The gaps that concern a guild on `shard`: those of that shard and those of every shard, each
/// named as `shard`'s.
pub fn gaps_for(shard: u32, gaps: &[HolderGap]) -> Vec<HolderGap> {
    gaps.iter()
        .filter(|g| g.shard.is_none_or(|s| s == shard))
        .map(|g| HolderGap {
            shard: Some(shard),
            ..g.clone()
        })
        .collect()
}

/// The gaps for the bot-wide record: every gap, one per shard of the holder for a gap of
/// "every shard" (shard 0 when the holder sent no shard list).
pub fn bot_gaps(gaps: &[HolderGap], shards: &[ShardState]) -> Vec<HolderGap> {
    let all: Vec<u32> = if shards.is_empty() {
        vec![0]
    } else {
        shards.iter().map(|s| s.shard).collect()
    };
    let mut out = Vec::new();
    for g in gaps {
        match g.shard {
            Some(_) => out.push(g.clone()),
            None => out.extend(all.iter().map(|&s| HolderGap {
                shard: Some(s),
                ..g.clone()
            })),
        }
    }
    out
}

/// A registry change learned from a batch.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuildChange {
    pub guild: Snowflake,
    /// `None`: a GUILD_UPDATE, which changes the name only.
    pub availability: Option<GuildAvailability>,
    /// The guild's name, when the dispatch carried one (GUILD_CREATE, GUILD_UPDATE).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// What the Worker sends the BotHub for one batch (`POST /bot/ingest`, internal).
#[derive(Debug, Serialize, Deserialize)]
pub struct BotPart {
    /// The envelopes without a guild, every gap (each naming its shard), `gateway` and `shards`.
    pub batch: IngestBatch,
    /// Guilds whose hub this batch reaches in the first round (they need no keep-alive, and got
    /// their gaps in place).
    pub touched: Vec<Snowflake>,
    /// GUILD_CREATE / GUILD_DELETE / GUILD_UPDATE seen in this batch, in order.
    pub changes: Vec<GuildChange>,
}

/// The BotHub's answer to a [`BotPart`]: its own ack, plus the guilds the Worker must reach in a
/// second round.
#[derive(Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BotAnswer {
    pub accepted: u64,
    pub duplicates: u64,
    pub cursor: u64,
    /// Quiet guilds of this holder's shards that are due a keep-alive.
    #[serde(default)]
    pub keepalive: Vec<Snowflake>,
    /// Known guilds not in this batch that must store its gaps (on the gaps' shards).
    #[serde(default)]
    pub gaps: Vec<Snowflake>,
}

/// A hub's answer to its sub-batch (`{"version","accepted","duplicates","cursor"}`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
pub struct HubAck {
    pub accepted: u64,
    pub duplicates: u64,
    pub cursor: u64,
}

/// What is left of the batch once its envelopes were dealt out: enough to make second-round
/// batches (keep-alives and gaps) for other guilds.
#[derive(Clone, Debug)]
pub struct Head {
    pub holder_id: String,
    pub epoch: String,
    pub batch: u64,
    pub gateway: Option<GatewayState>,
    pub shards: Vec<ShardState>,
    pub gaps: Vec<HolderGap>,
}

impl Head {
    /// The shard of `guild` for gap purposes: by the shard list, else `fallback` (the shard its
    /// envelopes came on), else 0.
    pub fn shard_of(&self, guild: Snowflake, fallback: Option<u32>) -> u32 {
        shard_by_count(guild, &self.shards)
            .or(fallback)
            .unwrap_or(0)
    }

    /// `guild`'s batch: `envelopes`, the gaps on its shard, and its shard's state.
    pub fn for_guild(
        &self,
        guild: Snowflake,
        envelopes: Vec<Envelope>,
        with_gaps: bool,
    ) -> IngestBatch {
        let fallback = envelopes.first().map(|e| e.shard);
        let gaps = if with_gaps {
            gaps_for(self.shard_of(guild, fallback), &self.gaps)
        } else {
            Vec::new()
        };
        IngestBatch {
            version: Version,
            holder_id: self.holder_id.clone(),
            epoch: self.epoch.clone(),
            batch: self.batch,
            envelopes,
            gaps,
            gateway: gateway_for(guild, &self.shards, self.gateway),
            shards: Vec::new(),
        }
    }
}

/// A batch dealt out by guild.
#[derive(Debug)]
pub struct Split {
    /// First round: each guild with envelopes (in the order they first appear) and the default
    /// guild, with their sub-batches.
    pub hubs: Vec<(Snowflake, IngestBatch)>,
    /// For the BotHub, also in the first round.
    pub bot: BotPart,
    pub head: Head,
    /// Envelopes of guilds this edge does not serve (dropped).
    pub ignored: u64,
}

/// Deals `batch` out by guild. `allowed` says whether this edge serves a guild (`GUILD_IDS`);
/// envelopes of other guilds are dropped (their GUILD_CREATE / GUILD_DELETE still reach the
/// registry). `default` is the default guild.
pub fn split(
    batch: IngestBatch,
    default: Option<Snowflake>,
    allowed: impl Fn(Snowflake) -> bool,
) -> Split {
    let IngestBatch {
        holder_id,
        epoch,
        batch: number,
        envelopes,
        gaps,
        gateway,
        shards,
        ..
    } = batch;
    let mut order: Vec<Snowflake> = Vec::new();
    let mut per_guild: BTreeMap<Snowflake, Vec<Envelope>> = BTreeMap::new();
    let mut guildless = Vec::new();
    let mut changes = Vec::new();
    let mut ignored = 0;
    for env in envelopes {
        if let Some(change) = guild_change(&env.kind, env.d.get()) {
            changes.push(change);
        }
        match guild_of(&env) {
            None => guildless.push(env),
            Some(g) if !allowed(g) => ignored += 1,
            Some(g) => {
                let list = per_guild.entry(g).or_insert_with(|| {
                    order.push(g);
                    Vec::new()
                });
                list.push(env);
            }
        }
    }
    if let Some(d) = default {
        if !per_guild.contains_key(&d) && covers(&shards, d) {
            order.push(d);
            per_guild.insert(d, Vec::new());
        }
    }
    let head = Head {
        holder_id,
        epoch,
        batch: number,
        gateway,
        shards,
        gaps,
    };
    let hubs: Vec<(Snowflake, IngestBatch)> = order
        .iter()
        .map(|g| {
            let envs = per_guild.remove(g).unwrap_or_default();
            (*g, head.for_guild(*g, envs, true))
        })
        .collect();
    let bot = BotPart {
        batch: IngestBatch {
            version: Version,
            holder_id: head.holder_id.clone(),
            epoch: head.epoch.clone(),
            batch: head.batch,
            envelopes: guildless,
            gaps: bot_gaps(&head.gaps, &head.shards),
            gateway: head.gateway,
            shards: head.shards.clone(),
        },
        touched: order,
        changes,
    };
    Split {
        hubs,
        bot,
        head,
        ignored,
    }
}

/// The second round: one batch per guild the BotHub named, with the gaps for gap targets and the
/// shard state for all. Returns `(guild, batch, required)`: a gap must be stored before the
/// holder is answered 2xx; a keep-alive that fails is repaired by the next one.
pub fn second_round(head: &Head, answer: &BotAnswer) -> Vec<(Snowflake, IngestBatch, bool)> {
    let mut out: Vec<(Snowflake, IngestBatch, bool)> = answer
        .gaps
        .iter()
        .map(|g| (*g, head.for_guild(*g, Vec::new(), true), true))
        .collect();
    for g in &answer.keepalive {
        if !answer.gaps.contains(g) {
            out.push((*g, head.for_guild(*g, Vec::new(), false), false));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::value::RawValue;

    /// A guild id on shard `shard` of 4 (`(id >> 22) % 4`), distinct per `n`.
    fn guild(shard: u64, n: u64) -> Snowflake {
        Snowflake(((4 * n + shard) << 22) | n)
    }

    fn env(id: u64, shard: u32, g: Option<Snowflake>, kind: &str, d: &str) -> Envelope {
        Envelope {
            version: Version,
            id,
            shard,
            session_id: "s".into(),
            seq: id,
            kind: kind.into(),
            guild_id: g,
            channel_id: None,
            received_at: 1,
            d: RawValue::from_string(d.into()).unwrap(),
        }
    }

    fn msg(id: u64, shard: u32, g: Snowflake) -> Envelope {
        env(
            id,
            shard,
            Some(g),
            "MESSAGE_CREATE",
            &format!(r#"{{"n":{id}}}"#),
        )
    }

    fn state(shard: u32, state: GatewayState) -> ShardState {
        ShardState {
            shard,
            count: 4,
            state,
        }
    }

    fn batch(
        envelopes: Vec<Envelope>,
        gaps: Vec<HolderGap>,
        shards: Vec<ShardState>,
    ) -> IngestBatch {
        IngestBatch {
            version: Version,
            holder_id: "h".into(),
            epoch: "e".into(),
            batch: 7,
            envelopes,
            gaps,
            gateway: Some(GatewayState::Reconnecting),
            shards,
        }
    }

    fn gap(from_id: u64, to_id: u64, shard: Option<u32>) -> HolderGap {
        HolderGap {
            from_id,
            to_id,
            reason: "buffer".into(),
            shard,
        }
    }

    fn ids(b: &IngestBatch) -> Vec<u64> {
        b.envelopes.iter().map(|e| e.id).collect()
    }

    #[test]
    fn guild_of_reads_guild_objects() {
        let g = guild(1, 1);
        let create = env(
            1,
            0,
            None,
            "GUILD_CREATE",
            &format!(r#"{{"id":"{g}","name":"x"}}"#),
        );
        assert_eq!(guild_of(&create), Some(g));
        let ready = env(2, 0, None, "READY", r#"{"guilds":[{"id":"5"}]}"#);
        assert_eq!(guild_of(&ready), None);
        let dm = env(3, 0, None, "MESSAGE_CREATE", r#"{"id":"9"}"#);
        assert_eq!(
            guild_of(&dm),
            None,
            "only guild objects name their guild as id"
        );
        assert_eq!(guild_of(&msg(4, 0, g)), Some(g));
    }

    #[test]
    fn availability_from_guild_create_and_delete() {
        use GuildAvailability::*;
        let a = |k: &str, d: &str| availability(k, d).map(|(_, a)| a);
        assert_eq!(
            a("GUILD_CREATE", r#"{"id":"5","channels":[]}"#),
            Some(Available)
        );
        assert_eq!(
            a("GUILD_CREATE", r#"{"id":"5","unavailable":true}"#),
            Some(Unavailable)
        );
        assert_eq!(
            a("GUILD_DELETE", r#"{"id":"5","unavailable":true}"#),
            Some(Unavailable)
        );
        assert_eq!(a("GUILD_DELETE", r#"{"id":"5"}"#), Some(Removed));
        assert_eq!(
            a("GUILD_DELETE", r#"{"id":"5","unavailable":false}"#),
            Some(Removed)
        );
        assert_eq!(a("GUILD_UPDATE", r#"{"id":"5"}"#), None);
        assert_eq!(a("GUILD_DELETE", "not json"), None);
    }

    #[test]
    fn guild_changes_carry_the_name() {
        use GuildAvailability::*;
        let c = |k: &str, d: &str| guild_change(k, d).map(|c| (c.guild, c.availability, c.name));
        let g = Snowflake(5);
        assert_eq!(
            c(
                "GUILD_CREATE",
                r#"{"id":"5","name":"Sim \"Guild\"","channels":[{"id":"7","name":"general"}]}"#
            ),
            Some((g, Some(Available), Some("Sim \"Guild\"".into()))),
            "the top-level name, not a channel's"
        );
        assert_eq!(
            c("GUILD_CREATE", r#"{"id":"5","unavailable":true}"#),
            Some((g, Some(Unavailable), None))
        );
        assert_eq!(
            c("GUILD_DELETE", r#"{"id":"5"}"#),
            Some((g, Some(Removed), None))
        );
        assert_eq!(
            c("GUILD_UPDATE", r#"{"id":"5","name":"Renamed"}"#),
            Some((g, None, Some("Renamed".into()))),
            "a rename: membership unchanged"
        );
        assert_eq!(
            c("GUILD_UPDATE", r#"{"id":"5"}"#),
            None,
            "nothing to record"
        );
        assert_eq!(c("MESSAGE_CREATE", r#"{"id":"5","name":"x"}"#), None);
        let s = split(
            batch(
                vec![
                    env(1, 0, None, "GUILD_CREATE", r#"{"id":"5","name":"A"}"#),
                    env(2, 0, None, "GUILD_UPDATE", r#"{"id":"5","name":"B"}"#),
                ],
                vec![],
                vec![],
            ),
            None,
            |_| true,
        );
        assert_eq!(
            s.bot
                .changes
                .iter()
                .map(|c| c.name.as_deref())
                .collect::<Vec<_>>(),
            [Some("A"), Some("B")],
            "in batch order"
        );
    }

    #[test]
    fn split_keeps_per_guild_order_and_sends_guildless_to_the_bot() {
        let (a, b, c) = (guild(0, 1), guild(1, 2), guild(3, 3));
        let shards = vec![
            state(0, GatewayState::Ready),
            state(1, GatewayState::Reconnecting),
            state(3, GatewayState::Ready),
        ];
        let envs = vec![
            msg(1, 0, a),
            msg(1, 1, b),
            env(2, 0, None, "READY", "{}"),
            msg(3, 0, a),
            msg(1, 3, c),
            msg(2, 1, b),
            msg(4, 0, a),
            env(2, 3, None, "USER_UPDATE", "{}"),
        ];
        let s = split(batch(envs, vec![], shards), None, |_| true);
        let got: Vec<(Snowflake, Vec<u64>)> = s.hubs.iter().map(|(g, b)| (*g, ids(b))).collect();
        assert_eq!(got, [(a, vec![1, 3, 4]), (b, vec![1, 2]), (c, vec![1])]);
        // Each guild hears the state of its own shard, not the least ready of the holder.
        let gw: Vec<_> = s.hubs.iter().map(|(_, b)| b.gateway).collect();
        assert_eq!(
            gw,
            [
                Some(GatewayState::Ready),
                Some(GatewayState::Reconnecting),
                Some(GatewayState::Ready)
            ]
        );
        assert!(s.hubs.iter().all(|(_, b)| b.shards.is_empty()));
        let bot: Vec<&str> = s
            .bot
            .batch
            .envelopes
            .iter()
            .map(|e| e.kind.as_str())
            .collect();
        assert_eq!(bot, ["READY", "USER_UPDATE"]);
        assert_eq!(s.bot.touched, [a, b, c]);
        assert_eq!(
            s.bot.batch.shards.len(),
            3,
            "the BotHub learns the holder's shards"
        );
        assert_eq!(s.ignored, 0);
    }

    #[test]
    fn default_guild_takes_part_when_its_shard_is_carried() {
        let (d, other) = (guild(2, 9), guild(0, 1));
        let s = split(
            batch(
                vec![msg(1, 0, other)],
                vec![],
                vec![state(2, GatewayState::Ready)],
            ),
            Some(d),
            |_| true,
        );
        let hubs: Vec<Snowflake> = s.hubs.iter().map(|(g, _)| *g).collect();
        assert_eq!(hubs, [other, d], "a keep-alive for the default guild");
        assert!(s.hubs[1].1.envelopes.is_empty());
        assert_eq!(s.hubs[1].1.gateway, Some(GatewayState::Ready));
        // A holder of other shards does not keep the default guild's link up.
        let s = split(
            batch(vec![], vec![], vec![state(0, GatewayState::Ready)]),
            Some(d),
            |_| true,
        );
        assert!(s.hubs.is_empty());
        // An older holder (no shard list) carries everything.
        let s = split(batch(vec![], vec![], vec![]), Some(d), |_| true);
        assert_eq!(s.hubs.len(), 1);
        assert_eq!(
            s.hubs[0].1.gateway,
            Some(GatewayState::Reconnecting),
            "the fallback"
        );
    }

    #[test]
    fn not_allowed_guilds_are_dropped_but_their_membership_is_learned() {
        let (a, b) = (guild(0, 1), guild(1, 2));
        let envs = vec![
            msg(1, 0, a),
            env(2, 1, None, "GUILD_CREATE", &format!(r#"{{"id":"{b}"}}"#)),
            msg(3, 1, b),
        ];
        let s = split(batch(envs, vec![], vec![]), None, |g| g == a);
        assert_eq!(s.hubs.len(), 1);
        assert_eq!(s.ignored, 2);
        assert_eq!(
            s.bot.changes,
            [GuildChange {
                guild: b,
                availability: Some(GuildAvailability::Available),
                name: None,
            }]
        );
    }

    #[test]
    fn gaps_reach_the_guilds_of_their_shard() {
        let (a, b) = (guild(0, 1), guild(1, 2));
        let shards = vec![state(0, GatewayState::Ready), state(1, GatewayState::Ready)];
        let gaps = vec![gap(2, 5, Some(1)), gap(7, 8, None)];
        let s = split(
            batch(vec![msg(1, 0, a), msg(1, 1, b), msg(6, 1, b)], gaps, shards),
            None,
            |_| true,
        );
        let ga = &s.hubs[0].1.gaps;
        assert_eq!(
            ga,
            &[gap(7, 8, Some(0))],
            "a: only the every-shard gap, as shard 0's"
        );
        let gb = &s.hubs[1].1.gaps;
        assert_eq!(gb, &[gap(2, 5, Some(1)), gap(7, 8, Some(1))]);
        // The bot record gets every gap, an every-shard gap once per shard of the holder.
        assert_eq!(
            s.bot.batch.gaps,
            [gap(2, 5, Some(1)), gap(7, 8, Some(0)), gap(7, 8, Some(1))]
        );
        // Second round: the BotHub names a guild on shard 1 with no envelopes, and a quiet one.
        let (c, q) = (guild(1, 5), guild(0, 6));
        let answer = BotAnswer {
            gaps: vec![c],
            keepalive: vec![c, q],
            ..Default::default()
        };
        let round = second_round(&s.head, &answer);
        assert_eq!(round.len(), 2, "one request per guild");
        let (g0, b0, required0) = &round[0];
        assert_eq!((*g0, *required0), (c, true));
        assert_eq!(b0.gaps, [gap(2, 5, Some(1)), gap(7, 8, Some(1))]);
        assert!(b0.envelopes.is_empty());
        let (g1, b1, required1) = &round[1];
        assert_eq!((*g1, *required1), (q, false));
        assert!(b1.gaps.is_empty() && b1.envelopes.is_empty());
        assert_eq!(b1.gateway, Some(GatewayState::Ready));
    }

    #[test]
    fn single_shard_holders_without_a_shard_list() {
        // No `shards`: the guild's shard is the one its envelopes came on, gaps are shard 0's.
        let a = guild(3, 1);
        let s = split(
            batch(vec![msg(5, 0, a)], vec![gap(1, 4, None)], vec![]),
            None,
            |_| true,
        );
        assert_eq!(s.hubs[0].1.gaps, [gap(1, 4, Some(0))]);
        assert_eq!(s.bot.batch.gaps, [gap(1, 4, Some(0))]);
        assert!(covers(&[], a));
    }

    #[test]
    fn shard_selection() {
        let g = guild(3, 2);
        let shards = [
            state(2, GatewayState::Ready),
            state(3, GatewayState::Stopped),
        ];
        assert_eq!(shard_by_count(g, &shards), Some(3));
        assert_eq!(gateway_for(g, &shards, None), Some(GatewayState::Stopped));
        assert!(covers(&shards, g));
        let elsewhere = guild(0, 2);
        assert!(!covers(&shards, elsewhere));
        assert_eq!(
            gateway_for(elsewhere, &shards, Some(GatewayState::Connecting)),
            Some(GatewayState::Connecting),
            "not carried by these shards: the batch's gateway"
        );
        assert_eq!(shard_by_count(g, &[]), None);
    }
}
