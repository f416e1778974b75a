//! `POST /link/ingest` in the Worker: read and validate the holder's batch, deal it out by guild
//! (`routing::split`), and write every part in parallel:
//!
//! 1. First round, at once: each guild with envelopes (and the default guild, as a keep-alive
//!    when it has none) gets its sub-batch at its `GuildHub`; the `BotHub` gets the envelopes
//!    without a guild, the gaps, the registry changes and the list of guilds reached.
//! 2. Second round: the guilds the BotHub named: known guilds of the gaps' shards that had no
//!    envelopes here (they must store the gap) and quiet guilds due a keep-alive.
//!
//! A batch with nothing for the BotHub (no guildless envelopes, gaps or GUILD_CREATE/DELETE)
//! skips it unless this isolate last asked it about that holder half a keep-alive interval ago
//! or more, so a busy single guild costs one hub write per batch.
//!
//! The holder gets 2xx only when every first-round part and every gap was stored; any failure
//! is a 500 and the holder retries the whole batch, which each hub stores once (dedup by epoch,
//! shard and id). A keep-alive that fails only logs: the next one (at most `HUB_KEEPALIVE_MS`
//! later) repairs it, and failing the batch for it would resend every guild's events.

use crate::entry_bot::{bot_stub, hub_stub, internal_post};
use crate::join::join_all;
use crate::router;
use crate::routing::{self, BotAnswer, HubAck, BOT};
use contracts::{ErrorCode, IngestAck, IngestBatch, Snowflake, Version};
use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use worker::*;

thread_local! {
    /// When this isolate last asked the BotHub about a batch, by holder id.
    static BOT_CALLS: std::cell::RefCell<std::collections::HashMap<String, f64>> =
        std::cell::RefCell::new(std::collections::HashMap::new());
}

type Call<'a> = Pin<Box<dyn Future<Output = std::result::Result<Reply, String>> + 'a>>;

/// A part's answer.
enum Reply {
    Hub(HubAck),
    Bot(BotAnswer),
}

fn fail(code: ErrorCode, message: impl Into<String>) -> Result<Response> {
    let (status, body) = router::error(code, message);
    crate::entry::json(status, body, &[])
}

/// POSTs `body` to an object and reads its answer as JSON.
async fn post<T: serde::de::DeserializeOwned>(
    stub: Result<Stub>,
    path: &str,
    guild: Option<&str>,
    body: String,
) -> std::result::Result<T, String> {
    let send = async {
        let req = internal_post(path, guild, body)?;
        let mut resp = stub?.fetch_with_request(req).await?;
        let text = resp.text().await?;
        Ok::<_, Error>((resp.status_code(), text))
    };
    match send.await {
        Ok((200, text)) => serde_json::from_str::<T>(&text).map_err(|e| e.to_string()),
        Ok((status, text)) => Err(format!(
            "{status} {}",
            text.chars().take(200).collect::<String>()
        )),
        Err(e) => Err(e.to_string()),
    }
}

/// One sub-batch to one guild's hub.
fn to_hub<'a>(env: &'a Env, guild: Snowflake, batch: &IngestBatch) -> Call<'a> {
    let body = serde_json::to_string(batch).expect("batch serializes");
    Box::pin(async move {
        let g = guild.to_string();
        post::<HubAck>(hub_stub(env, &g), "/link/ingest", Some(&g), body)
            .await
            .map(Reply::Hub)
            .map_err(|e| format!("guild {g}: {e}"))
    })
}

