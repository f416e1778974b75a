//! The control API over HTTP (`/_sim/...`, JSON), for tests in other processes and languages:
//! the same operations as the library API (emit events, start traffic, inject faults, read
//! records and counters).
//!
//! | route | what |
//! |---|---|
//! | `GET /_sim/stats` | counters |
//! | `GET /_sim/sessions` | sessions |
//! | `GET /_sim/records/{gateway,rest,emitted,connections}` | records |
//! | `DELETE /_sim/records` | forget records |
//! | `POST /_sim/emit` | body: a `SimEvent`; answers the emitted dispatches |
//! | `POST /_sim/fault` | body: a `Fault`; answers how many connections it reached |
//! | `POST /_sim/traffic[?wait=true]` | body: a `TrafficSpec`; 202, or the report when waiting |
//! | `POST /_sim/scenario/demo` | starts the demo scenario |

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use crate::events::SimEvent;
use crate::faults::{self, Fault};
use crate::state::SimState;
use crate::traffic::{self, TrafficSpec};
use crate::{scenario, session_infos, synthetic_record};

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
        _ => (
            StatusCode::NOT_FOUND,
            Json(json!({"error": "records are gateway, rest, emitted or connections"})),
        )
            .into_response(),
    }
}

async fn clear(State(s): State<Arc<SimState>>) -> StatusCode {
    s.records.clear();
    StatusCode::NO_CONTENT
}

async fn emit(State(s): State<Arc<SimState>>, Json(event): Json<SimEvent>) -> Response {
    let (resolved, entries) = s.emit(event);
    let out: Vec<_> = if entries.is_empty() {
        vec![synthetic_record(&resolved)]
    } else {
        entries.iter().map(|e| e.to_record()).collect()
    };
    Json(out).into_response()
}

async fn fault(State(s): State<Arc<SimState>>, Json(f): Json<Fault>) -> Response {
    let n = faults::apply(&s, f);
    Json(json!({"connections": n})).into_response()
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
