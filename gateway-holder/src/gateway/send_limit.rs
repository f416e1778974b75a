//! The gateway send limit (FACTS.md): at most 120 commands per connection per 60 s or Discord
//! disconnects us, and a payload over 4096 bytes closes the connection with 4002. Heartbeats must
//! never be starved by other commands, so a few slots of every window are kept for them. A sliding
//! log of send times (at most 120 entries) is exact and cheap.

use std::collections::VecDeque;
use tokio::time::{Duration, Instant};

pub const LIMIT: usize = 120;
pub const WINDOW: Duration = Duration::from_secs(60);
pub const MAX_PAYLOAD: usize = 4096;

/// Which budget a command draws from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Heartbeat,
    Command,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Over 4096 bytes: Discord would close with 4002, so it is never sent.
    TooLarge(usize),
    /// No slot now; one frees up after this long.
    Wait(Duration),
}

#[derive(Debug)]
pub struct SendLimiter {
    sent: VecDeque<Instant>,
    reserved: usize,
}

impl SendLimiter {
    /// `heartbeat_interval` from HELLO decides how many slots to keep: one per beat that can fall in a
    /// window, plus two for beats Discord asks for with op 1.
    pub fn new(heartbeat_interval: Duration) -> Self {
        let ms = heartbeat_interval.as_millis().max(1);
        let beats = WINDOW.as_millis().div_ceil(ms) as usize;
        SendLimiter {
            sent: VecDeque::with_capacity(LIMIT),
            reserved: (beats + 2).min(LIMIT / 2),
        }
    }

    pub fn reserved(&self) -> usize {
        self.reserved
    }

    fn prune(&mut self, now: Instant) {
        while let Some(&t) = self.sent.front() {
            if now.saturating_duration_since(t) >= WINDOW {
                self.sent.pop_front();
            } else {
                break;
            }
        }
    }

    fn cap(&self, kind: Kind) -> usize {
        match kind {
            Kind::Heartbeat => LIMIT,
            Kind::Command => LIMIT - self.reserved,
        }
    }

    /// The earliest time a `kind` slot is free for the payload that has `ahead` others of its
    /// kind queued before it, if nothing else is sent meanwhile. When the slot depends on sends
    /// that haven't happened yet, `now + WINDOW` (a lower bound: good enough to tell that a
    /// deadline can't be met).
    pub fn free_at(&mut self, kind: Kind, ahead: usize, now: Instant) -> Instant {
        self.prune(now);
        let cap = self.cap(kind);
        let needed = self.sent.len() + ahead + 1;
        if needed <= cap {
            return now;
        }
        match self.sent.get(needed - cap - 1) {
            Some(&t) => (t + WINDOW).max(now),
            None => now + WINDOW,
        }
    }

    /// Takes a slot for a payload of `len` bytes, or says why not.
    pub fn acquire(&mut self, kind: Kind, len: usize, now: Instant) -> Result<(), Refusal> {
        if len > MAX_PAYLOAD {
            return Err(Refusal::TooLarge(len));
        }
        self.prune(now);
        let cap = self.cap(kind);
        if self.sent.len() < cap {
            self.sent.push_back(now);
            return Ok(());
        }
        // The slot that frees first is the (len - cap)th oldest.
        let idx = self.sent.len() - cap;
        let t = self.sent[idx];
        Err(Refusal::Wait((t + WINDOW).saturating_duration_since(now)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn keeps_heartbeat_slots_and_refuses_big_payloads() {
        let mut l = SendLimiter::new(Duration::from_millis(41_250));
        assert_eq!(l.reserved(), 4);
        let now = Instant::now();
        for _ in 0..LIMIT - 4 {
            l.acquire(Kind::Command, 100, now).unwrap();
        }
        match l.acquire(Kind::Command, 100, now) {
            Err(Refusal::Wait(d)) => assert_eq!(d, WINDOW),
            other => panic!("{other:?}"),
        }
        for _ in 0..4 {
            l.acquire(Kind::Heartbeat, 20, now).unwrap();
        }
        assert!(matches!(
            l.acquire(Kind::Heartbeat, 20, now),
            Err(Refusal::Wait(_))
        ));
        assert_eq!(
            l.acquire(Kind::Command, 4097, now),
            Err(Refusal::TooLarge(4097))
        );
        tokio::time::advance(WINDOW).await;
        l.acquire(Kind::Command, 4096, Instant::now()).unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn free_at_predicts_acquire() {
        let mut l = SendLimiter::new(Duration::from_secs(45));
        let start = Instant::now();
        let cap = LIMIT - l.reserved();
        assert_eq!(l.free_at(Kind::Command, 0, start), start);
        for i in 0..cap - 1 {
            l.acquire(Kind::Command, 10, start + Duration::from_millis(i as u64))
                .unwrap();
        }
        let now = start + Duration::from_secs(1);
        assert_eq!(l.free_at(Kind::Command, 0, now), now, "one slot left");
        // The next two wait for the first and the second send to leave the window.
        assert_eq!(l.free_at(Kind::Command, 1, now), start + WINDOW);
        assert_eq!(
            l.free_at(Kind::Command, 2, now),
            start + WINDOW + Duration::from_millis(1)
        );
        // Past everything sent so far: at least a window away.
        assert_eq!(l.free_at(Kind::Command, cap + 5, now), now + WINDOW);
        // Heartbeats still have their reserved slots.
        assert_eq!(l.free_at(Kind::Heartbeat, l.reserved(), now), now);
        l.acquire(Kind::Command, 10, now).unwrap();
        assert_eq!(
            l.acquire(Kind::Command, 10, now),
            Err(Refusal::Wait(start + WINDOW - now))
        );
    }

    #[tokio::test(start_paused = true)]
    async fn the_window_slides() {
        let mut l = SendLimiter::new(Duration::from_secs(45));
        let start = Instant::now();
        let cap = LIMIT - l.reserved();
        for i in 0..cap {
            let t = start + Duration::from_millis(i as u64 * 100);
            l.acquire(Kind::Command, 10, t).unwrap();
        }
        let later = start + Duration::from_secs(30);
        assert_eq!(
            l.acquire(Kind::Command, 10, later),
            Err(Refusal::Wait(Duration::from_secs(30)))
        );
        l.acquire(Kind::Command, 10, start + WINDOW).unwrap();
        assert!(l.acquire(Kind::Command, 10, start + WINDOW).is_err());
    }
}
