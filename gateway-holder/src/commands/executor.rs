//! Executes one command against Discord's REST API (reqwest): waits for its rate-limit bucket,
//! sends it with the bot token and the command's `traceparent`, learns from the response headers,
//! and retries a bounded number of times on 429, 5xx and transport errors (safe: message sends are
//! idempotent through their nonce, reactions and typing are idempotent by nature).

use super::discord_call::discord_call;
use super::gateway_call::gateway_call;
use super::gateway_link::ShardLinks;
use super::ratelimit::{LimitSettings, RateHeaders, Refusal, RestLimits};
use crate::config::Secret;
use contracts::{Command, ErrorCode, ErrorDetail, HolderCommand};
use serde_json::value::RawValue;
use std::time::Duration;
use tokio::time::Instant;

#[derive(Clone, Debug)]
pub struct ExecutorSettings {
    /// 429 answers retried before the command fails as `rate_limited`.
    pub max_429_retries: u32,
    /// 5xx answers and transport errors retried before the command fails.
    pub max_transient_retries: u32,
    /// Upper bound of one HTTP call.
    pub call_timeout: Duration,
    pub limits: LimitSettings,
}

impl Default for ExecutorSettings {
    fn default() -> Self {
        ExecutorSettings {
            max_429_retries: 3,
            max_transient_retries: 2,
            call_timeout: Duration::from_secs(10),
            limits: LimitSettings::default(),
        }
    }
}

/// How a command ended.
#[derive(Debug)]
pub enum Outcome {
    /// Discord accepted it; its answer body (e.g. the message), if any.
    Sent(Option<Box<RawValue>>),
    Failed(ErrorDetail),
}

fn failed(code: ErrorCode, message: impl Into<String>) -> Outcome {
    Outcome::Failed(ErrorDetail {
        code,
        message: message.into(),
        field: None,
    })
}

/// The trace id part of a W3C `traceparent` (for log lines).
pub fn trace_id(traceparent: &str) -> &str {
    traceparent.split('-').nth(1).unwrap_or("")
}

pub struct Executor {
    http: reqwest::Client,
    api_base: String,
    token: Secret,
    limits: RestLimits,
    settings: ExecutorSettings,
    /// The shard sessions' command links and the intents they identified with.
    gateway: Option<(ShardLinks, u64)>,
}

impl Executor {
    pub fn new(
        http: reqwest::Client,
        api_base: &str,
        token: Secret,
        settings: ExecutorSettings,
    ) -> Self {
        Executor {
            http,
            api_base: api_base.trim_end_matches('/').to_string(),
            token,
            limits: RestLimits::new(settings.limits.clone()),
            settings,
            gateway: None,
        }
    }

    /// Routes Gateway commands to the shard sessions behind `links` (which identified with
    /// `intents`), each to the shard of its guild.
    pub fn with_gateway(mut self, links: ShardLinks, intents: u64) -> Self {
        self.gateway = Some((links, intents));
        self
    }

    /// Runs `c` until `deadline`: a REST call, or a Gateway command handed to the session.
    pub async fn run(&self, c: &HolderCommand, deadline: Instant) -> Outcome {
        if c.command.is_gateway() {
            self.execute_gateway(c, deadline).await
        } else {
            self.execute(&c.command_id, &c.command, &c.traceparent, deadline)
                .await
        }
    }

    /// A Gateway command: written to the socket by the session (outcome `sent`), or failed.
    pub async fn execute_gateway(&self, c: &HolderCommand, deadline: Instant) -> Outcome {
        let trace = trace_id(&c.traceparent);
        let Some((links, intents)) = &self.gateway else {
            return failed(
                ErrorCode::HolderUnavailable,
                "this holder has no gateway session for commands",
            );
        };
        let link = match links.for_guild(c.guild_id) {
            Ok(l) => l,
            Err(e) => return Outcome::Failed(e),
        };
        let call = match gateway_call(&c.command_id, c.guild_id, &c.command, *intents) {
            Ok(call) => call,
            Err(e) => return Outcome::Failed(e),
        };
        let op = call.op;
        let started = Instant::now();
        let outcome = link.send(&c.command_id, trace, call, deadline).await;
        let elapsed_ms = started.elapsed().as_millis() as u64;
        match outcome {
            Ok(result) => {
                tracing::info!(trace_id = trace, command_id = %c.command_id, op, outcome = "sent", elapsed_ms, "gateway command");
                Outcome::Sent(RawValue::from_string(result.to_string()).ok())
            }
            Err(e) => {
                tracing::warn!(trace_id = trace, command_id = %c.command_id, op, outcome = ?e.code, reason = %e.message, elapsed_ms, "gateway command");
                Outcome::Failed(e)
            }
        }
    }

    pub fn limits(&self) -> &RestLimits {
        &self.limits
    }

