//! The `BotHub` Durable Object (one per bot, `id_from_name("bot")`): the glue around the pure
//! parts of `bot/` and the bot-wide record.
//!
//! Storage (SQLite, synchronous, so each request's writes commit together): the record's tables
//! (those of `hub/store.rs`), `registry` (guild → availability and since), `holders` (each
//! holder's registration) and `identify` (each bucket's last grant). Touches (keep-alive times),
//! holders' last ingest times and the identify waiters are in memory.
//!
//! Routes (internal: the Worker authenticated the caller and is the only one that reaches this
//! object):
//! - `POST /bot/ingest`: a [`BotPart`]; stores the record's part, applies registry changes, and
//!   answers a [`BotAnswer`] naming the guilds due a keep-alive or a gap;
//! - `GET /bot/lookup?guild=ID`: a [`Lookup`] (membership and where commands go);
//! - `GET /bot/guilds`: the body of `GET /api/guilds` ([`super::guilds`]; read access checked by
//!   the Worker);
//! - `POST /link/register`, `POST /link/identify`: holders' registration and the identify queue;
//! - `GET /api/stream`: the record's SSE stream (admin sessions); `GET /api/bot/registry`;
//!   `GET /metrics`: the `edge_bot_*` series.

use super::holders::{Holder, Holders};
use super::identify::{Answer, IdentifyQueue};
use super::keepalive::Touches;
use super::registry::{Entry, Registry};
use super::Lookup;
use crate::config::Config;
use crate::hub::{self, now_ms, Hub, Role};
use crate::routing::{self, BotAnswer, BotPart};
use contracts::{
    BotRegistry, ErrorCode, GuildAvailability, IdentifyAnswer, IdentifyAsk, RegisterAnswer,
    RegisterHolder, RegistryGuild, RegistryHolder, Snowflake, Version,
};
use serde::Deserialize;
use std::cell::RefCell;
use std::collections::BTreeSet;
use std::fmt::Write;
use std::rc::Rc;
use worker::*;

/// Keep-alives named per batch at most: each is a subrequest of the Worker's ingest request,
/// which has a bounded number of them. The longest-quiet hubs go first.
const KEEPALIVES_PER_BATCH: usize = 200;
/// Guilds named per batch at most to store a gap they had no envelopes around.
const GAP_TARGETS_PER_BATCH: usize = 500;

#[derive(Deserialize)]
struct KeyValue {
    key: String,
    value: String,
}

#[derive(Deserialize)]
struct Grant {
    bucket: f64,
    granted_at: f64,
}

#[derive(Default)]
struct Counters {
    batches: u64,
    keepalives: u64,
    gap_targets: u64,
    gap_targets_dropped: u64,
    registrations: u64,
    grants: u64,
    waits: u64,
}

/// The coordinator's state.
struct Coord {
    config: Config,
    sql: SqlStorage,
    registry: Registry,
    touches: Touches,
    holders: Holders,
    identify: IdentifyQueue,
    counters: Counters,
}

impl Coord {
    fn open(state: &State, config: Config) -> Result<Coord> {
        let sql = state.storage().sql();
        for table in [
            "CREATE TABLE IF NOT EXISTS registry (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
            "CREATE TABLE IF NOT EXISTS holders (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
            "CREATE TABLE IF NOT EXISTS identify (bucket INTEGER PRIMARY KEY, granted_at INTEGER NOT NULL)",
        ] {
            sql.exec(table, None)?;
        }
        let rows: Vec<KeyValue> = sql
            .exec("SELECT key, value FROM registry", None)?
            .to_array()?;
        let registry = Registry::from_entries(rows.into_iter().filter_map(|r| {
            Some((
                r.key.parse::<Snowflake>().ok()?,
                serde_json::from_str::<Entry>(&r.value).ok()?,
            ))
        }));
        let rows: Vec<KeyValue> = sql
            .exec("SELECT key, value FROM holders", None)?
            .to_array()?;
        let holders = Holders::from_stored(
            rows.into_iter()
                .filter_map(|r| serde_json::from_str::<Holder>(&r.value).ok()),
        );
        let mut identify = IdentifyQueue::new(config.identify_window_ms);
        let grants: Vec<Grant> = sql
            .exec("SELECT bucket, granted_at FROM identify", None)?
            .to_array()?;
        for g in grants {
            identify.restore(g.bucket as u32, g.granted_at as u64);
        }
        Ok(Coord {
            config,
            sql,
            registry,
            touches: Touches::default(),
            holders,
            identify,
            counters: Counters::default(),
        })
    }

