//! The set of connected SSE clients and the fan-out of stored events to them.
//!
//! Each batch is framed once: the concatenation of its frames becomes one shared chunk that every
//! unfiltered client gets (one queue push per client per batch); a filtered client gets a chunk of
//! just the frames it selected. Slow clients are cut off here (see [`crate::queue`]).
//!
//! This is the module boundary for fan-out shards: a `ClientSet` is exactly what a
//! `{guild}:fanout:{n}` Durable Object would own. The hub keeps storage, dedup and replay, and
//! instead of publishing to a local `ClientSet` it would forward the framed batch to each shard
//! (see README, "Scaling out").

use crate::event::{self, EdgeEvent};
use crate::filter::Filter;
use crate::queue::{ClientQueue, Push, QueueStream};
use crate::sse;
use contracts::{GapEvent, GapReason, Version};
use std::cell::RefCell;
use std::rc::Rc;

struct Client<C> {
    filter: Filter,
    queue: Rc<RefCell<ClientQueue<C>>>,
    /// The session's user (JWT `sub`, as `actions::user_key`), for per-user `command.result`;
    /// `None` for an anonymous (`PUBLIC_READ`) reader.
    user: Option<String>,
}

/// What one publish did, for metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Published {
    /// Events queued, summed over clients.
    pub events_out: u64,
    /// Chunks queued (queue pushes).
    pub writes: u64,
    /// Clients closed as slow by this publish.
    pub slow_closed: u64,
    /// Events dropped for slow clients (their backlog plus this batch).
    pub dropped: u64,
}

pub struct ClientSet<C> {
    clients: Vec<Client<C>>,
    queue_max: usize,
}

impl<C: Clone> ClientSet<C> {
    pub fn new(queue_max: usize) -> Self {
        ClientSet {
            clients: Vec::new(),
            queue_max,
        }
    }

    /// A new client at stream position `cursor`; `preload` chunks (retry, replay, status) are
    /// queued before any live event. Returns the response body stream.
    pub fn add(
        &mut self,
        filter: Filter,
        cursor: u64,
        now_ms: u64,
        preload: Vec<(C, Option<u64>, u64)>,
    ) -> QueueStream<C> {
        self.add_for_user(None, filter, cursor, now_ms, preload)
    }

    /// [`ClientSet::add`] for a client that belongs to `user` (it also gets that user's events,
    /// see [`EdgeEvent::is_for`]).
    pub fn add_for_user(
        &mut self,
        user: Option<String>,
        filter: Filter,
        cursor: u64,
        now_ms: u64,
        preload: Vec<(C, Option<u64>, u64)>,
    ) -> QueueStream<C> {
        let mut q = ClientQueue::new(self.queue_max, cursor, now_ms);
        for (chunk, c, n) in preload {
            q.preload(chunk, c, n);
        }
        let queue = Rc::new(RefCell::new(q));
        self.clients.push(Client {
            filter,
            queue: queue.clone(),
            user,
        });
        QueueStream::new(queue)
    }

    /// Connected clients (those whose stream has not ended or been dropped).
    pub fn len(&mut self) -> usize {
        self.prune();
        self.clients.len()
    }

    pub fn is_empty(&mut self) -> bool {
        self.len() == 0
    }

    /// Chunks waiting in the clients' queues, summed.
    pub fn queued(&self) -> usize {
        self.clients.iter().map(|c| c.queue.borrow().len()).sum()
    }

    fn prune(&mut self) {
        self.clients.retain(|c| c.queue.borrow().is_open());
    }

    /// Queues `events` (in cursor order) for every client whose filter selects them.
    /// `make` turns bytes into a chunk once per distinct payload.
    pub fn publish(
        &mut self,
        events: &[EdgeEvent],
        now_ms: u64,
        make: impl Fn(&[u8]) -> C,
    ) -> Published {
        let mut out = Published::default();
        let Some(last) = events.last().map(|e| e.cursor) else {
            return out;
        };
        self.prune();
        let mut all = String::new();
        let mut spans = Vec::with_capacity(events.len());
        for e in events {
            let start = all.len();
            e.frame(&mut all);
            spans.push(start..all.len());
        }
        // The shared chunk is for clients that get every event: not when one is per-user.
        let all_public = events.iter().all(|e| e.user.is_none());
        let mut shared: Option<C> = None;
        for client in &self.clients {
            let (chunk, n) = if client.filter.is_all() && all_public {
                let c = shared.get_or_insert_with(|| make(all.as_bytes())).clone();
                (c, events.len() as u64)
            } else {
                let mut mine = String::new();
                let mut n = 0;
                for (e, span) in events.iter().zip(&spans) {
                    if e.is_for(client.user.as_deref(), &client.filter) {
                        mine.push_str(&all[span.clone()]);
                        n += 1;
                    }
                }
                if n == 0 {
                    continue;
                }
                (make(mine.as_bytes()), n)
            };
            let mut q = client.queue.borrow_mut();
            match q.push(chunk, Some(last), n, now_ms) {
                Push::Queued => {
                    out.events_out += n;
                    out.writes += 1;
                }
                Push::Full => {
                    let final_gap = slow_client_gap(q.delivered());
                    out.dropped += q.close_with(make(final_gap.as_bytes())) + n;
                    out.slow_closed += 1;
                }
                Push::Gone => {}
            }
        }
        out
    }

