//! `POST /link/ingest` (the Worker's sub-batch for this hub's guild, see `routing.rs`): read the
//! body (capped), validate it, drop duplicates by (epoch, shard), store the new events with
//! fresh cursors, and only then fan them out and answer. The holder retries until it gets a 2xx,
//! so a batch is acknowledged only once every hub's events are in storage.
//!
//! GUILD_CREATE / GUILD_DELETE of the hub's guild change its availability: a `status` event
//! (with `guild`) is stored right after the dispatch, and a removal (the bot left) closes every
//! stream of the guild once the batch is published.

use super::{error, json, now_ms, Hub};
use crate::event::{self, EdgeEvent};
use crate::ingest::{self, Item};
use crate::router;
use contracts::{ErrorCode, GapEvent, GapReason, GuildAvailability, IngestBatch, Version};
use std::cell::RefCell;
use std::rc::Rc;
use worker::*;

pub(crate) async fn handle(hub: &Rc<RefCell<Hub>>, mut req: Request) -> Result<Response> {
    let started = now_ms();
    let max = hub.borrow().config.max_ingest_bytes;
    let declared = req
        .headers()
        .get("Content-Length")?
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max) {
        hub.borrow_mut().metrics.ingest_rejected += 1;
        return too_large(max);
    }
    // The only await: other requests may run meanwhile, so nothing is borrowed across it.
    let body = req.bytes().await?;
    if body.len() as u64 > max {
        hub.borrow_mut().metrics.ingest_rejected += 1;
        return too_large(max);
    }
    let batch: IngestBatch = match contracts::validate::parse(&body)
        .and_then(|b: IngestBatch| ingest::check(&b).map(|_| b))
    {
        Ok(b) => b,
        Err(e) => {
            hub.borrow_mut().metrics.ingest_rejected += 1;
            let (status, body) = router::invalid(e);
            return json(status, body);
        }
    };
    let mut h = hub.borrow_mut();
    let answer = h.ingest(batch)?.json();
    let now = now_ms();
    h.metrics
        .ingest_latency
        .observe_ms(now.saturating_sub(started) as f64);
    json(200, answer)
}

fn too_large(max: u64) -> Result<Response> {
    error(
        ErrorCode::TooLarge,
        format!("ingest body exceeds {max} bytes; split the batch"),
    )
}

/// What one ingest did.
pub(crate) struct Ingested {
    pub(crate) accepted: u64,
    pub(crate) duplicates: u64,
    pub(crate) cursor: u64,
}

impl Ingested {
    pub(crate) fn json(&self) -> String {
        format!(
            r#"{{"version":"{}","accepted":{},"duplicates":{},"cursor":{}}}"#,
            contracts::VERSION,
            self.accepted,
            self.duplicates,
            self.cursor
        )
    }
}

