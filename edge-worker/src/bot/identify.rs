//! The bot-wide IDENTIFY queue (`POST /link/identify`), for holders started with
//! `IDENTIFY_QUEUE=edge`: several processes of one bot share Discord's identify limit, at most
//! one IDENTIFY per rate-limit bucket (`shard % max_concurrency`) per 5 s across all of them.
//!
//! A holder asks before each IDENTIFY and gets an answer at once: granted (IDENTIFY now) or
//! "ask again in `retry_after_ms`". The rules:
//! - buckets are independent;
//! - at most one grant per bucket per `IDENTIFY_WINDOW_MS` (a grant counts whether or not the
//!   holder then IDENTIFYs, so a crash after a grant can only make the queue slower, never
//!   faster than Discord allows);
//! - first come, first served per bucket, by the time of a waiter's first ask; asking again for
//!   the same (`holder_id`, `shard`) keeps the place;
//! - a waiter that does not ask again within [`DROP_AFTER_MS`] of the time it was told (a crashed
//!   holder) loses its place, so it can't hold up the others; if it comes back it queues anew;
//! - the head of a bucket is told exactly when the window reopens; the others poll at most every
//!   [`POLL_MS`], so they notice promptly when a waiter ahead of them drops out.
//!
//! Only the time of each bucket's last grant needs to survive a restart (the DO glue stores it);
//! waiters are in memory and simply queue again after one.

use std::collections::{BTreeMap, VecDeque};

/// A waiter this late past its `retry_after` is dropped from the queue.
pub const DROP_AFTER_MS: u64 = 3_000;
/// Waiters behind the head of their bucket poll at least this often.
pub const POLL_MS: u64 = 1_000;

/// The answer to one ask.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answer {
    Granted,
    Wait { retry_after_ms: u64 },
}

#[derive(Clone, Debug)]
struct Waiter {
    holder_id: String,
    shard: u32,
    /// When it must ask again by (the time it was told to, before the drop-out margin).
    due: u64,
}

#[derive(Clone, Debug, Default)]
struct Bucket {
    last_grant: Option<u64>,
    waiters: VecDeque<Waiter>,
}

#[derive(Clone, Debug)]
pub struct IdentifyQueue {
    window_ms: u64,
    buckets: BTreeMap<u32, Bucket>,
}

impl IdentifyQueue {
    pub fn new(window_ms: u64) -> IdentifyQueue {
        IdentifyQueue {
            window_ms,
            buckets: BTreeMap::new(),
        }
    }

    /// Restores a bucket's last grant (from storage).
    pub fn restore(&mut self, bucket: u32, last_grant: u64) {
        self.buckets.entry(bucket).or_default().last_grant = Some(last_grant);
    }

    /// The bucket of `shard`.
    pub fn bucket(shard: u32, max_concurrency: u32) -> u32 {
        shard % max_concurrency.max(1)
    }

    /// `holder_id` asks whether `shard` may IDENTIFY now. On a grant, the caller stores
    /// [`IdentifyQueue::last_grant`] of the bucket.
    pub fn ask(&mut self, holder_id: &str, shard: u32, max_concurrency: u32, now: u64) -> Answer {
        let window = self.window_ms;
        let b = self
            .buckets
            .entry(Self::bucket(shard, max_concurrency))
            .or_default();
        b.waiters
            .retain(|w| now <= w.due.saturating_add(DROP_AFTER_MS));
        let pos = match b
            .waiters
            .iter()
            .position(|w| w.holder_id == holder_id && w.shard == shard)
        {
            Some(p) => p,
            None => {
                b.waiters.push_back(Waiter {
                    holder_id: holder_id.to_string(),
                    shard,
                    due: now,
                });
                b.waiters.len() - 1
            }
        };
        let open_at = b.last_grant.map_or(0, |t| t.saturating_add(window));
        if pos == 0 && now >= open_at {
            b.waiters.pop_front();
            b.last_grant = Some(now);
            return Answer::Granted;
        }
        let until_open = open_at.saturating_sub(now);
        let retry_after_ms = if pos == 0 {
            until_open
        } else {
            (until_open + pos as u64 * window).min(POLL_MS)
        }
        .max(1);
        b.waiters[pos].due = now + retry_after_ms;
        Answer::Wait { retry_after_ms }
    }

