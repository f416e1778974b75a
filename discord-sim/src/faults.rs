//! Fault injection: the ways Discord misbehaves (or tells a client to go away), on demand.
//!
//! Connection faults (op 7, op 9, close, TCP drop, op 1) hit every live connection at once;
//! switches (stop ACKs, refuse RESUME, slow REST, token revoked, close before READY) stay until
//! switched off; a 429 storm answers the next N REST calls with 429.
//!
//! [`Fault::OnShard`] aims a connection fault, stop ACKs or close-before-READY at the
//! connections of one shard id (whatever their `num_shards`); in JSON that is the same object
//! with a `"shard"` field.

use std::sync::atomic::Ordering;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::gateway::close_codes::CloseCode;
use crate::gateway::connection::{op_payload, Outbound};
use crate::gateway::session::Ended;
use crate::state::{lock, SimState, Storm};

/// `X-RateLimit-Scope` of a 429.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RateLimitScope {
    /// Per-bot, per-route limit.
    User,
    /// Global per-bot limit (`X-RateLimit-Global: true`).
    Global,
    /// Shared resource limit (doesn't count as invalid request).
    Shared,
}

impl RateLimitScope {
    /// Header value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::Global => "global",
            Self::Shared => "shared",
        }
    }
}

/// A fault to inject. In the control API it is JSON tagged by `kind`:
/// `{"kind":"reconnect"}`, `{"kind":"invalid_session","resumable":false}`,
/// `{"kind":"close","code":4000}`, `{"kind":"drop_tcp"}`, `{"kind":"request_heartbeat"}`,
/// `{"kind":"stop_acks","on":true}`, `{"kind":"refuse_resume","on":true}`,
/// `{"kind":"slow_rest","delay_ms":500}`,
/// `{"kind":"rate_limit_storm","count":3,"scope":"user","retry_after_ms":1000}` (the last field
/// optional), `{"kind":"revoke_token","on":true}`, `{"kind":"refuse_gateway","on":true}`,
/// `{"kind":"close_before_ready","code":4000}` (`"code":null` turns it off). Any of the
/// connection faults, `stop_acks` and `close_before_ready` take `"shard": N` to hit only shard N
/// ([`Fault::OnShard`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "FaultWire", into = "FaultWire")]
pub enum Fault {
    /// Send op 7 Reconnect on every connection.
    Reconnect,
    /// Send op 9 Invalid Session; `resumable: false` also ends the sessions.
    InvalidSession {
        /// `d` of the op 9.
        resumable: bool,
    },
    /// Close every connection with this code (codes that end sessions end them).
    Close {
        /// Close code.
        code: u16,
    },
    /// Cut every connection without a close frame.
    DropTcp,
    /// Send op 1 (a server-requested heartbeat) on every connection.
    RequestHeartbeat,
    /// Stop (true) or resume (false) answering heartbeats with op 11 (false also ends any
    /// per-shard stop).
    StopAcks(bool),
    /// Answer every RESUME with op 9 `false` (true), or resume normally again (false).
    RefuseResume(bool),
    /// Add this delay to every REST answer (zero turns it off).
    SlowRest(Duration),
    /// The next `count` REST calls get 429 with `scope` (`Retry-After`: config's
    /// `storm_retry_after`).
    RateLimitStorm {
        /// Calls to refuse.
        count: u32,
        /// Scope reported.
        scope: RateLimitScope,
    },
    /// Like `RateLimitStorm` with an explicit `Retry-After`.
    RateLimitStormFor {
        /// Calls to refuse.
        count: u32,
        /// Scope reported.
        scope: RateLimitScope,
        /// Retry-After.
        retry_after: Duration,
    },
    /// Revoke (true) or restore (false) the bot token: REST 401, IDENTIFY/RESUME 4004.
    RevokeToken(bool),
    /// Refuse (true) or accept again (false) new gateway connections (HTTP 503 on the upgrade):
    /// with `Close`/`DropTcp` first, the gateway is down for as long as the switch is on.
    RefuseGateway(bool),
    /// `Some(code)`: every IDENTIFY (past validation, pacing and the session-start budget, so it
    /// uses a session start) is answered by closing with `code` before READY; `None`: off
    /// (also on every shard it was aimed at).
    CloseBeforeReady(Option<u16>),
    /// Write one websocket message on every connection that its client can't decompress
    /// (zlib-stream: a deflate block of the reserved type; zstd-stream: a zstd block of the
    /// reserved type; uncompressed: a truncated JSON text). The connection's own compression
    /// context is untouched; the client is expected to drop the connection and RESUME.
    CorruptFrame,
    /// `fault` only on connections serving a session of shard id `shard`: `Reconnect`,
    /// `InvalidSession`, `Close`, `DropTcp`, `RequestHeartbeat`, `StopAcks`,
    /// `CloseBeforeReady`, `CorruptFrame` (others are refused).
    OnShard {
        /// Shard id (`shard[0]` of IDENTIFY).
        shard: u64,
        /// The fault.
        fault: Box<Fault>,
    },
}

