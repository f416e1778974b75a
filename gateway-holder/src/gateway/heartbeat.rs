//! Heartbeat bookkeeping for one connection (FACTS.md): the first beat after `interval × random[0,1)`,
//! then one every interval carrying the last `s`; a beat that finds the previous one unacknowledged
//! means the connection is a zombie. Pure state driven by the connection loop, so the timing rules
//! are tested with a paused clock instead of a socket.

use tokio::time::{Duration, Instant};

#[derive(Debug)]
pub struct Heartbeat {
    interval: Duration,
    next_at: Instant,
    sent_at: Option<Instant>,
    awaiting_ack: bool,
    last_rtt: Option<Duration>,
}

/// What to do when the beat is due.
#[derive(Debug, PartialEq, Eq)]
pub enum Beat {
    /// Send op 1 now.
    Send,
    /// The last beat was never acknowledged: drop the connection and resume.
    Zombie,
}

impl Heartbeat {
    /// Starts the schedule on HELLO. `jitter` is the random factor in `[0, 1)`.
    pub fn on_hello(interval: Duration, jitter: f64, now: Instant) -> Self {
        let jitter = if jitter.is_finite() {
            jitter.clamp(0.0, 1.0)
        } else {
            0.0
        };
        Heartbeat {
            interval,
            next_at: now + interval.mul_f64(jitter),
            sent_at: None,
            awaiting_ack: false,
            last_rtt: None,
        }
    }

    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// When the next beat is due.
    pub fn deadline(&self) -> Instant {
        self.next_at
    }

    /// Called at the deadline: either send a beat (and schedule the next) or report a zombie.
    pub fn due(&mut self, now: Instant) -> Beat {
        if self.awaiting_ack {
            return Beat::Zombie;
        }
        self.sent(now);
        // Schedule from the planned time so the cadence does not drift with a late timer.
        self.next_at += self.interval;
        if self.next_at <= now {
            self.next_at = now + self.interval;
        }
        Beat::Send
    }

    /// A beat was sent (scheduled, or asked for with op 1).
    pub fn sent(&mut self, now: Instant) {
        self.awaiting_ack = true;
        self.sent_at = Some(now);
    }

    /// Op 11. Returns the round trip time of the beat it acknowledges.
    pub fn ack(&mut self, now: Instant) -> Option<Duration> {
        self.awaiting_ack = false;
        let rtt = self
            .sent_at
            .take()
            .map(|t| now.saturating_duration_since(t));
        if rtt.is_some() {
            self.last_rtt = rtt;
        }
        rtt
    }

    pub fn last_rtt(&self) -> Option<Duration> {
        self.last_rtt
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn first_beat_is_jittered_then_every_interval() {
        let start = Instant::now();
        let interval = Duration::from_millis(1000);
        let mut hb = Heartbeat::on_hello(interval, 0.25, start);
        assert_eq!(hb.deadline() - start, Duration::from_millis(250));

        tokio::time::sleep_until(hb.deadline()).await;
        assert_eq!(hb.due(Instant::now()), Beat::Send);
        tokio::time::advance(Duration::from_millis(30)).await;
        assert_eq!(hb.ack(Instant::now()), Some(Duration::from_millis(30)));
        assert_eq!(hb.deadline() - start, Duration::from_millis(1250));

        tokio::time::sleep_until(hb.deadline()).await;
        assert_eq!(hb.due(Instant::now()), Beat::Send);
        assert_eq!(hb.deadline() - start, Duration::from_millis(2250));
    }

    #[tokio::test(start_paused = true)]
    async fn a_missing_ack_is_a_zombie() {
        let mut hb = Heartbeat::on_hello(Duration::from_millis(500), 0.0, Instant::now());
        assert_eq!(hb.due(Instant::now()), Beat::Send);
        tokio::time::sleep_until(hb.deadline()).await;
        assert_eq!(hb.due(Instant::now()), Beat::Zombie);
    }

    #[tokio::test(start_paused = true)]
    async fn hello_resets_and_bad_jitter_is_clamped() {
        let now = Instant::now();
        let hb = Heartbeat::on_hello(Duration::from_secs(1), f64::NAN, now);
        assert_eq!(hb.deadline(), now);
        let hb = Heartbeat::on_hello(Duration::from_secs(1), 7.0, now);
        assert_eq!(hb.deadline(), now + Duration::from_secs(1));
    }

    #[tokio::test(start_paused = true)]
    async fn a_late_timer_does_not_cause_a_burst() {
        let mut hb = Heartbeat::on_hello(Duration::from_millis(100), 0.0, Instant::now());
        tokio::time::advance(Duration::from_millis(450)).await;
        assert_eq!(hb.due(Instant::now()), Beat::Send);
        assert!(hb.deadline() > Instant::now());
    }
}
