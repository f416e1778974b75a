//! Tells the edge which shards this holder runs and where its `POST /commands` is
//! (`POST {EDGE_URL}/link/register`, as often as the edge's answer asks, [`INTERVAL`] until it
//! has answered), so an edge serving several holders of
//! one bot sends each guild's commands to the holder whose shards carry that guild and knows
//! when that holder is gone. An edge that predates the route answers 404: the holder then keeps
//! quiet about it (a single holder is reached through the edge's `HOLDER_URL` anyway).

use crate::config::Secret;
use std::time::Duration;

/// How often the registration is renewed until the edge says (`register_every_ms`; it treats a
/// holder silent for about three of those as gone).
pub const INTERVAL: Duration = Duration::from_secs(10);

pub struct Registration {
    pub http: reqwest::Client,
    pub edge_url: url::Url,
    pub token: Secret,
    pub holder_id: String,
    pub public_url: url::Url,
    pub first: u32,
    pub last: u32,
    pub count: u32,
}

impl Registration {
    pub fn body(&self) -> contracts::link::RegisterHolder {
        contracts::link::RegisterHolder {
            version: contracts::Version,
            holder_id: self.holder_id.clone(),
            url: self.public_url.as_str().trim_end_matches('/').to_string(),
            shards: contracts::link::ShardRange {
                first: self.first,
                last: self.last,
                count: self.count,
            },
        }
    }

    /// Registers now and every [`INTERVAL`] until aborted.
    pub async fn run(self) {
        let url = format!(
            "{}/link/register",
            self.edge_url.as_str().trim_end_matches('/')
        );
        let body = serde_json::to_string(&self.body()).expect("plain structs serialize");
        let mut warned = false;
        let mut every = INTERVAL;
        loop {
            let r = self
                .http
                .post(&url)
                .bearer_auth(self.token.expose())
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body.clone())
                .send()
                .await;
            match r {
                Ok(r) if r.status().is_success() => {
                    warned = false;
                    let answer = r.bytes().await.ok().and_then(|b| {
                        serde_json::from_slice::<contracts::link::RegisterAnswer>(&b).ok()
                    });
                    if let Some(a) = answer {
                        every = Duration::from_millis(a.register_every_ms.clamp(100, 600_000));
                    }
                }
                Ok(r) if r.status() == reqwest::StatusCode::NOT_FOUND => {}
                other => {
                    if !warned {
                        let why = match other {
                            Ok(r) => format!("answered {}", r.status()),
                            Err(_) => "is unreachable".into(),
                        };
                        tracing::warn!(%url, "the edge's holder registration {why}; retrying every {} ms", every.as_millis());
                        warned = true;
                    }
                }
            }
            tokio::time::sleep(every).await;
        }
    }
}