/// [`FaultJson`] with the optional shard filter.
#[derive(Clone, Serialize, Deserialize)]
struct FaultWire {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    shard: Option<u64>,
    #[serde(flatten)]
    fault: FaultJson,
}

impl TryFrom<FaultWire> for Fault {
    type Error = String;

    fn try_from(w: FaultWire) -> Result<Self, String> {
        let fault = Fault::from(w.fault);
        match w.shard {
            None => Ok(fault),
            Some(shard) if fault.shardable() => Ok(Fault::OnShard {
                shard,
                fault: Box::new(fault),
            }),
            Some(_) => Err(format!("{fault:?} cannot be aimed at one shard")),
        }
    }
}

impl From<Fault> for FaultWire {
    fn from(f: Fault) -> Self {
        match f {
            Fault::OnShard { shard, fault } => {
                let mut w = FaultWire::from(*fault);
                w.shard = Some(shard);
                w
            }
            other => FaultWire {
                shard: None,
                fault: FaultJson::from(other),
            },
        }
    }
}

impl Fault {
    /// Whether [`Fault::OnShard`] can carry it.
    pub fn shardable(&self) -> bool {
        matches!(
            self,
            Fault::Reconnect
                | Fault::InvalidSession { .. }
                | Fault::Close { .. }
                | Fault::DropTcp
                | Fault::RequestHeartbeat
                | Fault::StopAcks(_)
                | Fault::CloseBeforeReady(_)
                | Fault::CorruptFrame
        )
    }

    /// `self` on shard id `shard` only.
    pub fn on_shard(self, shard: u64) -> Fault {
        Fault::OnShard {
            shard,
            fault: Box::new(self),
        }
    }
}

/// The JSON shape of [`Fault`] (every variant a struct, so the `kind` tag works).
#[derive(Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum FaultJson {
    Reconnect,
    InvalidSession {
        resumable: bool,
    },
    Close {
        code: u16,
    },
    DropTcp,
    RequestHeartbeat,
    StopAcks {
        on: bool,
    },
    RefuseResume {
        on: bool,
    },
    SlowRest {
        delay_ms: u64,
    },
    RateLimitStorm {
        count: u32,
        scope: RateLimitScope,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        retry_after_ms: Option<u64>,
    },
    RevokeToken {
        on: bool,
    },
    RefuseGateway {
        on: bool,
    },
    CloseBeforeReady {
        #[serde(default)]
        code: Option<u16>,
    },
    CorruptFrame,
}

impl From<FaultJson> for Fault {
    fn from(f: FaultJson) -> Self {
        match f {
            FaultJson::Reconnect => Fault::Reconnect,
            FaultJson::InvalidSession { resumable } => Fault::InvalidSession { resumable },
            FaultJson::Close { code } => Fault::Close { code },
            FaultJson::DropTcp => Fault::DropTcp,
            FaultJson::RequestHeartbeat => Fault::RequestHeartbeat,
            FaultJson::StopAcks { on } => Fault::StopAcks(on),
            FaultJson::RefuseResume { on } => Fault::RefuseResume(on),
            FaultJson::SlowRest { delay_ms } => Fault::SlowRest(Duration::from_millis(delay_ms)),
            FaultJson::RateLimitStorm {
                count,
                scope,
                retry_after_ms: None,
            } => Fault::RateLimitStorm { count, scope },
            FaultJson::RateLimitStorm {
                count,
                scope,
                retry_after_ms: Some(ms),
            } => Fault::RateLimitStormFor {
                count,
                scope,
                retry_after: Duration::from_millis(ms),
            },
            FaultJson::RevokeToken { on } => Fault::RevokeToken(on),
            FaultJson::RefuseGateway { on } => Fault::RefuseGateway(on),
            FaultJson::CloseBeforeReady { code } => Fault::CloseBeforeReady(code),
            FaultJson::CorruptFrame => Fault::CorruptFrame,
        }
    }
}