impl Hub {
    /// Stores a validated batch and publishes it.
    pub(crate) fn ingest(&mut self, batch: IngestBatch) -> Result<Ingested> {
        let now = now_ms();
        let IngestBatch {
            epoch,
            envelopes,
            gaps,
            gateway,
            ..
        } = batch;
        let keepalive = envelopes.is_empty() && gaps.is_empty();
        // The marks of every shard the batch carries, read before planning.
        let mut shards: Vec<u32> = envelopes
            .iter()
            .map(|e| e.shard)
            .chain(gaps.iter().map(ingest::gap_shard))
            .collect();
        shards.sort_unstable();
        shards.dedup();
        let mut marks = std::collections::BTreeMap::new();
        for s in shards {
            marks.insert(s, self.high_water(&epoch, s)?);
        }
        let plan = ingest::plan(envelopes, gaps, |s| marks.get(&s).copied().flatten());

        let mut events = Vec::with_capacity(plan.items.len() + 1);
        // The link coming back (or a gateway change) is announced before the batch's events.
        let status = self.link.on_holder(now, gateway, self.config.link_quiet_ms);
        if let Some(s) = &status {
            events.push(super::status_event(s));
        }
        let mut dispatches = 0u64;
        let mut holder_gaps = 0u64;
        let mut voice_events = Vec::new();
        let mut withheld = 0u64;
        let mut statuses = u64::from(status.is_some());
        let mut removed = false;
        let guild_hub = self.role == super::Role::Guild;
        for item in plan.items {
            match item {
                Item::Dispatch(env) if event::is_withheld(&env.kind) => withheld += 1,
                Item::Dispatch(env) => {
                    self.metrics
                        .holder_lag
                        .observe_ms(now.saturating_sub(env.received_at) as f64);
                    // Voice events caused by this dispatch are stored right after it.
                    let (voice, availability) = if guild_hub {
                        let voice = self.voice.feed(&env.kind, env.d.get(), env.received_at);
                        self.channels.feed(&env.kind, env.d.get());
                        let availability = crate::routing::availability(&env.kind, env.d.get())
                            .filter(|(g, _)| self.guild.is_none_or(|mine| mine == *g))
                            .map(|(_, a)| a);
                        (voice, availability)
                    } else {
                        (Vec::new(), None)
                    };
                    let (name, channel, data) = event::dispatch(env);
                    events.push(EdgeEvent {
                        cursor: 0,
                        at: 0,
                        name,
                        channel,
                        data,
                        user: None,
                    });
                    events.extend(voice.iter().map(crate::voice::edge_event));
                    voice_events.extend(voice);
                    dispatches += 1;
                    // The guild's availability changed: `status` right after the dispatch.
                    if let Some(a) = availability {
                        removed = a == GuildAvailability::Removed;
                        if let Some(s) = self.link.on_guild(now, a, self.config.link_quiet_ms) {
                            console_log!("hub: guild {:?} is {a:?}", self.guild);
                            events.push(super::status_event(&s));
                            statuses += 1;
                        }
                    }
                }
                Item::Gap(g) => {
                    // `append` hands out cursors in order, so this event's cursor is known now:
                    // the events between its neighbours' cursors are the lost ones.
                    let cursor = self.head + 1 + events.len() as u64;
                    let data = event::gap_data(&GapEvent {
                        version: Version,
                        reason: GapReason::HolderBuffer,
                        after: cursor - 1,
                        before: Some(cursor + 1),
                        missing: Some(g.to_id - g.from_id + 1),
                    });
                    events.push(EdgeEvent {
                        cursor,
                        at: 0,
                        name: crate::sse::GAP.into(),
                        channel: None,
                        data,
                        user: None,
                    });
                    holder_gaps += 1;
                }
            }
        }
        self.append(now, &mut events)?;
        for (shard, hw) in &plan.high_water {
            self.set_high_water(&epoch, *shard, *hw, now)?;
        }
        self.save_link(now, statuses > 0)?;
        self.voice.persist()?;
        self.channels.persist()?;
        self.trim(now)?;

        self.metrics.ingest_batches += 1;
        self.metrics.ingest_keepalives += u64::from(keepalive);
        self.metrics.events_in += dispatches;
        self.metrics.withheld += withheld;
        self.metrics.duplicates += plan.duplicates;
        self.metrics.holder_gaps += holder_gaps;
        self.metrics.status_events += statuses;
        if status.is_some() {
            console_log!("hub: holder link is up");
        }
        self.publish(now, &events);
        self.voice.broadcast(&voice_events);
        // The bot left the guild: the final `status` is queued; end every stream after it.
        if removed && self.removed() {
            let closed = self.close_streams();
            console_log!(
                "hub: the bot left guild {:?}; closed {closed} stream(s)",
                self.guild
            );
        }
        Ok(Ingested {
            accepted: dispatches + withheld + holder_gaps,
            duplicates: plan.duplicates,
            cursor: self.head,
        })
    }
}
