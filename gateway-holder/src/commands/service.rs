//! The command service: takes validated commands into the fair queue, runs them with bounded
//! concurrency through the [`Executor`] (REST, or the Gateway session for ops 3, 4 and 8), and
//! hands each outcome back to whoever waits for it.

use super::executor::{Executor, Outcome};
use super::queue::{FairQueue, Full, Next};
use crate::metrics::Metrics;
use contracts::{ErrorCode, ErrorDetail, HolderCommand};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{oneshot, Semaphore};
use tokio::time::Instant;

#[derive(Clone, Debug)]
pub struct ServiceSettings {
    pub capacity: usize,
    /// How long a command may wait in the queue and for Discord before it fails.
    pub deadline: Duration,
    /// Commands in flight at once (one per rate-limit bucket still applies).
    pub concurrency: usize,
}

impl Default for ServiceSettings {
    fn default() -> Self {
        ServiceSettings {
            capacity: 1000,
            deadline: Duration::from_secs(30),
            concurrency: 16,
        }
    }
}

struct Job {
    command: HolderCommand,
    received: Instant,
    reply: oneshot::Sender<Outcome>,
}

pub struct CommandService {
    queue: FairQueue<Job>,
    /// Commands admitted and not finished (queued or running): the bound is on these, so "1000
    /// entries" means 1000 commands the holder has promised to do, wherever they are.
    outstanding: AtomicUsize,
    executor: Executor,
    settings: ServiceSettings,
    metrics: Arc<Metrics>,
}

/// The queue is full: answer 503 `queue_full`.
#[derive(Debug)]
pub struct QueueFull;

impl CommandService {
    pub fn new(executor: Executor, settings: ServiceSettings, metrics: Arc<Metrics>) -> Arc<Self> {
        Arc::new(CommandService {
            queue: FairQueue::new(settings.capacity),
            outstanding: AtomicUsize::new(0),
            executor,
            settings,
            metrics,
        })
    }

    pub fn capacity(&self) -> usize {
        self.queue.capacity()
    }

    /// Queues a command; the receiver yields its outcome.
    pub fn submit(&self, command: HolderCommand) -> Result<oneshot::Receiver<Outcome>, QueueFull> {
        let (reply, outcome) = oneshot::channel();
        let user = command.user.clone();
        let received = Instant::now();
        let deadline = received + self.settings.deadline;
        let job = Job {
            command,
            received,
            reply,
        };
        let admitted = self
            .outstanding
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.settings.capacity).then_some(n + 1)
            })
            .is_ok();
        if !admitted {
            self.record("queue_full");
            return Err(QueueFull);
        }
        match self.queue.push(&user, job, deadline) {
            Ok(_) => {
                self.metrics
                    .command_queue_depth
                    .set(self.outstanding.load(Ordering::Acquire) as i64);
                Ok(outcome)
            }
            Err(Full(_)) => {
                // Unreachable while `outstanding` bounds the queue; kept consistent anyway.
                self.outstanding.fetch_sub(1, Ordering::AcqRel);
                self.record("queue_full");
                Err(QueueFull)
            }
        }
    }

    fn record(&self, outcome: &str) {
        self.metrics
            .command_outcomes
            .get_or_create(&Metrics::label("outcome", outcome))
            .inc();
    }

    fn finish(&self, job: Job, outcome: Outcome) {
        let name = match &outcome {
            Outcome::Sent(_) => "sent".to_string(),
            Outcome::Failed(e) => serde_json::to_value(e.code)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_else(|| "failed".into()),
        };
        self.record(&name);
        self.metrics
            .command_dispatch
            .observe(job.received.elapsed().as_secs_f64());
        let counts = self.executor.limits().counts();
        self.metrics
            .discord_invalid_requests
            .set(counts.invalid_in_window as i64);
        for (scope, n) in [
            ("global", counts.rate_limited_global),
            ("user", counts.rate_limited_user),
            ("shared", counts.rate_limited_shared),
        ] {
            let c = self
                .metrics
                .discord_429s
                .get_or_create(&Metrics::label("scope", scope));
            let seen = c.get();
            if n > seen {
                c.inc_by(n - seen);
            }
        }
        let left = self.outstanding.fetch_sub(1, Ordering::AcqRel) - 1;
        self.metrics.command_queue_depth.set(left as i64);
        // The waiter may have gone (the HTTP answer was already 202 and the result is posted).
        let _ = job.reply.send(outcome);
    }

    /// Runs queued commands until the process ends.
    pub async fn run(self: Arc<Self>) {
        let slots = Arc::new(Semaphore::new(self.settings.concurrency.max(1)));
        loop {
            let permit = slots.clone().acquire_owned().await.expect("never closed");
            let next = self.queue.pop().await;
            self.metrics
                .command_queue_depth
                .set(self.queue.len() as i64);
            match next {
                Next::Expired(q) => {
                    let waited = q.enqueued.elapsed();
                    self.finish(
                        q.item,
                        Outcome::Failed(ErrorDetail {
                            code: ErrorCode::DeadlineExceeded,
                            message: format!(
                                "waited {} ms in the queue, past its deadline",
                                waited.as_millis()
                            ),
                            field: None,
                        }),
                    );
                }
                Next::Run(q) => {
                    self.metrics
                        .command_wait
                        .observe(q.enqueued.elapsed().as_secs_f64());
                    let service = self.clone();
                    tokio::spawn(async move {
                        let job = q.item;
                        let c = &job.command;
                        let outcome = service.executor.run(c, q.deadline).await;
                        service.finish(job, outcome);
                        drop(permit);
                    });
                }
            }
        }
    }
}