    fn store_entry(&self, guild: Snowflake, entry: Entry) -> Result<()> {
        self.sql.exec(
            "INSERT INTO registry (key, value) VALUES (?, ?)
             ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            vec![
                guild.to_string().into(),
                serde_json::to_string(&entry)
                    .expect("entry serializes")
                    .into(),
            ],
        )?;
        Ok(())
    }

    /// Registry changes, touches, and the guilds the Worker must reach in a second round.
    fn on_batch(&mut self, part: &BotPart, now: u64) -> Result<(Vec<Snowflake>, Vec<Snowflake>)> {
        self.counters.batches += 1;
        self.holders.on_ingest(&part.batch.holder_id, now);
        for c in &part.changes {
            let name = c.name.as_deref();
            if let Some(entry) = self.registry.apply(c.guild, c.availability, name, now) {
                console_log!("bot: guild {} is {:?}", c.guild, entry.availability);
                let removed = entry.availability == GuildAvailability::Removed;
                self.store_entry(c.guild, entry)?;
                if removed {
                    self.touches.forget(c.guild);
                }
            }
        }
        for g in &part.touched {
            self.touches.touch(*g, now);
        }
        let shards = &part.batch.shards;
        let config = &self.config;
        let candidates: Vec<Snowflake> = self
            .registry
            .members()
            .filter(|g| config.allows(*g) && routing::covers(shards, *g))
            .collect();
        let keepalive = self.touches.due(
            now,
            self.config.hub_keepalive_ms,
            candidates.iter().copied(),
            KEEPALIVES_PER_BATCH,
        );
        let gap_shards: BTreeSet<u32> = part
            .batch
            .gaps
            .iter()
            .map(crate::ingest::gap_shard)
            .collect();
        let mut gaps = Vec::new();
        if !gap_shards.is_empty() {
            let touched: BTreeSet<Snowflake> = part.touched.iter().copied().collect();
            let mut all: Vec<Snowflake> = candidates
                .iter()
                .copied()
                .filter(|g| {
                    !touched.contains(g)
                        && gap_shards.contains(&routing::shard_by_count(*g, shards).unwrap_or(0))
                })
                .collect();
            if all.len() > GAP_TARGETS_PER_BATCH {
                let dropped = all.len() - GAP_TARGETS_PER_BATCH;
                console_warn!(
                    "bot: a holder gap concerns {} guilds; {dropped} of them are not told",
                    all.len()
                );
                self.counters.gap_targets_dropped += dropped as u64;
                all.truncate(GAP_TARGETS_PER_BATCH);
            }
            gaps = all;
        }
        self.counters.keepalives += keepalive.len() as u64;
        self.counters.gap_targets += gaps.len() as u64;
        Ok((keepalive, gaps))
    }

    fn lookup(&self, guild: Snowflake, now: u64) -> Lookup {
        Lookup {
            availability: self.registry.get(guild).map(|e| e.availability),
            holder: self.holders.route(
                guild,
                now,
                self.config.holder_register_ms,
                self.config.link_quiet_ms,
            ),
        }
    }

    fn register(&mut self, reg: &RegisterHolder, now: u64) -> Result<RegisterAnswer> {
        let known = self.holders.get(&reg.holder_id).is_some();
        for gone in self.holders.register(reg, now) {
            console_log!("bot: holder {gone} is forgotten");
            self.sql
                .exec("DELETE FROM holders WHERE key = ?", vec![gone.into()])?;
        }
        let h = self.holders.get(&reg.holder_id).expect("just registered");
        self.sql.exec(
            "INSERT INTO holders (key, value) VALUES (?, ?)
             ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            vec![
                h.holder_id.as_str().into(),
                serde_json::to_string(h).expect("holder serializes").into(),
            ],
        )?;
        if !known {
            console_log!(
                "bot: holder {} registered shards {}-{} of {} at {}",
                reg.holder_id,
                reg.shards.first,
                reg.shards.last,
                reg.shards.count,
                h.url
            );
        }
        self.counters.registrations += 1;
        Ok(RegisterAnswer {
            version: Version,
            register_every_ms: self.config.holder_register_ms,
        })
    }

    /// Stores when `bucket`'s IDENTIFY window started (a grant, or the IDENTIFY it reported),
    /// so a restarted BotHub never grants early.
    fn store_bucket_start(&self, bucket: u32, at: u64) -> Result<()> {
        self.sql.exec(
            "INSERT INTO identify (bucket, granted_at) VALUES (?, ?)
             ON CONFLICT(bucket) DO UPDATE SET granted_at = excluded.granted_at",
            vec![
                SqlStorageValue::Integer(i64::from(bucket)),
                SqlStorageValue::Integer(at as i64),
            ],
        )?;
        Ok(())
    }

