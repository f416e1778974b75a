//! The forwarder: takes every dispatch from the bus, in order, and gets it to the edge as versioned
//! batches. One POST is in flight at a time (so order is trivially kept); while it is in flight new
//! envelopes keep arriving and form the next batch, so light traffic leaves at once and heavy traffic
//! coalesces. Failures keep the batch and back off; a long outage spills to disk and, past the
//! bound, drops the oldest with a gap. The durable cursor (state.json) only moves for envelopes the
//! edge accepted or the spill holds.
//!
//! - [`batcher`]: encoded envelopes, the ordered buffer, the batch body.
//! - [`spill`]: the JSONL segment files.
//! - [`poster`]: one POST and what its status means, on one keep-alive connection.
//! - [`quiet`]: the link's socket, whose answers are read when needed instead of waking the process.

pub mod batcher;
pub mod poster;
pub mod quiet;
pub mod spill;

use crate::{
    bus::ForwardRx, gateway::backoff::Backoff, health::Health, metrics::Metrics, state::StateStore,
};
use batcher::{encode_batch, BatchMeta, Buffer, Durable, Entry, Take};
use contracts::{HolderGap, ShardState};
use futures::FutureExt;
use poster::{Outcome, Poster};
use std::{sync::Arc, time::Duration};
use tokio::{sync::watch, time::Instant};

#[derive(Clone, Debug)]
pub struct ForwardConfig {
    pub max_batch_items: usize,
    pub max_batch_bytes: usize,
    pub memory_limit_bytes: usize,
    pub spill_max_bytes: u64,
    /// An empty batch carrying the gateway state goes out after this long without a POST.
    pub keepalive: Duration,
    pub retry_base: Duration,
    pub retry_max: Duration,
    /// After a 401: the token won't fix itself soon, so don't hammer the edge.
    pub unauthorized_retry: Duration,
    /// On shutdown: how long to keep trying to deliver before spilling the rest.
    pub flush_timeout: Duration,
    pub post_timeout: Duration,
    /// Hold a batch smaller than `max_batch_items` until its oldest envelope is this old.
    pub linger: Duration,
}

impl Default for ForwardConfig {
    fn default() -> Self {
        ForwardConfig {
            max_batch_items: 500,
            max_batch_bytes: 1024 * 1024,
            memory_limit_bytes: 16 * 1024 * 1024,
            spill_max_bytes: 1024 * 1024 * 1024,
            keepalive: Duration::from_secs(2),
            retry_base: Duration::from_millis(50),
            retry_max: Duration::from_secs(2),
            unauthorized_retry: Duration::from_secs(10),
            flush_timeout: Duration::from_secs(5),
            post_timeout: Duration::from_secs(5),
            linger: Duration::ZERO,
        }
    }
}

pub struct Forwarder {
    cfg: ForwardConfig,
    rx: ForwardRx,
    input_open: bool,
    buffer: Buffer,
    gaps: Vec<HolderGap>,
    poster: Poster,
    store: StateStore,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
    /// Every shard's state (`gateway/shards.rs`), sent with each batch.
    gateway: watch::Receiver<Vec<ShardState>>,
    holder_id: String,
    epoch: String,
    batch_no: u64,
    flush_deadline: Option<Instant>,
    /// Set when the process must end soon (a fatal close): flush time is up at once.
    hurry: watch::Receiver<bool>,
    hurried: bool,
    events_out: crate::metrics::TypeCounters,
    /// Reused by `drain_ready` (items taken off the bus in bulk).
    arrived: Vec<crate::bus::Item>,
}

/// Resolves once `hurry` is true; never if its sender is gone.
async fn hurried(hurry: &mut watch::Receiver<bool>) {
    if hurry.wait_for(|h| *h).await.is_err() {
        std::future::pending::<()>().await;
    }
}

