//! The Gateway session's side of commands: the requests it has read from the
//! [`super::gateway_link`] channel, in order, and when each may be written. The session task owns
//! it across reconnects and asks [`Outbox::next`] for the next payload only while the connection
//! is READY/RESUMED.
//!
//! Rules, each checked against the command's deadline (one that can't go before it fails now
//! instead of waiting past it):
//! - the connection's send limit (120 per 60 s, heartbeat slots kept: [`SendLimiter`]);
//! - presence updates: [`PRESENCE_LIMIT`] per [`PRESENCE_WINDOW`];
//! - Request Guild Members: one per guild per `members_interval` (Discord: 30 s; answered with a
//!   `RATE_LIMITED` dispatch otherwise);
//! - at most 4096 bytes (Discord closes with 4002).
//!
//! A paced command doesn't hold up the others: a voice update behind a member request that waits
//! for its guild's interval goes first. Pacing times are when the payload was written, kept
//! across reconnects (Discord's limits are not per connection for these).

use super::gateway_call::Pace;
use super::gateway_link::GatewayRequest;
use crate::gateway::send_limit::{Kind, SendLimiter, MAX_PAYLOAD};
use contracts::{ErrorCode, Snowflake};
use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::task::Poll;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::{Instant, Sleep};

/// Presence updates per window (Discord: 5 per 20 s).
pub const PRESENCE_LIMIT: usize = 5;
/// Discord's 20 s plus half a second for clock and network skew.
pub const PRESENCE_WINDOW: Duration = Duration::from_millis(20_500);

/// What to do next.
#[derive(Debug)]
pub enum Next {
    /// Write it now (its send-limit slot is already taken), then call [`Outbox::written`].
    Send(GatewayRequest),
    /// Nothing can go before this time.
    WaitUntil(Instant),
    /// Nothing to send.
    Idle,
}

pub struct Outbox {
    rx: mpsc::Receiver<GatewayRequest>,
    closed: bool,
    pending: VecDeque<GatewayRequest>,
    presence_sent: VecDeque<Instant>,
    members_sent: HashMap<Snowflake, Instant>,
    members_interval: Duration,
    timer: Pin<Box<Sleep>>,
    armed: bool,
}

impl Outbox {
    pub fn new(rx: mpsc::Receiver<GatewayRequest>, members_interval: Duration) -> Self {
        Outbox {
            rx,
            closed: false,
            pending: VecDeque::new(),
            presence_sent: VecDeque::new(),
            members_sent: HashMap::new(),
            members_interval,
            timer: Box::pin(tokio::time::sleep(Duration::ZERO)),
            armed: false,
        }
    }

