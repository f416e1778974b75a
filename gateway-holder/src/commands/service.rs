//! The command service: takes validated commands into the fair queue, runs them with bounded
//! concurrency through the [`Executor`], and hands each outcome back to whoever waits for it.

use super::executor::{Executor, Outcome};
use super::queue::{FairQueue, Full, Next};
use contracts::{ErrorCode, ErrorDetail, HolderCommand};
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
    reply: oneshot::Sender<Outcome>,
}

pub struct CommandService {
    queue: FairQueue<Job>,
    executor: Executor,
    settings: ServiceSettings,
}

/// The queue is full: answer 503 `queue_full`.
#[derive(Debug)]
pub struct QueueFull;

impl CommandService {
    pub fn new(executor: Executor, settings: ServiceSettings) -> Arc<Self> {
        Arc::new(CommandService {
            queue: FairQueue::new(settings.capacity),
            executor,
            settings,
        })
    }

    pub fn queue_depth(&self) -> usize {
        self.queue.len()
    }

    pub fn executor(&self) -> &Executor {
        &self.executor
    }

    /// Queues a command; the receiver yields its outcome.
    pub fn submit(&self, command: HolderCommand) -> Result<oneshot::Receiver<Outcome>, QueueFull> {
        let (reply, outcome) = oneshot::channel();
        let user = command.user.clone();
        let deadline = Instant::now() + self.settings.deadline;
        match self.queue.push(&user, Job { command, reply }, deadline) {
            Ok(_) => Ok(outcome),
            Err(Full(_)) => Err(QueueFull),
        }
    }

    /// Runs queued commands until the process ends.
    pub async fn run(self: Arc<Self>) {
        let slots = Arc::new(Semaphore::new(self.settings.concurrency.max(1)));
        loop {
            let permit = slots.clone().acquire_owned().await.expect("never closed");
            match self.queue.pop().await {
                Next::Expired(q) => {
                    let _ = q.item.reply.send(Outcome::Failed(ErrorDetail {
                        code: ErrorCode::DeadlineExceeded,
                        message: format!("waited {} ms in the queue, past its deadline", q.enqueued.elapsed().as_millis()),
                        field: None,
                    }));
                }
                Next::Run(q) => {
                    let service = self.clone();
                    tokio::spawn(async move {
                        let job = q.item;
                        let c = &job.command;
                        let outcome = service
                            .executor
                            .execute(&c.command_id, &c.command, &c.traceparent, q.deadline)
                            .await;
                        let _ = job.reply.send(outcome);
                        drop(permit);
                    });
                }
            }
        }
    }
}