impl From<Fault> for FaultJson {
    fn from(f: Fault) -> Self {
        match f {
            Fault::Reconnect => FaultJson::Reconnect,
            Fault::InvalidSession { resumable } => FaultJson::InvalidSession { resumable },
            Fault::Close { code } => FaultJson::Close { code },
            Fault::DropTcp => FaultJson::DropTcp,
            Fault::RequestHeartbeat => FaultJson::RequestHeartbeat,
            Fault::StopAcks(on) => FaultJson::StopAcks { on },
            Fault::RefuseResume(on) => FaultJson::RefuseResume { on },
            Fault::SlowRest(d) => FaultJson::SlowRest {
                delay_ms: d.as_millis() as u64,
            },
            Fault::RateLimitStorm { count, scope } => FaultJson::RateLimitStorm {
                count,
                scope,
                retry_after_ms: None,
            },
            Fault::RateLimitStormFor {
                count,
                scope,
                retry_after,
            } => FaultJson::RateLimitStorm {
                count,
                scope,
                retry_after_ms: Some(retry_after.as_millis() as u64),
            },
            Fault::RevokeToken(on) => FaultJson::RevokeToken { on },
            Fault::RefuseGateway(on) => FaultJson::RefuseGateway { on },
            Fault::CloseBeforeReady(code) => FaultJson::CloseBeforeReady { code },
            Fault::CorruptFrame => FaultJson::CorruptFrame,
            // Flattened by `FaultWire::from` before it gets here.
            Fault::OnShard { fault, .. } => FaultJson::from(*fault),
        }
    }
}

/// Applies a fault; returns how many connections it reached (0 for switches), or why it can't
/// be applied (a fault [`Fault::OnShard`] can't carry).
pub fn apply(state: &SimState, fault: Fault) -> Result<usize, String> {
    tracing::info!(?fault, "injecting fault");
    match fault {
        Fault::OnShard { shard, fault } => {
            if !fault.shardable() {
                return Err(format!("{fault:?} cannot be aimed at one shard"));
            }
            Ok(apply_on(state, Some(shard), *fault))
        }
        other => Ok(apply_on(state, None, other)),
    }
}