    /// The IDENTIFY granted for `shard` was written at `now`: the bucket's window starts there
    /// (never earlier than the grant). Returns the bucket's new start, for storage.
    pub fn identified(&mut self, shard: u32, max_concurrency: u32, now: u64) -> (u32, u64) {
        let bucket = Self::bucket(shard, max_concurrency);
        let b = self.buckets.entry(bucket).or_default();
        let at = b.last_grant.map_or(now, |t| t.max(now));
        b.last_grant = Some(at);
        (bucket, at)
    }

    pub fn last_grant(&self, bucket: u32) -> Option<u64> {
        self.buckets.get(&bucket).and_then(|b| b.last_grant)
    }

    /// Waiters queued in `bucket` (diagnostics, metrics).
    pub fn waiting(&self, bucket: u32) -> usize {
        self.buckets.get(&bucket).map_or(0, |b| b.waiters.len())
    }

    /// Waiters queued in all buckets.
    pub fn waiting_total(&self) -> usize {
        self.buckets.values().map(|b| b.waiters.len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const W: u64 = 5_000;

    /// Drives holders that poll exactly when told; returns (time, holder, shard) of each grant.
    fn run(
        q: &mut IdentifyQueue,
        asks: &[(&str, u32)],
        mc: u32,
        until: u64,
    ) -> Vec<(u64, String, u32)> {
        let mut next: Vec<(u64, String, u32)> = asks
            .iter()
            .enumerate()
            .map(|(i, (h, s))| (i as u64, h.to_string(), *s))
            .collect();
        let mut grants = Vec::new();
        while let Some(i) = (0..next.len()).min_by_key(|&i| (next[i].0, i)) {
            let (t, h, s) = next[i].clone();
            if t > until {
                break;
            }
            match q.ask(&h, s, mc, t) {
                Answer::Granted => {
                    grants.push((t, h, s));
                    next.remove(i);
                }
                Answer::Wait { retry_after_ms } => next[i].0 = t + retry_after_ms,
            }
        }
        grants
    }

    #[test]
    fn the_window_starts_when_the_identify_was_written() {
        let mut q = IdentifyQueue::new(W);
        assert_eq!(q.ask("a", 0, 1, 0), Answer::Granted);
        // Holder a connected for 800 ms before its IDENTIFY went out.
        assert_eq!(q.identified(0, 1, 800), (0, 800));
        let Answer::Wait { retry_after_ms } = q.ask("b", 1, 1, 5_000) else {
            panic!("5 s after the grant is not 5 s after the IDENTIFY")
        };
        assert_eq!(retry_after_ms, 800);
        assert_eq!(q.ask("b", 1, 1, 5_800), Answer::Granted);
        // A late report never moves the window back.
        assert_eq!(q.identified(1, 1, 100), (0, 5_800));
    }

    #[test]
    fn one_grant_per_bucket_per_window_in_order() {
        let mut q = IdentifyQueue::new(W);
        // Four shards, max_concurrency 2: buckets {0, 2} and {1, 3}.
        let grants = run(&mut q, &[("a", 0), ("a", 1), ("b", 2), ("b", 3)], 2, 60_000);
        let got: Vec<(u64, u32)> = grants.iter().map(|(t, _, s)| (*t, *s)).collect();
        assert_eq!(got, [(0, 0), (1, 1), (5_000, 2), (5_001, 3)]);
        // Spacing within a bucket, across holders, is never below the window.
        for bucket in 0..2 {
            let times: Vec<u64> = grants
                .iter()
                .filter(|(_, _, s)| s % 2 == bucket)
                .map(|(t, _, _)| *t)
                .collect();
            assert!(times.windows(2).all(|w| w[1] - w[0] >= W), "{times:?}");
        }
    }

    #[test]
    fn fifo_by_first_ask_and_asking_again_keeps_the_place() {
        let mut q = IdentifyQueue::new(W);
        assert_eq!(q.ask("a", 0, 1, 0), Answer::Granted);
        let Answer::Wait { retry_after_ms } = q.ask("b", 1, 1, 10) else {
            panic!("the window is closed")
        };
        assert_eq!(
            retry_after_ms, 4_990,
            "the head is told when the window reopens"
        );
        let Answer::Wait {
            retry_after_ms: behind,
        } = q.ask("c", 2, 1, 20)
        else {
            panic!()
        };
        assert!(behind <= POLL_MS, "the others poll");
        // c asks early and often: it stays behind b.
        assert!(matches!(q.ask("c", 2, 1, 900), Answer::Wait { .. }));
        assert!(matches!(q.ask("c", 2, 1, 1_800), Answer::Wait { .. }));
        assert!(
            matches!(q.ask("b", 1, 1, 1_900), Answer::Wait { .. }),
            "b re-asks: same place"
        );
        assert!(matches!(q.ask("c", 2, 1, 2_700), Answer::Wait { .. }));
        assert!(matches!(q.ask("c", 2, 1, 3_600), Answer::Wait { .. }));
        assert!(matches!(q.ask("c", 2, 1, 4_500), Answer::Wait { .. }));
        assert!(
            matches!(q.ask("c", 2, 1, 5_000), Answer::Wait { .. }),
            "b is first, not c"
        );
        assert_eq!(q.ask("b", 1, 1, 5_001), Answer::Granted);
        assert_eq!(q.waiting(0), 1);
        assert!(matches!(q.ask("c", 2, 1, 9_000), Answer::Wait { .. }));
        assert_eq!(q.ask("c", 2, 1, 10_001), Answer::Granted);
    }

    #[test]
    fn a_crashed_waiter_drops_out() {
        let mut q = IdentifyQueue::new(W);
        assert_eq!(q.ask("a", 0, 1, 0), Answer::Granted);
        // b queues first, then crashes (never asks again); c polls as told.
        let Answer::Wait {
            retry_after_ms: b_told,
        } = q.ask("b", 1, 1, 100)
        else {
            panic!()
        };
        assert!(matches!(q.ask("c", 2, 1, 200), Answer::Wait { .. }));
        // While b is within its margin, c waits behind it even with the window open.
        assert!(matches!(q.ask("c", 2, 1, 6_000), Answer::Wait { .. }));
        // Past b's retry_after + DROP_AFTER_MS, b is gone and c is granted.
        let b_deadline = 100 + b_told + DROP_AFTER_MS;
        assert!(matches!(q.ask("c", 2, 1, b_deadline), Answer::Wait { .. }));
        assert_eq!(q.ask("c", 2, 1, b_deadline + 1), Answer::Granted);
        // b comes back: it queues anew, behind nobody now, but the window holds it.
        assert!(matches!(
            q.ask("b", 1, 1, b_deadline + 2),
            Answer::Wait { .. }
        ));
    }

    #[test]
    fn buckets_are_independent_and_grants_survive_a_restart() {
        let mut q = IdentifyQueue::new(W);
        assert_eq!(q.ask("a", 0, 4, 0), Answer::Granted);
        assert_eq!(q.ask("a", 1, 4, 0), Answer::Granted);
        assert_eq!(q.ask("b", 2, 4, 1), Answer::Granted);
        assert_eq!(q.ask("b", 3, 4, 1), Answer::Granted);
        assert!(
            matches!(q.ask("b", 4, 4, 2), Answer::Wait { .. }),
            "bucket 0 again"
        );
        let mut fresh = IdentifyQueue::new(W);
        fresh.restore(0, q.last_grant(0).unwrap());
        assert_eq!(
            fresh.ask("b", 4, 4, 2),
            Answer::Wait {
                retry_after_ms: 4_998
            }
        );
        assert_eq!(fresh.ask("b", 4, 4, 5_000), Answer::Granted);
    }
}
