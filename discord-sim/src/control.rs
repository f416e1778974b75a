//! The control API over HTTP (`/_sim/...`, JSON), for tests in other processes and languages:
//! the same operations as the library API (emit events, start traffic, inject faults, read
//! records and counters).
//!
//! | route | what |
//! |---|---|
//! | `GET /_sim/stats` | counters |
//! | `GET /_sim/sessions` | sessions |
//! | `GET /_sim/records/{gateway,rest,emitted,connections,identify}` | records (`identify`: every IDENTIFY with `at_us`, `conn_id`, `shard`, `num_shards`, `bucket`, `outcome`) |
//! | `DELETE /_sim/records` | forget records |
//! | `POST /_sim/emit[?guild_id=ID]` | body: a `SimEvent` (in guild ID, else the guild it names); answers the emitted dispatches |
//! | `POST /_sim/fault` | body: a `Fault` (`"shard": N` aims it at shard N); answers how many connections it reached; 400 if it can't be aimed |
//! | `POST /_sim/traffic[?wait=true]` | body: a `TrafficSpec`; 202, or the report when waiting |
//! | `POST /_sim/scenario/demo` | starts the demo scenario |
//! | `GET /_sim/guilds` | the guilds the bot is in and has left (`id`, `name`, `member`, `unavailable`, `channel_ids`) |
//! | `POST /_sim/guilds` | body `{"id": ID, "name"?: N}`: the bot joins (a guild it left comes back as it was, else a new one as `GuildSeed::generated`); GUILD_CREATE on its shard; 409 if already in |
//! | `DELETE /_sim/guilds/{id}` | the bot leaves: GUILD_DELETE `{id}`; 404 if not in it |
//! | `POST /_sim/guilds/{id}/outage` | GUILD_DELETE `{id, unavailable: true}`; nothing is sent for it until recovered; 409 if already down |
//! | `POST /_sim/guilds/{id}/recover` | GUILD_CREATE; 409 if not down |
//! | `GET /_sim/guild_id?shard=K&num_shards=N[&nth=I]` | a guild id on shard K of N (`guild_id_on_shard`) |

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use crate::clock::snowflake;
use crate::config::{guild_id_on_shard, GuildSeed};
use crate::events::SimEvent;
use crate::faults::{self, Fault};
use crate::state::SimState;
use crate::traffic::{self, TrafficSpec};
use crate::{emission_records, membership, scenario, session_infos};

/// Control routes.
pub fn router() -> Router<Arc<SimState>> {
    Router::new()
        .route("/_sim/stats", get(stats))
        .route("/_sim/sessions", get(sessions))
        .route("/_sim/records/{kind}", get(records))
        .route("/_sim/records", axum::routing::delete(clear))
        .route("/_sim/emit", post(emit))
        .route("/_sim/fault", post(fault))
        .route("/_sim/traffic", post(start_traffic))
        .route("/_sim/scenario/demo", post(demo))
        .route("/_sim/guilds", get(guilds).post(join))
        .route("/_sim/guilds/{id}", axum::routing::delete(leave))
        .route("/_sim/guilds/{id}/outage", post(outage))
        .route("/_sim/guilds/{id}/recover", post(recover))
        .route("/_sim/guild_id", get(guild_id))
}

async fn stats(State(s): State<Arc<SimState>>) -> Response {
    Json(s.records.stats.borrow().clone()).into_response()
}

async fn sessions(State(s): State<Arc<SimState>>) -> Response {
    Json(session_infos(&s)).into_response()
}

async fn records(State(s): State<Arc<SimState>>, Path(kind): Path<String>) -> Response {
    match kind.as_str() {
        "gateway" => Json(s.records.gateway_list()).into_response(),
        "rest" => Json(s.records.rest_list()).into_response(),
        "emitted" => Json(s.records.emitted_list()).into_response(),
        "connections" => Json(s.records.connection_list()).into_response(),
        "identify" => Json(s.records.identify_list()).into_response(),
        _ => (
            StatusCode::NOT_FOUND,
            Json(json!({"error": "records are gateway, rest, emitted, connections or identify"})),
        )
            .into_response(),
    }
}

async fn clear(State(s): State<Arc<SimState>>) -> StatusCode {
    s.records.clear();
    StatusCode::NO_CONTENT
}

#[derive(Deserialize)]
struct EmitQuery {
    #[serde(default, with = "snowflake::option")]
    guild_id: Option<u64>,
}