    pub async fn execute(
        &self,
        command_id: &str,
        command: &Command,
        traceparent: &str,
        deadline: Instant,
    ) -> Outcome {
        let Some(call) = discord_call(command_id, command) else {
            return failed(
                ErrorCode::Internal,
                format!("{} is not a REST command", command.kind()),
            );
        };
        let trace = trace_id(traceparent);
        let mut rate_limited = 0;
        let mut transient = 0;
        loop {
            let permit = match self.limits.acquire(&call.route, deadline).await {
                Ok(p) => p,
                Err(Refusal::Unauthorized) => {
                    return failed(
                        ErrorCode::DiscordError,
                        "Discord rejected the bot token (401); the holder makes no more REST calls until it restarts",
                    )
                }
                Err(Refusal::InvalidRequestGuard { retry_after }) => {
                    return failed(
                        ErrorCode::RateLimited,
                        format!(
                            "too many invalid requests to Discord in 10 minutes; calls resume in {} s",
                            retry_after.as_secs().max(1)
                        ),
                    )
                }
                Err(Refusal::WouldMissDeadline { wait }) => {
                    return failed(
                        ErrorCode::DeadlineExceeded,
                        format!("Discord's rate limit needs a {} ms wait, past the command's deadline", wait.as_millis()),
                    )
                }
            };
            let now = Instant::now();
            if now >= deadline {
                return failed(ErrorCode::DeadlineExceeded, "the command's deadline passed");
            }
            let method = reqwest::Method::from_bytes(call.route.method.as_bytes())
                .expect("static method names");
            let mut request = self
                .http
                .request(method, format!("{}{}", self.api_base, call.route.path))
                .header("Authorization", format!("Bot {}", self.token.expose()))
                .header("traceparent", traceparent)
                .timeout(self.settings.call_timeout.min(deadline - now));
            if let Some(body) = &call.body {
                request = request
                    .header(reqwest::header::CONTENT_TYPE, "application/json")
                    .body(body.to_string());
            }
            let started = Instant::now();
            let response = request.send().await;
            let response = match response {
                Ok(r) => r,
                Err(e) => {
                    drop(permit);
                    transient += 1;
                    // reqwest's message names the URL at most, never headers: no secret in it.
                    let reason = if e.is_timeout() {
                        "timed out".to_string()
                    } else {
                        e.without_url().to_string()
                    };
                    tracing::warn!(trace_id = trace, command_id, route = call.route.template, attempt = transient, %reason, "discord call failed");
                    if transient > self.settings.max_transient_retries {
                        return failed(
                            ErrorCode::DiscordError,
                            format!("Discord could not be reached: {reason}"),
                        );
                    }
                    backoff(transient, deadline).await;
                    continue;
                }
            };
            let status = response.status().as_u16();
            let headers = RateHeaders::parse(|name| {
                response
                    .headers()
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string)
            });
            self.limits.observe(&call.route, status, &headers);
            let body = response.bytes().await.unwrap_or_default();
            drop(permit);
            tracing::info!(
                trace_id = trace,
                command_id,
                route = call.route.template,
                status,
                elapsed_ms = started.elapsed().as_millis() as u64,
                "discord call"
            );
            match status {
                200..=299 => {
                    let text = String::from_utf8_lossy(&body).into_owned();
                    let result = if text.trim().is_empty() { None } else { RawValue::from_string(text).ok() };
                    return Outcome::Sent(result);
                }
                429 => {
                    rate_limited += 1;
                    if rate_limited > self.settings.max_429_retries {
                        return failed(
                            ErrorCode::RateLimited,
                            format!(
                                "Discord answered 429 (scope {}) {rate_limited} times; gave up",
                                headers.scope.as_deref().unwrap_or("user")
                            ),
                        );
                    }
                }
                401 => {
                    return failed(
                        ErrorCode::DiscordError,
                        "Discord rejected the bot token (401); the holder makes no more REST calls until it restarts",
                    )
                }
                500..=599 => {
                    transient += 1;
                    if transient > self.settings.max_transient_retries {
                        return failed(ErrorCode::DiscordError, format!("Discord answered {status} after retries"));
                    }
                    backoff(transient, deadline).await;
                }
                _ => {
                    let message = serde_json::from_slice::<serde_json::Value>(&body)
                        .ok()
                        .and_then(|v| v.get("message").and_then(|m| m.as_str()).map(str::to_string))
                        .unwrap_or_default();
                    return failed(ErrorCode::DiscordError, format!("Discord answered {status}: {message}"));
                }
            }
        }
    }
}

/// Capped exponential backoff that never sleeps past the deadline.
async fn backoff(attempt: u32, deadline: Instant) {
    let wait = Duration::from_millis(100u64 << attempt.min(5)).min(Duration::from_secs(2));
    tokio::time::sleep_until((Instant::now() + wait).min(deadline)).await;
}
