//! `GET {DISCORD_API_URL}/gateway/bot` before every IDENTIFY: the URL to connect to and the
//! `session_start_limit` budget. Running out of session starts resets the bot token, so when
//! `remaining` is 0 the holder waits `reset_after` instead of trying (`identify_queue.rs` keeps
//! the budget and the `max_concurrency` per 5 s spacing).

use crate::config::Secret;
use serde::Deserialize;

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_discords_shape() {
        let g: GatewayBot = serde_json::from_str(
            r#"{"url":"wss://gateway.discord.gg","shards":1,"session_start_limit":{"total":1000,"remaining":999,"reset_after":14400000,"max_concurrency":1}}"#,
        )
        .unwrap();
        assert_eq!(g.session_start_limit.remaining, 999);
    }
}