async fn emit(
    State(s): State<Arc<SimState>>,
    Query(q): Query<EmitQuery>,
    Json(event): Json<SimEvent>,
) -> Response {
    let t = event.name().to_owned();
    let (resolved, entries) = s.emit_in(event, q.guild_id);
    Json(emission_records(&t, resolved.as_ref(), &entries)).into_response()
}

async fn fault(State(s): State<Arc<SimState>>, Json(f): Json<Fault>) -> Response {
    match faults::apply(&s, f) {
        Ok(n) => Json(json!({"connections": n})).into_response(),
        Err(e) => (StatusCode::BAD_REQUEST, Json(json!({"error": e}))).into_response(),
    }
}

async fn guilds(State(s): State<Arc<SimState>>) -> Response {
    Json(membership::infos(&s)).into_response()
}

#[derive(Deserialize)]
struct JoinBody {
    #[serde(with = "snowflake")]
    id: u64,
    #[serde(default)]
    name: Option<String>,
}

/// 400 for a guild id in a path that isn't a snowflake.
fn bad_id() -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({"error": "guild id must be a snowflake"})),
    )
        .into_response()
}

/// `{"sessions": n}` (how many sessions got the dispatch), or `status` with `refused`.
fn sessions_reached(n: Option<usize>, status: StatusCode, refused: &str) -> Response {
    match n {
        Some(n) => Json(json!({"sessions": n})).into_response(),
        None => (status, Json(json!({"error": refused}))).into_response(),
    }
}

async fn join(State(s): State<Arc<SimState>>, Json(b): Json<JoinBody>) -> Response {
    let name = b.name.unwrap_or_else(|| format!("Guild {}", b.id));
    let seed = GuildSeed::generated(b.id, &name);
    sessions_reached(
        membership::join(&s, &seed),
        StatusCode::CONFLICT,
        "the bot is already in that guild",
    )
}

async fn leave(State(s): State<Arc<SimState>>, Path(id): Path<String>) -> Response {
    match id.parse() {
        Ok(id) => sessions_reached(
            membership::leave(&s, id),
            StatusCode::NOT_FOUND,
            "the bot is not in that guild",
        ),
        Err(_) => bad_id(),
    }
}

async fn outage(State(s): State<Arc<SimState>>, Path(id): Path<String>) -> Response {
    match id.parse() {
        Ok(id) => sessions_reached(
            membership::set_outage(&s, id, true),
            StatusCode::CONFLICT,
            "already unavailable, or the bot is not in it",
        ),
        Err(_) => bad_id(),
    }
}

async fn recover(State(s): State<Arc<SimState>>, Path(id): Path<String>) -> Response {
    match id.parse() {
        Ok(id) => sessions_reached(
            membership::set_outage(&s, id, false),
            StatusCode::CONFLICT,
            "not unavailable, or the bot is not in it",
        ),
        Err(_) => bad_id(),
    }
}

#[derive(Deserialize)]
struct GuildIdQuery {
    shard: u64,
    num_shards: u64,
    #[serde(default)]
    nth: u64,
}

async fn guild_id(Query(q): Query<GuildIdQuery>) -> Response {
    if q.num_shards == 0 || q.shard >= q.num_shards {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "need shard < num_shards"})),
        )
            .into_response();
    }
    let id = guild_id_on_shard(q.shard, q.num_shards, q.nth);
    Json(json!({"id": id.to_string()})).into_response()
}

#[derive(Deserialize)]
struct TrafficQuery {
    #[serde(default)]
    wait: bool,
}

async fn start_traffic(
    State(s): State<Arc<SimState>>,
    Query(q): Query<TrafficQuery>,
    Json(spec): Json<TrafficSpec>,
) -> Response {
    if !(spec.rate_per_sec.is_finite() && spec.rate_per_sec >= 0.0) {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "rate_per_sec must be a finite, non-negative number"})),
        )
            .into_response();
    }
    let handle = traffic::start(s, spec);
    if q.wait {
        Json(handle.await).into_response()
    } else {
        (StatusCode::ACCEPTED, Json(json!({"started": true}))).into_response()
    }
}

async fn demo(State(s): State<Arc<SimState>>) -> Response {
    scenario::demo(s);
    (StatusCode::ACCEPTED, Json(json!({"started": true}))).into_response()
}
