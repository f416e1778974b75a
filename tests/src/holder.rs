//! Ingest batches as the gateway holder sends them, posted with the link token.

use crate::edge::LINK_TOKEN;
use crate::http::{self, Response};

/// One dispatch to send: Discord event name, channel, and `d` as raw JSON text.
#[derive(Clone, Debug)]
pub struct Dispatch {
    pub kind: String,
    pub channel: Option<String>,
    pub d: String,
}

pub fn dispatch(kind: &str, channel: Option<&str>, d: &str) -> Dispatch {
    Dispatch {
        kind: kind.into(),
        channel: channel.map(str::to_string),
        d: d.into(),
    }
}

/// A holder identity: epoch, next envelope id and batch counter.
pub struct Holder {
    pub epoch: String,
    pub next_id: u64,
    pub batch: u64,
    pub gateway: &'static str,
}

impl Holder {
    pub fn new(epoch: &str) -> Holder {
        Holder {
            epoch: epoch.into(),
            next_id: 1,
            batch: 0,
            gateway: "ready",
        }
    }

    /// Builds the next batch body (assigning ids), without sending it.
    pub fn build(&mut self, dispatches: &[Dispatch]) -> String {
        let mut envs = Vec::new();
        for d in dispatches {
            envs.push(envelope(self.next_id, d));
            self.next_id += 1;
        }
        self.batch += 1;
        batch_body(&self.epoch, self.batch, self.gateway, &envs, "")
    }

    /// Builds and posts the next batch; panics unless it is accepted.
    pub fn send(&mut self, port: u16, dispatches: &[Dispatch]) -> serde_json::Value {
        let body = self.build(dispatches);
        let r = post(port, body.as_bytes());
        assert_eq!(r.status, 200, "ingest refused: {}", r.text());
        r.json()
    }

    /// An empty batch: the holder's keep-alive.
    pub fn keepalive(&mut self, port: u16) -> serde_json::Value {
        self.send(port, &[])
    }
}

/// One envelope's JSON text, with `d` inserted verbatim.
pub fn envelope(id: u64, d: &Dispatch) -> String {
    let channel = d
        .channel
        .as_ref()
        .map(|c| format!(r#","channel_id":"{c}""#))
        .unwrap_or_default();
    format!(
        r#"{{"version":"1.0","id":{id},"shard":0,"session_id":"sess","seq":{id},"type":"{}","guild_id":"1000000000000000001"{channel},"received_at":{},"d":{}}}"#,
        d.kind,
        crate::now_ms(),
        d.d
    )
}

/// A batch body; `extra` is spliced in as further top-level fields (e.g. `,"gaps":[...]`).
pub fn batch_body(
    epoch: &str,
    batch: u64,
    gateway: &str,
    envelopes: &[String],
    extra: &str,
) -> String {
    format!(
        r#"{{"version":"1.0","holder_id":"test-holder","epoch":"{epoch}","batch":{batch},"gateway":"{gateway}","envelopes":[{}]{extra}}}"#,
        envelopes.join(",")
    )
}

/// POSTs a body to `/link/ingest` with the test link token.
pub fn post(port: u16, body: &[u8]) -> Response {
    post_with(port, body, &format!("Bearer {LINK_TOKEN}"))
}

pub fn post_with(port: u16, body: &[u8], authorization: &str) -> Response {
    http::request(
        port,
        "POST",
        "/link/ingest",
        &[
            ("Authorization", authorization),
            ("Content-Type", "application/json"),
        ],
        body,
    )
    .expect("POST /link/ingest")
}

/// A browser session token signed with the test secret.
pub fn session(scope: &str, exp_secs_from_now: i64) -> String {
    let exp = crate::now_ms() as i64 / 1000 + exp_secs_from_now;
    edge_worker::jwt::sign(
        &format!(r#"{{"sub":"tester","exp":{exp},"scope":"{scope}"}}"#),
        crate::edge::JWT_SECRET.as_bytes(),
    )
}
