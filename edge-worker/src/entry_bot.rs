//! Worker glue for the bot-wide side (`bot/`): which guilds may be opened (asking the `BotHub`,
//! with a short per-isolate cache), the list of them for readers (`GET /api/guilds`), holders'
//! `POST /link/register` and `POST /link/identify`, the admin routes `GET /api/bot/stream` and
//! `GET /api/bot/registry`, and the requests the Worker makes to a guild's hub (always naming
//! the guild in `X-Rt-Guild`).

use crate::auth;
use crate::bot::registry::{self, NotServed};
use crate::bot::{Lookup, BOT_HUB_NAME};
use crate::config::{Config, Secrets};
use crate::router::{self, Route};
use crate::routing::GUILD_HEADER;
use contracts::{ErrorCode, Snowflake};
use std::cell::RefCell;
use std::collections::HashMap;
use worker::wasm_bindgen::JsValue;
use worker::*;

/// The `BotHub` namespace binding in `wrangler.toml`.
pub(crate) const BOT_BINDING: &str = "BOT_HUB";
/// Largest body of `/link/register` and `/link/identify`.
const MAX_LINK_BODY: u64 = 16 * 1024;
/// How long a lookup is reused by this isolate (membership and holder routing may be this stale;
/// a guild the bot left is refused by its own hub at once anyway).
const LOOKUP_TTL_MS: f64 = 1_000.0;
/// Lookups cached per isolate at most.
const LOOKUPS_CACHED: usize = 4_096;