    fn identify(&mut self, ask: &IdentifyAsk, now: u64) -> Result<IdentifyAnswer> {
        if ask.identified {
            let (bucket, at) = self
                .identify
                .identified(ask.shard, ask.max_concurrency, now);
            self.store_bucket_start(bucket, at)?;
            return Ok(IdentifyAnswer {
                version: Version,
                granted: true,
                retry_after_ms: None,
            });
        }
        let answer = self
            .identify
            .ask(&ask.holder_id, ask.shard, ask.max_concurrency, now);
        Ok(match answer {
            Answer::Granted => {
                let bucket = IdentifyQueue::bucket(ask.shard, ask.max_concurrency);
                self.store_bucket_start(bucket, now)?;
                self.counters.grants += 1;
                console_log!(
                    "bot: identify granted to holder {} for shard {} of {} (bucket {bucket})",
                    ask.holder_id,
                    ask.shard,
                    ask.count
                );
                IdentifyAnswer {
                    version: Version,
                    granted: true,
                    retry_after_ms: None,
                }
            }
            Answer::Wait { retry_after_ms } => {
                self.counters.waits += 1;
                IdentifyAnswer {
                    version: Version,
                    granted: false,
                    retry_after_ms: Some(retry_after_ms),
                }
            }
        })
    }

    fn registry_body(&self, now: u64) -> BotRegistry {
        let (reg, quiet) = (self.config.holder_register_ms, self.config.link_quiet_ms);
        BotRegistry {
            version: Version,
            guilds: self
                .registry
                .iter()
                .map(|(g, e)| RegistryGuild {
                    guild_id: g,
                    availability: e.availability,
                    since: e.since,
                })
                .collect(),
            holders: self
                .holders
                .iter()
                .map(|h| RegistryHolder {
                    holder_id: h.holder_id.clone(),
                    url: h.url.clone(),
                    shards: h.shards,
                    registered_at: h.registered_at,
                    last_ingest: h.last_ingest,
                    alive: h.alive(now, reg, quiet),
                })
                .collect(),
        }
    }

    fn metrics(&self, now: u64) -> String {
        let mut out = String::new();
        let mut by = [0u64; 3];
        for (_, e) in self.registry.iter() {
            by[match e.availability {
                GuildAvailability::Available => 0,
                GuildAvailability::Unavailable => 1,
                GuildAvailability::Removed => 2,
            }] += 1;
        }
        let _ = writeln!(
            out,
            "# HELP edge_bot_guilds Guilds in the bot's registry, by availability.\n# TYPE edge_bot_guilds gauge"
        );
        for (name, n) in ["available", "unavailable", "removed"].iter().zip(by) {
            let _ = writeln!(out, "edge_bot_guilds{{availability=\"{name}\"}} {n}");
        }
        let (reg, quiet) = (self.config.holder_register_ms, self.config.link_quiet_ms);
        let alive = self
            .holders
            .iter()
            .filter(|h| h.alive(now, reg, quiet))
            .count();
        let c = &self.counters;
        for (name, kind, help, v) in [
            (
                "edge_bot_holders",
                "gauge",
                "Holders registered.",
                self.holders.iter().count() as u64,
            ),
            (
                "edge_bot_holders_alive",
                "gauge",
                "Registered holders that count as alive.",
                alive as u64,
            ),
            (
                "edge_bot_batches_total",
                "counter",
                "Ingest batches the BotHub saw.",
                c.batches,
            ),
            (
                "edge_bot_keepalives_total",
                "counter",
                "Keep-alives named for quiet guild hubs.",
                c.keepalives,
            ),
            (
                "edge_bot_gap_targets_total",
                "counter",
                "Guild hubs named to store a gap outside their envelopes.",
                c.gap_targets,
            ),
            (
                "edge_bot_gap_targets_dropped_total",
                "counter",
                "Guild hubs past the per-batch cap that were not told of a gap.",
                c.gap_targets_dropped,
            ),
            (
                "edge_bot_registrations_total",
                "counter",
                "POST /link/register calls.",
                c.registrations,
            ),
            (
                "edge_bot_identify_grants_total",
                "counter",
                "IDENTIFY grants of the bot-wide queue.",
                c.grants,
            ),
            (
                "edge_bot_identify_waits_total",
                "counter",
                "IDENTIFY asks answered with retry_after_ms.",
                c.waits,
            ),
            (
                "edge_bot_identify_waiting",
                "gauge",
                "Waiters in the IDENTIFY queue.",
                self.identify.waiting_total() as u64,
            ),
        ] {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}"
            );
        }
        out
    }
}