impl Forwarder {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        cfg: ForwardConfig,
        rx: ForwardRx,
        poster: Poster,
        store: StateStore,
        metrics: Arc<Metrics>,
        health: Arc<Health>,
        gateway: watch::Receiver<Vec<ShardState>>,
        hurry: watch::Receiver<bool>,
    ) -> std::io::Result<Forwarder> {
        let spill = spill::Spill::open(&store.dir().join("spill"), cfg.spill_max_bytes)?;
        let snap = store.snapshot();
        let events_out = crate::metrics::TypeCounters::new(&metrics.events_out);
        Ok(Forwarder {
            buffer: Buffer::new(spill, cfg.memory_limit_bytes),
            gaps: snap.pending_gaps,
            holder_id: snap.holder_id,
            epoch: snap.epoch,
            cfg,
            rx,
            input_open: true,
            arrived: Vec::new(),
            poster,
            store,
            metrics,
            health,
            gateway,
            batch_no: 0,
            flush_deadline: None,
            hurry,
            hurried: false,
            events_out,
        })
    }

    fn accept(&mut self, item: Option<crate::bus::Item>) {
        match item {
            Some(d) => self.buffer.push(Entry::from_dispatch(d)),
            None => {
                self.input_open = false;
                if self.flush_deadline.is_none() {
                    self.flush_deadline = Some(Instant::now() + self.cfg.flush_timeout);
                }
            }
        }
    }

    /// Takes whatever is already on the bus, in bulk (one permit release per chunk, not per
    /// item).
    fn drain_ready(&mut self) {
        let mut arrived = std::mem::take(&mut self.arrived);
        while self.input_open {
            match self.rx.recv_many(&mut arrived, 256).now_or_never() {
                // 0 only when the bus is closed and empty.
                Some(0) => self.accept(None),
                Some(_) => {
                    for d in arrived.drain(..) {
                        self.accept(Some(d));
                    }
                }
                None => break,
            }
        }
        self.arrived = arrived;
    }

    fn hurry_up(&mut self) {
        self.hurried = true;
        self.flush_deadline = Some(Instant::now());
    }

    fn flush_expired(&self) -> bool {
        self.flush_deadline.is_some_and(|d| Instant::now() >= d)
    }

    fn made_durable(&self, last: Vec<Durable>) {
        for d in last {
            self.store.durable(d.shard, &d.session_id, d.seq, d.id);
        }
    }

    fn add_gaps(&mut self, gaps: Vec<HolderGap>) {
        if gaps.is_empty() {
            return;
        }
        for g in &gaps {
            let n = g.to_id.saturating_sub(g.from_id) + 1;
            self.metrics.dropped.inc_by(n);
            tracing::error!(
                from_id = g.from_id,
                to_id = g.to_id,
                "dropped buffered envelopes; the edge will report a gap"
            );
        }
        self.gaps.extend(gaps);
        self.store.set_gaps(&self.gaps);
    }

    fn spill_if_needed(&mut self, force: bool) {
        if force || self.buffer.over_memory_limit() {
            let (durable, gaps) = self.buffer.spill_memory();
            if let Some(d) = durable.last() {
                tracing::info!(
                    up_to_id = d.id,
                    spill_bytes = self.buffer.spill_bytes(),
                    "spilled buffered envelopes to disk"
                );
            }
            self.made_durable(durable);
            self.add_gaps(gaps);
        }
        self.update_gauges();
    }

    fn update_gauges(&self) {
        self.metrics.buffer_depth.set(self.buffer.depth() as i64);
        self.metrics
            .spill_bytes
            .set(self.buffer.spill_bytes() as i64);
    }

    /// Waits `d` while still taking bus items; returns early on a flush deadline.
    async fn wait_accepting(&mut self, d: Duration) {
        let until = Instant::now() + d;
        loop {
            let deadline = match self.flush_deadline {
                Some(f) if f < until => f,
                _ => until,
            };
            tokio::select! {
                _ = tokio::time::sleep_until(deadline) => return,
                item = self.rx.recv(), if self.input_open => self.accept(item),
                _ = hurried(&mut self.hurry), if !self.hurried => { self.hurry_up(); return; }
            }
        }
    }

    /// Runs until the bus closes and everything is delivered, or the flush deadline passes (then
    /// whatever is left is spilled). State is saved durably before returning.
    pub async fn run(mut self) {
        let mut backoff = Backoff::new(self.cfg.retry_base, self.cfg.retry_max);
        let mut max_items = self.cfg.max_batch_items;
        let mut link_failed = false;
        // Send a keep-alive first thing so the edge learns the state at once.
        let mut last_post: Option<Instant> = None;
        // The gateway state the edge last accepted; a change is sent at once, even when idle.
        let mut state_sent: Option<Vec<ShardState>> = None;
        self.update_gauges();
        loop {
            self.drain_ready();
            let nothing = self.buffer.is_empty() && self.gaps.is_empty();
            let state_now = self.gateway.borrow().clone();
            let state_unchanged = state_sent.as_ref() == Some(&state_now);
            if !self.input_open && (self.flush_expired() || (nothing && state_unchanged)) {
                break;
            }
            if nothing {
                let due = last_post.map_or(Instant::now(), |t| t + self.cfg.keepalive);
                if state_unchanged && Instant::now() < due {
                    tokio::select! {
                        item = self.rx.recv(), if self.input_open => { self.accept(item); continue; }
                        _ = tokio::time::sleep_until(due) => {}
                        r = self.gateway.changed() => {
                            if r.is_err() {
                                // The gateway is gone; a final state goes out with the flush.
                                tokio::time::sleep_until(due).await;
                            }
                        }
                        _ = tokio::time::sleep_until(self.flush_deadline.unwrap_or(due)), if self.flush_deadline.is_some() => {}
                        _ = hurried(&mut self.hurry), if !self.hurried => self.hurry_up(),
                    }
                }
            }
            if !self.cfg.linger.is_zero() && self.input_open {
                if let Some((n, Some(oldest))) = self.buffer.memory_head() {
                    let wait = self.cfg.linger.saturating_sub(oldest.elapsed());
                    if n < max_items && !wait.is_zero() {
                        self.wait_accepting(wait).await;
                        continue;
                    }
                }
            }
            let state_seen = self.gateway.borrow_and_update().clone();

            let take = match self.buffer.take(max_items, self.cfg.max_batch_bytes) {
                Ok(t) => t,
                Err(e) => {
                    tracing::error!(error = %e, "could not read a spill segment back; retrying");
                    self.wait_accepting(backoff.next_delay()).await;
                    continue;
                }
            };
            self.batch_no += 1;
            let meta = BatchMeta {
                holder_id: &self.holder_id,
                epoch: &self.epoch,
                batch: self.batch_no,
                gateway: crate::gateway::shards::least_ready(&state_seen),
                shards: &state_seen,
            };
            let body = encode_batch(&meta, self.buffer.entries(take), &self.gaps);
            let gaps_sent = self.gaps.len();
            let sent_at = std::time::Instant::now();
            let post = self.poster.clone().post(body);
            tokio::pin!(post);
            let outcome = loop {
                let deadline = self.flush_deadline;
                tokio::select! {
                    o = &mut post => break Some(o),
                    item = self.rx.recv(), if self.input_open => {
                        self.accept(item);
                        self.drain_ready();
                        // More to send (or the bus closed): the answer is wanted now.
                        self.poster.need_answer();
                    }
                    _ = tokio::time::sleep_until(deadline.unwrap_or_else(Instant::now)), if deadline.is_some() => {
                        self.poster.need_answer();
                        if self.flush_expired() { break None; }
                    }
                    _ = hurried(&mut self.hurry), if !self.hurried => {
                        self.hurry_up();
                        self.poster.need_answer();
                    }
                }
            };
            last_post = Some(Instant::now());
            let Some(outcome) = outcome else {
                tracing::warn!("shutdown flush deadline passed with a POST in flight");
                break;
            };
            match outcome {
                Outcome::Accepted => {
                    state_sent = Some(state_seen);
                    self.delivered(take, gaps_sent, sent_at);
                    self.store.flush_cursor();
                    backoff.reset();
                    max_items = self.cfg.max_batch_items;
                    if link_failed {
                        tracing::info!("edge link restored");
                        link_failed = false;
                    }
                    self.health.set_link_ok(true);
                    self.count_post("accepted");
                }
                Outcome::TooLarge if take.n > 1 => {
                    max_items = (take.n / 2).max(1);
                    tracing::warn!(envelopes = take.n, "edge answered 413; splitting the batch");
                    self.count_post("too_large");
                }
                Outcome::TooLarge | Outcome::Rejected(_) if take.n == 1 => {
                    self.count_post("rejected");
                    let e = self
                        .buffer
                        .entries(take)
                        .next()
                        .map(|e| (e.shard, e.id, e.kind.clone()));
                    if let Some((shard, id, kind)) = e {
                        tracing::error!(id, kind = %kind, ?outcome, "edge refuses this envelope on its own; dropping it with a gap");
                        let d = self.buffer.commit(take).unwrap_or_default();
                        self.made_durable(d);
                        self.add_gaps(vec![HolderGap {
                            from_id: id,
                            to_id: id,
                            reason: "envelope refused by the edge".into(),
                            shard: Some(shard),
                        }]);
                    }
                }
                Outcome::Rejected(status) if take.n > 1 => {
                    max_items = (take.n / 2).max(1);
                    tracing::error!(
                        status,
                        envelopes = take.n,
                        "edge rejected the batch; splitting to isolate the envelope"
                    );
                    self.count_post("rejected");
                }
                Outcome::Unauthorized => {
                    link_failed = true;
                    self.health.set_link_ok(false);
                    self.count_post("unauthorized");
                    tracing::error!("edge answered 401: LINK_TOKEN is wrong (holder and edge disagree); retrying slowly");
                    self.wait_accepting(self.cfg.unauthorized_retry).await;
                    self.spill_if_needed(false);
                }
                Outcome::Rejected(status) => {
                    // An empty keep-alive refused: nothing to split, retry slowly.
                    self.health.set_link_ok(false);
                    self.count_post("rejected");
                    tracing::error!(status, "edge rejected a keep-alive batch");
                    self.wait_accepting(self.cfg.unauthorized_retry).await;
                }
                Outcome::TooLarge => {
                    self.count_post("too_large");
                    self.wait_accepting(self.cfg.unauthorized_retry).await;
                }
                Outcome::Retry(reason) => {
                    link_failed = true;
                    self.health.set_link_ok(false);
                    self.count_post("retry");
                    let delay = backoff.next_delay();
                    tracing::warn!(%reason, retry_in_ms = delay.as_millis() as u64, buffered = self.buffer.depth(), "ingest POST failed; keeping the batch");
                    self.wait_accepting(delay).await;
                    self.spill_if_needed(false);
                }
            }
            self.update_gauges();
        }
        // Whatever is left goes to disk, so the next start delivers it.
        self.drain_ready();
        self.spill_if_needed(true);
        self.store.set_gaps(&self.gaps);
        if let Err(e) = self.store.save() {
            tracing::error!(error = %e, "could not persist holder state at shutdown");
        }
    }

    fn count_post(&self, result: &'static str) {
        self.metrics
            .posts
            .get_or_create(&Metrics::label("result", result))
            .inc();
    }

    /// `sent_at`: when the accepted POST left (the answer itself may be read later, see `quiet.rs`).
    fn delivered(&mut self, take: Take, gaps_sent: usize, sent_at: std::time::Instant) {
        self.metrics.batch_size.observe(take.n as f64);
        for e in self.buffer.entries(take) {
            self.events_out.inc(&e.kind);
            if let Some(r) = e.received {
                self.metrics
                    .forward_latency
                    .observe(sent_at.saturating_duration_since(r).as_secs_f64());
            }
        }
        match self.buffer.commit(take) {
            Ok(d) => self.made_durable(d),
            Err(e) => tracing::error!(error = %e, "could not remove a delivered spill segment"),
        }
        if gaps_sent > 0 {
            self.gaps.drain(..gaps_sent);
            self.store.set_gaps(&self.gaps);
        }
    }
}
