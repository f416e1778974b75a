//! Prometheus metrics (`GET /metrics`): what an operator needs to see the session and the link to
//! the edge at a glance. One struct owns every metric so the gateway, the forwarder and the HTTP
//! server share them through an `Arc` without a global registry. Labels are bounded: event types are
//! Discord's names, close codes are numbers, never ids or payload content.

use contracts::GatewayState;
use prometheus_client::{
    encoding::text::encode,
    metrics::{
        counter::Counter,
        family::Family,
        gauge::Gauge,
        histogram::{exponential_buckets, Histogram},
    },
    registry::Registry,
};

type Labels = [(&'static str, String); 1];
/// A label and the shard (`{code="4000",shard="2"}`).
pub type ShardLabels = [(&'static str, String); 2];

pub struct Metrics {
    registry: Registry,
    pub gateway_state: Family<ShardLabels, Gauge>,
    pub sessions: Family<ShardLabels, Counter>,
    pub reconnects: Family<ShardLabels, Counter>,
    /// Per shard: sessions in a row that closed before READY/RESUMED.
    pub failed_before_ready: Family<Labels, Gauge>,
    pub events_in: Family<Labels, Counter>,
    pub events_out: Family<Labels, Counter>,
    pub duplicates_skipped: Counter,
    pub bus_lagged: Counter,
    pub batch_size: Histogram,
    pub forward_latency: Histogram,
    pub heartbeat_rtt: Histogram,
    pub posts: Family<Labels, Counter>,
    pub buffer_depth: Gauge,
    pub spill_bytes: Gauge,
    pub dropped: Counter,
    pub command_queue_depth: Gauge,
    pub command_outcomes: Family<Labels, Counter>,
    pub command_wait: Histogram,
    pub command_dispatch: Histogram,
    pub discord_429s: Family<Labels, Counter>,
    pub discord_invalid_requests: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("holder");
        let m = Metrics {
            gateway_state: Family::default(),
            sessions: Family::default(),
            reconnects: Family::default(),
            failed_before_ready: Family::default(),
            events_in: Family::default(),
            events_out: Family::default(),
            duplicates_skipped: Counter::default(),
            bus_lagged: Counter::default(),
            batch_size: Histogram::new(exponential_buckets(1.0, 2.0, 12)),
            forward_latency: Histogram::new(exponential_buckets(0.0005, 2.0, 16)),
            heartbeat_rtt: Histogram::new(exponential_buckets(0.0005, 2.0, 16)),
            posts: Family::default(),
            buffer_depth: Gauge::default(),
            spill_bytes: Gauge::default(),
            dropped: Counter::default(),
            command_queue_depth: Gauge::default(),
            command_outcomes: Family::default(),
            command_wait: Histogram::new(exponential_buckets(0.0001, 2.0, 18)),
            command_dispatch: Histogram::new(exponential_buckets(0.0005, 2.0, 16)),
            discord_429s: Family::default(),
            discord_invalid_requests: Gauge::default(),
            registry: Registry::default(),
        };
        registry.register(
            "gateway_state",
            "1 for the current gateway state (connecting, ready, reconnecting, stopped)",
            m.gateway_state.clone(),
        );
        registry.register(
            "gateway_sessions",
            "Sessions started, by kind (identify or resume)",
            m.sessions.clone(),
        );
        registry.register(
            "gateway_reconnects",
            "Connections ended, by close code or cause",
            m.reconnects.clone(),
        );
        registry.register(
            "gateway_sessions_failed_before_ready",
            "Per shard: connections in a row that ended before READY/RESUMED (a refused token?)",
            m.failed_before_ready.clone(),
        );
        registry.register(
            "events_in",
            "Dispatches received from Discord, by type",
            m.events_in.clone(),
        );
        registry.register(
            "events_out",
            "Envelopes accepted by the edge, by type",
            m.events_out.clone(),
        );
        registry.register(
            "duplicate_dispatches_skipped",
            "Dispatches whose seq was already received on this session",
            m.duplicates_skipped.clone(),
        );
        registry.register(
            "bus_lagged",
            "Bus items a broadcast subscriber missed because it fell behind",
            m.bus_lagged.clone(),
        );
        registry.register(
            "batch_envelopes",
            "Envelopes per ingest batch",
            m.batch_size.clone(),
        );
        registry.register(
            "forward_latency_seconds",
            "From reading a dispatch off the socket to the edge accepting it",
            m.forward_latency.clone(),
        );
        registry.register(
            "heartbeat_rtt_seconds",
            "Gateway heartbeat round trip",
            m.heartbeat_rtt.clone(),
        );
        registry.register(
            "ingest_posts",
            "POST /link/ingest outcomes",
            m.posts.clone(),
        );
        registry.register(
            "buffer_depth",
            "Envelopes waiting for the edge (memory and spill)",
            m.buffer_depth.clone(),
        );
        registry.register(
            "spill_bytes",
            "Bytes in the spill files",
            m.spill_bytes.clone(),
        );
        registry.register(
            "dropped_envelopes",
            "Envelopes dropped because the buffer was full (each reported as a gap)",
            m.dropped.clone(),
        );
        registry.register(
            "command_queue_depth",
            "Commands admitted and not finished (queued or running); the bound is HOLDER_COMMAND_QUEUE",
            m.command_queue_depth.clone(),
        );
        registry.register(
            "command_outcomes",
            "Commands finished, by outcome (sent, or the error code)",
            m.command_outcomes.clone(),
        );
        registry.register(
            "command_queue_wait_seconds",
            "Time a command waited in the queue before it ran",
            m.command_wait.clone(),
        );
        registry.register(
            "command_dispatch_seconds",
            "From POST /commands to Discord's answer",
            m.command_dispatch.clone(),
        );
        registry.register(
            "discord_rate_limited",
            "429 answers from Discord, by scope (user, global, shared)",
            m.discord_429s.clone(),
        );
        registry.register(
            "discord_invalid_requests",
            "Invalid requests (401, 403, non-shared 429) in the last 10 minutes",
            m.discord_invalid_requests.clone(),
        );
        Metrics { registry, ..m }
    }

    pub fn set_gateway_state(&self, shard: u32, state: GatewayState) {
        for s in ["connecting", "ready", "reconnecting", "stopped"] {
            self.gateway_state
                .get_or_create(&Metrics::shard_label("state", s, shard))
                .set(i64::from(s == state_name(state)));
        }
    }

    pub fn label(key: &'static str, value: impl Into<String>) -> Labels {
        [(key, value.into())]
    }

    pub fn shard_label(key: &'static str, value: impl Into<String>, shard: u32) -> ShardLabels {
        [(key, value.into()), ("shard", shard.to_string())]
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}

/// Per-type counters of one family for a caller that counts every event (the bus observer, the
/// forwarder): the counter handle is found by `&str` in a small local list, so the hot path makes
/// no label `String` and takes no family lock. Types are Discord's names; past
/// [`TypeCounters::MAX`] distinct ones the family is used directly.
pub struct TypeCounters {
    family: Family<Labels, Counter>,
    /// Few and skewed (a handful of types carry most events): a scan beats hashing here.
    cache: Vec<(String, Counter)>,
}

impl TypeCounters {
    pub const MAX: usize = 64;

    pub fn new(family: &Family<Labels, Counter>) -> TypeCounters {
        TypeCounters {
            family: family.clone(),
            cache: Vec::new(),
        }
    }

    pub fn inc(&mut self, kind: &str) {
        if let Some(i) = self.cache.iter().position(|(k, _)| k == kind) {
            self.cache[i].1.inc();
            // Move up one place: the busiest types end up first.
            if i > 0 {
                self.cache.swap(i, i - 1);
            }
            return;
        }
        let c = self
            .family
            .get_or_create(&Metrics::label("type", kind))
            .clone();
        c.inc();
        if self.cache.len() < Self::MAX {
            self.cache.push((kind.to_owned(), c));
        }
    }
}

pub fn state_name(state: GatewayState) -> &'static str {
    match state {
        GatewayState::Connecting => "connecting",
        GatewayState::Ready => "ready",
        GatewayState::Reconnecting => "reconnecting",
        GatewayState::Stopped => "stopped",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_the_documented_families() {
        let m = Metrics::new();
        m.set_gateway_state(2, GatewayState::Ready);
        m.events_in
            .get_or_create(&Metrics::label("type", "MESSAGE_CREATE"))
            .inc();
        m.reconnects
            .get_or_create(&Metrics::shard_label("code", "4000", 2))
            .inc();
        m.forward_latency.observe(0.002);
        let mut out = TypeCounters::new(&m.events_out);
        for kind in [
            "GUILD_CREATE",
            "TYPING_START",
            "GUILD_CREATE",
            "READY",
            "GUILD_CREATE",
        ] {
            out.inc(kind);
        }
        out.inc("TYPING_START");
        let text = m.render();
        for needle in [
            "holder_gateway_state{state=\"ready\",shard=\"2\"} 1",
            "holder_gateway_state{state=\"connecting\",shard=\"2\"} 0",
            "holder_events_in_total{type=\"MESSAGE_CREATE\"} 1",
            "holder_gateway_reconnects_total{code=\"4000\",shard=\"2\"} 1",
            "holder_forward_latency_seconds_bucket",
            "holder_buffer_depth",
            "holder_heartbeat_rtt_seconds",
            "holder_events_out_total{type=\"GUILD_CREATE\"} 3",
            "holder_events_out_total{type=\"TYPING_START\"} 2",
            "holder_events_out_total{type=\"READY\"} 1",
        ] {
            assert!(text.contains(needle), "{needle} missing from\n{text}");
        }
    }
}