#[durable_object]
pub struct BotHub {
    record: std::result::Result<Rc<RefCell<Hub>>, String>,
    coord: std::result::Result<Rc<RefCell<Coord>>, String>,
}

fn parse<T: serde::de::DeserializeOwned + contracts::validate::Validate>(
    body: &[u8],
) -> std::result::Result<T, Response> {
    contracts::validate::parse(body).map_err(|e| {
        let (status, body) = crate::router::invalid(e);
        hub::json(status, body).expect("a response")
    })
}

impl DurableObject for BotHub {
    fn new(state: State, env: Env) -> Self {
        let record = Hub::open(&state, &env, Role::Bot).map(|h| Rc::new(RefCell::new(h)));
        let coord = match &record {
            Ok(h) => Coord::open(&state, h.borrow().config.clone())
                .map(|c| Rc::new(RefCell::new(c)))
                .map_err(|e| format!("storage: {e}")),
            Err(e) => Err(e.clone()),
        };
        if let Err(e) = &coord {
            console_error!("bot: cannot start: {e}");
        }
        BotHub { record, coord }
    }

    async fn fetch(&self, mut req: Request) -> Result<Response> {
        let (record, coord) = match (&self.record, &self.coord) {
            (Ok(r), Ok(c)) => (r.clone(), c.clone()),
            (Err(e), _) | (_, Err(e)) => {
                return hub::error(ErrorCode::Internal, format!("edge misconfigured: {e}"))
            }
        };
        let path = req.path();
        let result = match (req.method(), path.as_str()) {
            (Method::Post, "/bot/ingest") => {
                // The only await: nothing is borrowed across it.
                let body = req.bytes().await?;
                let part: BotPart = match serde_json::from_slice(&body) {
                    Ok(p) => p,
                    Err(e) => return hub::error(ErrorCode::InvalidRequest, e.to_string()),
                };
                let now = now_ms();
                let (keepalive, gaps) = coord.borrow_mut().on_batch(&part, now)?;
                let ack = record.borrow_mut().ingest(part.batch)?;
                let answer = BotAnswer {
                    accepted: ack.accepted,
                    duplicates: ack.duplicates,
                    cursor: ack.cursor,
                    keepalive,
                    gaps,
                };
                hub::json(
                    200,
                    serde_json::to_string(&answer).expect("answer serializes"),
                )
            }
            (Method::Get, "/bot/lookup") => {
                let url = req.url()?;
                let guild = crate::filter::pairs(url.query().unwrap_or(""))
                    .into_iter()
                    .find(|(k, _)| k == "guild")
                    .and_then(|(_, v)| v.parse::<Snowflake>().ok());
                match guild {
                    Some(g) => hub::json(
                        200,
                        serde_json::to_string(&coord.borrow().lookup(g, now_ms()))
                            .expect("lookup serializes"),
                    ),
                    None => hub::error(ErrorCode::InvalidRequest, "lookup needs ?guild=ID"),
                }
            }
            (Method::Get, "/bot/guilds") => {
                let c = coord.borrow();
                let (default, allow) = (c.config.default_guild(), &c.config.allow_guilds);
                hub::json(200, super::guilds::body(&c.registry, default, allow))
            }
            (Method::Post, "/link/register") => {
                let body = req.bytes().await?;
                let reg: RegisterHolder = match parse(&body) {
                    Ok(r) => r,
                    Err(resp) => return Ok(resp),
                };
                let answer = coord.borrow_mut().register(&reg, now_ms())?;
                hub::json(200, serde_json::to_string(&answer).expect("serializes"))
            }
            (Method::Post, "/link/identify") => {
                let body = req.bytes().await?;
                let ask: IdentifyAsk = match parse(&body) {
                    Ok(a) => a,
                    Err(resp) => return Ok(resp),
                };
                let answer = coord.borrow_mut().identify(&ask, now_ms())?;
                hub::json(200, serde_json::to_string(&answer).expect("serializes"))
            }
            (Method::Get, "/api/stream") => hub::stream::handle(&record, &req),
            (Method::Get, "/api/bot/registry") => hub::json(
                200,
                serde_json::to_string(&coord.borrow().registry_body(now_ms())).expect("serializes"),
            ),
            (Method::Get, "/metrics") => {
                let text = coord.borrow().metrics(now_ms());
                let headers = Headers::new();
                headers.set("Content-Type", "text/plain; version=0.0.4")?;
                Ok(Response::ok(text)?.with_headers(headers))
            }
            _ => hub::error(ErrorCode::NotFound, format!("no route for {path}")),
        };
        result.or_else(|e| {
            console_error!("bot: {path}: {e}");
            hub::error(
                ErrorCode::Internal,
                "the edge could not complete the request",
            )
        })
    }
}
