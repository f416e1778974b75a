//! The hub's counters and their Prometheus text exposition (`GET /metrics`). Counters live in
//! the Durable Object's memory and restart from zero with it, which Prometheus' `rate()` handles.

use std::fmt::Write;

/// Bucket bounds in seconds.
const BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

#[derive(Clone, Debug, Default)]
pub struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

impl Histogram {
    pub fn observe_ms(&mut self, ms: f64) {
        let secs = ms.max(0.0) / 1000.0;
        for (i, bound) in BUCKETS.iter().enumerate() {
            if secs <= *bound {
                self.counts[i] += 1;
            }
        }
        self.count += 1;
        self.sum += secs;
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        for (i, bound) in BUCKETS.iter().enumerate() {
            let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {}", self.counts[i]);
        }
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {}", self.count);
        let _ = writeln!(out, "{name}_sum {}", self.sum);
        let _ = writeln!(out, "{name}_count {}", self.count);
    }
}

#[derive(Clone, Debug, Default)]
pub struct Metrics {
    pub ingest_batches: u64,
    pub ingest_keepalives: u64,
    pub events_in: u64,
    pub duplicates: u64,
    pub holder_gaps: u64,
    pub ingest_rejected: u64,
    pub events_out: u64,
    pub writes: u64,
    pub connects: u64,
    pub replays: u64,
    pub replayed_events: u64,
    pub replay_gaps: u64,
    pub slow_closed: u64,
    pub dropped: u64,
    pub pings: u64,
    pub status_events: u64,
    /// From the ingest request reaching the hub to its answer (storage included).
    pub ingest_latency: Histogram,
    /// Dispatches accepted but never stored or streamed (they carry a credential).
    pub withheld: u64,
    /// From the holder reading an event off Discord's socket to the hub storing it.
    pub holder_lag: Histogram,
}

/// Point-in-time values the hub supplies when rendering.
#[derive(Clone, Copy, Debug, Default)]
pub struct Gauges {
    pub clients: u64,
    pub head: u64,
    pub window_events: u64,
    pub link_up: bool,
    /// Chunks waiting in client queues, summed over clients.
    pub queued_chunks: u64,
    /// The isolate's wasm linear memory (it only grows; shared by every object in the isolate).
    pub wasm_memory_bytes: u64,
    /// The Durable Object's SQLite database size.
    pub storage_bytes: u64,
}

impl Metrics {
    pub fn render(&self, g: &Gauges) -> String {
        let mut out = String::new();
        let mut counter = |name: &str, help: &str, v: u64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}"
            );
        };
        counter(
            "edge_ingest_batches_total",
            "Ingest batches accepted (keep-alives included).",
            self.ingest_batches,
        );
        counter(
            "edge_ingest_keepalives_total",
            "Empty ingest batches (keep-alives).",
            self.ingest_keepalives,
        );
        counter(
            "edge_events_in_total",
            "Dispatches stored from the holder.",
            self.events_in,
        );
        counter(
            "edge_ingest_duplicates_total",
            "Envelopes dropped as already stored (epoch, id).",
            self.duplicates,
        );
        counter(
            "edge_holder_gaps_total",
            "Holder buffer gaps turned into gap events.",
            self.holder_gaps,
        );
        counter(
            "edge_ingest_rejected_total",
            "Ingest requests refused by the hub (bad body, too large).",
            self.ingest_rejected,
        );
        counter(
            "edge_events_out_total",
            "Events queued to clients, summed over clients.",
            self.events_out,
        );
        counter(
            "edge_client_writes_total",
            "Chunks queued to clients (one per client per batch).",
            self.writes,
        );
        counter(
            "edge_stream_connects_total",
            "Stream connections accepted.",
            self.connects,
        );
        counter(
            "edge_replays_total",
            "Connections that resumed from a cursor.",
            self.replays,
        );
        counter(
            "edge_replayed_events_total",
            "Events sent from the replay window.",
            self.replayed_events,
        );
        counter(
            "edge_replay_gaps_total",
            "Resumes whose cursor was older than the window.",
            self.replay_gaps,
        );
        counter(
            "edge_slow_clients_closed_total",
            "Clients closed because their queue overflowed.",
            self.slow_closed,
        );
        counter(
            "edge_events_dropped_total",
            "Events not delivered to slow clients (they can replay).",
            self.dropped,
        );
        counter(
            "edge_withheld_total",
            "Dispatches accepted but never streamed because they carry a credential (VOICE_SERVER_UPDATE).",
            self.withheld,
        );
        counter("edge_pings_total", "Ping comments queued.", self.pings);
        counter(
            "edge_status_events_total",
            "status events stored (link or gateway changes).",
            self.status_events,
        );
        let mut gauge = |name: &str, help: &str, v: u64| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}");
        };
        gauge(
            "edge_clients_connected",
            "Open SSE streams on this hub.",
            g.clients,
        );
        gauge("edge_cursor", "The newest cursor stored.", g.head);
        gauge(
            "edge_replay_window_events",
            "Events in the replay window.",
            g.window_events,
        );
        gauge(
            "edge_link_up",
            "1 while the holder link is up.",
            u64::from(g.link_up),
        );
        gauge(
            "edge_queued_chunks",
            "Chunks waiting in client queues, summed over clients.",
            g.queued_chunks,
        );
        gauge(
            "edge_wasm_memory_bytes",
            "The isolate's wasm linear memory (never shrinks).",
            g.wasm_memory_bytes,
        );
        gauge(
            "edge_storage_bytes",
            "The Durable Object's SQLite database size.",
            g.storage_bytes,
        );
        self.ingest_latency.render(
            &mut out,
            "edge_ingest_duration_seconds",
            "Time from an ingest request reaching the hub to its answer.",
        );
        self.holder_lag.render(
            &mut out,
            "edge_holder_lag_seconds",
            "Time from the holder receiving a dispatch to the hub storing it.",
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text() {
        let mut m = Metrics {
            events_in: 3,
            ..Default::default()
        };
        m.ingest_latency.observe_ms(3.0);
        m.ingest_latency.observe_ms(40.0);
        let t = m.render(&Gauges {
            clients: 2,
            ..Default::default()
        });
        assert!(t.contains("\nedge_events_in_total 3\n"));
        assert!(t.contains("\nedge_clients_connected 2\n"));
        assert!(t.contains("edge_ingest_duration_seconds_bucket{le=\"0.005\"} 1\n"));
        assert!(t.contains("edge_ingest_duration_seconds_bucket{le=\"+Inf\"} 2\n"));
        assert!(t.contains("edge_ingest_duration_seconds_count 2\n"));
        for line in t.lines().filter(|l| !l.starts_with('#')) {
            assert_eq!(line.split(' ').count(), 2, "{line}");
        }
    }
}
