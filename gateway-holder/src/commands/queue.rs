//! The one outbound command queue: bounded (1000 by default), fair across users, with a deadline
//! per command.
//!
//! Fairness is round-robin over users with pending commands, so a tab that queues 500 sends delays
//! another user's single send by at most one command per busy user, not by 500. A full queue
//! refuses at once (the edge answers 503 `queue_full` with `Retry-After`): nothing ever waits
//! unboundedly to get in. Expired commands are handed out as expired so the caller can fail them
//! instead of running them late.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use tokio::sync::Notify;
use tokio::time::Instant;

/// A queued item with its timing.
#[derive(Debug)]
pub struct Queued<T> {
    pub user: String,
    pub item: T,
    pub enqueued: Instant,
    pub deadline: Instant,
}

/// What [`FairQueue::pop`] hands out.
#[derive(Debug)]
pub enum Next<T> {
    /// Run it.
    Run(Queued<T>),
    /// Its deadline passed while it waited: fail it.
    Expired(Queued<T>),
}

/// The queue is at capacity; the item is handed back.
#[derive(Debug)]
pub struct Full<T>(pub T);

struct Inner<T> {
    len: usize,
    per_user: HashMap<String, VecDeque<Queued<T>>>,
    /// Users with pending items, in the order they are served.
    rotation: VecDeque<String>,
}

pub struct FairQueue<T> {
    capacity: usize,
    inner: Mutex<Inner<T>>,
    ready: Notify,
}

impl<T> FairQueue<T> {
    pub fn new(capacity: usize) -> Self {
        FairQueue {
            capacity,
            inner: Mutex::new(Inner {
                len: 0,
                per_user: HashMap::new(),
                rotation: VecDeque::new(),
            }),
            ready: Notify::new(),
        }
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    pub fn len(&self) -> usize {
        self.lock().len
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner<T>> {
        // A panic while holding this lock can't leave the queue half-updated in a way that matters
        // more than stopping would, so keep serving.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds `item` for `user`, or hands it back when the queue is full.
    pub fn push(&self, user: &str, item: T, deadline: Instant) -> Result<usize, Full<T>> {
        let mut inner = self.lock();
        if inner.len >= self.capacity {
            return Err(Full(item));
        }
        let queued = Queued {
            user: user.to_string(),
            item,
            enqueued: Instant::now(),
            deadline,
        };
        let entries = inner.per_user.entry(user.to_string()).or_default();
        let was_idle = entries.is_empty();
        entries.push_back(queued);
        if was_idle {
            inner.rotation.push_back(user.to_string());
        }
        inner.len += 1;
        let len = inner.len;
        drop(inner);
        self.ready.notify_one();
        Ok(len)
    }

    /// The next item in round-robin order over users, if any.
    pub fn try_pop(&self) -> Option<Next<T>> {
        let mut inner = self.lock();
        let user = inner.rotation.pop_front()?;
        let entries = inner
            .per_user
            .get_mut(&user)
            .expect("rotation lists users with entries");
        let queued = entries
            .pop_front()
            .expect("rotation lists users with entries");
        if entries.is_empty() {
            inner.per_user.remove(&user);
        } else {
            inner.rotation.push_back(user);
        }
        inner.len -= 1;
        Some(if queued.deadline <= Instant::now() {
            Next::Expired(queued)
        } else {
            Next::Run(queued)
        })
    }

    /// Waits for the next item.
    pub async fn pop(&self) -> Next<T> {
        loop {
            // Register interest before checking, so a push between the check and the wait is seen.
            let notified = self.ready.notified();
            if let Some(next) = self.try_pop() {
                return next;
            }
            notified.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn later() -> Instant {
        Instant::now() + Duration::from_secs(60)
    }

    fn run<T>(next: Option<Next<T>>) -> Queued<T> {
        match next {
            Some(Next::Run(q)) => q,
            Some(Next::Expired(_)) => panic!("expired"),
            None => panic!("empty"),
        }
    }

    #[test]
    fn refuses_past_capacity_and_hands_the_item_back() {
        let q = FairQueue::new(3);
        for i in 0..3 {
            q.push("a", i, later()).unwrap();
        }
        let Full(back) = q.push("b", 99, later()).unwrap_err();
        assert_eq!(back, 99);
        assert_eq!(q.len(), 3);
        run(q.try_pop());
        q.push("b", 100, later()).expect("room again after a pop");
    }

    #[test]
    fn serves_users_round_robin() {
        let q = FairQueue::new(100);
        for i in 0..5 {
            q.push("greedy", format!("g{i}"), later()).unwrap();
        }
        q.push("polite", "p0".to_string(), later()).unwrap();
        q.push("other", "o0".to_string(), later()).unwrap();
        let order: Vec<String> = (0..7).map(|_| run(q.try_pop()).item).collect();
        assert_eq!(order, ["g0", "p0", "o0", "g1", "g2", "g3", "g4"]);
        assert!(q.try_pop().is_none());
    }

    #[test]
    fn keeps_each_users_order() {
        let q = FairQueue::new(100);
        for i in 0..10 {
            q.push(if i % 2 == 0 { "a" } else { "b" }, i, later())
                .unwrap();
        }
        let mut a = vec![];
        let mut b = vec![];
        while let Some(next) = q.try_pop() {
            let Next::Run(item) = next else { panic!() };
            if item.user == "a" {
                a.push(item.item)
            } else {
                b.push(item.item)
            }
        }
        assert_eq!(a, [0, 2, 4, 6, 8]);
        assert_eq!(b, [1, 3, 5, 7, 9]);
    }

    #[tokio::test(start_paused = true)]
    async fn expired_items_come_out_as_expired() {
        let q = FairQueue::new(10);
        q.push("a", 1, Instant::now() + Duration::from_millis(50))
            .unwrap();
        q.push("a", 2, later()).unwrap();
        tokio::time::advance(Duration::from_millis(51)).await;
        assert!(matches!(
            q.pop().await,
            Next::Expired(Queued { item: 1, .. })
        ));
        assert!(matches!(q.pop().await, Next::Run(Queued { item: 2, .. })));
    }

    #[tokio::test]
    async fn pop_waits_for_a_push() {
        let q = std::sync::Arc::new(FairQueue::new(10));
        let waiter = tokio::spawn({
            let q = q.clone();
            async move { q.pop().await }
        });
        tokio::task::yield_now().await;
        q.push("a", 7, later()).unwrap();
        let next = tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .unwrap()
            .unwrap();
        assert!(matches!(next, Next::Run(Queued { item: 7, .. })));
    }
}