type Extra = Vec<(&'static str, String)>;

fn fail(
    code: ErrorCode,
    message: impl Into<String>,
    extra: &[(&'static str, String)],
) -> Result<Response> {
    let (status, body) = router::error(code, message);
    crate::entry::json(status, body, extra)
}

pub(crate) fn bot_stub(env: &Env) -> Result<Stub> {
    env.durable_object(BOT_BINDING)?
        .id_from_name(BOT_HUB_NAME)?
        .get_stub()
}

pub(crate) fn hub_stub(env: &Env, guild: &str) -> Result<Stub> {
    env.durable_object(crate::entry::HUB_BINDING)?
        .id_from_name(guild)?
        .get_stub()
}

/// A copy of a browser's request for a hub: same method, URL and headers, except that the
/// internal headers are the Worker's own (`X-Rt-Guild` = `guild`, `X-Rt-User` = `user` or none).
pub(crate) fn for_hub(req: &Request, guild: &str, user: Option<&str>) -> Result<Request> {
    let headers = req.headers().clone();
    headers.delete(crate::actions::USER_HEADER)?;
    headers.set(GUILD_HEADER, guild)?;
    if let Some(u) = user {
        headers.set(crate::actions::USER_HEADER, &crate::actions::user_key(u))?;
    }
    let mut init = RequestInit::new();
    init.with_method(req.method()).with_headers(headers);
    Request::new_with_init(req.url()?.as_str(), &init)
}

/// A request the Worker makes to an object: `POST https://edge{path}` with a JSON body.
pub(crate) fn internal_post(path: &str, guild: Option<&str>, body: String) -> Result<Request> {
    let headers = Headers::new();
    headers.set("Content-Type", "application/json")?;
    if let Some(g) = guild {
        headers.set(GUILD_HEADER, g)?;
    }
    let mut init = RequestInit::new();
    init.with_method(Method::Post)
        .with_headers(headers)
        .with_body(Some(JsValue::from_str(&body)));
    Request::new_with_init(&format!("https://edge{path}"), &init)
}

thread_local! {
    static LOOKUPS: RefCell<HashMap<Snowflake, (f64, Lookup)>> = RefCell::new(HashMap::new());
}

/// What the BotHub knows of `guild` (cached for [`LOOKUP_TTL_MS`] when the guild is a member
/// or the default one and its holder is alive; a guild not (or no longer) in the registry, or
/// whose holder is gone, is asked every time, so a guild the bot just joined is served, and a
/// holder that came back is used, at once).
pub(crate) async fn lookup(env: &Env, config: &Config, guild: Snowflake) -> Result<Lookup> {
    let now = js_sys::Date::now();
    let hit = LOOKUPS.with_borrow(|m| {
        m.get(&guild)
            .filter(|(at, _)| now - at < LOOKUP_TTL_MS)
            .map(|(_, l)| l.clone())
    });
    if let Some(l) = hit {
        return Ok(l);
    }
    let mut init = RequestInit::new();
    init.with_method(Method::Get);
    let req = Request::new_with_init(&format!("https://edge/bot/lookup?guild={guild}"), &init)?;
    let mut resp = bot_stub(env)?.fetch_with_request(req).await?;
    if resp.status_code() != 200 {
        return Err(Error::RustError(format!(
            "the bot hub answered {} to a lookup",
            resp.status_code()
        )));
    }
    let l: Lookup = serde_json::from_str(&resp.text().await?)
        .map_err(|e| Error::RustError(format!("lookup: {e}")))?;
    // A holder that is gone may come back any moment: that answer is not reused either.
    let member = matches!(
        l.availability,
        Some(contracts::GuildAvailability::Available | contracts::GuildAvailability::Unavailable)
    ) || (l.availability.is_none() && config.default_guild() == Some(guild));
    let cacheable = member && !matches!(l.holder, crate::bot::holders::Route::Unavailable { .. });
    if cacheable {
        LOOKUPS.with_borrow_mut(|m| {
            if m.len() >= LOOKUPS_CACHED {
                m.clear();
            }
            m.insert(guild, (now, l.clone()));
        });
    }
    Ok(l)
}

/// The guild a browser request names (`?guild=`, else `GUILD_ID`), if this edge serves it;
/// else the 404 (or 503 when the registry can't be asked) to answer. `needs_lookup`: also for
/// the default guild (commands need to know where to go).
pub(crate) async fn served_guild(
    req: &Request,
    env: &Env,
    config: &Config,
    needs_lookup: bool,
    extra: &Extra,
) -> Result<std::result::Result<(Snowflake, Option<Lookup>), Response>> {
    let url = req.url()?;
    let requested = crate::filter::pairs(url.query().unwrap_or(""))
        .into_iter()
        .find(|(k, _)| k == "guild")
        .map(|(_, v)| v);
    let guild = match config.requested_guild(requested.as_deref()) {
        Ok(g) => g,
        Err(m) => return Ok(Err(fail(ErrorCode::NotFound, m, extra)?)),
    };
    let default = config.default_guild();
    if !registry::allowed(guild, default, &config.allow_guilds) {
        return Ok(Err(fail(
            ErrorCode::NotFound,
            NotServed::NotAllowed.message(guild),
            extra,
        )?));
    }
    // The default guild needs no lookup to be streamed: it is served until its hub knows the bot
    // left, and that hub answers 404 itself then.
    if default == Some(guild) && !needs_lookup {
        return Ok(Ok((guild, None)));
    }
    let l = match lookup(env, config, guild).await {
        Ok(l) => l,
        Err(e) => {
            console_error!("entry: guild lookup failed: {e}");
            let mut x = extra.clone();
            x.push(("Retry-After", "2".into()));
            return Ok(Err(fail(
                ErrorCode::HolderUnavailable,
                "the edge could not look up the guild; retry later",
                &x,
            )?));
        }
    };
    match registry::serve(guild, default, &config.allow_guilds, l.availability) {
        Ok(()) => Ok(Ok((guild, Some(l)))),
        Err(why) => Ok(Err(fail(ErrorCode::NotFound, why.message(guild), extra)?)),
    }
}

/// `GET /api/guilds` (read access already checked): the BotHub's list (`bot/guilds.rs`), with
/// the CORS headers `extra`; 503 with `Retry-After` when the BotHub can't be asked.
pub(crate) async fn guilds(env: &Env, extra: &Extra) -> Result<Response> {
    let ask = async {
        let mut init = RequestInit::new();
        init.with_method(Method::Get);
        let req = Request::new_with_init("https://edge/bot/guilds", &init)?;
        let mut resp = bot_stub(env)?.fetch_with_request(req).await?;
        let status = resp.status_code();
        let body = resp.text().await?;
        if status != 200 {
            return Err(Error::RustError(format!(
                "the bot hub answered {status} to /bot/guilds: {body}"
            )));
        }
        Ok(body)
    };
    match ask.await {
        Ok(body) => crate::entry::json(200, body, extra),
        Err(e) => {
            console_error!("entry: guild list failed: {e}");
            let mut x = extra.clone();
            x.push(("Retry-After", "2".into()));
            fail(
                ErrorCode::HolderUnavailable,
                "the edge could not read its guild registry; retry later",
                &x,
            )
        }
    }
}

/// `POST /link/register` and `POST /link/identify` (link token already checked): validated here,
/// answered by the BotHub.
pub(crate) async fn link(mut req: Request, env: &Env, route: Route) -> Result<Response> {
    let body = req.bytes().await?;
    if body.len() as u64 > MAX_LINK_BODY {
        return fail(
            ErrorCode::TooLarge,
            format!("body exceeds {MAX_LINK_BODY} bytes"),
            &[],
        );
    }
    let checked = match route {
        Route::Register => {
            contracts::validate::parse::<contracts::RegisterHolder>(&body).map(|_| "/link/register")
        }
        _ => contracts::validate::parse::<contracts::IdentifyAsk>(&body).map(|_| "/link/identify"),
    };
    let path = match checked {
        Ok(p) => p,
        Err(e) => {
            let (status, body) = router::invalid(e);
            return crate::entry::json(status, body, &[]);
        }
    };
    let text = String::from_utf8(body.to_vec()).map_err(|e| Error::RustError(e.to_string()))?;
    bot_stub(env)?
        .fetch_with_request(internal_post(path, None, text)?)
        .await
}

/// `GET /api/bot/stream` and `GET /api/bot/registry`: admin sessions only.
pub(crate) async fn admin(
    req: Request,
    env: &Env,
    secrets: &Secrets,
    route: Route,
    extra: &Extra,
) -> Result<Response> {
    let now_secs = (js_sys::Date::now() / 1000.0) as u64;
    let claims = match auth::check_read(
        secrets,
        false,
        req.headers().get("Authorization")?.as_deref(),
        req.headers().get("Cookie")?.as_deref(),
        now_secs,
    ) {
        Ok(auth::Reader::Session(c)) => c,
        Ok(auth::Reader::Public) => {
            return fail(
                ErrorCode::Unauthorized,
                "an admin session is required",
                extra,
            )
        }
        Err(d) => {
            let mut x = extra.clone();
            x.push(("WWW-Authenticate", "Bearer".into()));
            return fail(d.code, d.message, &x);
        }
    };
    if !claims.has_scope("admin") {
        return fail(
            ErrorCode::Forbidden,
            "the bot-wide routes need a session with the `admin` scope",
            extra,
        );
    }
    let url = req.url()?;
    let path = if route == Route::BotStream {
        "/api/stream"
    } else {
        "/api/bot/registry"
    };
    let query = url.query().map(|q| format!("?{q}")).unwrap_or_default();
    let headers = req.headers().clone();
    headers.delete(crate::actions::USER_HEADER)?;
    headers.delete(GUILD_HEADER)?;
    if let Some(u) = claims.sub.as_deref() {
        headers.set(crate::actions::USER_HEADER, &crate::actions::user_key(u))?;
    }
    let mut init = RequestInit::new();
    init.with_method(Method::Get).with_headers(headers);
    let forward = Request::new_with_init(&format!("https://edge{path}{query}"), &init)?;
    bot_stub(env)?.fetch_with_request(forward).await
}

/// The BotHub's `edge_bot_*` metrics text ("" when it can't be reached; the hub's part stands).
pub(crate) async fn metrics(env: &Env) -> String {
    let get = async {
        let mut init = RequestInit::new();
        init.with_method(Method::Get);
        let req = Request::new_with_init("https://edge/metrics", &init)?;
        bot_stub(env)?.fetch_with_request(req).await?.text().await
    };
    match get.await {
        Ok(t) => t,
        Err(e) => {
            console_warn!("entry: bot metrics: {e}");
            String::new()
        }
    }
}
