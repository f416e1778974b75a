//! "May this shard IDENTIFY now?": Discord allows `max_concurrency` IDENTIFYs per 5 s per bot,
//! one per rate-limit bucket (`shard_id % max_concurrency`), buckets started in order, and never
//! more session starts than `session_start_limit.remaining` (running out resets the bot token).
//!
//! - [`IdentifyQueue::Local`]: this process paces its own shards (`IDENTIFY_QUEUE=local`). Each
//!   bucket is a FIFO of tickets; the head may go once the bucket's last IDENTIFY is a window old.
//!   The window counts from when the IDENTIFY was written ([`Grant::sent`]), not from the grant:
//!   the connect and HELLO in between take a different time for each shard, and Discord counts
//!   arrivals.
//!   A shard that will identify first thing takes its ticket when it is built, in shard order, so
//!   the buckets start in order however the tasks are scheduled.
//! - [`IdentifyQueue::Edge`]: the edge's bot-wide queue (`IDENTIFY_QUEUE=edge`,
//!   `POST {EDGE_URL}/link/identify`), for several holders of one bot; the holder polls until
//!   granted and never identifies without a grant, even while the edge is unreachable.
//!
//! Both also keep the process's [`SessionBudget`]: the lowest `remaining` Discord reported, less
//! the IDENTIFYs sent since, so two shards reading the same answer can't both spend the last start.

use crate::config::Secret;
use std::{
    collections::{HashMap, VecDeque},
    sync::{Arc, Mutex},
    time::Duration,
};
use tokio::{sync::Notify, time::Instant};

/// Discord's IDENTIFY window per bucket.
pub const WINDOW: Duration = Duration::from_secs(5);

#[derive(Clone)]
pub enum IdentifyQueue {
    Local(Arc<LocalQueue>),
    Edge(Arc<EdgeQueue>),
}

impl IdentifyQueue {
    /// A place in line for `shard` (see the module doc for when to take it).
    pub fn ticket(&self, shard: u32) -> Ticket {
        match self {
            IdentifyQueue::Local(q) => q.ticket(shard),
            IdentifyQueue::Edge(_) => Ticket { local: None, shard },
        }
    }

    /// Waits until `ticket`'s shard may IDENTIFY; `None` if `stop` resolved first (the ticket is
    /// given up). Call [`Grant::sent`] once the IDENTIFY is written.
    pub async fn wait(
        &self,
        ticket: Ticket,
        stop: impl std::future::Future<Output = ()>,
    ) -> Option<Grant> {
        tokio::pin!(stop);
        let turn = async {
            match self {
                IdentifyQueue::Local(q) => q.wait(ticket).await,
                IdentifyQueue::Edge(q) => {
                    q.wait(ticket.shard).await;
                    Grant {
                        local: None,
                        edge: Some((q.clone(), ticket.shard)),
                    }
                }
            }
        };
        tokio::select! {
            g = turn => Some(g),
            _ = &mut stop => None,
        }
    }

    pub fn budget(&self) -> &SessionBudget {
        match self {
            IdentifyQueue::Local(q) => &q.budget,
            IdentifyQueue::Edge(q) => &q.budget,
        }
    }

    pub fn set_max_concurrency(&self, mc: u32) {
        match self {
            IdentifyQueue::Local(q) => q.lock().max_concurrency = mc.max(1),
            IdentifyQueue::Edge(q) => {
                *q.max_concurrency.lock().unwrap_or_else(|p| p.into_inner()) = mc.max(1)
            }
        }
    }
}

/// A place in a bucket's line. Dropping it (the shard stopped waiting) leaves the line.
pub struct Ticket {
    local: Option<(Arc<LocalQueue>, u32, u64)>,
    shard: u32,
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if let Some((q, bucket, id)) = self.local.take() {
            let mut inner = q.lock();
            if let Some(b) = inner.buckets.get_mut(&bucket) {
                b.line.retain(|t| *t != id);
            }
            drop(inner);
            q.changed.notify_waiters();
        }
    }
}

#[derive(Default)]
struct Bucket {
    line: VecDeque<u64>,
    /// When the last IDENTIFY of the bucket was written (or granted, while it is on its way).
    last: Option<Instant>,
    /// A granted IDENTIFY not written yet: the next waits for it.
    in_flight: bool,
}

/// A turn to IDENTIFY. [`Grant::sent`] when the IDENTIFY is written starts the bucket's window
/// there; dropping it unsent (the connection failed first) starts it at the drop.
pub struct Grant {
    local: Option<(Arc<LocalQueue>, u32)>,
    /// The edge's queue is told the IDENTIFY went out, so its window starts there too.
    edge: Option<(Arc<EdgeQueue>, u32)>,
}

impl Grant {
    /// The IDENTIFY is written: the bucket's window starts now.
    pub fn sent(self) {}
}