fn apply_on(state: &SimState, shard: Option<u64>, fault: Fault) -> usize {
    let f = &state.faults;
    let switch = |set: &dyn Fn(&mut crate::state::ShardSwitches)| {
        if let Some(id) = shard {
            set(lock(&f.shards).entry(id).or_default());
        }
    };
    match fault {
        Fault::OnShard { .. } => 0,
        Fault::Reconnect => state.to_conns(shard, |_| {
            Some(Outbound::Raw(op_payload(7, &serde_json::Value::Null)))
        }),
        Fault::RequestHeartbeat => state.to_conns(shard, |_| {
            Some(Outbound::Raw(op_payload(1, &serde_json::Value::Null)))
        }),
        Fault::InvalidSession { resumable } => state.to_conns(shard, |c| {
            if !resumable {
                if let Some(s) = c.session.as_deref().and_then(|id| state.session(id)) {
                    lock(&s).end(Ended::Invalidated);
                }
            }
            Some(Outbound::Raw(op_payload(9, &json!(resumable))))
        }),
        Fault::Close { code } => state.to_conns(shard, |c| {
            let code = CloseCode(code);
            if !code.session_survives() {
                if let Some(s) = c.session.as_deref().and_then(|id| state.session(id)) {
                    let why = if code == CloseCode::SESSION_TIMED_OUT {
                        Ended::TimedOut
                    } else {
                        Ended::Invalidated
                    };
                    lock(&s).end(why);
                }
            }
            Some(Outbound::Close(code.0))
        }),
        Fault::DropTcp => state.to_conns(shard, |_| Some(Outbound::Drop)),
        Fault::CorruptFrame => state.to_conns(shard, |_| Some(Outbound::Corrupt)),
        Fault::StopAcks(on) if shard.is_some() => {
            switch(&|s| s.stop_acks = on);
            0
        }
        Fault::StopAcks(on) => {
            f.stop_acks.store(on, Ordering::Relaxed);
            if !on {
                // Off everywhere means off on every shard too.
                lock(&f.shards)
                    .values_mut()
                    .for_each(|s| s.stop_acks = false);
            }
            0
        }
        Fault::CloseBeforeReady(code) if shard.is_some() => {
            switch(&|s| s.close_before_ready = code);
            0
        }
        Fault::CloseBeforeReady(code) => {
            *lock(&f.close_before_ready) = code;
            if code.is_none() {
                lock(&f.shards)
                    .values_mut()
                    .for_each(|s| s.close_before_ready = None);
            }
            0
        }
        Fault::RefuseResume(on) => {
            f.refuse_resume.store(on, Ordering::Relaxed);
            0
        }
        Fault::SlowRest(d) => {
            f.slow_rest_us
                .store(d.as_micros() as u64, Ordering::Relaxed);
            0
        }
        Fault::RateLimitStorm { count, scope } => {
            *lock(&f.storm) = Some(Storm {
                remaining: count,
                scope,
                retry_after: state.config.storm_retry_after,
            });
            0
        }
        Fault::RateLimitStormFor {
            count,
            scope,
            retry_after,
        } => {
            *lock(&f.storm) = Some(Storm {
                remaining: count,
                scope,
                retry_after,
            });
            0
        }
        Fault::RevokeToken(on) => {
            f.token_revoked.store(on, Ordering::Relaxed);
            0
        }
        Fault::RefuseGateway(on) => {
            f.refuse_gateway.store(on, Ordering::Relaxed);
            0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faults_have_readable_json() {
        let cases = [
            (
                r#"{"kind":"close","code":4000}"#,
                Fault::Close { code: 4000 },
            ),
            (
                r#"{"kind":"invalid_session","resumable":false}"#,
                Fault::InvalidSession { resumable: false },
            ),
            (r#"{"kind":"stop_acks","on":true}"#, Fault::StopAcks(true)),
            (
                r#"{"kind":"slow_rest","delay_ms":250}"#,
                Fault::SlowRest(Duration::from_millis(250)),
            ),
            (
                r#"{"kind":"rate_limit_storm","count":3,"scope":"global"}"#,
                Fault::RateLimitStorm {
                    count: 3,
                    scope: RateLimitScope::Global,
                },
            ),
            (
                r#"{"kind":"rate_limit_storm","count":2,"scope":"user","retry_after_ms":1500}"#,
                Fault::RateLimitStormFor {
                    count: 2,
                    scope: RateLimitScope::User,
                    retry_after: Duration::from_millis(1500),
                },
            ),
            (r#"{"kind":"drop_tcp"}"#, Fault::DropTcp),
            (r#"{"kind":"corrupt_frame"}"#, Fault::CorruptFrame),
            (
                r#"{"kind":"corrupt_frame","shard":1}"#,
                Fault::CorruptFrame.on_shard(1),
            ),
            (
                r#"{"kind":"close_before_ready","code":4000}"#,
                Fault::CloseBeforeReady(Some(4000)),
            ),
            (
                r#"{"kind":"close_before_ready"}"#,
                Fault::CloseBeforeReady(None),
            ),
            (
                r#"{"kind":"close","code":4000,"shard":2}"#,
                Fault::Close { code: 4000 }.on_shard(2),
            ),
            (
                r#"{"kind":"stop_acks","on":true,"shard":1}"#,
                Fault::StopAcks(true).on_shard(1),
            ),
            (
                r#"{"shard":0,"kind":"reconnect"}"#,
                Fault::Reconnect.on_shard(0),
            ),
        ];
        for (json, fault) in cases {
            let parsed: Fault = serde_json::from_str(json).unwrap();
            assert_eq!(parsed, fault);
            let back: Fault =
                serde_json::from_value(serde_json::to_value(&fault).unwrap()).unwrap();
            assert_eq!(back, fault);
        }
        // The existing forms are unchanged: no `shard` key appears unless aimed.
        assert_eq!(
            serde_json::to_value(Fault::Close { code: 4000 }).unwrap(),
            serde_json::json!({"kind": "close", "code": 4000})
        );
        assert_eq!(
            serde_json::to_value(Fault::DropTcp.on_shard(3)).unwrap(),
            serde_json::json!({"kind": "drop_tcp", "shard": 3})
        );
        assert!(
            serde_json::from_str::<Fault>(r#"{"kind":"slow_rest","delay_ms":5,"shard":1}"#)
                .is_err()
        );
    }
}
