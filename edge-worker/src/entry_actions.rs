//! Worker glue for commands: `POST /api/actions/*` (session with `write`, body cap, validation,
//! the per-user limit asked of the guild's hub, then `POST {HOLDER_URL}/commands`) and
//! `POST /link/command-result` (the holder's outcome of a queued command, handed to the hub for
//! the user's streams). Also stamps the stream request with the reader's user. Pure parts are
//! in `actions.rs` and `traceparent.rs`.

use crate::actions::{self, Action, ADMIT_PATH, CHANNEL_HEADER, USER_HEADER};
use crate::auth;
use crate::config::{Config, Secrets};
use crate::router;
use crate::routing::GUILD_HEADER;
use crate::traceparent;
use contracts::{CommandResultPost, ErrorCode};
use std::future::Future;
use std::task::Poll;
use std::time::Duration;
use worker::wasm_bindgen::{JsCast, JsValue};
use worker::*;

/// `Retry-After` (seconds) when the holder can't be reached.
const HOLDER_RETRY_AFTER_SECS: u64 = 2;
/// `Retry-After` (seconds) when the guild's holder is gone or no holder runs its shard (it
/// re-registers every 10 s, and its first batch after a restart makes it alive again).
const HOLDER_GONE_RETRY_AFTER_SECS: u64 = 5;
/// The holder gets `wait_ms` plus this long to answer before it counts as unavailable.
const HOLDER_MARGIN_MS: u64 = 3_000;
/// The hub's path for a command result (after the Worker checked it).
pub(crate) const RESULT_PATH: &str = "/link/command-result";

