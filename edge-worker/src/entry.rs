//! The Worker's `fetch` entry point: routing, CORS, authentication, then the guild's `GuildHub`.
//!
//! Everything that needs no state runs here, in the stateless Worker, so the single-threaded
//! hub spends its time on storage and fan-out. A browser never reaches `/link/*` or `/metrics`
//! without the holder's `LINK_TOKEN`, and those routes never answer CORS.

use crate::auth;
use crate::config::{Config, Secrets};
use crate::cors;
use crate::filter;
use crate::router::{self, Route};
use contracts::ErrorCode;
use worker::*;

/// The Durable Object namespace binding in `wrangler.toml`.
pub(crate) const HUB_BINDING: &str = "GUILD_HUB";

pub(crate) fn json(
    status: u16,
    body: String,
    extra: &[(&'static str, String)],
) -> Result<Response> {
    let headers = Headers::new();
    headers.set("Content-Type", "application/json")?;
    headers.set("Cache-Control", "no-store")?;
    for (k, v) in extra {
        headers.set(k, v)?;
    }
    Ok(Response::ok(body)?
        .with_status(status)
        .with_headers(headers))
}

fn error(
    code: ErrorCode,
    message: impl Into<String>,
    extra: &[(&'static str, String)],
) -> Result<Response> {
    let (status, body) = router::error(code, message);
    json(status, body, extra)
}

thread_local! {
    /// Settings parsed once per isolate: vars and secrets don't change while it lives.
    static SETTINGS: std::cell::OnceCell<std::result::Result<(Config, Secrets), String>> =
        const { std::cell::OnceCell::new() };
}

fn settings(env: &Env) -> std::result::Result<(Config, Secrets), String> {
    SETTINGS.with(|cell| {
        cell.get_or_init(|| {
            let var = |k: &str| env.var(k).ok().map(|v| v.to_string());
            let config = Config::from_lookup(var).map_err(|e| e.to_string())?;
            Ok((config, Secrets::from_lookup(var)))
        })
        .clone()
    })
}

#[event(fetch)]
async fn fetch(req: Request, env: Env, _ctx: Context) -> Result<Response> {
    console_error_panic_hook::set_once();
    let (config, secrets) = match settings(&env) {
        Ok(s) => s,
        Err(e) => {
            console_error!("entry: {e}");
            return error(ErrorCode::Internal, format!("edge misconfigured: {e}"), &[]);
        }
    };
    let method = req.method().to_string();
    let path = req.path();
    let route = match router::route(&method, &path) {
        Ok(r) => r,
        Err(e) => {
            let (status, body) = router::no_route(&e, &method, &path);
            let allow = match e {
                router::NoRoute::MethodNotAllowed { allow } => vec![("Allow", allow.to_string())],
                router::NoRoute::NotFound => vec![],
            };
            return json(status, body, &allow);
        }
    };
    let origin = req.headers().get("Origin")?;
    let cors_origin = route
        .is_browser()
        .then(|| cors::allowed(&config.allowed_origins, origin.as_deref()))
        .flatten()
        .map(str::to_string);
    let cors_headers = cors_origin
        .as_deref()
        .map(cors::response_headers)
        .unwrap_or_default();

    if route == Route::Preflight {
        return match cors_origin.as_deref() {
            Some(o) => {
                let headers = Headers::new();
                for (k, v) in cors::preflight_headers(o) {
                    headers.set(k, &v)?;
                }
                Ok(Response::empty()?.with_status(204).with_headers(headers))
            }
            None => error(ErrorCode::Forbidden, "origin is not allowed", &[]),
        };
    }
    if route == Route::DevSession {
        return dev_session(&config, &secrets);
    }
    if let Route::Action(action) = route {
        return crate::entry_actions::handle(req, &env, &config, &secrets, action, cors_headers)
            .await;
    }

    if route.needs_admin() {
        let resp = crate::entry_bot::admin(req, &env, &secrets, route, &cors_headers).await?;
        return with_cors(resp, &cors_headers);
    }

    let authorization = req.headers().get("Authorization")?;
    if route.needs_link_token() {
        if let Err(d) = auth::check_link(&secrets, authorization.as_deref()) {
            console_warn!("entry: {method} {path} refused: {}", d.message);
            return error(d.code, d.message, &[("WWW-Authenticate", "Bearer".into())]);
        }
        match route {
            Route::Ingest => {
                let max = config.max_ingest_bytes;
                let declared = req
                    .headers()
                    .get("Content-Length")?
                    .and_then(|v| v.parse::<u64>().ok());
                if declared.is_some_and(|n| n > max) {
                    return error(
                        ErrorCode::TooLarge,
                        format!("ingest body exceeds {max} bytes; split the batch"),
                        &[],
                    );
                }
                return crate::entry_ingest::handle(req, &env, &config).await;
            }
            Route::CommandResult => {
                return crate::entry_actions::command_result(req, &env, &config).await
            }
            Route::Register | Route::Identify => {
                return crate::entry_bot::link(req, &env, route).await
            }
            _ => {}
        }
    }
    // Operations on one guild's hub (`?guild=`, default GUILD_ID): health, metrics, disconnect.
    let url = req.url()?;
    let named = filter::pairs(url.query().unwrap_or(""))
        .into_iter()
        .find(|(k, _)| k == "guild")
        .map(|(_, v)| v)
        .filter(|g| !g.trim().is_empty());
    let mut guild = match &named {
        Some(g) if route.needs_link_token() => match g.parse::<contracts::Snowflake>() {
            Ok(g) => g.to_string(),
            Err(e) => {
                return error(
                    ErrorCode::InvalidRequest,
                    format!("guild {g:?} is not a guild id: {e}"),
                    &[],
                )
            }
        },
        _ => config.guild_id.clone(),
    };
    // The stream reader's user (JWT `sub`), for per-user `command.result` events.
    let mut stream_user: Option<String> = None;
    // Voice (`/api/voice`, the legacy WebSocket) and the guild list are read like the stream.
    if route.needs_read() {
        let now_secs = (js_sys::Date::now() / 1000.0) as u64;
        let cookie = req.headers().get("Cookie")?;
        match auth::check_read(
            &secrets,
            config.public_read,
            authorization.as_deref(),
            cookie.as_deref(),
            now_secs,
        ) {
            Ok(auth::Reader::Session(claims)) => stream_user = claims.sub,
            Ok(auth::Reader::Public) => {}
            Err(d) => {
                let mut extra = cors_headers.clone();
                extra.push(("WWW-Authenticate", "Bearer".into()));
                return error(d.code, d.message, &extra);
            }
        }
        if route == Route::Guilds {
            return crate::entry_bot::guilds(&env, &cors_headers).await;
        }
        match crate::entry_bot::served_guild(&req, &env, &config, false, &cors_headers).await? {
            Ok((g, _)) => guild = g.to_string(),
            Err(resp) => return Ok(resp),
        }
    }

    let stub = crate::entry_bot::hub_stub(&env, &guild)?;
    let user = if route == Route::Stream {
        stream_user.as_deref()
    } else {
        None
    };
    let to_hub = crate::entry_bot::for_hub(&req, &guild, user)?;
    let resp = stub.fetch_with_request(to_hub).await?;
    if route == Route::Metrics {
        // The hub's series, then the BotHub's `edge_bot_*`.
        let mut resp = resp;
        let mut text = resp.text().await?;
        text.push_str(&crate::entry_bot::metrics(&env).await);
        let headers = Headers::new();
        headers.set("Content-Type", "text/plain; version=0.0.4")?;
        return Ok(Response::ok(text)?
            .with_status(resp.status_code())
            .with_headers(headers));
    }
    with_cors(resp, &cors_headers)
}

/// `resp` with the CORS headers added (responses from a stub have immutable headers: copied).
fn with_cors(resp: Response, cors_headers: &[(&'static str, String)]) -> Result<Response> {
    if cors_headers.is_empty() {
        return Ok(resp);
    }
    let headers = Headers::new();
    for (k, v) in resp.headers().entries() {
        headers.set(&k, &v)?;
    }
    for (k, v) in cors_headers {
        headers.set(k, v)?;
    }
    Ok(ResponseBuilder::new()
        .with_status(resp.status_code())
        .with_headers(headers)
        .body(resp.body().clone()))
}

/// `POST /api/dev/session` (see [`crate::dev_session`]).
fn dev_session(config: &Config, secrets: &Secrets) -> Result<Response> {
    if !config.dev_login {
        return error(ErrorCode::NotFound, "no route POST /api/dev/session", &[]);
    }
    let Some(secret) = secrets.jwt_secret.as_deref() else {
        return error(
            ErrorCode::Internal,
            "the edge has no CLIENT_JWT_SECRET configured",
            &[],
        );
    };
    let user = crate::dev_session::demo_user(crate::entry_actions::random::<8>());
    let now_secs = (js_sys::Date::now() / 1000.0) as u64;
    let cookie = crate::dev_session::session_cookie(&user, now_secs, secret.as_bytes());
    console_log!("entry: demo session for {user}");
    json(
        200,
        serde_json::json!({"version": contracts::VERSION, "user": user, "scope": "read write"})
            .to_string(),
        &[("Set-Cookie", cookie)],
    )
}
