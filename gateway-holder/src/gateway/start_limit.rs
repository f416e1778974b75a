//! `GET {DISCORD_API_URL}/gateway/bot` before every IDENTIFY: the URL to connect to and the
//! `session_start_limit` budget. Running out of session starts resets the bot token, so when
//! `remaining` is 0 the holder waits `reset_after` instead of trying, and identifies are spaced by
//! Discord's `max_concurrency` per 5 s rule.

use crate::config::Secret;
use serde::Deserialize;
use std::time::Duration;

#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct SessionStartLimit {
    pub total: u64,
    pub remaining: u64,
    /// Milliseconds until `remaining` resets.
    pub reset_after: u64,
    #[serde(default = "one")]
    pub max_concurrency: u64,
}

fn one() -> u64 {
    1
}

#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct GatewayBot {
    pub url: String,
    #[serde(default)]
    pub shards: u64,
    pub session_start_limit: SessionStartLimit,
}

#[derive(Debug)]
pub enum GatewayBotError {
    /// 401: the bot token is wrong. Never retried.
    Unauthorized,
    /// Anything else: retry with backoff.
    Other(String),
}

pub async fn fetch(
    client: &reqwest::Client,
    api_url: &url::Url,
    token: &Secret,
) -> Result<GatewayBot, GatewayBotError> {
    let url = format!("{}/gateway/bot", api_url.as_str().trim_end_matches('/'));
    let res = client
        .get(&url)
        .header(
            reqwest::header::AUTHORIZATION,
            format!("Bot {}", token.expose()),
        )
        .send()
        .await
        .map_err(|e| {
            GatewayBotError::Other(if e.is_timeout() {
                "GET /gateway/bot timed out".into()
            } else {
                "GET /gateway/bot failed to connect".into()
            })
        })?;
    let status = res.status().as_u16();
    if status == 401 {
        return Err(GatewayBotError::Unauthorized);
    }
    let body = res
        .bytes()
        .await
        .map_err(|_| GatewayBotError::Other("GET /gateway/bot body was cut short".into()))?;
    if !(200..300).contains(&status) {
        return Err(GatewayBotError::Other(format!(
            "GET /gateway/bot answered {status}"
        )));
    }
    serde_json::from_slice(&body)
        .map_err(|e| GatewayBotError::Other(format!("GET /gateway/bot: unexpected body ({e})")))
}

/// How long to wait before the next IDENTIFY may be sent, given the budget and the time since the
/// last one.
pub fn wait_before_identify(
    limit: &SessionStartLimit,
    since_last_identify: Option<Duration>,
) -> Duration {
    if limit.remaining == 0 {
        return Duration::from_millis(limit.reset_after.max(1000));
    }
    let spacing = Duration::from_millis(5000 / limit.max_concurrency.max(1));
    match since_last_identify {
        Some(since) if since < spacing => spacing - since,
        _ => Duration::ZERO,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limit(remaining: u64, reset_after: u64, mc: u64) -> SessionStartLimit {
        SessionStartLimit {
            total: 1000,
            remaining,
            reset_after,
            max_concurrency: mc,
        }
    }

    #[test]
    fn waits_for_the_reset_when_the_budget_is_spent() {
        assert_eq!(
            wait_before_identify(&limit(0, 60_000, 1), None),
            Duration::from_secs(60)
        );
        assert_eq!(
            wait_before_identify(&limit(5, 60_000, 1), None),
            Duration::ZERO
        );
    }

    #[test]
    fn spaces_identifies_by_max_concurrency() {
        let l = limit(5, 0, 1);
        assert_eq!(
            wait_before_identify(&l, Some(Duration::from_secs(2))),
            Duration::from_secs(3)
        );
        assert_eq!(
            wait_before_identify(&l, Some(Duration::from_secs(6))),
            Duration::ZERO
        );
        let l = limit(5, 0, 5);
        assert_eq!(
            wait_before_identify(&l, Some(Duration::from_millis(500))),
            Duration::from_millis(500)
        );
    }

    #[test]
    fn parses_discords_shape() {
        let g: GatewayBot = serde_json::from_str(
            r#"{"url":"wss://gateway.discord.gg","shards":1,"session_start_limit":{"total":1000,"remaining":999,"reset_after":14400000,"max_concurrency":1}}"#,
        )
        .unwrap();
        assert_eq!(g.session_start_limit.remaining, 999);
    }
}