type Extra = Vec<(&'static str, String)>;

use crate::entry::json as respond;

fn fail(code: ErrorCode, message: impl Into<String>, extra: &Extra) -> Result<Response> {
    let (status, body) = router::error(code, message);
    respond(status, body, extra)
}

/// `N` bytes from the runtime's CSPRNG (`crypto.getRandomValues`).
pub(crate) fn random<const N: usize>() -> [u8; N] {
    let buf = js_sys::Uint8Array::new_with_length(N as u32);
    let crypto = js_sys::Reflect::get(&js_sys::global(), &JsValue::from_str("crypto"));
    let filled = crypto.ok().and_then(|c| {
        let f = js_sys::Reflect::get(&c, &JsValue::from_str("getRandomValues")).ok()?;
        f.dyn_ref::<js_sys::Function>()?.call1(&c, &buf).ok()
    });
    if filled.is_none() {
        console_error!("actions: crypto.getRandomValues is unavailable");
    }
    let mut out = [0u8; N];
    buf.copy_to(&mut out);
    out
}

use crate::entry_bot::hub_stub;

/// Runs `fut`, giving up after `ms`.
async fn within<T>(ms: u64, fut: impl Future<Output = T>) -> Option<T> {
    let mut fut = std::pin::pin!(fut);
    let mut delay = std::pin::pin!(Delay::from(Duration::from_millis(ms)));
    std::future::poll_fn(|cx| {
        if let Poll::Ready(v) = fut.as_mut().poll(cx) {
            return Poll::Ready(Some(v));
        }
        if delay.as_mut().poll(cx).is_ready() {
            return Poll::Ready(None);
        }
        Poll::Pending
    })
    .await
}

/// `POST /api/actions/*`: every action (REST or Gateway command) takes this one path.
pub(crate) async fn handle(
    mut req: Request,
    env: &Env,
    config: &Config,
    secrets: &Secrets,
    action: Action,
    cors: Extra,
) -> Result<Response> {
    let started = js_sys::Date::now();
    let tp = traceparent::carry_or_new(req.headers().get("traceparent")?.as_deref(), random());
    let trace = traceparent::trace_id(&tp).to_string();
    let mut extra = cors;
    extra.push(("traceparent", tp.clone()));
    if extra
        .iter()
        .any(|(k, _)| *k == "Access-Control-Allow-Origin")
    {
        extra.push((
            "Access-Control-Expose-Headers",
            "traceparent, Retry-After".into(),
        ));
    }

    let now_secs = (started / 1000.0) as u64;
    let claims = match auth::check_write(
        secrets,
        req.headers().get("Authorization")?.as_deref(),
        req.headers().get("Cookie")?.as_deref(),
        now_secs,
    ) {
        Ok(c) => c,
        Err(d) => {
            console_log!(
                "actions: trace={trace} {} refused: {}",
                action.name(),
                d.message
            );
            let mut e = extra.clone();
            e.push(("WWW-Authenticate", "Bearer".into()));
            return fail(d.code, d.message, &e);
        }
    };
    let user = claims.sub.unwrap_or_default();
    let key = actions::user_key(&user);

    let max = config.commands.max_body_bytes;
    let declared = req
        .headers()
        .get("Content-Length")?
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max) {
        return fail(
            ErrorCode::TooLarge,
            format!("command body exceeds {max} bytes"),
            &extra,
        );
    }
    let body = req.bytes().await?;
    if body.len() as u64 > max {
        return fail(
            ErrorCode::TooLarge,
            format!("command body exceeds {max} bytes"),
            &extra,
        );
    }
    let command = match actions::parse(action, &body) {
        Ok(c) => c,
        Err(e) => {
            console_log!(
                "actions: trace={trace} {} invalid: {} ({})",
                action.name(),
                e.message,
                e.field.as_deref().unwrap_or("-")
            );
            let (status, body) = router::invalid(e);
            return respond(status, body, &extra);
        }
    };
    // The guild (`?guild=`, default GUILD_ID): one the edge serves, and where its commands go.
    let (guild, lookup) =
        match crate::entry_bot::served_guild(&req, env, config, true, &extra).await? {
            Ok(found) => found,
            Err(resp) => return Ok(resp),
        };
    let holder_url = match lookup
        .as_ref()
        .map_or(Ok(config.commands.holder_url.as_str()), |l| {
            l.holder.url(&config.commands.holder_url)
        }) {
        Ok(u) => u.to_string(),
        Err(reason) => {
            console_warn!(
                "actions: trace={trace} {} guild={guild} holder unavailable: {reason}",
                action.name()
            );
            let mut e = extra.clone();
            e.push(("Retry-After", HOLDER_GONE_RETRY_AFTER_SECS.to_string()));
            return fail(ErrorCode::HolderUnavailable, reason.to_string(), &e);
        }
    };

    // The per-user limit lives in the guild's hub (single-threaded, so exact).
    let admit_headers = Headers::new();
    admit_headers.set(USER_HEADER, &key)?;
    admit_headers.set(GUILD_HEADER, &guild.to_string())?;
    if let Some(channel) = command.channel_id() {
        admit_headers.set(CHANNEL_HEADER, &channel.to_string())?;
    }
    let mut init = RequestInit::new();
    init.with_method(Method::Post).with_headers(admit_headers);
    let admit = Request::new_with_init(&format!("https://hub{ADMIT_PATH}"), &init)?;
    let mut admitted = hub_stub(env, &guild.to_string())?
        .fetch_with_request(admit)
        .await?;
    match admitted.status_code() {
        204 => {}
        429 => {
            let retry = admitted
                .headers()
                .get("Retry-After")?
                .unwrap_or_else(|| "1".into());
            console_log!(
                "actions: trace={trace} {} user={key} rate limited (retry after {retry} s)",
                action.name()
            );
            let text = admitted.text().await?;
            let mut e = extra.clone();
            e.push(("Retry-After", retry));
            return respond(429, text, &e);
        }
        status @ (403 | 503) => {
            // Not a channel of this guild, or the guild's channels aren't known yet.
            let text = admitted.text().await?;
            console_log!(
                "actions: trace={trace} {} user={key} refused by the hub ({status})",
                action.name()
            );
            let mut e = extra.clone();
            if status == 503 {
                e.push(("Retry-After", "2".into()));
            }
            return respond(status, text, &e);
        }
        other => {
            console_error!("actions: trace={trace} hub admit answered {other}");
            return fail(
                ErrorCode::Internal,
                "the edge could not admit the command",
                &extra,
            );
        }
    }

    let Some(link) = secrets.link_token.as_deref() else {
        return fail(
            ErrorCode::Internal,
            "the edge has no LINK_TOKEN configured",
            &extra,
        );
    };
    let command_id = actions::command_id(random());
    let wait_ms = config.commands.wait_ms;
    let holder_body = actions::holder_body(&command_id, &user, guild, &tp, wait_ms, command);
    let headers = Headers::new();
    headers.set("Authorization", &format!("Bearer {link}"))?;
    headers.set("Content-Type", "application/json")?;
    headers.set("traceparent", &tp)?;
    let mut init = RequestInit::new();
    init.with_method(Method::Post)
        .with_headers(headers)
        .with_body(Some(JsValue::from_str(&holder_body)));
    let url = format!("{holder_url}/commands");
    console_log!(
        "actions: trace={trace} command={command_id} {} user={key} -> holder (admitted in {} ms)",
        action.name(),
        (js_sys::Date::now() - started) as u64
    );
    let holder_req = Request::new_with_init(&url, &init)?;
    let exchange = async move {
        let mut resp = Fetch::Request(holder_req).send().await?;
        let retry = resp.headers().get("Retry-After")?;
        let text = resp.text().await?;
        Ok::<_, Error>((resp.status_code(), retry, text))
    };
    let unavailable = |why: String| {
        console_warn!("actions: trace={trace} command={command_id} holder unavailable: {why}");
        let mut e = extra.clone();
        e.push(("Retry-After", HOLDER_RETRY_AFTER_SECS.to_string()));
        fail(
            ErrorCode::HolderUnavailable,
            "the command service is unavailable; retry later",
            &e,
        )
    };
    let (status, retry, text) = match within(wait_ms + HOLDER_MARGIN_MS, exchange).await {
        None => {
            return unavailable(format!(
                "no answer within {} ms",
                wait_ms + HOLDER_MARGIN_MS
            ))
        }
        Some(Err(e)) => return unavailable(e.to_string()),
        // The holder refusing our link token is our fault, not the browser's session.
        Some(Ok((401, _, _))) => return unavailable("it refused the link token".into()),
        Some(Ok(answer)) => answer,
    };
    console_log!(
        "actions: trace={trace} command={command_id} holder answered {status} in {} ms",
        (js_sys::Date::now() - started) as u64
    );
    let mut e = extra;
    if let Some(r) = retry {
        e.push(("Retry-After", r));
    }
    respond(status, text, &e)
}