pub(crate) async fn handle(
    mut req: Request,
    env: &Env,
    config: &crate::config::Config,
) -> Result<Response> {
    let max = config.max_ingest_bytes;
    let body = req.bytes().await?;
    if body.len() as u64 > max {
        return fail(
            ErrorCode::TooLarge,
            format!("ingest body exceeds {max} bytes; split the batch"),
        );
    }
    let batch: IngestBatch = match contracts::validate::parse(&body)
        .and_then(|b: IngestBatch| crate::ingest::check(&b).map(|_| b))
    {
        Ok(b) => b,
        Err(e) => {
            let (status, body) = router::invalid(e);
            return crate::entry::json(status, body, &[]);
        }
    };
    drop(body);
    let routing::Split {
        hubs,
        bot,
        head,
        ignored,
    } = routing::split(batch, config.default_guild(), |g| config.allows(g));

    // First round: every guild of the batch and the BotHub, in parallel.
    let mut targets: Vec<Option<Snowflake>> = hubs.iter().map(|(g, _)| Some(*g)).collect();
    let mut calls: Vec<Call> = hubs.iter().map(|(g, b)| to_hub(env, *g, b)).collect();
    drop(hubs);
    // The BotHub is asked when the batch has something for it, and otherwise at most twice per
    // keep-alive interval per holder (for keep-alives and holder liveness): a batch of one busy
    // guild then costs one hub write, as before there were several guilds.
    let now = js_sys::Date::now();
    let needed = !bot.batch.envelopes.is_empty()
        || !bot.batch.gaps.is_empty()
        || !bot.changes.is_empty()
        || BOT_CALLS.with_borrow(|m| {
            m.get(&head.holder_id)
                .is_none_or(|t| now - t >= config.hub_keepalive_ms as f64 / 2.0)
        });
    if needed {
        BOT_CALLS.with_borrow_mut(|m| {
            if m.len() >= 1024 {
                m.clear();
            }
            m.insert(head.holder_id.clone(), now);
        });
        let bot_body = serde_json::to_string(&bot).expect("bot part serializes");
        targets.push(None);
        calls.push(Box::pin(async move {
            post::<BotAnswer>(bot_stub(env), "/bot/ingest", None, bot_body)
                .await
                .map(Reply::Bot)
                .map_err(|e| format!("bot record: {e}"))
        }));
    }
    drop(bot);
    let first = join_all(calls).await;

    let mut totals = IngestAck {
        version: Version,
        accepted: 0,
        duplicates: 0,
        last_cursor: None,
        cursor: None,
        ignored: (ignored > 0).then_some(ignored),
        cursors: BTreeMap::new(),
    };
    let default = config.default_guild();
    let mut failed = Vec::new();
    let mut second = Vec::new();
    let parts = first.len();
    for (target, reply) in targets.into_iter().zip(first) {
        match reply {
            Ok(Reply::Hub(ack)) => {
                let g = target.expect("a guild's reply");
                totals.accepted += ack.accepted;
                totals.duplicates += ack.duplicates;
                totals.cursors.insert(g.to_string(), ack.cursor);
                if default == Some(g) {
                    totals.cursor = Some(ack.cursor);
                }
            }
            Ok(Reply::Bot(answer)) => {
                totals.accepted += answer.accepted;
                totals.duplicates += answer.duplicates;
                totals.cursors.insert(BOT.to_string(), answer.cursor);
                second = routing::second_round(&head, &answer);
            }
            Err(e) => failed.push(e),
        }
    }
    if !failed.is_empty() {
        console_error!(
            "ingest: batch {} of {}: {} of {parts} parts not stored: {}",
            head.batch,
            head.holder_id,
            failed.len(),
            failed.join("; ")
        );
        return fail(
            ErrorCode::Internal,
            format!(
                "{} of {parts} hubs did not store their part ({}); retry the batch",
                failed.len(),
                failed.join("; ")
            ),
        );
    }

    // Second round: gaps for guilds without envelopes here (required) and keep-alives.
    if !second.is_empty() {
        let required: Vec<(Snowflake, bool)> = second.iter().map(|(g, _, r)| (*g, *r)).collect();
        let calls: Vec<Call> = second.iter().map(|(g, b, _)| to_hub(env, *g, b)).collect();
        let replies = join_all(calls).await;
        let mut gaps_failed = Vec::new();
        for ((g, must), reply) in required.into_iter().zip(replies) {
            match reply {
                Ok(Reply::Hub(ack)) => {
                    totals.accepted += ack.accepted;
                    totals.duplicates += ack.duplicates;
                    totals.cursors.insert(g.to_string(), ack.cursor);
                }
                Ok(Reply::Bot(_)) => {}
                Err(e) if must => gaps_failed.push(e),
                Err(e) => console_warn!("ingest: keep-alive for guild {g} failed: {e}"),
            }
        }
        if !gaps_failed.is_empty() {
            console_error!("ingest: gaps not stored: {}", gaps_failed.join("; "));
            return fail(
                ErrorCode::Internal,
                format!(
                    "{} hubs did not store the batch's gaps ({}); retry the batch",
                    gaps_failed.len(),
                    gaps_failed.join("; ")
                ),
            );
        }
    }
    crate::entry::json(
        200,
        serde_json::to_string(&totals).expect("ack serializes"),
        &[],
    )
}
