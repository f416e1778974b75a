//! The hand-over between the command executor and the Gateway session task: a bounded channel of
//! [`GatewayRequest`]s (payload, deadline, reply) that the session owns across reconnects.
//!
//! Either side may finish a request, never both: the session *takes* it just before writing it,
//! the executor *abandons* it when its deadline passes first (e.g. the gateway is down and the
//! session isn't reading the channel). One atomic decides, so a command reported as failed at its
//! deadline is never written later, and one that was written is reported as sent.

use super::gateway_call::{GatewayCall, Pace};
use contracts::{ErrorCode, ErrorDetail, GatewayState};
use serde_json::Value;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;

const PENDING: u8 = 0;
const TAKEN: u8 = 1;
const ABANDONED: u8 = 2;

/// One Gateway command on its way to the socket.
#[derive(Debug)]
pub struct GatewayRequest {
    pub command_id: String,
    pub trace_id: String,
    pub op: u8,
    pub payload: String,
    pub pace: Pace,
    /// Not written after this.
    pub deadline: Instant,
    claim: Arc<AtomicU8>,
    reply: oneshot::Sender<Result<(), ErrorDetail>>,
}

impl GatewayRequest {
    /// The session claims it for writing; `false` when the executor already gave up on it.
    pub fn take(&self) -> bool {
        self.claim
            .compare_exchange(PENDING, TAKEN, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    /// The executor gave up on it (its deadline passed): drop it unsent.
    pub fn abandoned(&self) -> bool {
        self.claim.load(Ordering::Acquire) == ABANDONED
    }

    /// Reports the outcome of a request the session took (or fails one it could take).
    pub fn finish(self, outcome: Result<(), ErrorDetail>) {
        let _ = self.reply.send(outcome);
    }

    /// Fails it, unless the executor already gave up on it.
    pub fn fail(self, code: ErrorCode, message: String) {
        if self.take() {
            tracing::warn!(
                trace_id = %self.trace_id,
                command_id = %self.command_id,
                op = self.op,
                %message,
                "gateway command refused"
            );
            self.finish(Err(ErrorDetail {
                code,
                message,
                field: None,
            }));
        }
    }
}

/// The executor's end.
#[derive(Clone)]
pub struct GatewayLink {
    tx: mpsc::Sender<GatewayRequest>,
    state: watch::Receiver<GatewayState>,
}

/// A link with room for `capacity` requests the session hasn't read yet.
pub fn channel(
    capacity: usize,
    state: watch::Receiver<GatewayState>,
) -> (GatewayLink, mpsc::Receiver<GatewayRequest>) {
    let (tx, rx) = mpsc::channel(capacity.max(1));
    (GatewayLink { tx, state }, rx)
}

/// The links of every shard session this holder runs: a guild's commands go to the shard that
/// carries the guild (`(guild_id >> 22) % count`), as Discord requires (op 4 and op 8 name a
/// guild, and only that guild's shard may send them).
#[derive(Clone)]
pub struct ShardLinks {
    count: u32,
    links: std::collections::BTreeMap<u32, GatewayLink>,
}

impl ShardLinks {
    /// One session carrying every guild (shard 0 of 1).
    pub fn single(link: GatewayLink) -> ShardLinks {
        ShardLinks::new(1, [(0, link)])
    }

    pub fn new(count: u32, links: impl IntoIterator<Item = (u32, GatewayLink)>) -> ShardLinks {
        ShardLinks {
            count: count.max(1),
            links: links.into_iter().collect(),
        }
    }

    /// The link of the shard that carries `guild_id`, or why there is none here.
    pub fn for_guild(&self, guild_id: contracts::Snowflake) -> Result<&GatewayLink, ErrorDetail> {
        let shard = ((guild_id.get() >> 22) % u64::from(self.count)) as u32;
        self.links.get(&shard).ok_or_else(|| {
            failed(
                ErrorCode::HolderUnavailable,
                format!(
                    "guild {guild_id} is on shard {shard} of {}, which this holder does not run",
                    self.count
                ),
            )
        })
    }
}

fn failed(code: ErrorCode, message: impl Into<String>) -> ErrorDetail {
    ErrorDetail {
        code,
        message: message.into(),
        field: None,
    }
}

impl GatewayLink {
    /// Hands `call` to the session and waits until it is written to the socket, refused, or its
    /// deadline passes unsent.
    pub async fn send(
        &self,
        command_id: &str,
        trace_id: &str,
        call: GatewayCall,
        deadline: Instant,
    ) -> Result<Value, ErrorDetail> {
        if Instant::now() >= deadline {
            return Err(failed(
                ErrorCode::DeadlineExceeded,
                "the command's deadline passed",
            ));
        }
        let claim = Arc::new(AtomicU8::new(PENDING));
        let (reply, mut outcome) = oneshot::channel();
        let request = GatewayRequest {
            command_id: command_id.to_string(),
            trace_id: trace_id.to_string(),
            op: call.op,
            payload: call.payload,
            pace: call.pace,
            deadline,
            claim: claim.clone(),
            reply,
        };
        if let Err(e) = self.tx.try_send(request) {
            return Err(match e {
                mpsc::error::TrySendError::Full(_) => failed(
                    ErrorCode::QueueFull,
                    "the gateway session has too many commands waiting",
                ),
                mpsc::error::TrySendError::Closed(_) => failed(
                    ErrorCode::HolderUnavailable,
                    "the gateway session has stopped",
                ),
            });
        }
        let dropped = || {
            failed(
                ErrorCode::HolderUnavailable,
                "the gateway session stopped before sending the command",
            )
        };
        tokio::select! {
            r = &mut outcome => return r.unwrap_or_else(|_| Err(dropped())).map(|()| call.result),
            _ = tokio::time::sleep_until(deadline) => {}
        }
        if claim
            .compare_exchange(PENDING, ABANDONED, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            let state = *self.state.borrow();
            let message = if state == GatewayState::Ready {
                "no gateway send slot came free before the command's deadline".to_string()
            } else {
                format!(
                    "the gateway was unavailable ({}) until the command's deadline; it was not sent",
                    serde_json::to_value(state)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_string))
                        .unwrap_or_default()
                )
            };
            return Err(failed(ErrorCode::DeadlineExceeded, message));
        }
        // The session took it just now: its write is under way and reports shortly.
        outcome
            .await
            .unwrap_or_else(|_| Err(dropped()))
            .map(|()| call.result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn call() -> GatewayCall {
        GatewayCall {
            op: 4,
            payload: "{}".into(),
            pace: Pace::None,
            result: serde_json::json!({"op": 4}),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_nobody_takes_fails_at_its_deadline_and_is_never_sent() {
        let (state_tx, state_rx) = watch::channel(GatewayState::Reconnecting);
        let (link, mut rx) = channel(4, state_rx);
        let deadline = Instant::now() + Duration::from_secs(3);
        let started = Instant::now();
        let e = link.send("c1", "t", call(), deadline).await.unwrap_err();
        assert_eq!(e.code, ErrorCode::DeadlineExceeded);
        assert!(e.message.contains("reconnecting"), "{e:?}");
        assert_eq!(started.elapsed(), Duration::from_secs(3));
        let late = rx.recv().await.unwrap();
        assert!(late.abandoned());
        assert!(!late.take(), "the session may not send it any more");
        drop(state_tx);
    }

    #[tokio::test(start_paused = true)]
    async fn a_taken_request_reports_its_write() {
        let (_state_tx, state_rx) = watch::channel(GatewayState::Ready);
        let (link, mut rx) = channel(4, state_rx);
        let session = tokio::spawn(async move {
            let r = rx.recv().await.unwrap();
            assert!(r.take());
            // Written after the deadline passed: still reported as sent.
            tokio::time::sleep(Duration::from_secs(2)).await;
            r.finish(Ok(()));
        });
        let deadline = Instant::now() + Duration::from_secs(1);
        assert_eq!(
            link.send("c", "t", call(), deadline).await.unwrap(),
            serde_json::json!({"op": 4})
        );
        session.await.unwrap();
        drop(link);
    }

    #[tokio::test]
    async fn a_stopped_session_is_reported() {
        let (_state_tx, state_rx) = watch::channel(GatewayState::Stopped);
        let (link, rx) = channel(4, state_rx);
        drop(rx);
        let e = link
            .send("c", "t", call(), Instant::now() + Duration::from_secs(5))
            .await
            .unwrap_err();
        assert_eq!(e.code, ErrorCode::HolderUnavailable);
    }
}