/// `POST /link/command-result` (link token already checked): validates the holder's post and
/// hands the `command.result` event to the guild's hub for that user's streams.
pub(crate) async fn command_result(
    mut req: Request,
    env: &Env,
    config: &Config,
) -> Result<Response> {
    let max = config.max_ingest_bytes;
    let body = req.bytes().await?;
    if body.len() as u64 > max {
        return fail(
            ErrorCode::TooLarge,
            format!("body exceeds {max} bytes"),
            &vec![],
        );
    }
    let post: CommandResultPost = match contracts::validate::parse_shape(&body) {
        Ok(p) => p,
        Err(e) => {
            let (status, body) = router::invalid(e);
            return respond(status, body, &[]);
        }
    };
    let guild = post.guild_id.to_string();
    if !config.allows(post.guild_id) {
        return fail(
            ErrorCode::NotFound,
            crate::bot::registry::NotServed::NotAllowed.message(&guild),
            &vec![],
        );
    }
    let trace = post
        .event
        .traceparent
        .as_deref()
        .filter(|t| traceparent::is_valid(t))
        .map(traceparent::trace_id)
        .unwrap_or("-");
    let key = actions::user_key(&post.user);
    console_log!(
        "link: trace={trace} command={} result {:?} for user={key}",
        post.event.command_id,
        post.event.status
    );
    let headers = Headers::new();
    headers.set(USER_HEADER, &key)?;
    headers.set(GUILD_HEADER, &guild)?;
    let mut init = RequestInit::new();
    init.with_method(Method::Post)
        .with_headers(headers)
        .with_body(Some(JsValue::from_str(&actions::result_json(&post.event))));
    let to_hub = Request::new_with_init(&format!("https://hub{RESULT_PATH}"), &init)?;
    hub_stub(env, &guild)?.fetch_with_request(to_hub).await
}