    /// Resolves when there is something to look at: a new request, or the time set by
    /// [`Outbox::wake_at`]. Cancel-safe (a received request is kept before this resolves).
    pub fn changed(&mut self) -> impl Future<Output = ()> + '_ {
        std::future::poll_fn(move |cx| {
            let mut got = false;
            while !self.closed {
                match self.rx.poll_recv(cx) {
                    Poll::Ready(Some(r)) => {
                        self.pending.push_back(r);
                        got = true;
                    }
                    Poll::Ready(None) => self.closed = true,
                    Poll::Pending => break,
                }
            }
            if got {
                return Poll::Ready(());
            }
            if self.armed && self.timer.as_mut().poll(cx).is_ready() {
                self.armed = false;
                return Poll::Ready(());
            }
            Poll::Pending
        })
    }

    /// Makes [`Outbox::changed`] resolve at `at`.
    pub fn wake_at(&mut self, at: Instant) {
        self.timer.as_mut().reset(at);
        self.armed = true;
    }

    /// Requests read and not yet written or failed.
    pub fn len(&self) -> usize {
        self.pending.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    fn class_free_at(&mut self, pace: Pace, now: Instant) -> Instant {
        match pace {
            Pace::None => now,
            Pace::Presence => {
                while self
                    .presence_sent
                    .front()
                    .is_some_and(|t| now.saturating_duration_since(*t) >= PRESENCE_WINDOW)
                {
                    self.presence_sent.pop_front();
                }
                if self.presence_sent.len() < PRESENCE_LIMIT {
                    now
                } else {
                    let oldest = self.presence_sent[self.presence_sent.len() - PRESENCE_LIMIT];
                    (oldest + PRESENCE_WINDOW).max(now)
                }
            }
            Pace::Members(guild) => self
                .members_sent
                .get(&guild)
                .map_or(now, |t| (*t + self.members_interval).max(now)),
        }
    }

    /// The next request to write at `now`, failing those that can't make their deadline. Only
    /// call while the connection is READY/RESUMED; `limiter` is the connection's.
    pub fn next(&mut self, now: Instant, limiter: &mut SendLimiter) -> Next {
        let mut wake: Option<Instant> = None;
        // Requests before this one that wait only for a send slot (they get the earlier slots).
        let mut ahead = 0;
        let mut i = 0;
        while i < self.pending.len() {
            let r = &self.pending[i];
            if r.abandoned() {
                self.pending.remove(i);
                continue;
            }
            if r.payload.len() > MAX_PAYLOAD {
                let r = self.pending.remove(i).expect("index in range");
                let n = r.payload.len();
                r.fail(
                    ErrorCode::TooLarge,
                    format!("the gateway payload is {n} bytes; Discord closes the connection past {MAX_PAYLOAD}"),
                );
                continue;
            }
            let (pace, deadline, len) = (r.pace, r.deadline, r.payload.len());
            let class_at = self.class_free_at(pace, now);
            let slot_at = limiter.free_at(Kind::Command, ahead, now);
            let at = class_at.max(slot_at);
            if at > deadline {
                let r = self.pending.remove(i).expect("index in range");
                let wait = at.saturating_duration_since(now).as_millis();
                let why = if class_at > slot_at {
                    match pace {
                        Pace::Members(g) => format!(
                            "Request Guild Members for guild {g} is paced at 1 per {} ms; the next slot is in {wait} ms, past the command's deadline",
                            self.members_interval.as_millis()
                        ),
                        _ => format!(
                            "presence updates are limited to {PRESENCE_LIMIT} per {} s; the next slot is in {wait} ms, past the command's deadline",
                            PRESENCE_WINDOW.as_secs()
                        ),
                    }
                } else {
                    format!("the gateway send limit (120 per 60 s) has no slot for {wait} ms, past the command's deadline")
                };
                r.fail(ErrorCode::DeadlineExceeded, why);
                continue;
            }
            if at <= now {
                let r = self.pending.remove(i).expect("index in range");
                if !r.take() {
                    continue;
                }
                if let Err(e) = limiter.acquire(Kind::Command, len, now) {
                    // `free_at` said there was a slot; keep the contract if it ever disagrees.
                    r.finish(Err(contracts::ErrorDetail {
                        code: ErrorCode::Internal,
                        message: format!("gateway send limiter refused: {e:?}"),
                        field: None,
                    }));
                    continue;
                }
                return Next::Send(r);
            }
            wake = Some(wake.map_or(at, |w| w.min(at)));
            if class_at <= now {
                ahead += 1;
            }
            i += 1;
        }
        match wake {
            Some(at) => Next::WaitUntil(at),
            None => Next::Idle,
        }
    }

    /// Drops requests the executor gave up on (while the connection is not ready nothing else
    /// looks at them).
    pub fn prune(&mut self) {
        self.pending.retain(|r| !r.abandoned());
    }

    /// Records that `pace` was written at `at`.
    pub fn written(&mut self, pace: Pace, at: Instant) {
        match pace {
            Pace::None => {}
            Pace::Presence => self.presence_sent.push_back(at),
            Pace::Members(guild) => {
                let interval = self.members_interval;
                if self.members_sent.len() > 1024 {
                    self.members_sent
                        .retain(|_, t| at.saturating_duration_since(*t) < interval);
                }
                self.members_sent.insert(guild, at);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::gateway_call::GatewayCall;
    use crate::commands::gateway_link::{self, GatewayLink};
    use contracts::GatewayState;
    use tokio::sync::watch;

    struct Rig {
        link: GatewayLink,
        outbox: Outbox,
        limiter: SendLimiter,
        _state: watch::Sender<GatewayState>,
    }

    fn rig(members_interval: Duration) -> Rig {
        let (state, state_rx) = watch::channel(GatewayState::Ready);
        let (link, rx) = gateway_link::channel(256, state_rx);
        Rig {
            link,
            outbox: Outbox::new(rx, members_interval),
            limiter: SendLimiter::new(Duration::from_secs(45)),
            _state: state,
        }
    }

    fn call(op: u8, pace: Pace, len: usize) -> GatewayCall {
        GatewayCall {
            op,
            payload: "x".repeat(len),
            pace,
            result: serde_json::json!({"op": op}),
        }
    }

    impl Rig {
        /// Submits a command from a task; returns its outcome handle.
        fn submit(
            &self,
            id: &str,
            c: GatewayCall,
            deadline: Duration,
        ) -> tokio::task::JoinHandle<Result<serde_json::Value, contracts::ErrorDetail>> {
            let link = self.link.clone();
            let id = id.to_string();
            let deadline = Instant::now() + deadline;
            tokio::spawn(async move { link.send(&id, "trace", c, deadline).await })
        }

        /// Reads what was submitted, then writes everything that may go now; returns the ids.
        async fn pump(&mut self) -> (Vec<String>, Next) {
            // Let every submitting task run (the scheduler serves about 60 per tick).
            for _ in 0..10 {
                tokio::task::yield_now().await;
            }
            let _ = tokio::time::timeout(Duration::ZERO, self.outbox.changed()).await;
            let mut sent = vec![];
            loop {
                match self.outbox.next(Instant::now(), &mut self.limiter) {
                    Next::Send(r) => {
                        self.outbox.written(r.pace, Instant::now());
                        sent.push(r.command_id.clone());
                        r.finish(Ok(()));
                    }
                    other => return (sent, other),
                }
            }
        }
    }

    const MINUTE: Duration = Duration::from_secs(60);
    const G: Snowflake = Snowflake(7);

    #[tokio::test(start_paused = true)]
    async fn member_requests_are_paced_per_guild_and_others_pass_them() {
        let mut r = rig(Duration::from_secs(30));
        let a = r.submit("a", call(8, Pace::Members(G), 50), MINUTE);
        let b = r.submit("b", call(8, Pace::Members(G), 50), MINUTE);
        let other = r.submit("other", call(8, Pace::Members(Snowflake(8)), 50), MINUTE);
        let voice = r.submit("voice", call(4, Pace::None, 50), MINUTE);
        let (sent, next) = r.pump().await;
        assert_eq!(sent, ["a", "other", "voice"], "b waits for its guild");
        let start = Instant::now();
        match next {
            Next::WaitUntil(at) => assert_eq!(at - start, Duration::from_secs(30)),
            other => panic!("{other:?}"),
        }
        for h in [a, other, voice] {
            assert!(h.await.unwrap().is_ok());
        }
        tokio::time::advance(Duration::from_secs(30)).await;
        let (sent, next) = r.pump().await;
        assert_eq!(sent, ["b"]);
        assert!(matches!(next, Next::Idle));
        assert!(b.await.unwrap().is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn a_command_that_cannot_make_its_deadline_fails_at_once() {
        let mut r = rig(Duration::from_secs(30));
        let first = r.submit("first", call(8, Pace::Members(G), 50), MINUTE);
        let (sent, _) = r.pump().await;
        assert_eq!(sent, ["first"]);
        assert!(first.await.unwrap().is_ok());
        let started = Instant::now();
        let late = r.submit(
            "late",
            call(8, Pace::Members(G), 50),
            Duration::from_secs(10),
        );
        let (sent, next) = r.pump().await;
        assert!(sent.is_empty() && matches!(next, Next::Idle));
        let e = late.await.unwrap().unwrap_err();
        assert_eq!(e.code, ErrorCode::DeadlineExceeded);
        assert!(e.message.contains("paced"), "{e:?}");
        assert_eq!(started.elapsed(), Duration::ZERO, "failed without waiting");

        let big = r.submit("big", call(4, Pace::None, MAX_PAYLOAD + 1), MINUTE);
        r.pump().await;
        assert_eq!(big.await.unwrap().unwrap_err().code, ErrorCode::TooLarge);
    }

    #[tokio::test(start_paused = true)]
    async fn presence_is_five_per_window_and_the_send_limit_keeps_heartbeat_slots() {
        let mut r = rig(Duration::from_secs(30));
        let presences: Vec<_> = (0..6)
            .map(|i| r.submit(&format!("p{i}"), call(3, Pace::Presence, 50), MINUTE))
            .collect();
        let (sent, next) = r.pump().await;
        assert_eq!(sent.len(), PRESENCE_LIMIT);
        let start = Instant::now();
        assert!(matches!(next, Next::WaitUntil(at) if at - start == PRESENCE_WINDOW));
        tokio::time::advance(PRESENCE_WINDOW).await;
        let (sent, _) = r.pump().await;
        assert_eq!(sent, ["p5"]);
        for p in presences {
            assert!(p.await.unwrap().is_ok());
        }

        // A burst of voice updates: the send limit's command share goes, the rest fail at once
        // (their deadline is before any slot frees), and the heartbeat slots stay free.
        let cap = crate::gateway::send_limit::LIMIT - r.limiter.reserved();
        let burst: Vec<_> = (0..150)
            .map(|i| {
                r.submit(
                    &format!("v{i}"),
                    call(4, Pace::None, 50),
                    Duration::from_secs(5),
                )
            })
            .collect();
        let (sent, next) = r.pump().await;
        assert_eq!(
            sent.len() + 6,
            cap,
            "the six presences took their slots too"
        );
        assert!(matches!(next, Next::Idle), "{next:?}");
        let mut failed = 0;
        for h in burst {
            if let Err(e) = h.await.unwrap() {
                assert_eq!(e.code, ErrorCode::DeadlineExceeded);
                failed += 1;
            }
        }
        assert_eq!(failed, 150 - sent.len());
        let now = Instant::now();
        assert_eq!(
            r.limiter
                .free_at(Kind::Heartbeat, r.limiter.reserved() - 1, now),
            now
        );
    }
}