    /// Queues a ping for every client that has had nothing queued for `idle_ms`.
    /// A client too far behind to take even a ping is closed as slow.
    /// Returns `(pinged, closed_as_slow)`.
    pub fn ping(&mut self, now_ms: u64, idle_ms: u64, make: impl Fn(&[u8]) -> C) -> (u64, u64) {
        self.prune();
        let mut ping: Option<C> = None;
        let mut slow = 0;
        let mut pinged = 0;
        for client in &self.clients {
            let mut q = client.queue.borrow_mut();
            if now_ms.saturating_sub(q.last_push_ms) < idle_ms {
                continue;
            }
            let chunk = ping.get_or_insert_with(|| make(sse::PING)).clone();
            match q.push(chunk, None, 0, now_ms) {
                Push::Queued => pinged += 1,
                Push::Full => {
                    let final_gap = slow_client_gap(q.delivered());
                    q.close_with(make(final_gap.as_bytes()));
                    slow += 1;
                }
                Push::Gone => {}
            }
        }
        (pinged, slow)
    }

    /// Ends every stream after what is queued (clients reconnect with `Last-Event-ID`).
    pub fn close_all(&mut self) -> usize {
        let n = self.clients.len();
        for c in self.clients.drain(..) {
            c.queue.borrow_mut().close();
        }
        n
    }
}

