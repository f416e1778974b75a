//! Outcomes of commands that were answered `202 queued` go to the edge as
//! `POST {EDGE_URL}/link/command-result`, which turns them into a `command.result` stream event
//! for the user who sent the command. A few bounded retries: a browser waiting for a result is
//! better served by a late failure than by none, but this must never pile up.

use crate::config::Secret;
use contracts::CommandResultPost;
use std::time::Duration;

#[derive(Clone)]
pub struct ResultPoster {
    client: reqwest::Client,
    url: String,
    auth: String,
}

impl ResultPoster {
    pub fn new(client: reqwest::Client, edge_url: &url::Url, token: &Secret) -> Self {
        ResultPoster {
            client,
            url: format!(
                "{}/link/command-result",
                edge_url.as_str().trim_end_matches('/')
            ),
            auth: format!("Bearer {}", token.expose()),
        }
    }

    /// Delivers one result, retrying up to 5 times over about 6 s.
    pub async fn post(&self, result: &CommandResultPost) {
        let body = serde_json::to_vec(result).expect("contract types serialize");
        let trace = result
            .event
            .traceparent
            .as_deref()
            .map(super::executor::trace_id)
            .unwrap_or("");
        for attempt in 0..5u32 {
            let sent = self
                .client
                .post(&self.url)
                .header(reqwest::header::AUTHORIZATION, &self.auth)
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .timeout(Duration::from_secs(3))
                .body(body.clone())
                .send()
                .await;
            match sent {
                Ok(r) if r.status().is_success() => {
                    tracing::info!(trace_id = trace, command_id = %result.event.command_id, "command result delivered to the edge");
                    return;
                }
                Ok(r) if r.status().is_client_error() => {
                    tracing::warn!(trace_id = trace, command_id = %result.event.command_id, status = r.status().as_u16(), "edge refused the command result");
                    return;
                }
                Ok(r) => tracing::warn!(
                    status = r.status().as_u16(),
                    attempt,
                    "command result post failed"
                ),
                Err(e) => {
                    tracing::warn!(error = %e.without_url(), attempt, "command result post failed")
                }
            }
            tokio::time::sleep(Duration::from_millis(200u64 << attempt)).await;
        }
        tracing::error!(trace_id = trace, command_id = %result.event.command_id, "command result not delivered to the edge");
    }
}