impl Drop for Grant {
    fn drop(&mut self) {
        if let Some((q, shard)) = self.edge.take() {
            tokio::spawn(async move { q.identified(shard).await });
        }
        if let Some((q, bucket)) = self.local.take() {
            let mut inner = q.lock();
            let b = inner.buckets.entry(bucket).or_default();
            b.last = Some(Instant::now());
            b.in_flight = false;
            drop(inner);
            q.changed.notify_waiters();
        }
    }
}

struct Inner {
    buckets: HashMap<u32, Bucket>,
    next_ticket: u64,
    max_concurrency: u32,
}

pub struct LocalQueue {
    inner: Mutex<Inner>,
    changed: Notify,
    window: Duration,
    budget: SessionBudget,
}

impl LocalQueue {
    pub fn new(max_concurrency: u32, window: Duration) -> Arc<LocalQueue> {
        Arc::new(LocalQueue {
            inner: Mutex::new(Inner {
                buckets: HashMap::new(),
                next_ticket: 0,
                max_concurrency: max_concurrency.max(1),
            }),
            changed: Notify::new(),
            window,
            budget: SessionBudget::default(),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn ticket(self: &Arc<Self>, shard: u32) -> Ticket {
        let mut inner = self.lock();
        let bucket = shard % inner.max_concurrency;
        let id = inner.next_ticket;
        inner.next_ticket += 1;
        inner.buckets.entry(bucket).or_default().line.push_back(id);
        Ticket {
            local: Some((self.clone(), bucket, id)),
            shard,
        }
    }

    async fn wait(self: &Arc<Self>, ticket: Ticket) -> Grant {
        let Some((bucket, id)) = ticket.local.as_ref().map(|(_, b, i)| (*b, *i)) else {
            return Grant {
                local: None,
                edge: None,
            };
        };
        loop {
            let changed = self.changed.notified();
            let wait = {
                let mut inner = self.lock();
                let b = inner.buckets.entry(bucket).or_default();
                if b.line.front() != Some(&id) || b.in_flight {
                    None
                } else {
                    let now = Instant::now();
                    match b.last.map(|t| t + self.window) {
                        Some(free) if free > now => Some(free - now),
                        _ => {
                            b.last = Some(now);
                            b.in_flight = true;
                            b.line.pop_front();
                            Some(Duration::ZERO)
                        }
                    }
                }
            };
            match wait {
                Some(d) if d.is_zero() => {
                    // Granted: the ticket is out of the line already.
                    drop(ticket);
                    return Grant {
                        local: Some((self.clone(), bucket)),
                        edge: None,
                    };
                }
                Some(d) => {
                    tokio::select! {
                        _ = tokio::time::sleep(d) => {}
                        _ = changed => {}
                    }
                }
                None => changed.await,
            }
        }
    }
}

/// The edge's bot-wide queue, asked over HTTP.
pub struct EdgeQueue {
    http: reqwest::Client,
    url: String,
    token: Secret,
    holder_id: String,
    count: u32,
    max_concurrency: Mutex<u32>,
    budget: SessionBudget,
}

impl EdgeQueue {
    pub fn new(
        http: reqwest::Client,
        edge_url: &url::Url,
        token: Secret,
        holder_id: String,
        count: u32,
        max_concurrency: u32,
    ) -> Arc<EdgeQueue> {
        Arc::new(EdgeQueue {
            http,
            url: format!("{}/link/identify", edge_url.as_str().trim_end_matches('/')),
            token,
            holder_id,
            count,
            max_concurrency: Mutex::new(max_concurrency.max(1)),
            budget: SessionBudget::default(),
        })
    }

    fn ask(&self, shard: u32, identified: bool) -> reqwest::RequestBuilder {
        let mc = *self
            .max_concurrency
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let body = contracts::link::IdentifyAsk {
            version: contracts::Version,
            holder_id: self.holder_id.clone(),
            shard,
            count: self.count,
            max_concurrency: mc,
            identified,
        };
        self.http
            .post(&self.url)
            .bearer_auth(self.token.expose())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(serde_json::to_string(&body).expect("plain structs serialize"))
            .timeout(Duration::from_secs(10))
    }

    /// Tells the edge the granted IDENTIFY was written (best effort: unsent, the window simply
    /// counts from the grant).
    async fn identified(&self, shard: u32) {
        if let Err(e) = self.ask(shard, true).send().await {
            tracing::debug!(shard, error = %e, "could not tell the edge's identify queue the IDENTIFY went out");
        }
    }

    async fn wait(&self, shard: u32) {
        let mut failures = 0u32;
        loop {
            let answer = self.ask(shard, false).send().await;
            let delay = match answer {
                Ok(r) if r.status().is_success() => {
                    failures = 0;
                    let body = r.bytes().await.map_err(|e| e.to_string());
                    match body.and_then(|b| {
                        serde_json::from_slice::<contracts::link::IdentifyAnswer>(&b)
                            .map_err(|e| e.to_string())
                    }) {
                        Ok(a) if a.granted => return,
                        Ok(a) => {
                            Duration::from_millis(a.retry_after_ms.unwrap_or(500).clamp(50, 10_000))
                        }
                        Err(e) => {
                            tracing::warn!(shard, error = %e, "the edge's identify queue answered an unreadable body; asking again");
                            Duration::from_secs(1)
                        }
                    }
                }
                other => {
                    failures += 1;
                    let why = match other {
                        Ok(r) => format!("answered {}", r.status()),
                        Err(e) if e.is_timeout() => "timed out".into(),
                        Err(_) => "is unreachable".into(),
                    };
                    let d = Duration::from_millis(250 * u64::from(failures.min(20)));
                    if failures == 1 || failures.is_multiple_of(20) {
                        tracing::warn!(shard, failures, url = %self.url, "the edge's identify queue {why}; not identifying until it grants a turn");
                    }
                    d
                }
            };
            tokio::time::sleep(delay).await;
        }
    }
}

/// The process's view of `session_start_limit`: Discord's lowest reported `remaining`, less the
/// IDENTIFYs sent since that report, until the reported reset.
#[derive(Default)]
pub struct SessionBudget {
    inner: Mutex<Option<(u64, Instant)>>,
}

impl SessionBudget {
    /// Spends one start given Discord's latest report; `Err(wait)` when none is left (wait out
    /// the reset, then ask Discord again).
    pub fn spend(&self, remaining: u64, reset_after: Duration) -> Result<(), Duration> {
        let now = Instant::now();
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let known = match *g {
            Some((left, reset_at)) if reset_at > now => left.min(remaining),
            _ => remaining,
        };
        if known == 0 {
            return Err(reset_after.max(Duration::from_secs(1)));
        }
        *g = Some((known - 1, now + reset_after));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn buckets_go_in_ticket_order_one_per_window() {
        let q = LocalQueue::new(2, WINDOW);
        let queue = IdentifyQueue::Local(q.clone());
        let t0 = Instant::now();
        // Tickets in shard order; the tasks are polled in reverse.
        let tickets: Vec<_> = (0..4).map(|s| (s, queue.ticket(s))).collect();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        for (shard, t) in tickets.into_iter().rev() {
            let queue = queue.clone();
            let tx = tx.clone();
            tokio::spawn(async move {
                let grant = queue.wait(t, std::future::pending()).await.unwrap();
                tx.send((shard, t0.elapsed())).unwrap();
                // Connecting takes a while; the window starts when the IDENTIFY is written.
                tokio::time::sleep(Duration::from_millis(300 * u64::from(shard))).await;
                grant.sent();
            });
        }
        drop(tx);
        let mut got = vec![];
        while let Some(x) = rx.recv().await {
            got.push(x);
        }
        got.sort_by_key(|(s, at)| (*at, *s));
        let ms: Vec<_> = got.iter().map(|(s, at)| (*s, at.as_millis())).collect();
        // Shard 2 waits for shard 0's IDENTIFY (written at 0 ms) + 5 s; shard 3 for shard 1's
        // (written at 300 ms) + 5 s.
        assert_eq!(ms, [(0, 0), (1, 0), (2, 5000), (3, 5300)]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_dropped_ticket_leaves_the_line() {
        let q = LocalQueue::new(1, WINDOW);
        let queue = IdentifyQueue::Local(q);
        let first = queue.ticket(0);
        let second = queue.ticket(1);
        drop(first);
        let t0 = Instant::now();
        let grant = queue.wait(second, std::future::pending()).await.unwrap();
        assert_eq!(t0.elapsed(), Duration::ZERO);
        // The connection failed before IDENTIFY: the window starts when the grant is dropped.
        tokio::time::sleep(Duration::from_secs(1)).await;
        drop(grant);
        // Cancelled while waiting: the next one isn't blocked by it.
        let third = queue.ticket(2);
        let fourth = queue.ticket(3);
        assert!(queue
            .wait(third, tokio::time::sleep(Duration::from_secs(1)))
            .await
            .is_none());
        queue
            .wait(fourth, std::future::pending())
            .await
            .unwrap()
            .sent();
        assert_eq!(t0.elapsed(), Duration::from_secs(1) + WINDOW);
    }

    #[test]
    fn the_budget_never_goes_past_what_discord_reported() {
        let b = SessionBudget::default();
        let reset = Duration::from_secs(60);
        assert!(b.spend(2, reset).is_ok());
        // A second shard read the same answer (2 left): only one more start.
        assert!(b.spend(2, reset).is_ok());
        assert_eq!(b.spend(2, reset), Err(reset));
        assert!(b.spend(0, reset).is_err());
    }
}