/// The final event of a client closed for being slow. Its SSE id is the last cursor the client
/// was given, so a reconnect with `Last-Event-ID` replays exactly what it missed.
pub fn slow_client_gap(delivered: u64) -> String {
    let gap = GapEvent {
        version: Version,
        reason: GapReason::SlowClient,
        after: delivered,
        before: None,
        missing: None,
    };
    let mut s = String::new();
    sse::event(&mut s, delivered, sse::GAP, &event::gap_data(&gap));
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filter::parse_query;
    use futures::StreamExt;
    use std::rc::Rc as Shared;

    fn ev(cursor: u64, name: &str, channel: Option<u64>) -> EdgeEvent {
        EdgeEvent {
            cursor,
            at: 0,
            name: name.into(),
            channel,
            data: format!("{{\"n\":{cursor}}}"),
            user: None,
        }
    }

    fn text(chunks: &[Shared<[u8]>]) -> String {
        chunks
            .iter()
            .map(|c| String::from_utf8(c.to_vec()).unwrap())
            .collect()
    }

    fn drain(s: &mut QueueStream<Shared<[u8]>>, n: usize) -> Vec<Shared<[u8]>> {
        futures::executor::block_on(s.take(n).collect::<Vec<_>>())
    }

    #[test]
    fn encodes_once_and_filters_per_client() {
        let mut set = ClientSet::<Shared<[u8]>>::new(8);
        let mut all = set.add(Filter::default(), 0, 0, vec![]);
        let mut all2 = set.add(Filter::default(), 0, 0, vec![]);
        let f = parse_query("types=MESSAGE_CREATE&channels=7")
            .unwrap()
            .filter;
        let mut some = set.add(f, 0, 0, vec![]);
        let made = std::cell::Cell::new(0);
        let make = |b: &[u8]| {
            made.set(made.get() + 1);
            Shared::from(b)
        };
        let events = [
            ev(1, "MESSAGE_CREATE", Some(7)),
            ev(2, "MESSAGE_CREATE", Some(8)),
            ev(3, "TYPING_START", Some(7)),
            ev(4, "status", None),
        ];
        let p = set.publish(&events, 1, make);
        assert_eq!(made.get(), 2, "one shared chunk plus one filtered chunk");
        assert_eq!(p.writes, 3);
        assert_eq!(p.events_out, 4 + 4 + 2);
        let a = drain(&mut all, 1);
        let b = drain(&mut all2, 1);
        assert!(Shared::ptr_eq(&a[0], &b[0]), "the same bytes for both");
        let t = text(&a);
        assert!(t.starts_with("id: 1\nevent: MESSAGE_CREATE\ndata: {\"n\":1}\n\nid: 2\n"));
        let s = text(&drain(&mut some, 1));
        assert!(s.contains("id: 1\n") && s.contains("id: 4\n"));
        assert!(!s.contains("id: 2\n") && !s.contains("id: 3\n"));
    }

    #[test]
    fn per_user_events_reach_only_that_users_streams() {
        let mut set = ClientSet::<Shared<[u8]>>::new(8);
        let mut alice = set.add_for_user(Some("alice".into()), Filter::default(), 0, 0, vec![]);
        let f = parse_query("types=TYPING_START").unwrap().filter;
        let mut alice2 = set.add_for_user(Some("alice".into()), f, 0, 0, vec![]);
        let mut bob = set.add_for_user(Some("bob".into()), Filter::default(), 0, 0, vec![]);
        let mut anon = set.add(Filter::default(), 0, 0, vec![]);
        let make = |b: &[u8]| Shared::<[u8]>::from(b);
        let mut result = ev(1, "command.result", None);
        result.user = Some("alice".into());
        let p = set.publish(&[result], 0, make);
        assert_eq!(
            p.events_out, 2,
            "alice's two streams, whatever their filters"
        );
        set.publish(&[ev(2, "MESSAGE_CREATE", None)], 0, make);
        let result_frame = "id: 1\nevent: command.result\ndata: {\"n\":1}\n\n";
        assert_eq!(text(&drain(&mut alice, 1)), result_frame);
        assert_eq!(text(&drain(&mut alice2, 1)), result_frame);
        assert!(text(&drain(&mut bob, 1)).starts_with("id: 2\n"));
        assert!(text(&drain(&mut anon, 1)).starts_with("id: 2\n"));

        // Beside a public event in one batch: never in the shared chunk, and to that user's
        // streams whatever their filters.
        assert!(text(&drain(&mut alice, 1)).starts_with("id: 2\n"));
        let mut mine = ev(3, "command.result", None);
        mine.user = Some("alice".into());
        set.publish(&[ev(2, "MESSAGE_CREATE", None), mine], 0, make);
        let a = text(&drain(&mut alice, 1));
        assert!(a.contains("id: 2\n") && a.contains("id: 3\n"), "{a}");
        assert_eq!(
            text(&drain(&mut alice2, 1)),
            "id: 3\nevent: command.result\ndata: {\"n\":3}\n\n"
        );
        for other in [&mut bob, &mut anon] {
            let t = text(&drain(other, 1));
            assert!(t.contains("id: 2\n") && !t.contains("id: 3\n"), "{t}");
        }
    }

    #[test]
    fn a_slow_client_is_closed_with_a_gap_and_others_continue() {
        let mut set = ClientSet::<Shared<[u8]>>::new(2);
        let mut fast = set.add(Filter::default(), 0, 0, vec![]);
        let slow = set.add(Filter::default(), 0, 0, vec![]);
        let mut total = Published::default();
        for i in 1..=5 {
            let p = set.publish(&[ev(i, "MESSAGE_CREATE", None)], 0, |b: &[u8]| {
                Shared::<[u8]>::from(b)
            });
            total.slow_closed += p.slow_closed;
            total.dropped += p.dropped;
            assert_eq!(
                text(&drain(&mut fast, 1)),
                format!("id: {i}\nevent: MESSAGE_CREATE\ndata: {{\"n\":{i}}}\n\n")
            );
        }
        assert_eq!(total.slow_closed, 1);
        assert_eq!(total.dropped, 3, "2 queued + the one that overflowed");
        assert_eq!(set.len(), 1);
        let rest = futures::executor::block_on(slow.collect::<Vec<_>>());
        let t = text(&rest);
        assert!(t.starts_with("id: 0\nevent: gap\n"), "{t}");
        assert!(t.contains("\"reason\":\"slow_client\""));
    }

    #[test]
    fn pings_idle_clients_and_close_all_ends_streams() {
        let mut set = ClientSet::<Shared<[u8]>>::new(4);
        let mut s = set.add(
            Filter::default(),
            0,
            0,
            vec![(Shared::from(&b"retry: 1\n\n"[..]), None, 0)],
        );
        assert_eq!(
            set.ping(50, 100, |b: &[u8]| Shared::<[u8]>::from(b)),
            (0, 0)
        );
        set.ping(100, 100, |b: &[u8]| Shared::<[u8]>::from(b));
        assert_eq!(text(&drain(&mut s, 2)), "retry: 1\n\n: ping\n\n");
        set.ping(150, 100, |b: &[u8]| Shared::<[u8]>::from(b));
        assert_eq!(set.close_all(), 1);
        let rest = futures::executor::block_on(s.collect::<Vec<_>>());
        assert!(rest.is_empty());
    }
}
